"""An operator's session on the status page over plain HTTP, for the page's tests: log in, read
the live state, post an action with the session's CSRF token."""

from __future__ import annotations

from typing import Any

import httpx

from tests.api.harness import ACCESS_KEY, SECRET_KEY, Server

__all__ = ["act", "logged_in", "recent_row", "running_row", "transfers"]


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


def recent_row(client: httpx.Client, arn: str) -> dict[str, Any] | None:
    rows = [
        e for e in client.get("/ui/state.json").json()["recent"] if e["TaskExecutionArn"] == arn
    ]
    return rows[0] if rows else None


def running_row(client: httpx.Client, arn: str) -> dict[str, Any] | None:
    rows = [
        e for e in client.get("/ui/state.json").json()["running"] if e["TaskExecutionArn"] == arn
    ]
    return rows[0] if rows else None


def act(client: httpx.Client, csrf: str, **body: Any) -> httpx.Response:
    return client.post("/ui/action", json=body, headers={"x-csrf-token": csrf})


def transfers(row: dict[str, Any]) -> list[dict[str, Any]]:
    return [i for i in row["Items"] if i["Kind"] == "TRANSFER"]
