"""`/health` and `/ready` on a real server: liveness always, readiness from the store and the
embedded agent's status."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.api.harness import Server


def test_health_is_ok(server: Server) -> None:
    reply = httpx.get(f"{server.url}/health")
    assert reply.status_code == 200
    assert reply.json() == {"status": "ok"}


def test_ready_with_online_embedded_agent(server: Server) -> None:
    reply = httpx.get(f"{server.url}/ready")
    assert reply.status_code == 200, reply.text
    assert reply.json() == {"status": "ready", "checks": {"store": "ok", "embedded_agent": "ok"}}


def test_not_ready_when_embedded_agent_is_offline(tmp_path: Path, root: Path) -> None:
    # an agent timeout shorter than any poll makes the embedded agent OFFLINE between contacts
    srv = Server(str(tmp_path / "data"), [str(root)], agent_timeout=1e-9).start()
    try:
        reply = httpx.get(f"{srv.url}/ready")
        assert reply.status_code == 503
        body = reply.json()
        assert body["status"] == "not ready"
        assert body["checks"] == {"store": "ok", "embedded_agent": "offline"}
    finally:
        srv.stop()


def test_health_routes_do_not_change_the_api_error_shape(server: Server) -> None:
    reply = httpx.get(f"{server.url}/")  # an SDK's GET / still gets DataSync's error shape
    assert reply.status_code == 400
    assert reply.json()["__type"] == "UnknownOperationException"
