"""Schedule expressions against known UTC instants, invalid ones refused, and missed runs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from api.schedule import (
    CronExpression,
    RateExpression,
    ScheduleError,
    ScheduleExpression,
    ScheduleHealth,
    after_run,
    check_min_interval,
    due_run,
    parse,
)


def at(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def runs(text: str, start: datetime, count: int) -> list[datetime]:
    expr = ScheduleExpression.parse(text)
    out = []
    for _ in range(count):
        start = expr.next_after(start)
        out.append(start)
    return out


# 2026-01-01 is a Thursday.
@pytest.mark.parametrize(
    ("text", "start", "expected"),
    [
        ("cron(0 12 ? * SUN,WED *)", at(2026, 1, 1), [at(2026, 1, 4, 12), at(2026, 1, 7, 12)]),
        # day-of-week numbers are EventBridge's: 1 = SUN, 4 = WED
        ("cron(0 12 ? * 1,4 *)", at(2026, 1, 1), [at(2026, 1, 4, 12), at(2026, 1, 7, 12)]),
        ("cron(0 8 ? * 3#1 *)", at(2026, 1, 1), [at(2026, 1, 6, 8), at(2026, 2, 3, 8)]),
        ("cron(0 8 ? * MON#2 *)", at(2026, 1, 1), [at(2026, 1, 12, 8), at(2026, 2, 9, 8)]),
        ("cron(0 8 L * ? *)", at(2026, 1, 1), [at(2026, 1, 31, 8), at(2026, 2, 28, 8)]),
        ("cron(30 6 ? * 5L *)", at(2026, 1, 1), [at(2026, 1, 29, 6, 30), at(2026, 2, 26, 6, 30)]),
        # 2026-02-15 is a Sunday: the nearest weekday is Monday the 16th; 2026-03-15 too
        ("cron(0 8 15W * ? *)", at(2026, 2, 1), [at(2026, 2, 16, 8), at(2026, 3, 16, 8)]),
        ("cron(0 0 1 1 ? 2028)", at(2026, 1, 1), [at(2028, 1, 1)]),
        ("cron(0 0 1 1,7 ? 2027-2028)", at(2026, 1, 1), [at(2027, 1, 1), at(2027, 7, 1)]),
        (
            "cron(0/15 9-17 ? * MON-FRI *)",
            at(2026, 1, 2, 17, 50),  # Friday evening
            [at(2026, 1, 5, 9), at(2026, 1, 5, 9, 15), at(2026, 1, 5, 9, 30)],
        ),
        ("cron(5,35 */6 * JAN ? *)", at(2026, 1, 1), [at(2026, 1, 1, 0, 5), at(2026, 1, 1, 0, 35)]),
        # 2/2 = every other day from MON: MON, WED, FRI
        ("cron(0 0 ? * 2/2 *)", at(2026, 1, 1), [at(2026, 1, 2), at(2026, 1, 5), at(2026, 1, 7)]),
        ("cron(* * * * ? *)", at(2026, 1, 1, 0, 0, 30), [at(2026, 1, 1, 0, 1)]),
    ],
)
def test_cron_against_known_instants(text: str, start: datetime, expected: list[datetime]) -> None:
    assert runs(text, start, len(expected)) == expected


# Each field's forms, one at a time, from fixed instants; the expected runs were worked out on a
# 2026 calendar (Jan 1 Thu, Feb 1 Sun, May 1 Fri, Jul 1 Wed, Aug 1 Sat; 2028 is a leap year).
@pytest.mark.parametrize(
    ("text", "start", "expected"),
    [
        # ranges, lists and steps in day-of-month ('?' in day-of-week)
        ("cron(0 10 1-5 * ? *)", at(2026, 1, 4), [at(2026, 1, 4, 10), at(2026, 1, 5, 10),
                                                  at(2026, 2, 1, 10)]),
        ("cron(0 0 1,15 * ? *)", at(2026, 1, 1), [at(2026, 1, 15), at(2026, 2, 1),
                                                  at(2026, 2, 15)]),
        # 1/10: the 1st, 11th, 21st and 31st
        ("cron(0 0 1/10 * ? *)", at(2026, 1, 1), [at(2026, 1, 11), at(2026, 1, 21),
                                                  at(2026, 1, 31), at(2026, 2, 1)]),
        # steps over a range in minutes and hours; a run at the start instant is not "after" it
        ("cron(10-40/15 0 * * ? *)", at(2026, 1, 1), [at(2026, 1, 1, 0, 10), at(2026, 1, 1, 0, 25),
                                                      at(2026, 1, 1, 0, 40), at(2026, 1, 2, 0, 10)]),
        ("cron(0 8-18/5 * * ? *)", at(2026, 1, 1), [at(2026, 1, 1, 8), at(2026, 1, 1, 13),
                                                    at(2026, 1, 1, 18), at(2026, 1, 2, 8)]),
        # month names in a range, a month step, across the year end
        ("cron(0 0 1 JAN-MAR ? *)", at(2026, 1, 1), [at(2026, 2, 1), at(2026, 3, 1),
                                                     at(2027, 1, 1)]),
        ("cron(0 0 1 */4 ? *)", at(2026, 1, 1), [at(2026, 5, 1), at(2026, 9, 1), at(2027, 1, 1)]),
        ("cron(30 23 * * ? *)", at(2026, 12, 31, 23, 30), [at(2027, 1, 1, 23, 30)]),
        # the year field: a step, a list, a range that ends
        ("cron(0 0 1 1 ? 2026/2)", at(2026, 1, 1), [at(2028, 1, 1), at(2030, 1, 1)]),
        ("cron(0 0 1 1 ? 2027,2029)", at(2026, 1, 1), [at(2027, 1, 1), at(2029, 1, 1)]),
        ("cron(0 0 1 1 ? 2026-2027)", at(2026, 6, 1), [at(2027, 1, 1)]),
        # L: the last day of February in a leap year; alone in day-of-week, Saturday (7)
        ("cron(0 0 L 2 ? 2028)", at(2026, 1, 1), [at(2028, 2, 29)]),
        ("cron(0 0 ? * L *)", at(2026, 1, 1), [at(2026, 1, 3), at(2026, 1, 10)]),
        ("cron(15 3 ? * 1L *)", at(2026, 1, 1), [at(2026, 1, 25, 3, 15), at(2026, 2, 22, 3, 15)]),
        # W: Aug 1 is a Saturday, so 1W is Monday the 3rd (never back into July); Feb 1 and
        # Mar 1 are Sundays (Monday the 2nd); Jan 31 is a Saturday (Friday the 30th)
        ("cron(0 0 1W * ? *)", at(2026, 7, 2), [at(2026, 8, 3), at(2026, 9, 1)]),
        ("cron(0 0 1W * ? *)", at(2026, 1, 2), [at(2026, 2, 2), at(2026, 3, 2)]),
        ("cron(0 0 31W 1,3 ? *)", at(2026, 1, 1), [at(2026, 1, 30), at(2026, 3, 31)]),
        # #: the fifth Friday is in January and May only; the first Sunday of months 2, 5, 8
        ("cron(0 0 ? * 6#5 *)", at(2026, 1, 1), [at(2026, 1, 30), at(2026, 5, 29)]),
        ("cron(0 0 ? 2/3 1#1 *)", at(2026, 1, 1), [at(2026, 2, 1), at(2026, 5, 3), at(2026, 8, 2)]),
        # day-of-week lists of ranges, a named range with a step, a step over 1-7 (SUN, WED, SAT)
        ("cron(0 0 ? * 2-3,6 *)", at(2026, 1, 1), [at(2026, 1, 2), at(2026, 1, 5), at(2026, 1, 6),
                                                   at(2026, 1, 9)]),
        ("cron(0 0 ? * MON-FRI/2 *)", at(2026, 1, 1), [at(2026, 1, 2), at(2026, 1, 5),
                                                       at(2026, 1, 7), at(2026, 1, 9)]),
        ("cron(0 0 ? * */3 *)", at(2026, 1, 1), [at(2026, 1, 3), at(2026, 1, 4), at(2026, 1, 7),
                                                 at(2026, 1, 10)]),
    ],
)  # fmt: skip
def test_each_field_form_against_known_instants(
    text: str, start: datetime, expected: list[datetime]
) -> None:
    assert runs(text, start, len(expected)) == expected
    # and back: the latest run at or before each expected run is that run
    expr = parse(text)
    assert [expr.latest_at_or_before(run) for run in expected] == expected


def test_a_year_list_ends() -> None:
    expr = parse("cron(0 0 1 1 ? 2027,2029)")
    with pytest.raises(ScheduleError, match="no run after"):
        expr.next_after(at(2029, 1, 1))


def test_next_after_is_strictly_after() -> None:
    expr = parse("cron(0 12 * * ? *)")
    assert expr.next_after(at(2026, 1, 1, 12)) == at(2026, 1, 2, 12)
    assert expr.latest_at_or_before(at(2026, 1, 1, 12)) == at(2026, 1, 1, 12)
    assert expr.latest_at_or_before(at(2026, 1, 1, 11, 59)) == at(2025, 12, 31, 12)


def test_rate_runs_on_its_anchor_grid() -> None:
    expr = parse("rate(5 minutes)")
    assert isinstance(expr, RateExpression)
    assert expr.period == timedelta(minutes=5)
    anchor = at(2026, 1, 1, 10, 2, 30)
    assert expr.next_after(at(2026, 1, 1, 10, 3), anchor) == at(2026, 1, 1, 10, 7, 30)
    assert expr.next_after(at(2026, 1, 1, 10, 7, 30), anchor) == at(2026, 1, 1, 10, 12, 30)
    assert parse("rate(1 day)").next_after(at(2026, 1, 1, 5)) == at(2026, 1, 2)
    assert parse("rate(1 hour)").min_interval() == timedelta(hours=1)
    assert parse("rate(12 hours)").min_interval() == timedelta(hours=12)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("rate(1 minutes)", "singular"),
        ("rate(2 minute)", "plural"),
        ("rate(0 minutes)", "positive"),
        ("rate(5 weeks)", "unit"),
        ("rate(five minutes)", "rate(N"),
        ("every 5 minutes", "must be rate"),
        ("cron(0 12 * * ?)", "5 fields"),
        ("cron(0 12 * * * *)", "exactly one of day-of-month and day-of-week"),
        ("cron(0 12 ? * ? *)", "exactly one of day-of-month and day-of-week"),
        ("cron(60 12 * * ? *)", "minutes value 60 is outside 0-59"),
        ("cron(0 24 * * ? *)", "hours value 24 is outside 0-23"),
        ("cron(0 12 32 * ? *)", "day-of-month value 32"),
        ("cron(0 12 ? 13 * *)", "month value 13"),
        ("cron(0 12 ? * 8 *)", "day-of-week value 8 is outside 1-7"),
        ("cron(0 12 ? * FUN *)", "'FUN' is not a number or a name"),
        ("cron(0/0 12 * * ? *)", "step"),
        ("cron(0 17-9 * * ? *)", "runs backwards"),
        ("cron(? 12 * * ? *)", "'?' is allowed only"),
        ("cron(0 12 ? * 2#6 *)", "week"),
        ("cron(0 12 * * ? 1969)", "year value 1969"),
        ("cron(0 12 * * ? 2150)", "after 2099"),
        ("cron(0 12 LW * ? *)", "LW"),
        ("cron(0 12 * * ? *", "ends with ')'"),
        ("cron(0 12 1,,2 * ? *)", "item ''"),
        ("cron(0 0 31 2 ? *)", "never runs"),
        ("cron(0 0 30 FEB ? 2027)", "never runs"),
    ],
)
def test_invalid_expressions_say_what_is_wrong(text: str, words: str) -> None:
    with pytest.raises(ScheduleError, match=None) as info:
        parse(text)
    assert words in str(info.value), str(info.value)


def test_an_expression_with_no_future_run_says_so() -> None:
    expr = parse("cron(0 0 1 1 ? 2026)")
    with pytest.raises(ScheduleError, match="no run after"):
        expr.next_after(at(2026, 6, 1))


@pytest.mark.parametrize(
    ("text", "interval"),
    [
        ("cron(* * * * ? *)", timedelta(minutes=1)),
        ("cron(0/5 * * * ? *)", timedelta(minutes=5)),
        ("cron(0,10 * * * ? *)", timedelta(minutes=10)),
        ("cron(0 */2 * * ? *)", timedelta(hours=2)),
        ("cron(0 12 * * ? *)", timedelta(days=1)),
        # 23:00 and 00:00 look an hour apart across midnight, but only Mondays run
        ("cron(0 0,23 ? * MON *)", timedelta(hours=23)),
        ("cron(0 0,23 * * ? *)", timedelta(hours=1)),
        ("cron(0 0 L * ? *)", timedelta(days=28)),
        ("cron(0 0 1 1 ? 2030)", timedelta.max),
    ],
)
def test_min_interval(text: str, interval: timedelta) -> None:
    assert parse(text).min_interval() == interval


def test_min_interval_check_is_configurable() -> None:
    check_min_interval(parse("cron(* * * * ? *)"))  # the default minimum is 1 minute
    check_min_interval(parse("rate(1 minute)"))
    check_min_interval(parse("rate(1 hour)"), timedelta(hours=1))
    with pytest.raises(
        ScheduleError, match="can run every 5 minutes; the minimum interval is 1 hour"
    ):
        check_min_interval(parse("cron(0/5 * * * ? *)"), timedelta(hours=1))
    with pytest.raises(ScheduleError, match="every 30 minutes"):
        check_min_interval(parse("rate(30 minutes)"), timedelta(hours=1))


def test_due_run_collapses_a_missed_span_into_one_run() -> None:
    expr = parse("cron(0 * * * ? *)")  # hourly
    anchor = at(2026, 1, 1, 0, 30)
    # the server was down from 01:00 to 05:20: one run is due, for the 05:00 slot
    slot = due_run(expr, anchor=anchor, last_fired=at(2026, 1, 1, 1), now=at(2026, 1, 1, 5, 20))
    assert slot == at(2026, 1, 1, 5)
    # once recorded, nothing more is due until 06:00
    assert due_run(expr, anchor=anchor, last_fired=slot, now=at(2026, 1, 1, 5, 59)) is None
    assert due_run(expr, anchor=anchor, last_fired=slot, now=at(2026, 1, 1, 6)) == at(2026, 1, 1, 6)
    # a schedule never fired: nothing before its anchor counts
    assert due_run(expr, anchor=anchor, last_fired=None, now=at(2026, 1, 1, 0, 59)) is None
    assert due_run(expr, anchor=anchor, last_fired=None, now=at(2026, 1, 1, 1)) == at(2026, 1, 1, 1)


def test_due_run_for_a_rate() -> None:
    expr = parse("rate(1 minute)")
    anchor = at(2026, 1, 1, 12, 0, 10)
    assert due_run(expr, anchor=anchor, last_fired=None, now=at(2026, 1, 1, 12, 1)) is None
    first = due_run(expr, anchor=anchor, last_fired=None, now=at(2026, 1, 1, 12, 1, 10))
    assert first == at(2026, 1, 1, 12, 1, 10)
    # a day down: one run, on the latest slot
    later = due_run(expr, anchor=anchor, last_fired=first, now=at(2026, 1, 2, 12, 0, 15))
    assert later == at(2026, 1, 2, 12, 0, 10)


def test_due_run_after_the_last_year() -> None:
    expr = parse("cron(0 0 1 1 ? 2026)")
    assert due_run(expr, anchor=at(2026, 6, 1), last_fired=None, now=at(2027, 1, 1)) is None


def test_naive_instants_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        parse("rate(1 hour)").next_after(datetime(2026, 1, 1))


def test_parse_returns_typed_expressions() -> None:
    cron = parse("cron(0 12 ? * sun *)")
    assert isinstance(cron, CronExpression)
    assert cron.fields == ("0", "12", "?", "*", "SUN", "*")
    assert cron.text == "cron(0 12 ? * sun *)"


def test_auto_disable_after_repeated_identical_failures() -> None:
    health = ScheduleHealth()
    health, reason = after_run(health, "LocationError", "no such directory")
    assert reason is None and health.consecutive == 1
    health, reason = after_run(health, "LocationError", "no such directory")
    assert reason is None and health.consecutive == 2
    # a different error starts the count again
    health, reason = after_run(health, "VerificationError")
    assert reason is None and health == ScheduleHealth("VerificationError", 1)
    # so does a success
    health, reason = after_run(health, None)
    assert health == ScheduleHealth() and reason is None
    for _ in range(2):
        health, reason = after_run(health, "LocationError", "no such directory")
        assert reason is None
    health, reason = after_run(health, "LocationError", "no such directory")
    assert reason == (
        "Disabled after 3 consecutive scheduled runs failed with LocationError: no such directory"
    )


def test_auto_disable_limit_is_configurable() -> None:
    _, reason = after_run(ScheduleHealth(), "X", limit=1)
    assert reason == "Disabled after 1 consecutive scheduled runs failed with X"
    with pytest.raises(ValueError, match="at least 1"):
        after_run(ScheduleHealth(), "X", limit=0)
