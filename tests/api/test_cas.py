"""The typed compare-and-swap (`api.cas.update_execution`) on both stores: a transition is
written whole, members the type does not know survive it, a writer that lost the race re-reads
and applies its change to the winner's version, and "nothing to write" writes nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from api.cas import update_execution
from api.domain.execution import Execution
from api.store import Store
from tests.api.domain.factory import NOW, an_execution

ARN = an_execution().task_execution_arn


@pytest.fixture
def stores(tmp_path: Path, store_kind: str) -> Iterator[tuple[Store, Store]]:
    """Two stores on one database: two processes writing one execution."""
    a = Store.in_directory(str(tmp_path / "data"))
    b = Store.in_directory(str(tmp_path / "data"))
    assert a.dialect == store_kind
    execution = an_execution(queued=True)
    a.add_execution({**execution.to_row(), "_Unknown": {"kept": True}})
    try:
        yield a, b
    finally:
        a.close()
        b.close()


def test_a_transition_is_stored_and_unknown_members_are_kept(stores: tuple[Store, Store]) -> None:
    a, b = stores
    done = update_execution(a, ARN, lambda e: e.claimed(NOW + 1, None, 30.0))
    assert done is not None
    after, wrote = done
    assert wrote and (after.status, after.job.status) == ("LAUNCHING", "IN_PROGRESS")
    stored = b.execution(ARN)
    assert stored is not None and stored["_Unknown"] == {"kept": True}
    assert Execution.from_row(stored) == after


def test_a_loser_reapplies_its_change_to_the_winners_version(stores: tuple[Store, Store]) -> None:
    a, b = stores
    calls: list[str] = []

    def cancel(execution: Execution) -> Execution:
        if not calls:  # another process claims it between this read and this write
            assert update_execution(b, ARN, lambda e: e.claimed(NOW + 1, None, 30.0))
        calls.append(execution.status.value)
        return execution.cancel_requested(NOW + 2)

    done = update_execution(a, ARN, cancel)
    assert done is not None and calls == ["QUEUED", "LAUNCHING"]
    # the claim won, so the cancel met a running job: CANCELLING, not ended at once
    stored = b.execution(ARN)
    assert stored is not None and stored["Status"] == "CANCELLING" == done[0].status
    assert stored["LaunchTime"] == NOW + 1 and stored["_Unknown"] == {"kept": True}


def test_nothing_to_write_writes_nothing(stores: tuple[Store, Store]) -> None:
    a, b = stores
    found = a.execution_versioned(ARN)
    assert found is not None
    for change in (lambda e: None, lambda e: e):
        done = update_execution(a, ARN, change)
        assert done is not None and done[1] is False and done[0].status == "QUEUED"
    again = b.execution_versioned(ARN)
    assert again is not None and again[1] == found[1]
    assert update_execution(a, ARN.replace("abcdef0", "abcdef1"), lambda e: e) is None
