"""An agent's log events on their way into the execution log, through a real server: a columnar
batch (contract/log_events) and an older agent's per-event list become the very lines
`file_lines` formats, and a malformed batch is refused in the jobs protocol's error shape."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from agents.client import JobsClient, JobsError
from api.execution_log import file_lines
from contract.log_events import encode_batch, encode_event
from engine.events import FileEvent, FileEventKind, FileFacts
from tests.api.harness import ACCESS_KEY, REGION, SECRET_KEY, Server, location_root, nfs_task

EVENTS = [
    FileEvent(FileEventKind.TRANSFERRED, "/a.txt", False, 12, "0" * 32),
    FileEvent(FileEventKind.VERIFIED, "/a.txt", False, 12, "0" * 32),
    FileEvent(FileEventKind.VERIFIED, "/b.txt", False, 12),
    FileEvent(FileEventKind.TRANSFERRED, "/dir", True),
    FileEvent(FileEventKind.SKIPPED, "/dir/c", False, 3, reason="UNCHANGED"),
    FileEvent(FileEventKind.DELETED, "/é/日本/🙂", False, 0),
    FileEvent(FileEventKind.FAILED, "/b", False, phase="Transfer", reason="EACCES"),
    FileEvent(
        FileEventKind.FAILED,
        "/v.bin",
        False,
        phase="Verify",
        reason="checksum mismatch",
        source=FileFacts(7, 1_700_000_000_123_456_789, 0o644, 1, 2, "f" * 32),
        destination=FileFacts(7, 1_700_000_001_000_000_000, 0o600, 1, 2, "e" * 32),
    ),
]


@pytest.fixture
def job(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A remote agent's claimed job of a TRANSFER-level task, and the server."""
    root = location_root(tmp_path)
    server = Server(str(tmp_path / "data"), [str(root)], embedded_agent=False).start()
    try:
        assert server.served is not None
        agent = server.served.app.state.backend.register_agent("remote", [str(root)])
        ds = server.client()
        task = nfs_task(ds, agent, root / "src", root / "dst", Options={"LogLevel": "TRANSFER"})[2]
        arn = ds.start_task_execution(TaskArn=task)["TaskExecutionArn"]
        thing = agent.rsplit("/", 1)[1]
        claimed = server.client("iot-jobs-data").start_next_pending_job_execution(thingName=thing)
        yield {"server": server, "thing": thing, "job": claimed["execution"]["jobId"], "arn": arn}
    finally:
        server.stop()


def _post(job: dict[str, Any], body: object) -> dict[str, Any]:
    async def main() -> dict[str, Any]:
        client = JobsClient(job["server"].url, ACCESS_KEY, SECRET_KEY, REGION)
        try:
            path = f"/things/{job['thing']}/jobs/{job['job']}/events"
            reply: dict[str, Any] = await client._call("POST", path, body)  # type: ignore[arg-type]
            return reply
        finally:
            await client.aclose()

    return anyio.run(main)


def _file_messages(job: dict[str, Any]) -> list[tuple[int, str]]:
    logs = job["server"].client("logs")
    out: list[tuple[int, str]] = []
    for page in logs.get_paginator("filter_log_events").paginate(logGroupName="/aws/datasync"):
        out.extend((e["timestamp"], e["message"]) for e in page["events"])
    return [(t, m) for t, m in out if not m.startswith("[INFO] Execution ")]


def _expected(job: dict[str, Any], start_ms: int) -> list[tuple[int, str]]:
    suffix = f" ({job['arn'].rsplit('/', 1)[-1]})"
    return [
        (start_ms + i, line + suffix)
        for i, event in enumerate(EVENTS)
        for line in file_lines(event)[1]
    ]


def test_a_columnar_batch_becomes_datasync_lines(job: dict[str, Any]) -> None:
    start = 1_767_261_600_000
    batch = encode_batch([((start + i) / 1000, e) for i, e in enumerate(EVENTS)], dropped=2)
    assert _post(job, batch.to_json()) == {"stored": 13}  # 8 events, 5 lines of a failure, +1
    messages = _file_messages(job)
    assert messages[:-1] == _expected(job, start)
    assert messages[-1][1].endswith("2 log events were dropped by the agent")


def test_an_older_agents_batch_is_still_logged(job: dict[str, Any]) -> None:
    start = 1_767_261_700_000
    events = [encode_event(e, start + i) for i, e in enumerate(EVENTS)]
    assert _post(job, {"events": events, "dropped": 0}) == {"stored": 12}
    assert _file_messages(job) == _expected(job, start)


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ({"v": 2, "t": [1], "k": "T", "p": ["/a"], "s": [1], "c": [None]}, "'r'"),
        ({"v": 2, "t": [1], "k": "Q", "p": ["/a"], "s": [1], "c": [None], "r": [None]}, "'k'"),
        ({"events": "all of them"}, "events must be a list"),
        ({"dropped": "some"}, "dropped"),
        ([1, 2], "JSON object"),
    ],
)
def test_a_malformed_batch_is_refused_saying_why(
    job: dict[str, Any], body: object, detail: str
) -> None:
    with pytest.raises(JobsError) as info:
        _post(job, body)
    assert info.value.status == 400
    assert info.value.code == "InvalidRequestException"
    assert detail in json.dumps(info.value.body)
    assert _file_messages(job) == []
