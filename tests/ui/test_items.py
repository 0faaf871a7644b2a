"""What the page is sent about a plan's items: everything up to LISTED, else the ones that still
need an operator before the succeeded ones; counts and the Suspend/Resume flags over all."""

from __future__ import annotations

from api.ui.items import LISTED, summarize
from api.workitems import ItemStatus, WorkItem
from contract.workitems import ItemKind, ItemScope


def item(index: int, status: str, target: str | None = None) -> WorkItem:
    kind = ItemKind.PREPARE if index == 0 else ItemKind.TRANSFER
    return WorkItem(
        execution_arn="arn:aws:datasync:us-east-1:111122223333:task/task-1/execution/exec-1",
        index=index,
        kind=kind,
        scope=None if index == 0 else ItemScope(f"d{index:04d}", True, 2, 2048),
        status=ItemStatus(status),
        target=None if target is None else ItemStatus(target),
        agent_arn=None,
        execution_number=1,
        started_at=None,
        ended_at=None,
        failure_retry_count=1 if status == "FAILED" else 0,
        counters={"BytesTransferred": 1024, "FilesTransferred": 1, "FilesFailed": {"Transfer": 0}},
        result={},
        updated_at=0.0,
    )


def test_a_small_plan_is_listed_whole_in_index_order() -> None:
    items = [item(0, "SUCCEEDED"), item(1, "RUNNING", "SUSPENDED"), item(2, "SUSPENDED")]
    shown = summarize(items).to_json()
    assert [i["Index"] for i in shown["Items"]] == [0, 1, 2]
    assert shown["Items"][1]["Target"] == "SUSPENDED" and shown["Items"][1]["Path"] == "d0001"
    assert shown["Items"][0]["Path"] == "" and shown["Items"][0]["Kind"] == "PREPARE"
    assert (
        shown["Items"][2]["BytesTransferred"] == 1024 and shown["Items"][2]["EstimatedFiles"] == 2
    )
    assert shown["ItemCounts"] == {"RUNNING": 1, "SUSPENDED": 1}  # the planner is not counted
    assert shown["SuspendedItems"] == 2  # asked to be counts: Resume undoes it
    assert shown["CanResume"] is True and shown["CanSuspend"] is False
    assert shown["Itemized"] is True and shown["ItemsTotal"] == 3


def test_only_the_planner_is_not_itemized() -> None:
    shown = summarize([item(0, "RUNNING")]).to_json()
    assert shown["Itemized"] is False and shown["CanSuspend"] is False
    assert summarize([]).to_json()["Itemized"] is False


def test_a_big_plan_lists_what_needs_an_operator_first() -> None:
    needing = {5: "READY", 60: "FAILED", 130: "SUSPENDED", 149: "RUNNING"}
    items = [item(0, "SUCCEEDED")] + [
        item(i, needing.get(i, "SUCCEEDED")) for i in range(1, LISTED + 50)
    ]
    shown = summarize(items).to_json()
    listed = [i["Index"] for i in shown["Items"]]
    assert len(listed) == LISTED and listed == sorted(listed)
    assert set(needing) <= set(listed)
    assert shown["ItemsTotal"] == LISTED + 50
    assert shown["ItemCounts"]["SUCCEEDED"] == LISTED + 49 - len(needing)
    assert shown["SuspendedItems"] == 1
    assert shown["CanSuspend"] is True and shown["CanResume"] is True
