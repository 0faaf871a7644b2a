"""An agent's log events on their way into the execution log, through a real server: a columnar
batch (contract/log_events) and an older agent's per-event list become the very lines
`file_lines` formats, and a malformed batch is refused in the jobs protocol's error shape."""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from agents.client import JobsClient, JobsError
from api.execution_log import DEFAULT_GROUP, file_lines
from api.store import ExecutionEffect
from api.store_logs import LogStore
from contract.log_events import encode_batch, encode_event
from engine.events import FileEvent, FileEventKind, FileFacts
from tests.api.harness import (
    ACCESS_KEY,
    REGION,
    SECRET_KEY,
    Server,
    finished,
    location_root,
    nfs_task,
    serving,
)

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


def test_the_end_line_is_there_the_moment_the_terminal_status_is(tmp_path: Path) -> None:
    """A hook registered ahead of the execution log's looks, right after each execution write
    commits, at what any reader would now see: once the stored status is SUCCESS, the end line
    is in the log (it is inserted by the very transaction that wrote SUCCESS; it used to be
    appended after that commit, and this probe saw SUCCESS without it)."""
    with serving(tmp_path) as server:
        assert server.served is not None
        store = server.served.app.state.backend.store
        logs = LogStore(store)
        seen: list[tuple[str, bool]] = []

        def probe(doc: dict[str, Any]) -> ExecutionEffect:
            arn = doc["TaskExecutionArn"]

            def after() -> None:
                status = store.execution(arn)["Status"]
                ended = any(
                    f"{arn} ended with status" in e.message for e in logs.events(DEFAULT_GROUP)
                )
                seen.append((status, ended))

            return ExecutionEffect(after=after)

        store.execution_hooks.insert(0, probe)
        root: Path = server.root  # type: ignore[attr-defined]
        (root / "src" / "a.txt").write_text("a")
        ds = server.client()
        task = nfs_task(ds, server.agent_arn, root / "src", root / "dst",
                        Options={"LogLevel": "BASIC"})[2]  # fmt: skip
        final = finished(ds, ds.start_task_execution(TaskArn=task)["TaskExecutionArn"])
        assert final["Status"] == "SUCCESS", final["Result"]
        terminal = [ended for status, ended in seen if status in ("SUCCESS", "ERROR")]
        assert terminal and all(terminal), seen
        assert not any(ended for status, ended in seen if status not in ("SUCCESS", "ERROR"))


def test_a_lost_swap_logs_nothing_and_its_retry_logs_the_state_once(
    job: dict[str, Any],
) -> None:
    """Two writers of one execution version: the loser's ERROR state is not logged with the
    lost write (the lines are part of the write), and its retry on a fresh read logs it once."""
    assert job["server"].served is not None
    store = job["server"].served.app.state.backend.store
    arn = job["arn"]
    doc, version = store.execution_versioned(arn)
    winner, loser = copy.deepcopy(doc), copy.deepcopy(doc)
    winner["Result"] = {"TransferStatus": "PENDING"}
    assert store.update_execution(winner, version)
    loser["History"] = [*loser["History"], ["ERROR", time.time()]]
    loser["Status"] = "ERROR"
    loser["Result"] = {"ErrorCode": "Lost", "ErrorDetail": "the swap was lost"}

    def ends() -> list[str]:
        logs = job["server"].client("logs")
        found = logs.filter_log_events(logGroupName=DEFAULT_GROUP)["events"]
        return [e["message"] for e in found if f"{arn} ended with status" in e["message"]]

    assert not store.update_execution(loser, version)
    assert ends() == []
    fresh, current = store.execution_versioned(arn)
    fresh["History"] = [*fresh["History"], ["ERROR", time.time()]]
    fresh["Status"] = "ERROR"
    fresh["Result"] = loser["Result"]
    assert store.update_execution(fresh, current)
    assert store.update_execution(*store.execution_versioned(arn))  # no new state: no line
    found = ends()
    assert len(found) == 1 and "Lost: the swap was lost" in found[0], found
