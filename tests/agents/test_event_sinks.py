"""The agent's two event sinks off the engine's critical path: the task report's writer thread
writes every event the engine's threads hand it (past its backpressure bound too, none lost,
none twice), and the execution-log shipper's batches stay within the body limit, every event
in them in order."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import anyio
import pytest

import agents.unattended as unattended
from agents.event_shipper import EventShipper
from agents.unattended import TaskReport
from contract.log_events import MAX_BATCH_BYTES, MAX_BATCH_EVENTS, decode_batch
from engine.events import FileEvent, FileEventKind, FileFacts
from engine.report import TaskReportWriter

TASK = "arn:aws:datasync:us-east-1:111122223333:task/task-0123456789abcdef0"
EXECUTION = f"{TASK}/execution/exec-0123456789abcdef0"


def _document(output: str = "STANDARD") -> dict[str, object]:
    return {
        "TaskArn": TASK,
        "TaskExecutionArn": EXECUTION,
        "Source": {"LocationArn": "arn:src", "LocationUri": "nfs://h/src/"},
        "Destination": {"LocationArn": "arn:dst", "LocationUri": "nfs://h/dst/"},
        "Options": {"LogLevel": "OFF"},
        "TaskReportConfig": {
            "Destination": {"S3": {"S3BucketArn": "arn:aws:s3:::reports", "Subdirectory": "r"}},
            "OutputType": output,
            "ReportLevel": "SUCCESSES_AND_ERRORS",
        },
    }


def _final(files: int) -> dict[str, object]:
    return {"Status": "SUCCESS", "FilesTransferred": files, "Result": {}}


def _items(bucket: Path, kind: str) -> list[dict[str, object]]:
    path = (
        bucket / "r" / "Detailed-Reports" / "task-0123456789abcdef0" / "exec-0123456789abcdef0"
        / f"exec-0123456789abcdef0.{kind}.json"
    )  # fmt: skip
    items: list[dict[str, object]] = json.loads(path.read_text())["Items"]
    return items


@pytest.mark.parametrize("max_pending", [20_000, 300])  # the default, and backpressure at work
def test_every_event_from_many_threads_is_written_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, max_pending: int
) -> None:
    monkeypatch.setattr(unattended, "_MAX_PENDING", max_pending)
    bucket = tmp_path / "bucket"
    bucket.mkdir()
    report = TaskReport(_document(), {"reports": str(bucket)})
    threads, per_thread = 4, 2500

    def worker(n: int) -> None:
        for i in range(per_thread):
            path = f"/t{n}/f{i:05d}.bin"
            report.on_event(FileEvent(FileEventKind.TRANSFERRED, path, False, i))
            report.on_event(FileEvent(FileEventKind.VERIFIED, path, False, i, "ab" * 16))

    started = time.monotonic()
    running = [threading.Thread(target=worker, args=(n,)) for n in range(threads)]
    for thread in running:
        thread.start()
    for thread in running:
        thread.join(timeout=60)
    assert time.monotonic() - started < 60
    assert report.finish(_final(threads * per_thread)) == {"Status": "SUCCESS"}
    expected = sorted(f"/t{n}/f{i:05d}.bin" for n in range(threads) for i in range(per_thread))
    for kind in ("transferred", "verified"):
        items = _items(bucket, kind)
        assert sorted(str(item["RelativePath"]) for item in items) == expected, kind
        assert all(str(item["Timestamp"]).endswith("Z") for item in items)
    # the writer thread has ended; events after finish are ignored, not written
    assert report._thread is not None and not report._thread.is_alive()
    report.on_event(FileEvent(FileEventKind.TRANSFERRED, "/late", False, 1))


def test_discard_leaves_nothing_and_stops_the_writer(tmp_path: Path) -> None:
    bucket = tmp_path / "bucket"
    bucket.mkdir()
    report = TaskReport(_document(), {"reports": str(bucket)})
    for i in range(1000):
        report.on_event(FileEvent(FileEventKind.TRANSFERRED, f"/f{i}", False, 1))
    report.discard()
    assert report._thread is not None
    report._thread.join(timeout=10)
    assert not report._thread.is_alive()
    assert not [p for p in bucket.rglob("*") if p.is_file()]
    assert report.finish(_final(0))["Status"] == "ERROR"


def test_a_report_that_never_saw_an_event_starts_no_thread(tmp_path: Path) -> None:
    bucket = tmp_path / "bucket"
    bucket.mkdir()
    report = TaskReport(_document("SUMMARY_ONLY"), {"reports": str(bucket)})
    assert report.finish(_final(0)) == {"Status": "SUCCESS"}
    assert report._thread is None


class _Recording:
    """agents.client.JobsClient's post_events, keeping each body (no network)."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    async def post_events(self, thing: str, job_id: str, body: bytes) -> dict[str, int]:
        self.bodies.append(body)
        return {"stored": 0}


@pytest.mark.parametrize("path_chars", [40, 4000])
def test_batches_fit_the_body_limit_and_keep_every_event_in_order(path_chars: int) -> None:
    """Long, escaped names make a full batch too big: it is halved until each part fits."""
    client = _Recording()
    shipper = EventShipper(client, "thing", "job", "TRANSFER")  # type: ignore[arg-type]
    names = [f'/{i:05d}"é' + "x" * path_chars for i in range(12_000)]
    for name in names:
        shipper.sink(FileEvent(FileEventKind.TRANSFERRED, name, False, 1, "ab" * 16))
    shipper.sink(
        FileEvent(FileEventKind.FAILED, "/v", False, phase="Verify", reason="mismatch",
                  source=FileFacts(1, 2, 0o644, 0, 0, "f" * 32), destination=None)
    )  # fmt: skip
    assert anyio.run(shipper.flush)
    batches = [decode_batch(body) for body in client.bodies]
    assert all(len(body) <= MAX_BATCH_BYTES for body in client.bodies)
    assert all(len(batch) <= MAX_BATCH_EVENTS for batch in batches)
    assert len(batches) >= (2 if path_chars < 100 else 60)
    shipped = [batch.event(i) for batch in batches for i in range(len(batch))]
    assert [e.path for e in shipped] == [*names, "/v"]
    assert shipped[-1].source == FileFacts(1, 2, 0o644, 0, 0, "f" * 32)


def test_a_writer_that_fails_fails_the_report_not_the_engine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug in the item conversion: the writer fails the report (ReportResult ERROR), and the
    engine's threads, past the backpressure bound, are not left waiting for it."""

    def broken(self: TaskReportWriter, events: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(TaskReportWriter, "record_events", broken)
    monkeypatch.setattr(unattended, "_MAX_PENDING", 100)
    bucket = tmp_path / "bucket"
    bucket.mkdir()
    report = TaskReport(_document(), {"reports": str(bucket)})
    done = threading.Event()

    def engine() -> None:
        for i in range(5000):
            report.on_event(FileEvent(FileEventKind.TRANSFERRED, f"/f{i}", False, 1))
        done.set()

    threading.Thread(target=engine, daemon=True).start()
    assert done.wait(30), "the engine's thread stalled behind a dead writer"
    result = report.finish(_final(5000))
    assert result["Status"] == "ERROR" and result["ErrorCode"] == "ReportError"
    assert "a bug" in result["ErrorDetail"]
    assert not [p for p in bucket.rglob("*") if p.is_file()]  # nothing half-written left


@pytest.mark.parametrize("mapped", [True, False])  # a report that cannot be written forwards too
@pytest.mark.parametrize("level", ["TRANSFER", "BASIC"])
def test_one_record_per_file_reaches_the_report_and_the_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mapped: bool, level: str
) -> None:
    """With the shipper behind the report's writer (`forward`), the engine appends each event
    once; the report lists every file and the log gets every event it wants, once, in order,
    with the instant the report gives it."""
    monkeypatch.setattr(unattended, "_MAX_PENDING", 500)  # backpressure at work too
    bucket = tmp_path / "bucket"
    bucket.mkdir()
    report = TaskReport(_document(), {"reports": str(bucket)} if mapped else {})
    client = _Recording()
    shipper = EventShipper(client, "thing", "job", level)  # type: ignore[arg-type]
    report.forward = shipper.take
    paths = [f"/t{n}/f{i:04d}" for n in range(3) for i in range(1500)]

    def worker(n: int) -> None:
        for i in range(1500):
            report.on_event(FileEvent(FileEventKind.TRANSFERRED, f"/t{n}/f{i:04d}", False, i))
            if i % 500 == 0:
                report.on_event(
                    FileEvent(FileEventKind.FAILED, f"/t{n}/x{i}", False, phase="Transfer",
                              reason="EIO")
                )  # fmt: skip

    running = [threading.Thread(target=worker, args=(n,)) for n in range(3)]
    for thread in running:
        thread.start()
    for thread in running:
        thread.join(timeout=60)
    report.drain()  # as the agent does before its last flush
    assert anyio.run(shipper.flush)
    shipped = [
        (batch.timestamps[i], batch.event(i))
        for batch in map(decode_batch, client.bodies)
        for i in range(len(batch))
    ]
    failures = sorted(f"/t{n}/x{i}" for n in range(3) for i in (0, 500, 1000))
    if level == "TRANSFER":
        assert sorted(e.path for _, e in shipped if e.kind is FileEventKind.TRANSFERRED) == paths
    assert sorted(e.path for _, e in shipped if e.kind is FileEventKind.FAILED) == failures
    assert len(shipped) == (len(paths) if level == "TRANSFER" else 0) + len(failures)
    result = report.finish(_final(len(paths)))
    if not mapped:
        assert result["Status"] == "ERROR" and result["ErrorCode"] == "BucketNotMapped"
        return
    assert result == {"Status": "SUCCESS"}
    items = {str(i["RelativePath"]): i for i in _items(bucket, "transferred")}
    assert sorted(p for p in items if "/f" in p) == paths
    for at, event in shipped:  # the same record: the same instant, to the millisecond
        stamp = datetime.fromtimestamp(at / 1000, UTC).isoformat(timespec="milliseconds")
        assert items[event.path]["Timestamp"] == stamp[:-6] + "Z"
