"""The status page over plain HTTP: login, what a session may and may not do, the GET / split."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import httpx

from api.ui.failures import LIMIT
from api.ui.items import LISTED
from tests.api.harness import (
    ACCESS_KEY,
    SECRET_KEY,
    Server,
    finished,
    make_tree,
    nfs_task,
    wait_for,
)
from tests.ui.client import act, logged_in, recent_row, running_row, transfers
from tests.ui.failing import failing_files


def test_wrong_password_gets_nothing(server: Server) -> None:
    client = httpx.Client(base_url=server.url)
    reply = client.post("/ui/login", data={"access_key_id": ACCESS_KEY, "secret_access_key": "x"})
    assert reply.status_code == 401 and "set-cookie" not in reply.headers
    assert client.get("/ui/state.json").status_code == 401
    assert client.get("/ui").headers["location"] == "/ui/login"
    forger = httpx.Client(base_url=server.url, cookies={"dsl_session": "eyJrIjoiQUtJQSJ9.forged"})
    assert forger.get("/ui/state.json").status_code == 401


def test_browser_get_root_redirects_sdk_gets_error_shape(server: Server) -> None:
    browser = httpx.get(f"{server.url}/", headers={"accept": "text/html,application/xhtml+xml"})
    assert browser.status_code == 303 and browser.headers["location"] == "/ui"
    sdk = httpx.get(f"{server.url}/")
    assert sdk.json()["__type"] == "UnknownOperationException"


def test_actions_need_csrf_and_use_the_api_rules(server: Server, root: Path) -> None:
    make_tree(os.fspath(root / "src"), 4, 256 * 1024)
    ds = server.client()
    _, _, task = nfs_task(
        ds, server.agent_arn, root / "src", root / "dst", Options={"BytesPerSecond": 64 * 1024}
    )
    arn = ds.start_task_execution(TaskArn=task)["TaskExecutionArn"]
    client, csrf = logged_in(server)
    state = wait_for(lambda: client.get("/ui/state.json").json()["running"])
    assert state[0]["TaskExecutionArn"] == arn
    body = {"action": "rate", "TaskExecutionArn": arn, "BytesPerSecond": 4096}
    assert client.post("/ui/action", json=body).status_code == 403  # no CSRF token
    bad = client.post("/ui/action", json=body, headers={"x-csrf-token": "wrong"})
    assert bad.status_code == 403
    zero = client.post(
        "/ui/action", json={**body, "BytesPerSecond": 0}, headers={"x-csrf-token": csrf}
    )
    assert zero.status_code == 400 and "BytesPerSecond" in zero.json()["message"]
    ok = client.post("/ui/action", json=body, headers={"x-csrf-token": csrf})
    assert ok.status_code == 200
    assert ds.describe_task_execution(TaskExecutionArn=arn)["Options"]["BytesPerSecond"] == 4096
    cancel = {"action": "cancel", "TaskExecutionArn": arn}
    assert client.post("/ui/action", json=cancel, headers={"x-csrf-token": csrf}).status_code == 200
    wait_for(lambda: ds.describe_task_execution(TaskExecutionArn=arn)["Status"] == "ERROR")


def test_recent_execution_lists_its_failed_files_from_the_log(server: Server, root: Path) -> None:
    with failing_files(root, ["locked-a.txt", "locked-b.txt"]) as failing:
        ds = server.client()
        _, _, task = nfs_task(
            ds, server.agent_arn, root / "src", root / "dst", Options={"LogLevel": "BASIC"}
        )
        arn = ds.start_task_execution(TaskArn=task)["TaskExecutionArn"]
        done = finished(ds, arn)
    assert done["Status"] == "ERROR" and done["FilesFailed"]["Transfer"] == 2, done
    assert done["FilesTransferred"] == 3  # the others went through
    client, _ = logged_in(server)
    # the agent's last events may land just after the end: poll (bounded) until they are in
    row = wait_for(
        lambda: (
            (r := recent_row(client, arn)) is not None and len(r["FailedFiles"]["Files"]) == 2 and r
        )
    )
    files = sorted(row["FailedFiles"]["Files"], key=lambda f: f["Path"])
    assert [f["Path"] for f in files] == failing
    assert all(f["Phase"] == "Transfer" for f in files)
    assert all("Operation not permitted" in f["Reason"] for f in files)
    assert row["FailedFiles"]["More"] is False and row["FailedFiles"]["Detail"] is None
    assert row["FilesFailed"]["Transfer"] == 2


def test_more_failed_files_than_listed_say_so(server: Server, root: Path) -> None:
    names = [f"locked-{i:02d}.txt" for i in range(LIMIT + 1)]
    with failing_files(root, names) as failing:
        ds = server.client()
        _, _, task = nfs_task(
            ds, server.agent_arn, root / "src", root / "dst", Options={"LogLevel": "BASIC"}
        )
        arn = ds.start_task_execution(TaskArn=task)["TaskExecutionArn"]
        done = finished(ds, arn)
    assert done["FilesFailed"]["Transfer"] == LIMIT + 1, done
    client, _ = logged_in(server)
    row = wait_for(
        lambda: (r := recent_row(client, arn)) is not None and r["FailedFiles"]["More"] and r
    )
    listed = [f["Path"] for f in row["FailedFiles"]["Files"]]
    assert len(listed) == LIMIT and set(listed) < set(failing)


def test_without_an_execution_log_the_error_detail_names_the_failed_files(
    server: Server, root: Path
) -> None:
    with failing_files(root, ["locked.txt"]) as failing:
        ds = server.client()
        _, _, task = nfs_task(ds, server.agent_arn, root / "src", root / "dst")  # LogLevel OFF
        arn = ds.start_task_execution(TaskArn=task)["TaskExecutionArn"]
        done = finished(ds, arn)
    assert done["Status"] == "ERROR" and done["FilesFailed"]["Transfer"] == 1, done
    client, _ = logged_in(server)
    row = recent_row(client, arn)
    assert row is not None and row["FailedFiles"]["Files"] == []
    assert row["FailedFiles"]["Detail"] == done["Result"]["ErrorDetail"]
    assert failing[0] in row["FailedFiles"]["Detail"]


def test_a_clean_run_has_no_failed_files(server: Server, root: Path) -> None:
    make_tree(os.fspath(root / "src"), 2, 100)
    ds = server.client()
    _, _, task = nfs_task(
        ds, server.agent_arn, root / "src", root / "dst", Options={"LogLevel": "TRANSFER"}
    )
    arn = ds.start_task_execution(TaskArn=task)["TaskExecutionArn"]
    assert finished(ds, arn)["Status"] == "SUCCESS"
    client, _ = logged_in(server)
    row = recent_row(client, arn)
    assert row is not None
    assert row["FailedFiles"] == {"Files": [], "More": False, "Detail": None}


# suspend and resume (issue 12's work items on the page) --------------------------------------
DIRS = ("a", "b", "c")
DIR_BYTES = 512 * 1024
SLOW_RATE = 96 * 1024  # for the whole execution: ~16 s of copying, time to act on it


def split_execution(server: Server, root: Path) -> tuple[Any, str]:
    """A throttled execution of three top-level directories (so three TRANSFER items) the
    embedded agent is running, once its plan is in: (DataSync client, execution ARN)."""
    for name in DIRS:
        make_tree(os.fspath(root / "src" / name), 1, DIR_BYTES, prefix=name)
    ds = server.client()
    _, _, task = nfs_task(
        ds,
        server.agent_arn,
        root / "src",
        root / "dst",
        Options={"BytesPerSecond": SLOW_RATE, "VerifyMode": "NONE"},
    )
    return ds, ds.start_task_execution(TaskArn=task)["TaskExecutionArn"]


def test_the_page_lists_an_executions_work_items(server: Server, root: Path) -> None:
    ds, arn = split_execution(server, root)
    client, csrf = logged_in(server)
    row = wait_for(lambda: (r := running_row(client, arn)) is not None and r["Itemized"] and r, 30)
    assert row["Items"][0]["Index"] == 0 and row["Items"][0]["Kind"] == "PREPARE"
    items = transfers(row)
    assert sorted(i["Path"] for i in items) == list(DIRS)
    assert all(i["Recursive"] and i["EstimatedBytes"] == DIR_BYTES for i in items)
    assert all(i["EstimatedFiles"] == 1 and i["FailureRetryCount"] == 0 for i in items)
    assert sum(row["ItemCounts"].values()) == len(items)  # every non-PREPARE item counted once
    assert row["SuspendedItems"] == 0
    # the items' counters add up to the execution's (what DescribeTaskExecution says)
    moving = wait_for(lambda: (r := running_row(client, arn)) and r["BytesTransferred"] > 0 and r)
    assert sum(i["BytesTransferred"] for i in moving["Items"]) == moving["BytesTransferred"]
    assert SECRET_KEY not in str(moving)
    assert act(client, csrf, action="cancel", TaskExecutionArn=arn).status_code == 200
    assert finished(ds, arn)["Status"] == "ERROR"


def test_suspend_and_resume_an_execution_from_the_page(server: Server, root: Path) -> None:
    ds, arn = split_execution(server, root)
    client, csrf = logged_in(server)
    wait_for(lambda: (r := running_row(client, arn)) is not None and r["BytesTransferred"] > 0, 30)
    suspend = {"action": "suspend", "TaskExecutionArn": arn}
    assert client.post("/ui/action", json=suspend).status_code == 403  # no CSRF token
    assert act(client, "wrong", **suspend).status_code == 403
    fresh = running_row(client, arn)
    assert fresh is not None and fresh["SuspendedItems"] == 0
    assert fresh["CanSuspend"] is True and fresh["CanResume"] is False
    assert act(client, csrf, **suspend).status_code == 200

    def suspended() -> dict[str, Any] | None:
        row = running_row(client, arn)
        if row is None:
            return None
        waiting = [i for i in transfers(row) if i["Status"] != "SUCCEEDED"]
        return row if waiting and all(i["Status"] == "SUSPENDED" for i in waiting) else None

    row = wait_for(suspended, 20)
    assert row["Status"] == "TRANSFERRING"  # the DataSync phase stays; the row says SUSPENDED
    assert row["SuspendedItems"] == row["ItemCounts"]["SUSPENDED"] >= 1
    assert row["CanResume"] is True and row["CanSuspend"] is False
    before = ds.describe_task_execution(TaskExecutionArn=arn)
    time.sleep(1.5)
    after = ds.describe_task_execution(TaskExecutionArn=arn)
    assert after["Status"] == "TRANSFERRING"
    assert after["BytesWritten"] == before["BytesWritten"]  # frozen while suspended
    assert after["BytesWritten"] < DIR_BYTES * len(DIRS)
    again = act(client, csrf, **suspend)  # suspending a suspended execution changes nothing
    assert again.status_code == 200

    assert act(client, csrf, action="resume", TaskExecutionArn=arn).status_code == 200
    done = finished(ds, arn, timeout=60)
    assert done["Status"] == "SUCCESS", done["Result"]
    for name in DIRS:
        copied = root / "dst" / name / f"{name}0000.bin"
        assert copied.read_bytes() == (root / "src" / name / f"{name}0000.bin").read_bytes()
    nothing_left = act(client, csrf, action="resume", TaskExecutionArn=arn)
    assert nothing_left.status_code == 409 and "has ended" in nothing_left.json()["message"]


def test_suspend_and_resume_one_item_from_the_page(server: Server, root: Path) -> None:
    ds, arn = split_execution(server, root)
    client, csrf = logged_in(server)
    row = wait_for(lambda: (r := running_row(client, arn)) is not None and r["Itemized"] and r, 30)
    chosen = [i for i in transfers(row) if i["Status"] != "SUCCEEDED"][-1]
    index = chosen["Index"]
    assert act(client, csrf, action="suspend", TaskExecutionArn=arn, Item=index).status_code == 200

    def others_done() -> dict[str, Any] | None:
        row = running_row(client, arn)
        if row is None:
            return None
        mine = next(i for i in row["Items"] if i["Index"] == index)
        rest = {i["Status"] for i in transfers(row) if i["Index"] != index}
        return row if mine["Status"] == "SUSPENDED" and rest == {"SUCCEEDED"} else None

    row = wait_for(others_done, 60)  # the suspended item holds the execution open
    assert row["SuspendedItems"] == 1 and row["ItemCounts"]["SUSPENDED"] == 1
    assert ds.describe_task_execution(TaskExecutionArn=arn)["Status"] == "TRANSFERRING"
    other = next(i for i in transfers(row) if i["Index"] != index)
    refused = act(client, csrf, action="resume", TaskExecutionArn=arn, Item=other["Index"])
    assert refused.status_code == 409 and "not suspended" in refused.json()["message"]

    assert act(client, csrf, action="resume", TaskExecutionArn=arn, Item=index).status_code == 200
    done = finished(ds, arn, timeout=60)
    assert done["Status"] == "SUCCESS", done["Result"]
    path = chosen["Path"]
    copied = root / "dst" / path / f"{path}0000.bin"
    assert copied.read_bytes() == (root / "src" / path / f"{path}0000.bin").read_bytes()


def test_suspend_and_resume_refusals_are_messages(server: Server, root: Path) -> None:
    client, csrf = logged_in(server)
    missing = server.agent_arn.split(":agent/")[0] + ":task/task-0/execution/exec-0"
    gone = act(client, csrf, action="suspend", TaskExecutionArn=missing)
    assert gone.status_code == 404 and "not found" in gone.json()["message"]

    # a tree of one entry runs as one piece inside the execution's own job: no work items
    make_tree(os.fspath(root / "src"), 1, 512 * 1024)
    ds = server.client()
    _, _, task = nfs_task(
        ds, server.agent_arn, root / "src", root / "dst", Options={"BytesPerSecond": 32 * 1024}
    )
    arn = ds.start_task_execution(TaskArn=task)["TaskExecutionArn"]
    wait_for(lambda: (r := running_row(client, arn)) is not None and r["BytesTransferred"] > 0, 30)
    row = running_row(client, arn)
    assert row is not None and row["Itemized"] is False and row["SuspendedItems"] == 0
    whole = act(client, csrf, action="suspend", TaskExecutionArn=arn)
    assert whole.status_code == 409 and "no work items" in whole.json()["message"]
    for bad in ("1", -1, True, 1.5):
        reply = act(client, csrf, action="resume", TaskExecutionArn=arn, Item=bad)
        assert reply.status_code == 400 and "Item" in reply.json()["message"], bad
    assert act(client, csrf, action="suspend").status_code == 400  # no execution named
    assert act(client, csrf, action="cancel", TaskExecutionArn=arn).status_code == 200
    assert finished(ds, arn)["Status"] == "ERROR"
    ended = act(client, csrf, action="suspend", TaskExecutionArn=arn, Item=0)
    assert ended.status_code == 409 and "has ended" in ended.json()["message"]


def test_an_unknown_item_and_an_unsuspended_execution_are_refused(
    server: Server, root: Path
) -> None:
    ds, arn = split_execution(server, root)
    client, csrf = logged_in(server)
    wait_for(lambda: (r := running_row(client, arn)) is not None and r["Itemized"], 30)
    unknown = act(client, csrf, action="suspend", TaskExecutionArn=arn, Item=99)
    assert unknown.status_code == 404 and "no work item 99" in unknown.json()["message"]
    idle = act(client, csrf, action="resume", TaskExecutionArn=arn)
    assert idle.status_code == 409 and "not suspended" in idle.json()["message"]
    assert act(client, csrf, action="cancel", TaskExecutionArn=arn).status_code == 200
    assert finished(ds, arn)["Status"] == "ERROR"


def test_a_suspension_from_the_page_survives_a_restart(server: Server, root: Path) -> None:
    ds, arn = split_execution(server, root)
    client, csrf = logged_in(server)
    wait_for(lambda: (r := running_row(client, arn)) is not None and r["BytesTransferred"] > 0, 30)
    assert act(client, csrf, action="suspend", TaskExecutionArn=arn).status_code == 200

    def all_suspended() -> dict[str, Any] | None:
        row = running_row(client, arn)
        waiting = [i for i in transfers(row) if i["Status"] != "SUCCEEDED"] if row else []
        return row if waiting and all(i["Status"] == "SUSPENDED" for i in waiting) else None

    before = wait_for(all_suspended, 20)
    server.restart()  # the suspension is store state: the new process shows and keeps it
    # the session too: its cookie is signed with the store's secret, not the process's
    row = wait_for(all_suspended, 20)
    assert row["SuspendedItems"] == before["SuspendedItems"]
    assert row["BytesTransferred"] == before["BytesTransferred"]
    time.sleep(1.0)  # the restarted embedded agent takes nothing suspended
    still = running_row(client, arn)
    assert still is not None and still["BytesTransferred"] == before["BytesTransferred"]
    assert act(client, csrf, action="resume", TaskExecutionArn=arn).status_code == 200
    done = finished(ds, arn, timeout=60)
    assert done["Status"] == "SUCCESS", done["Result"]


def test_a_suspended_execution_can_still_be_cancelled_from_the_page(
    server: Server, root: Path
) -> None:
    ds, arn = split_execution(server, root)
    client, csrf = logged_in(server)
    wait_for(lambda: (r := running_row(client, arn)) is not None and r["BytesTransferred"] > 0, 30)
    assert act(client, csrf, action="suspend", TaskExecutionArn=arn).status_code == 200
    wait_for(
        lambda: (
            (r := running_row(client, arn)) is not None
            and r["SuspendedItems"] >= 1
            and all(i["Status"] in ("SUSPENDED", "SUCCEEDED") for i in transfers(r))
        ),
        20,
    )
    assert act(client, csrf, action="cancel", TaskExecutionArn=arn).status_code == 200
    done = finished(ds, arn)
    assert done["Status"] == "ERROR"
    row = recent_row(client, arn)
    assert row is not None and row["Status"] == "ERROR"
    late = act(client, csrf, action="resume", TaskExecutionArn=arn)
    assert late.status_code == 409 and "has ended" in late.json()["message"]


def test_a_long_plan_sends_at_most_listed_items(server: Server, root: Path) -> None:
    dirs = LISTED + 20
    for i in range(dirs):
        make_tree(os.fspath(root / "src" / f"d{i:03d}"), 1, 4096, prefix="x")
    ds = server.client()
    _, _, task = nfs_task(
        ds, server.agent_arn, root / "src", root / "dst", Options={"BytesPerSecond": 4096}
    )
    arn = ds.start_task_execution(TaskArn=task)["TaskExecutionArn"]
    client, csrf = logged_in(server)
    row = wait_for(lambda: (r := running_row(client, arn)) is not None and r["Itemized"] and r, 30)
    assert row["ItemsTotal"] == dirs + 1  # the planner's item 0 and one per directory
    assert len(row["Items"]) == LISTED
    indexes = [i["Index"] for i in row["Items"]]
    assert indexes == sorted(indexes)
    assert sum(row["ItemCounts"].values()) == dirs  # counted over all of them
    assert act(client, csrf, action="suspend", TaskExecutionArn=arn).status_code == 200
    suspended = wait_for(
        lambda: (
            (r := running_row(client, arn)) is not None and r["SuspendedItems"] >= dirs - 2 and r
        )
    )
    assert suspended["CanResume"] is True
    assert act(client, csrf, action="cancel", TaskExecutionArn=arn).status_code == 200
    assert finished(ds, arn)["Status"] == "ERROR"
