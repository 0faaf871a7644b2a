"""An activated agent's own credentials, used where they do not belong, and path tricks on the
jobs endpoint — all refused with 4xx and no side effect.

Two agents are activated through the real HTTP flow (register → operator CreateAgent → poll with
the poll token), so each gets the credentials a remote agent process would. Agent A then tries the
DataSync API (create, delete, start, cancel) and agent B's jobs (list, claim, update, describe),
including percent-encoded and dot-segment paths that name B while the signed path seems to name
A. Afterwards nothing changed: same tasks, B's execution still LAUNCHING and unclaimed.
"""

from __future__ import annotations

import datetime as dt
import http.client
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.harness import REGION, Server, nfs_task
from tests.reliability.wire import datasync_headers, sign


def _activate(server: Server, http: httpx.Client, name: str, root: Path) -> dict[str, str]:
    reg = http.post(
        f"{server.url}/agent-activation",
        json={"Name": name, "Hostname": "localhost", "Roots": [str(root)], "Mounts": []},
    )
    assert reg.status_code == 200, reg.text
    key, token = reg.json()["ActivationKey"], reg.json()["PollToken"]
    arn = server.client().create_agent(ActivationKey=key, AgentName=name)["AgentArn"]
    polled = http.post(f"{server.url}/agent-activation/{key}", json={"PollToken": token}).json()
    assert polled["Status"] == "ACTIVATED", polled
    return {**polled, "AgentArn": arn}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("agentcreds")
    roots = {n: tmp / n for n in ("a", "b")}
    for r in roots.values():
        (r / "src").mkdir(parents=True)
        (r / "dst").mkdir()
        (r / "src" / "f.txt").write_text("data")
    server = Server(str(tmp / "data"), [str(tmp / "embedded")]).start()
    try:
        with httpx.Client(timeout=10) as http:
            agents = {n: _activate(server, http, f"agent-{n}", r) for n, r in roots.items()}
            ds = server.client()
            b = agents["b"]["AgentArn"]
            src, dst, task = nfs_task(ds, b, roots["b"] / "src", roots["b"] / "dst")
            execution = ds.start_task_execution(TaskArn=task)["TaskExecutionArn"]
            yield {
                "server": server,
                "http": http,
                "ds": ds,
                "agents": agents,
                "task": task,
                "locations": [src, dst],
                "execution": execution,
                "roots": roots,
            }
    finally:
        server.stop()


def _snapshot(world: dict[str, Any]) -> Any:
    ds = world["ds"]
    described = ds.describe_task_execution(TaskExecutionArn=world["execution"])
    described.pop("ResponseMetadata")
    served = world["server"].served
    job = dict(served.app.state.backend.store.execution(world["execution"])["Job"])
    return (
        (job["status"], job["versionNumber"]),
        sorted(t["TaskArn"] for t in ds.list_tasks()["Tasks"]),
        sorted(loc["LocationArn"] for loc in ds.list_locations()["Locations"]),
        [e["TaskExecutionArn"] for e in ds.list_task_executions()["TaskExecutions"]],
        described,
        sorted(p.name for p in (world["roots"]["b"] / "dst").iterdir()),
    )


def _as(agent: dict[str, str]) -> dict[str, str]:
    return {"key": agent["AccessKeyId"], "secret": agent["SecretAccessKey"]}


def test_agent_credentials_cannot_call_the_datasync_api(world: dict[str, Any]) -> None:
    server, http = world["server"], world["http"]
    me = _as(world["agents"]["a"])
    before = _snapshot(world)
    assert before[4]["Status"] == "LAUNCHING" and before[0][0] == "QUEUED"  # unclaimed
    requests = [
        ("ListTasks", {}),
        (
            "CreateTask",
            {
                "SourceLocationArn": world["locations"][0],
                "DestinationLocationArn": world["locations"][1],
            },
        ),
        ("StartTaskExecution", {"TaskArn": world["task"]}),
        ("CancelTaskExecution", {"TaskExecutionArn": world["execution"]}),
        (
            "UpdateTaskExecution",
            {"TaskExecutionArn": world["execution"], "Options": {"BytesPerSecond": 1}},
        ),
        ("DeleteTask", {"TaskArn": world["task"]}),
        ("DeleteAgent", {"AgentArn": world["agents"]["b"]["AgentArn"]}),
        ("CreateAgent", {"ActivationKey": "AAAAA-BBBBB-CCCCC-DDDDD-EEEEE"}),
    ]
    for op, params in requests:
        raw = json.dumps(params).encode()
        for service in ("datasync", "iot-jobs-data"):
            headers = datasync_headers(server.url + "/", op, raw, service=service, **me)
            response = http.post(server.url + "/", content=raw, headers=headers)
            assert response.status_code == 403, (op, service, response.text)
            assert response.json()["__type"] in (
                "AccessDeniedException",
                "InvalidSignatureException",
            ), (op, service, response.text)
    assert _snapshot(world) == before


def _jobs_request(
    world: dict[str, Any], method: str, path: str, body: bytes, signer: dict[str, str]
) -> tuple[int, dict[str, Any]]:
    """Send with http.client so the path goes out byte for byte (no dot-segment clean-up)."""
    server = world["server"]
    url = server.url + path
    headers = sign(
        url,
        body,
        {"Content-Type": "application/json"},
        method=method,
        service="iot-jobs-data",
        region=REGION,
        **signer,
    )
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        payload = response.read()
    finally:
        conn.close()
    try:
        parsed = json.loads(payload)
    except ValueError:
        parsed = {"raw": payload.decode(errors="replace")}
    return response.status, parsed


def test_one_agent_cannot_touch_another_agents_jobs(world: dict[str, Any]) -> None:
    a = world["agents"]["a"]
    b_thing = world["agents"]["b"]["ThingName"]
    a_thing = a["ThingName"]
    me = _as(a)
    job_id = world["execution"].rsplit("/", 1)[1]
    update = json.dumps({"status": "SUCCEEDED", "expectedVersion": 1}).encode()
    before = _snapshot(world)
    attempts = [
        ("GET", f"/things/{b_thing}/jobs", b""),
        ("PUT", f"/things/{b_thing}/jobs/$next", b"{}"),
        ("GET", f"/things/{b_thing}/jobs/$next", b""),
        ("POST", f"/things/{b_thing}/jobs/{job_id}", update),
        ("GET", f"/things/{b_thing}/jobs/{job_id}", b""),
        # path tricks: the signed and authorised path should name A, the route B
        ("PUT", f"/things/{a_thing}/../{b_thing}/jobs/$next", b"{}"),
        ("PUT", f"/things/{a_thing}%2F..%2F{b_thing}/jobs/$next", b"{}"),
        ("PUT", f"/things/{a_thing}/jobs/../../{b_thing}/jobs/$next", b"{}"),
        ("PUT", f"//things/{b_thing}/jobs/$next", b"{}"),
        ("PUT", f"/things/{b_thing[:3]}%{ord(b_thing[3]):02X}{b_thing[4:]}/jobs/$next", b"{}"),
        ("PUT", f"/things/{b_thing.upper()}/jobs/$next", b"{}"),
        ("POST", f"/things/{a_thing}/jobs/{job_id}", update),  # B's job under A's name
        ("GET", f"/things/{a_thing}/jobs/{job_id}", b""),
    ]
    for method, path, body in attempts:
        status, error = _jobs_request(world, method, path, body, me)
        assert 400 <= status < 500, (method, path, status, error)
    # with a skewed clock even the right agent is refused
    status, _ = _jobs_request(
        world,
        "GET",
        f"/things/{a_thing}/jobs",
        b"",
        {**me, "when": dt.datetime.now(dt.UTC) - dt.timedelta(minutes=20)},  # type: ignore[dict-item]
    )
    assert status in (400, 403)
    # its own (empty) queue it may read
    status, own = _jobs_request(world, "GET", f"/things/{a_thing}/jobs", b"", me)
    assert status == 200 and own.get("queuedJobs") == [], own
    assert _snapshot(world) == before, "B's execution was touched"
    assert _snapshot(world)[0][0] == "QUEUED"  # the job is still unclaimed
