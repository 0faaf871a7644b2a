"""Task schedules: DataSync's EventBridge `rate(...)` and `cron(...)` expressions, in UTC.

DataSync takes the EventBridge schedule syntax (`TaskSchedule.ScheduleExpression`):

- `rate(N unit)` with unit `minute|minutes|hour|hours|day|days`; the singular unit goes with
  `N = 1` only and the plural with `N > 1`, as EventBridge requires.
- `cron(minutes hours day-of-month month day-of-week year)`, six fields, where exactly one of
  day-of-month / day-of-week is `?`; day-of-week `1-7` means `SUN-SAT` (names allowed);
  `L` (last day of month / `5L` last Thursday), `W` (`15W` nearest weekday), `#` (`3#1` first
  Tuesday), ranges, lists and `/` steps.

Evaluation is done by **croniter** (pip `croniter`), not by hand. Of the candidates it is the one
that covers EventBridge's features: `L` and `W` in day-of-month, `L`/`#` in day-of-week and a year
field (its 7-field form `min hour dom month dow second year`); cronsim has no year field and
pycron/crontab no `W`/`#`. It is maintained (7.x in 2026) and typed through `types-croniter`.
This module only validates the EventBridge text (so errors name the field at fault) and translates
it to croniter's dialect: day-of-week numbers shift by one (`1`=SUN becomes `0`), `5L` becomes
`L4`, `3#1` becomes `2#1`, `?` becomes `*`, and a second field `0` precedes the year.

A `rate` has no calendar slots: its runs fall at `anchor + k * period`, the anchor being when the
schedule was set (EventBridge counts a rate from the rule's creation). The caller passes that
anchor; `cron` ignores it.

`due_run` is the scheduler's only question: given when a schedule last fired and the time now,
which run (if any) is due? It returns at most ONE slot — the latest one not after now — so a span
missed while the server was down runs once at start-up, not once per missed slot. The slot instant
doubles as an idempotency key (task + slot) so that several servers on one store start a
scheduled run exactly once.

`after_run` folds each scheduled run's result into a `ScheduleHealth` and says when the service
must disable the schedule (`DisabledBy: SERVICE`): after `DEFAULT_FAILURES_BEFORE_DISABLE` (3)
consecutive runs failing with the same ErrorCode, a count DataSync leaves undocumented.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from croniter import croniter
from croniter.croniter import CroniterError

__all__ = [
    "CronExpression",
    "RateExpression",
    "ScheduleError",
    "ScheduleExpression",
    "ScheduleHealth",
    "after_run",
    "check_min_interval",
    "due_run",
    "parse",
]

DEFAULT_MIN_INTERVAL = timedelta(minutes=1)
_MAX_YEAR = 2099  # croniter's last year; EventBridge accepts up to 2199
_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_DAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")


class ScheduleError(ValueError):
    """An expression that is not valid EventBridge syntax; the message says what is wrong."""


def _utc(instant: datetime) -> datetime:
    if instant.tzinfo is None:
        raise ValueError("schedule instants must be timezone-aware (UTC)")
    return instant.astimezone(UTC)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class ScheduleExpression:
    """A parsed schedule: `ScheduleExpression.parse(text)` gives a RateExpression or a
    CronExpression, both answering `next_after`, `latest_at_or_before` and `min_interval`."""

    text: str

    @staticmethod
    def parse(text: str) -> ScheduleExpression:
        return parse(text)

    def next_after(self, instant: datetime, anchor: datetime | None = None) -> datetime:
        raise NotImplementedError

    def latest_at_or_before(
        self, instant: datetime, anchor: datetime | None = None
    ) -> datetime | None:
        raise NotImplementedError

    def min_interval(self) -> timedelta:
        raise NotImplementedError


@dataclass(frozen=True)
class RateExpression(ScheduleExpression):
    """`rate(N unit)`: runs every `period`, counted from the caller's anchor.

    Without an anchor the grid starts at the Unix epoch (so `rate(1 hour)` runs on the hour).
    """

    text: str
    period: timedelta

    def next_after(self, instant: datetime, anchor: datetime | None = None) -> datetime:
        """The first run strictly after `instant` on the grid `anchor + k * period`."""
        instant, anchor = _utc(instant), _utc(anchor or _EPOCH)
        if instant < anchor:
            return anchor
        steps = (instant - anchor) // self.period + 1
        return anchor + steps * self.period

    def latest_at_or_before(
        self, instant: datetime, anchor: datetime | None = None
    ) -> datetime | None:
        instant, anchor = _utc(instant), _utc(anchor or _EPOCH)
        if instant < anchor:
            return None
        return anchor + ((instant - anchor) // self.period) * self.period

    def min_interval(self) -> timedelta:
        return self.period


@dataclass(frozen=True)
class CronExpression(ScheduleExpression):
    """`cron(...)` with six EventBridge fields, evaluated by croniter in UTC."""

    text: str
    fields: tuple[str, str, str, str, str, str]
    croniter_expr: str

    def next_after(self, instant: datetime, anchor: datetime | None = None) -> datetime:
        """The first run strictly after `instant` (the anchor is ignored: cron is calendar-bound)."""
        try:
            nxt: datetime = croniter(self.croniter_expr, _utc(instant)).get_next(datetime)
        except CroniterError as exc:  # e.g. cron(0 0 30 2 ? *) or a year already past
            raise ScheduleError(f"{self.text} has no run after {instant.isoformat()}") from exc
        return nxt.astimezone(UTC)

    def latest_at_or_before(
        self, instant: datetime, anchor: datetime | None = None
    ) -> datetime | None:
        # croniter's get_prev is strictly before its start and works to the second; runs fall on
        # whole minutes, so starting one second after `instant` includes a run at `instant`.
        start = _utc(instant).replace(microsecond=0) + timedelta(seconds=1)
        try:
            prev: datetime = croniter(self.croniter_expr, start).get_prev(datetime)
        except CroniterError:
            return None
        return prev.astimezone(UTC)

    def min_interval(self, horizon: int = 4000) -> timedelta:
        """The smallest gap between two consecutive runs.

        The minute and hour sets give a floor (the closest two times of one day, or the last
        time of a day to the first of the next); the fires themselves, sampled for up to
        `horizon` runs from a fixed start (2026-01-01, so the answer does not move with the
        clock), tell whether the days that run ever reach it. A schedule that runs once has no
        interval: `timedelta.max`.
        """
        minutes, hours = _expand(self.fields[0], 0, 59), _expand(self.fields[1], 0, 23)
        times = sorted(h * 60 + m for h in hours for m in minutes)
        gaps = [b - a for a, b in itertools.pairwise(times)]
        floor = timedelta(minutes=min([*gaps, 24 * 60 - times[-1] + times[0]]))
        best = timedelta.max
        it = croniter(self.croniter_expr, datetime(2026, 1, 1, tzinfo=UTC))
        try:
            prev: datetime = it.get_next(datetime)
            for _ in range(horizon):
                cur: datetime = it.get_next(datetime)
                best = min(best, cur - prev)
                if best <= floor:
                    break
                prev = cur
        except CroniterError:
            pass  # the runs ended (a year field): what was seen is all there is
        return best


_RATE = re.compile(r"rate\(\s*(\d+)\s+([a-z]+)\s*\)")
_RATE_UNITS = {
    "minute": timedelta(minutes=1),
    "hour": timedelta(hours=1),
    "day": timedelta(days=1),
}


def parse(text: str) -> ScheduleExpression:
    """Parse a DataSync ScheduleExpression; raise ScheduleError naming what is wrong."""
    stripped = text.strip()
    if stripped.startswith("rate("):
        return _parse_rate(stripped)
    if stripped.startswith("cron("):
        return _parse_cron(stripped)
    raise ScheduleError(
        f"ScheduleExpression {text!r} must be rate(value unit) or "
        "cron(minutes hours day-of-month month day-of-week year)"
    )


def _parse_rate(text: str) -> RateExpression:
    match = _RATE.fullmatch(text)
    if match is None:
        raise ScheduleError(
            f"{text!r} is not a rate expression: expected rate(N minute|minutes|hour|hours|day|days)"
        )
    value, unit = int(match.group(1)), match.group(2)
    singular = unit.removesuffix("s")
    if singular not in _RATE_UNITS:
        raise ScheduleError(f"{text!r}: unit {unit!r} must be minute(s), hour(s) or day(s)")
    if value <= 0:
        raise ScheduleError(f"{text!r}: the value must be a positive integer")
    if value == 1 and unit != singular:
        raise ScheduleError(f"{text!r}: with the value 1 the unit is singular ({singular})")
    if value > 1 and unit == singular:
        raise ScheduleError(f"{text!r}: with a value above 1 the unit is plural ({singular}s)")
    return RateExpression(text=text, period=value * _RATE_UNITS[singular])


_FIELD_NAMES = ("minutes", "hours", "day-of-month", "month", "day-of-week", "year")
_ITEM = re.compile(r"(\*|[0-9A-Z]+(?:-[0-9A-Z]+)?)(?:/(\d+))?")


def _parse_cron(text: str) -> CronExpression:
    if not text.endswith(")"):
        raise ScheduleError(f"{text!r}: a cron expression ends with ')'")
    parts = text[len("cron(") : -1].split()
    if len(parts) != 6:
        raise ScheduleError(
            f"{text!r} has {len(parts)} fields; cron takes 6: "
            "minutes hours day-of-month month day-of-week year"
        )
    parts = [p.upper() for p in parts]
    minute, hour, dom, month, dow, year = parts
    if (dom == "?") == (dow == "?"):
        raise ScheduleError(
            f"{text!r}: exactly one of day-of-month and day-of-week must be '?' "
            f"(got {dom!r} and {dow!r})"
        )
    for name, value in zip(_FIELD_NAMES, parts, strict=True):
        if value == "?" and name not in ("day-of-month", "day-of-week"):
            raise ScheduleError(f"{text!r}: '?' is allowed only in day-of-month or day-of-week")
    _check_list(text, "minutes", minute, 0, 59)
    _check_list(text, "hours", hour, 0, 23)
    _check_list(text, "month", month, 1, 12, _MONTHS)
    years = _check_list(text, "year", year, 1970, 2199)
    first_year = min((item[0] for item in years if item is not None), default=1970)
    if any(int(n) > _MAX_YEAR for n in re.findall(r"\d+", year) if len(n) == 4):
        raise ScheduleError(f"{text!r}: years after {_MAX_YEAR} are not supported here")
    dom_c = "*" if dom == "?" else _dom(text, dom)
    dow_c = "*" if dow == "?" else _dow(text, dow)
    expr = " ".join((minute, hour, dom_c, month, dow_c, "0", year))
    try:
        croniter(expr, datetime(2026, 1, 1, tzinfo=UTC))
    except CroniterError as exc:  # pragma: no cover - the checks above should catch it first
        raise ScheduleError(f"{text!r} is not a valid cron expression: {exc}") from exc
    fields = (minute, hour, dom, month, dow, year)
    parsed = CronExpression(text=text, fields=fields, croniter_expr=expr)
    try:  # from the first year it names, so a far year field is found, Feb 31 never is
        parsed.next_after(datetime(first_year, 1, 1, tzinfo=UTC) - timedelta(seconds=1))
    except ScheduleError:
        raise ScheduleError(f"{text!r} never runs (no date matches it)") from None
    return parsed


def _number(text: str, field: str, token: str, low: int, high: int, names: tuple[str, ...]) -> int:
    if token.isdigit():
        value = int(token)
    elif token in names:
        value = names.index(token) + low
    else:
        raise ScheduleError(f"{text!r}: {field} value {token!r} is not a number or a name")
    if not low <= value <= high:
        raise ScheduleError(f"{text!r}: {field} value {value} is outside {low}-{high}")
    return value


def _check_list(
    text: str, field: str, value: str, low: int, high: int, names: tuple[str, ...] = ()
) -> list[tuple[int, int, int | None] | None]:
    """Check a list of `*`, `a`, `a-b`, each with an optional `/step`; return the numbers."""
    items: list[tuple[int, int, int | None] | None] = []
    for item in value.split(","):
        match = _ITEM.fullmatch(item)
        if match is None:
            raise ScheduleError(f"{text!r}: {field} item {item!r} is not valid")
        base, step = match.group(1), match.group(2)
        if step is not None and int(step) == 0:
            raise ScheduleError(f"{text!r}: {field} step in {item!r} must be at least 1")
        if base == "*":
            items.append(None)
            continue
        first, _, last = base.partition("-")
        a = _number(text, field, first, low, high, names)
        b = _number(text, field, last, low, high, names) if last else a
        if b < a:
            raise ScheduleError(f"{text!r}: {field} range {item!r} runs backwards")
        items.append((a, b, int(step) if step else None))
    return items


def _dom(text: str, dom: str) -> str:
    """Day-of-month: a list, or `L`, or `NW` (croniter's spelling is the same)."""
    if dom in ("*", "L"):
        return dom
    if dom == "LW":
        raise ScheduleError(f"{text!r}: 'LW' in day-of-month is not supported; use L or NW")
    if dom.endswith("W"):
        if not dom[:-1].isdigit():
            raise ScheduleError(f"{text!r}: W takes one day of the month, as in 15W")
        _number(text, "day-of-month", dom[:-1], 1, 31, ())
        return dom
    _check_list(text, "day-of-month", dom, 1, 31)
    return dom


def _dow(text: str, dow: str) -> str:
    """Day-of-week: EventBridge 1-7 = SUN-SAT becomes croniter's 0-6; `5L`, `3#1` translated."""
    field = "day-of-week"
    if dow == "L":
        return "6"  # the last day of the week: Saturday
    if dow.endswith("L"):
        day = _number(text, field, dow[:-1], 1, 7, _DAYS)
        return f"L{day - 1}"
    if "#" in dow:
        day_s, _, nth = dow.partition("#")
        day = _number(text, field, day_s, 1, 7, _DAYS)
        if not nth.isdigit() or not 1 <= int(nth) <= 5:
            raise ScheduleError(f"{text!r}: the week in {dow!r} must be 1-5")
        return f"{day - 1}#{nth}"
    out = []
    for item in _check_list(text, field, dow, 1, 7, _DAYS):
        if item is None:
            out.append("*")
            continue
        a, b, step = item
        spelled = f"{a - 1}" if a == b and step is None else f"{a - 1}-{b - 1}"
        if step is not None:
            spelled = f"{a - 1}-6/{step}" if a == b else f"{spelled}/{step}"
        out.append(spelled)
    # a `*/N` item kept its step on the star
    return ",".join(_restep(o, i) for o, i in zip(out, dow.split(","), strict=True))


def _restep(spelled: str, item: str) -> str:
    if spelled == "*" and "/" in item:
        return "*/" + item.split("/", 1)[1]
    return spelled


def _expand(value: str, low: int, high: int) -> list[int]:
    """The values of a minutes or hours field (already validated), for the interval check."""
    out: set[int] = set()
    for item in value.split(","):
        base, _, step_s = item.partition("/")
        step = int(step_s) if step_s else 1
        if base == "*":
            a, b = low, high
        else:
            first, _, last = base.partition("-")
            a = int(first)
            b = int(last) if last else (high if step_s else a)
        out.update(range(a, b + 1, step))
    return sorted(out)


def check_min_interval(
    expression: ScheduleExpression, minimum: timedelta = DEFAULT_MIN_INTERVAL
) -> None:
    """Refuse a schedule that can run more often than `minimum` (serve --min-schedule-interval)."""
    interval = expression.min_interval()
    if interval < minimum:
        raise ScheduleError(
            f"{expression.text!r} can run every {_human(interval)}; "
            f"the minimum interval is {_human(minimum)}"
        )


def _human(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            n = seconds // size
            return f"{n} {unit}" + ("s" if n != 1 else "")
    return f"{seconds} seconds"


def due_run(
    expression: ScheduleExpression,
    *,
    anchor: datetime,
    last_fired: datetime | None,
    now: datetime,
) -> datetime | None:
    """The one run due now, or None.

    `anchor` is when the schedule was set (or re-enabled); `last_fired` the slot of the last run
    started (None if never). Every slot after `max(anchor, last_fired)` and not after `now` is
    due, and they collapse into ONE: the latest. The caller records that slot as `last_fired`
    with a compare-and-set, which makes the start exactly-once across servers.
    """
    anchor, now = _utc(anchor), _utc(now)
    base = anchor if last_fired is None else max(anchor, _utc(last_fired))
    if isinstance(expression, RateExpression):
        # a rate's first run is one period after its anchor, as EventBridge's rules are
        first = expression.next_after(base, anchor)
        if first > now:
            return None
        return expression.latest_at_or_before(now, anchor)
    try:
        first = expression.next_after(base)
    except ScheduleError:
        return None  # no run left (a year field in the past)
    if first > now:
        return None
    return expression.latest_at_or_before(now)


# --- auto-disable after repeated failures ---------------------------------------------------

#: A schedule is disabled by the service after this many consecutive scheduled runs ended in
#: ERROR with the same ErrorCode. DataSync documents the behaviour but not the count; three
#: rides out a one-off outage and a retry, yet stops a schedule that can never succeed within
#: a few periods. `serve` can pass another count.
DEFAULT_FAILURES_BEFORE_DISABLE = 3


@dataclass(frozen=True)
class ScheduleHealth:
    """The run of identical failures behind a schedule (kept with the schedule in the store)."""

    error_code: str | None = None
    consecutive: int = 0


def after_run(
    health: ScheduleHealth,
    error_code: str | None,
    error_detail: str | None = None,
    *,
    limit: int = DEFAULT_FAILURES_BEFORE_DISABLE,
) -> tuple[ScheduleHealth, str | None]:
    """Fold one scheduled run's result into `health`.

    Returns the new health and, when the schedule must now be disabled, the `DisabledReason`
    (with `DisabledBy: SERVICE`) naming the error. A success, or a different error, starts the
    count again; runs started by hand (StartTaskExecution) should not be folded in.
    """
    if limit < 1:
        raise ValueError("the failure limit must be at least 1")
    if error_code is None:
        return ScheduleHealth(), None
    count = health.consecutive + 1 if error_code == health.error_code else 1
    new = ScheduleHealth(error_code=error_code, consecutive=count)
    if count < limit:
        return new, None
    detail = f": {error_detail}" if error_detail else ""
    return (
        new,
        f"Disabled after {count} consecutive scheduled runs failed with {error_code}{detail}",
    )
