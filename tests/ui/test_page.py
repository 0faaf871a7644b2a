"""The status page over plain HTTP: login, what a session may and may not do, the GET / split."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import httpx

from api.ui.failures import LIMIT
from tests.api.harness import (
    ACCESS_KEY,
    SECRET_KEY,
    Server,
    finished,
    make_tree,
    nfs_task,
    wait_for,
)
from tests.ui.failing import failing_files


def logged_in(server: Server) -> tuple[httpx.Client, str]:
    client = httpx.Client(base_url=server.url)
    reply = client.post(
        "/ui/login", data={"access_key_id": ACCESS_KEY, "secret_access_key": SECRET_KEY}
    )
    assert reply.status_code == 303 and reply.headers["location"] == "/ui"
    cookie = reply.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    page = client.get("/ui")
    assert page.status_code == 200
    assert SECRET_KEY not in page.text  # a secret is never rendered
    csrf = page.text.split('name="csrf-token" content="', 1)[1].split('"', 1)[0]
    return client, csrf


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


def recent_row(client: httpx.Client, arn: str) -> dict[str, Any] | None:
    rows = [
        e for e in client.get("/ui/state.json").json()["recent"] if e["TaskExecutionArn"] == arn
    ]
    return rows[0] if rows else None


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
