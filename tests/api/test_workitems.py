"""Work items in the store and their domain (api/workitems.py), on both dialects (`store_kind`):
rows all-or-nothing, compare-and-swap on `version`, READY items in claim order, the journal,
and the operator's targets with the end rule they lead to.

Two `Store` objects on one database stand for two processes."""

from __future__ import annotations

import importlib
import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from api.migrations import HEAD
from api.store import Store
from api.workitems import (
    ConflictEnded,
    ItemNotFound,
    ItemStatus,
    WorkItem,
    change_item,
    get_item,
    list_items,
    new_row,
    report_item,
    set_target,
    settle,
    waits,
    whole_reason,
)
from contract.model import enum_values
from contract.workitems import WHOLE_KEY, ItemKind, ItemScope
from tests.api.domain.factory import an_execution

TASK = "arn:aws:datasync:us-east-1:111122223333:task/task-0123456789abcdef0"
AGENT = "arn:aws:datasync:us-east-1:111122223333:agent/agent-0123456789abcdef0"
OTHER = "arn:aws:datasync:us-east-1:111122223333:agent/agent-0123456789abcdef1"
NOW = 1_000_000.0


@pytest.fixture
def stores(tmp_path: Path) -> Iterator[tuple[Store, Store]]:
    a = Store.in_directory(str(tmp_path / "data"))
    b = Store.in_directory(str(tmp_path / "data"))
    try:
        yield a, b
    finally:
        a.close()
        b.close()


def _execution(store: Store, n: int) -> str:
    doc = an_execution(
        n, now=NOW, task_arn=TASK, agent_arn=AGENT, source={}, destination={}
    ).to_row()
    store.add_execution(doc)
    return str(doc["TaskExecutionArn"])


def _plan(store: Store, arn: str, paths: list[str], remove: bool = False) -> None:
    rows = [new_row(arn, 0, ItemKind.PREPARE, None, ItemStatus("SUCCEEDED"), NOW)]
    for index, path in enumerate(paths, 1):
        scope = ItemScope(path, True, 1, 10)
        rows.append(new_row(arn, index, ItemKind.TRANSFER, scope, ItemStatus("READY"), NOW))
    if remove:
        rows.append(new_row(arn, len(paths) + 1, ItemKind.REMOVE, None, ItemStatus("PENDING"), NOW))
    assert store.add_items(rows)


def _status(store: Store, arn: str) -> list[str]:
    return [i.status.value for i in list_items(store, arn)]


def _run(store: Store, arn: str, index: int, agent: str = AGENT) -> WorkItem:
    """Claim an item the way the scheduler does: RUNNING under the next epoch."""

    def claim(item: WorkItem) -> WorkItem:
        return replace(
            item,
            status=ItemStatus("RUNNING"),
            agent_arn=agent,
            execution_number=item.execution_number + 1,
            started_at=NOW,
        )

    written = change_item(store, arn, index, claim)
    assert written is not None
    return written


def _finish(store: Store, arn: str, index: int, status: str, **counters: int) -> None:
    def end(item: WorkItem) -> WorkItem:
        return replace(
            item,
            status=ItemStatus(status),
            ended_at=NOW + 1,
            counters=counters,
            details={"phase": "VERIFYING"},
            result={"ErrorCode": "Boom", "ErrorDetail": "disk"} if status == "FAILED" else {},
        )

    change_item(store, arn, index, end)
    settle(store, arn, NOW + 1)


def test_the_work_items_revision_follows_request_counts() -> None:
    module = importlib.import_module("api.migrations.versions.0006_work_items")
    assert (module.revision, module.down_revision) == ("0006", "0005")
    assert HEAD >= "0006"


def test_item_status_is_the_deadline_models_enum() -> None:
    assert [s.value for s in ItemStatus] == list(enum_values("TaskRunStatus", "deadline"))


def test_items_are_written_once_and_read_by_every_process(stores: tuple[Store, Store]) -> None:
    a, b = stores
    arn = _execution(a, 1)
    assert list_items(b, arn) == []
    _plan(a, arn, ["a", "b/c"])
    again = [new_row(arn, 1, ItemKind.TRANSFER, ItemScope("x", True), ItemStatus("READY"), NOW)]
    assert not b.add_items(again)  # a plan is uploaded once: nothing of the second is written
    items = list_items(b, arn)
    assert [(i.index, i.kind, i.scope) for i in items] == [
        (0, ItemKind.PREPARE, None),
        (1, ItemKind.TRANSFER, ItemScope("a", True, 1, 10)),
        (2, ItemKind.TRANSFER, ItemScope("b/c", True, 1, 10)),
    ]
    assert get_item(a, arn, 2).scope == ItemScope("b/c", True, 1, 10)
    with pytest.raises(ItemNotFound):
        get_item(a, arn, 9)


def test_compare_and_swap_refuses_a_stale_version(stores: tuple[Store, Store]) -> None:
    a, b = stores
    arn = _execution(a, 1)
    _plan(a, arn, ["a"])
    seen = get_item(a, arn, 1)
    assert b.update_item(replace(seen, agent_arn=OTHER).to_row(), seen.version)
    # the first process still holds the old version: its write is refused
    assert not a.update_item(replace(seen, agent_arn=AGENT).to_row(), seen.version)
    now = get_item(a, arn, 1)
    assert now.agent_arn == OTHER and now.version == seen.version + 1
    # change_item re-reads and retries
    written = _run(a, arn, 1)
    assert written.agent_arn == AGENT and written.execution_number == 1
    assert get_item(b, arn, 1).version == seen.version + 2


def test_ready_items_in_claim_order(stores: tuple[Store, Store]) -> None:
    a, b = stores
    first, second = _execution(a, 1), _execution(a, 2)
    _plan(a, second, ["x", "y"])
    _plan(a, first, ["p", "q", "r"])
    _run(a, first, 2, OTHER)
    order = [(r.execution_arn, r.item) for r in b.items_with_status(("READY",))]
    assert order == [(first, 1), (first, 3), (second, 1), (second, 2)]
    running = b.items_with_status(("RUNNING",), agent_arn=OTHER)
    assert [(r.execution_arn, r.item) for r in running] == [(first, 2)]
    assert b.items_with_status(("RUNNING",), agent_arn=AGENT) == []


def test_the_journal_keeps_each_path_once_and_pages(stores: tuple[Store, Store]) -> None:
    a, b = stores
    arn = _execution(a, 1)
    _plan(a, arn, ["a"])
    assert a.journal_add(arn, 1, ["a/2", "a/1", "a/1"]) == 2
    assert b.journal_add(arn, 1, ["a/1", "a/3"]) == 1
    assert b.journal_add(arn, 2, ["a/1"]) == 1  # another item's journal
    assert b.journal_page(arn, 1, None, 2) == ["a/1", "a/2"]
    assert b.journal_page(arn, 1, "a/2", 2) == ["a/3"]
    assert b.journal_page(arn, 1, "a/3", 2) == []


def test_removing_a_tasks_executions_removes_their_items(stores: tuple[Store, Store]) -> None:
    a, b = stores
    arn = _execution(a, 1)
    _plan(a, arn, ["a"])
    a.journal_add(arn, 1, ["a/1"])
    b.remove_executions(TASK)
    assert a.items(arn) == [] and a.journal_page(arn, 1, None, 10) == []


def test_suspend_and_resume(stores: tuple[Store, Store]) -> None:
    a, b = stores
    arn = _execution(a, 1)
    _plan(a, arn, ["a", "b", "c"])
    _run(a, arn, 1)
    items = set_target(b, arn, None, "SUSPENDED", NOW)
    # a running item gets the wish (its agent stops it); the others are suspended at once
    assert [(i.status.value, i.target and i.target.value) for i in items] == [
        ("RUNNING", "SUSPENDED"),
        ("SUSPENDED", None),
        ("SUSPENDED", None),
    ]
    assert a.execution(arn)["Status"] == "LAUNCHING"  # nothing ended
    items = set_target(a, arn, [1, 3], "READY", NOW)
    assert [(i.status.value, i.target) for i in items] == [("RUNNING", None), ("READY", None)]
    assert _status(a, arn) == ["SUCCEEDED", "RUNNING", "SUSPENDED", "READY"]
    assert [i.failure_retry_count for i in list_items(a, arn)] == [0, 0, 0, 0]


def test_counters_sum_and_the_execution_succeeds_when_all_items_do(
    stores: tuple[Store, Store],
) -> None:
    a, b = stores
    arn = _execution(a, 1)
    _plan(a, arn, ["a", "b"], remove=True)
    _run(a, arn, 1)
    _finish(a, arn, 1, "SUCCEEDED", FilesTransferred=2, BytesWritten=20)
    doc = b.execution(arn)
    assert doc is not None and doc["FilesTransferred"] == 2 and doc["Status"] == "VERIFYING"
    assert _status(a, arn)[-1] == "PENDING"  # REMOVE waits for every TRANSFER item
    _run(a, arn, 2, OTHER)
    _finish(a, arn, 2, "SUCCEEDED", FilesTransferred=3, BytesWritten=30)
    assert _status(a, arn)[-1] == "READY"  # now it may run, once
    assert b.execution(arn)["Status"] == "VERIFYING"
    _run(a, arn, 3)
    _finish(a, arn, 3, "SUCCEEDED", FilesDeleted=1)
    doc = b.execution(arn)
    assert doc["Status"] == "SUCCESS"
    assert (doc["FilesTransferred"], doc["BytesWritten"], doc["FilesDeleted"]) == (5, 50, 1)


def test_a_failed_item_is_retried_and_a_canceled_one_ends_the_execution_in_error(
    stores: tuple[Store, Store],
) -> None:
    a, b = stores
    arn = _execution(a, 1)
    _plan(a, arn, ["a", "b"])
    _run(a, arn, 1)
    _finish(a, arn, 1, "FAILED")
    assert a.execution(arn)["Status"] == "VERIFYING"  # item 2 still READY: not ended
    (retried,) = set_target(b, arn, [1], "PENDING", NOW)
    assert retried.status.value == "READY" and retried.failure_retry_count == 1
    _run(a, arn, 1)
    _finish(a, arn, 1, "FAILED")
    (skipped,) = set_target(b, arn, [2], "CANCELED", NOW)
    assert skipped.status.value == "CANCELED" and skipped.ended_at == NOW
    doc = a.execution(arn)
    assert doc["Status"] == "ERROR" and doc["Result"]["ErrorCode"] == "Boom"
    assert "item 1 (a) FAILED: disk" in doc["Result"]["ErrorDetail"]
    assert "item 2 (b) CANCELED" in doc["Result"]["ErrorDetail"]
    with pytest.raises(ConflictEnded):  # a requeue on an ended execution
        set_target(b, arn, [1], "READY", NOW)
    assert set_target(b, arn, [2], "CANCELED", NOW)[0].status.value == "CANCELED"  # no change


def test_marking_items_without_running_them(stores: tuple[Store, Store]) -> None:
    a, b = stores
    arn = _execution(a, 1)
    _plan(a, arn, ["a", "b"])
    _run(a, arn, 2)
    items = set_target(b, arn, None, "SUCCEEDED", NOW)
    # item 2 runs: it is stopped first (the wish), then marked
    assert [(i.status.value, i.target and i.target.value) for i in items] == [
        ("SUCCEEDED", None),
        ("RUNNING", "SUCCEEDED"),
    ]
    _finish(a, arn, 2, "SUCCEEDED")
    assert a.execution(arn)["Status"] == "SUCCESS"


def test_bad_targets_and_unknown_items(stores: tuple[Store, Store]) -> None:
    a, _b = stores
    arn = _execution(a, 1)
    _plan(a, arn, ["a"])
    with pytest.raises(ValueError, match="targetRunStatus"):
        set_target(a, arn, None, "RUNNING", NOW)
    with pytest.raises(ItemNotFound):
        set_target(a, arn, [7], "SUSPENDED", NOW)
    with pytest.raises(ItemNotFound):
        set_target(a, arn.replace("exec-", "exec-f"), None, "SUSPENDED", NOW)


def test_counters_and_results_round_trip(stores: tuple[Store, Store]) -> None:
    a, b = stores
    arn = _execution(a, 1)
    _plan(a, arn, ["a"])

    def report(item: WorkItem) -> WorkItem:
        return replace(
            item,
            counters={"FilesListed": {"AtSource": 4}, "FilesTransferred": 4},
            details={"phase": "TRANSFERRING", "agent:session": "s1"},
            result={"TransferStatus": "PENDING"},
        )

    change_item(a, arn, 1, report)
    item = get_item(b, arn, 1)
    assert json.loads(json.dumps(dict(item.counters))) == {
        "FilesListed": {"AtSource": 4},
        "FilesTransferred": 4,
    }
    assert item.details["agent:session"] == "s1"
    settle(b, arn, NOW)
    doc = a.execution(arn)
    assert doc["Status"] == "TRANSFERRING" and doc["FilesListed"] == {"AtSource": 4}


def test_the_task_report_result_is_the_items_reports(stores: tuple[Store, Store]) -> None:
    a, b = stores
    for n, reports, expected in (
        (1, ['{"Status":"SUCCESS"}', '{"Status":"SUCCESS"}'], {"Status": "SUCCESS"}),
        (
            2,
            ['{"Status":"SUCCESS"}', '{"Status":"ERROR","ErrorCode":"S3","ErrorDetail":"x"}'],
            {"Status": "ERROR", "ErrorCode": "S3", "ErrorDetail": "x"},
        ),
        (3, [], {"Status": "ERROR", "ErrorCode": "NoTaskReport"}),
    ):
        arn = _execution(a, n)
        found = a.execution_versioned(arn)
        assert found is not None
        doc, version = found
        doc["ReportResult"] = {"Status": "PENDING"}
        assert a.update_execution(doc, version)
        _plan(a, arn, ["a", "b"])
        for index in (1, 2):
            _run(a, arn, index)
            raw = reports[index - 1] if reports else None

            def end(item: WorkItem, raw: str | None = raw) -> WorkItem:
                details = {"report": raw} if raw else {}
                return replace(item, status=ItemStatus("SUCCEEDED"), details=details)

            change_item(a, arn, index, end)
        settle(b, arn, NOW)
        ended = b.execution(arn)
        assert ended is not None and ended["Status"] == "SUCCESS"
        got = ended["ReportResult"]
        assert {k: got[k] for k in expected} == expected


def test_remove_is_skipped_once_a_transfer_item_ends_without_success(
    stores: tuple[Store, Store],
) -> None:
    a, b = stores
    arn = _execution(a, 1)
    _plan(a, arn, ["a", "b"], remove=True)
    _run(a, arn, 1)
    _run(a, arn, 2)
    _finish(a, arn, 1, "FAILED")
    assert _status(a, arn)[-1] == "PENDING"  # item 2 may still succeed (or 1 be retried)
    _finish(a, arn, 2, "SUCCEEDED")
    # nobody will run REMOVE: it is skipped and the execution ends instead of waiting
    assert _status(b, arn) == ["SUCCEEDED", "FAILED", "SUCCEEDED", "CANCELED"]
    doc = b.execution(arn)
    assert doc is not None and doc["Status"] == "ERROR"
    assert "item 3 (REMOVE) CANCELED" in doc["Result"]["ErrorDetail"]


def test_a_suspend_acknowledged_after_the_wish_was_withdrawn_offers_the_item_again(
    stores: tuple[Store, Store],
) -> None:
    a, _b = stores
    arn = _execution(a, 1)
    _plan(a, arn, ["a", "b"])
    _run(a, arn, 1)
    set_target(a, arn, [1], "SUSPENDED", NOW)
    set_target(a, arn, [1], "READY", NOW)  # withdrawn before the agent acknowledged
    item = get_item(a, arn, 1)
    acked = report_item(item, "FAILED", {"agent:interrupted": "SUSPENDED"}, NOW, 10.0, False)
    assert (acked.status.value, acked.failure_retry_count, acked.ended_at) == ("READY", 0, None)
    set_target(a, arn, [1], "SUSPENDED", NOW)
    item = get_item(a, arn, 1)
    acked = report_item(item, "FAILED", {"agent:interrupted": "SUSPENDED"}, NOW, 10.0, False)
    assert acked.status.value == "SUSPENDED"


def test_an_over_long_path_is_journaled_by_its_hash(stores: tuple[Store, Store]) -> None:
    a, b = stores
    arn = _execution(a, 1)
    _plan(a, arn, ["a"])
    long = "a/" + "x" * 2100  # too long for a PostgreSQL index entry
    longer = "a/" + "é" * 3000
    assert a.journal_add(arn, 1, [long, "a/short", longer]) == 3
    assert a.journal_add(arn, 1, [long, longer]) == 0  # each kept once
    assert sorted(b.journal_page(arn, 1, None, 10)) == sorted([long, "a/short", longer])
    # paged by key: every path once, whatever its length
    first = b.journal_keyed_page(arn, 1, None, 2)
    rest = b.journal_keyed_page(arn, 1, first[-1][0], 2)
    assert sorted(p for _k, p in first + rest) == sorted([long, "a/short", longer])


def test_the_files_of_a_directory_wait_for_the_items_beneath_it(
    stores: tuple[Store, Store],
) -> None:
    a, b = stores
    root_files, big, big_sub, other = (
        ItemScope("", False),
        ItemScope("big", False),
        ItemScope("big/sub", True),
        ItemScope("other", True),
    )
    plan = [root_files, big, big_sub, other]
    assert [waits(s, plan) for s in plan] == [True, True, False, False]
    arn = _execution(a, 1)
    rows = [new_row(arn, 0, ItemKind.PREPARE, None, ItemStatus("SUCCEEDED"), NOW)]
    for index, scope in enumerate(plan, 1):
        status = ItemStatus("PENDING" if waits(scope, plan) else "READY")
        rows.append(new_row(arn, index, ItemKind.TRANSFER, scope, status, NOW))
    assert a.add_items(rows)
    _run(a, arn, 3)
    _finish(a, arn, 3, "FAILED")  # whatever its outcome, it no longer works beneath "big"
    assert _status(b, arn)[1:] == ["PENDING", "READY", "FAILED", "READY"]
    _run(a, arn, 2)
    _finish(a, arn, 2, "SUCCEEDED")
    assert _status(b, arn)[1] == "PENDING"  # "other" still to run beneath the root
    _run(a, arn, 4)
    _finish(a, arn, 4, "SUCCEEDED")
    assert _status(b, arn)[1] == "READY"


def test_items_summed_up_per_group_and_paged_by_key(stores: tuple[Store, Store]) -> None:
    """The Deadline views' queries: one grouped read for a job's or step's counts, one key
    range for a page of tasks (never every item)."""
    a, b = stores
    arn = _execution(a, 1)
    _plan(a, arn, [f"d{i}" for i in range(5)], remove=True)
    set_target(a, arn, [2, 3], "SUSPENDED", NOW + 1)
    set_target(a, arn, [2], "READY", NOW + 2)  # resumed: READY again, one group with item 1
    groups = {(g.kind, g.status, g.target): g for g in b.item_groups(arn)}
    assert {k: g.items for k, g in groups.items()} == {
        ("PREPARE", "SUCCEEDED", None): 1,
        ("TRANSFER", "READY", None): 4,
        ("TRANSFER", "SUSPENDED", None): 1,
        ("REMOVE", "PENDING", None): 1,
    }
    assert groups[("TRANSFER", "READY", None)].updated == NOW + 2
    assert groups[("TRANSFER", "READY", None)].retries == 0
    first = b.items_page(arn, "TRANSFER", None, 2)
    rest = b.items_page(arn, "TRANSFER", first[-1].item, 10)
    assert [r.item for r in first] == [1, 2] and [r.item for r in rest] == [3, 4, 5]
    assert b.items_page(arn, "REMOVE", None, 10)[0].item == 6
    assert b.items_page(arn, "TRANSFER", 5, 10) == []


def test_a_whole_run_is_marked_once_and_withdraws_a_kept_suspend() -> None:
    """Item 0's report saying it runs whole (or a phase past planning without a plan) marks the
    execution and withdraws a suspend kept for the plan, with the reason; a planned execution
    and a PREPARING report without the marker are left alone (Execution.whole_reported)."""
    reason = whole_reason(2000, 1 << 30)
    planning = {"phase": "PREPARING"}
    kept = replace(
        an_execution(1, now=NOW, task_arn=TASK, agent_arn=AGENT), plan_target="SUSPENDED"
    )
    assert kept.whole_reported(planning, reason) == kept
    marked = kept.whole_reported({**planning, WHOLE_KEY: "true"}, reason)
    assert marked.whole and marked.plan_target is None
    assert "--split-min-files 2000" in str(marked.plan_target_withdrawn)
    assert marked.whole_reported({"phase": "TRANSFERRING"}, reason) == marked  # once
    silent = replace(kept, plan_target=None).whole_reported({"phase": "TRANSFERRING"}, reason)
    assert silent.whole and silent.plan_target_withdrawn is None  # no wish to withdraw
    planned = replace(kept, plan=4)
    assert planned.whole_reported({WHOLE_KEY: "true"}, reason) == planned
