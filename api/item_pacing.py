"""Pacing an execution's work items to its BytesPerSecond (issue 12): the limit is the whole
execution's, and the items' shares of it are corrected by how far the execution is behind (or
ahead of) it.

Why: shares split evenly among the running items add up to the limit, yet the aggregate fell
short of it by 5-12% with 2 and 4 agents (benchmarks.workitems throttle, 4 MiB/s): every item
spends time not copying while it holds a share (its claim, its listing, its final report, the
next item's engine start), a remote agent hears a bigger share only at its next report, and
each agent's token bucket drops its idle credit at every change of its share. A control loop
over what was actually moved corrects all of these at once, whatever their size:

* **Observe** (`observe`, on every item report, inside the execution's compare-and-swap): the
  pace's origin is set when bytes first flow under the current limit (`since`, and the
  execution's `BytesTransferred` then, `base`), and reset when the limit changes, when no report
  came for `STALE_SECONDS` (a suspension, an agent lost: no catching up for a pause the operator
  wanted), or when the counters went back (a rerun restarted its count).
* **Correct** (`paced_limit`, for each reply carrying a share): the execution's deficit
  `limit × (now − since) − (BytesTransferred − base)` is paid back over `HORIZON_SECONDS`:
  the limit handed out is `limit + deficit / HORIZON_SECONDS`, within ±`MAX_CORRECTION` of it.
  Both ends of the deficit lag the truth by about one report interval, so the lags cancel
  while the rate is steady; what remains is a constant offset of bytes, not a slope.

The correction only makes up for bytes not moved (or holds back bytes moved ahead), so the
bytes moved since the pace began stay within about one report interval's worth of
`limit × elapsed`; over a second or two the rate may be up to `MAX_CORRECTION` (100%) off the
limit while it catches up. Measured (benchmarks.workitems throttle, 4 MiB/s, load average
10-17): 2 agents 0.975-1.00 of the limit, 4 agents 0.91-0.99, where even shares gave 0.88 and
0.95. An execution that is not split (one job) is paced by its
one agent's token bucket alone, as before.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from api.domain.execution import Execution
from contract import Doc

__all__ = [
    "HORIZON_SECONDS",
    "MAX_CORRECTION",
    "PACE_KEY",
    "STALE_SECONDS",
    "Pace",
    "execution_limit",
    "observe",
    "observed",
    "paced_limit",
]

PACE_KEY = "_Pace"  # on the execution document
HORIZON_SECONDS = 1.0  # a deficit is paid back over this long
MAX_CORRECTION = 1.0  # at most this fraction of the limit, up or down
STALE_SECONDS = 5.0  # no report for this long (a suspension, a lost agent): the pace restarts
SETTLE_SECONDS = 0.5  # no correction before the pace has run this long


@dataclass(frozen=True)
class Pace:
    limit: int  # the BytesPerSecond it paces to
    since: float  # when bytes began to flow under it
    base: int  # the execution's BytesTransferred then
    seen: float  # the last report observed

    def to_json(self) -> dict[str, Any]:
        return {"Limit": self.limit, "Since": self.since, "Base": self.base, "Seen": self.seen}

    @classmethod
    def of(cls, doc: Mapping[str, Any]) -> Pace | None:
        raw = doc.get(PACE_KEY)
        if not isinstance(raw, dict):
            return None
        try:
            return cls(int(raw["Limit"]), float(raw["Since"]), int(raw["Base"]), float(raw["Seen"]))
        except (KeyError, TypeError, ValueError):
            return None


def _moved(doc: Mapping[str, Any]) -> int:
    value = doc.get("BytesTransferred", 0)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def observe(doc: Doc, now: float) -> bool:
    """Advance (or start again) the execution's pace after an item's report; True if the
    document changed."""
    limit = int(doc["Options"].get("BytesPerSecond", -1))
    moved = _moved(doc)
    pace = Pace.of(doc)
    if limit < 0:
        return doc.pop(PACE_KEY, None) is not None
    fresh = (
        pace is None or pace.limit != limit or now - pace.seen > STALE_SECONDS or moved < pace.base
    )
    if fresh:
        if moved <= 0:  # nothing flows yet: the pace starts with the first bytes
            return doc.pop(PACE_KEY, None) is not None
        doc[PACE_KEY] = Pace(limit, now, moved, now).to_json()
        return True
    assert pace is not None
    doc[PACE_KEY] = replace(pace, seen=now).to_json()
    return True


def paced_limit(doc: Mapping[str, Any], now: float) -> int:
    """The limit to share among the execution's running items now: its BytesPerSecond, corrected
    by its deficit (see the module docstring); -1 stays -1."""
    limit = int(doc["Options"].get("BytesPerSecond", -1))
    pace = Pace.of(doc)
    if limit < 0 or pace is None or pace.limit != limit:
        return limit
    elapsed = now - pace.since
    if elapsed < SETTLE_SECONDS or now - pace.seen > STALE_SECONDS:
        return limit
    deficit = limit * elapsed - (_moved(doc) - pace.base)
    bound = MAX_CORRECTION * limit
    correction = max(-bound, min(bound, deficit / HORIZON_SECONDS))
    return max(1, int(limit + correction))


def _members(execution: Execution) -> dict[str, Any]:
    """The members of an execution's stored document that its pace reads and writes."""
    members: dict[str, Any] = {"Options": dict(execution.options)}
    if "BytesTransferred" in execution.counters:
        members["BytesTransferred"] = execution.counters["BytesTransferred"]
    if execution.pace is not None:
        members[PACE_KEY] = dict(execution.pace)
    return members


def execution_limit(execution: Execution, now: float) -> int:
    """`paced_limit` of a typed execution."""
    return paced_limit(_members(execution), now)


def observed(execution: Execution, now: float) -> Execution | None:
    """`observe` on a typed execution: the execution with its pace advanced (or started again,
    or dropped), None when it does not change."""
    members = _members(execution)
    if not observe(members, now):
        return None
    return replace(execution, pace=members.get(PACE_KEY))
