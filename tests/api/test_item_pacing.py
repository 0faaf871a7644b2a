"""api/item_pacing: the correction of an execution's item shares by what it actually moved."""

from __future__ import annotations

from typing import Any

from api.item_pacing import (
    HORIZON_SECONDS,
    MAX_CORRECTION,
    PACE_KEY,
    STALE_SECONDS,
    Pace,
    observe,
    paced_limit,
)

LIMIT = 1_000_000


def _doc(moved: int, limit: int = LIMIT) -> dict[str, Any]:
    return {"Options": {"BytesPerSecond": limit}, "BytesTransferred": moved}


def test_the_pace_starts_with_the_first_bytes_and_pays_a_deficit_back() -> None:
    doc = _doc(0)
    assert not observe(doc, 100.0) and PACE_KEY not in doc  # nothing flows yet
    doc["BytesTransferred"] = 50_000
    assert observe(doc, 100.5)
    assert Pace.of(doc) == Pace(LIMIT, 100.5, 50_000, 100.5)
    assert paced_limit(doc, 100.6) == LIMIT  # too early to tell
    # two seconds on, 1.5 MB moved instead of 2 MB: 0.5 MB behind, paid back over the horizon
    doc["BytesTransferred"] = 50_000 + 1_500_000
    observe(doc, 102.5)
    expected = LIMIT + min(MAX_CORRECTION * LIMIT, 500_000 / HORIZON_SECONDS)
    assert paced_limit(doc, 102.5) == int(expected)
    # ahead of the limit: less, never below the bound
    doc["BytesTransferred"] = 50_000 + 9_000_000
    assert paced_limit(doc, 102.5) == max(1, int(LIMIT * (1 - MAX_CORRECTION)))
    # exactly on pace: the limit itself
    doc["BytesTransferred"] = 50_000 + 2_000_000
    assert paced_limit(doc, 102.5) == LIMIT


def test_a_new_limit_a_pause_or_a_restarted_count_starts_the_pace_again() -> None:
    doc = _doc(10_000)
    observe(doc, 10.0)
    doc["BytesTransferred"] = 20_000
    observe(doc, 11.0)
    assert Pace.of(doc) == Pace(LIMIT, 10.0, 10_000, 11.0)
    # UpdateTaskExecution: the old deficit is not carried into the new limit
    doc["Options"]["BytesPerSecond"] = 2 * LIMIT
    assert paced_limit(doc, 11.5) == 2 * LIMIT
    observe(doc, 11.5)
    assert Pace.of(doc) == Pace(2 * LIMIT, 11.5, 20_000, 11.5)
    # a suspension (no report for a while): no catching up for the pause
    later = 11.5 + STALE_SECONDS + 1
    assert paced_limit(doc, later) == 2 * LIMIT
    observe(doc, later)
    assert Pace.of(doc) == Pace(2 * LIMIT, later, 20_000, later)
    doc["BytesTransferred"] = 5_000  # an item's rerun restarted its count
    observe(doc, later + 1)
    assert Pace.of(doc) == Pace(2 * LIMIT, later + 1, 5_000, later + 1)
    # unlimited: no pace at all
    doc["Options"]["BytesPerSecond"] = -1
    assert observe(doc, later + 2) and PACE_KEY not in doc
    assert paced_limit(doc, later + 2) == -1
