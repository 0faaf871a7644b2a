"""The status page over plain HTTP: login, what a session may and may not do, the GET / split."""

from __future__ import annotations

import os
from pathlib import Path

import httpx

from tests.api.harness import ACCESS_KEY, SECRET_KEY, Server, make_tree, nfs_task, wait_for


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
