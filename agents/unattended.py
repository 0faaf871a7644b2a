"""The agent's side of manifests and task reports: it sees the files, so it reads the one and
writes the other, in its own mapped bucket directories (``agent --bucket``, contract/buckets.py).

* `manifest_filters` narrows a job's filters to its manifest (engine/manifest.ManifestFilter);
  the manifest is opened when PREPARING starts, so a bucket this agent does not map, or a
  missing manifest object, fails the execution with ErrorCode ManifestError naming it.
* `TaskReport` turns the engine's per-file events into task-report items, streamed to disk
  (engine/report.TaskReportWriter), and writes the summary when the transfer ends. `finish`
  returns the execution's ReportResult: SUCCESS, or ERROR with the reason (an unmapped bucket, a
  write failure); a report failure never fails the transfer itself.

  The engine calls `on_event` from its worker threads inside each file's critical path, so it
  only appends the event and its time to a deque (atomic: no lock, about 1 µs); a writer thread
  of the report's own hands them to `TaskReportWriter.record_events`, a batch at a time (each
  success straight to its JSON text), while the workers wait on their system calls. Before, each event cost the copying thread about 20 µs
  of Python (benchmarks/unattended_stages.py measures the stages). Memory stays bounded: past
  `_MAX_PENDING` unwritten events `on_event` waits for the writer (backpressure, never a
  dropped item: a report lists every file), unless the writer has failed, which fails the
  report (ReportResult ERROR), never the transfer. The thread starts with the first event and
  ends in `drain`, `finish` or `discard`; it is a daemon, so a job that dies without either
  cannot keep the agent from exiting.

  One record per file, two consumers: with `forward` set (the execution log's
  `EventShipper.take`), the writer hands each batch on after writing it, so the engine's
  threads pay one append per event for the report and the log together, and both carry the
  same instant. A report that fails keeps forwarding: the log never loses events to it.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, BinaryIO

from contract.buckets import bucket_dir, bucket_name
from engine import FilterRules
from engine.events import FileEvent
from engine.manifest import ManifestError, ManifestFilter, open_manifest
from engine.report import (
    ExecutionSummary,
    ReportConfig,
    ReportError,
    TaskReportWriter,
    open_report_dir,
)

__all__ = ["TaskReport", "manifest_filters"]

log = logging.getLogger("datasync_local.agent")


def _unmapped(arn: str) -> str:
    return (
        f"bucket {bucket_name(arn) or arn!r} is not mapped on this agent "
        f"(start it with --bucket {bucket_name(arn) or 'NAME'}=DIR)"
    )


def manifest_filters(
    config: Mapping[str, Any], buckets: Mapping[str, str], base: FilterRules
) -> FilterRules:
    """`base` itself without a ManifestConfig, else the manifest's narrowing of it."""
    s3 = (config.get("Source") or {}).get("S3") if config else None
    if not s3:
        return base
    arn, key = str(s3["S3BucketArn"]), str(s3["ManifestObjectPath"])
    directory = bucket_dir(buckets, arn)

    def opener() -> BinaryIO:
        if directory is None:
            raise ManifestError(f"manifest {key!r}: {_unmapped(arn)}")
        return open_manifest(directory, key)

    return ManifestFilter(base, opener, f"manifest {key!r}")


_BATCH = 512  # pending events that wake the writer before its timer
_MAX_PENDING = 20_000  # unwritten events before on_event waits for the writer
_WAKE_SECONDS = 0.2  # the writer's longest sleep while a few events wait


class TaskReport:
    """One execution's task report, from the job document's TaskReportConfig."""

    def __init__(self, document: Mapping[str, Any], buckets: Mapping[str, str]) -> None:
        self.document = document
        self.started = datetime.now(UTC)
        self._lock = threading.Lock()  # the writer and the error: held while items are written
        # events not written yet: appended by the engine's threads (deque.append is atomic, so
        # the hot path takes no lock), taken from the left by the writer thread only
        self._pending: deque[tuple[float, FileEvent]] = deque()
        self._wake = threading.Event()
        self._room = threading.Condition(threading.Lock())  # backpressure, and the thread's start
        self._thread: threading.Thread | None = None
        self._closing = False
        self._writer: TaskReportWriter | None = None
        self._error: tuple[str, str] | None = None
        # where each batch goes once written (set before the first event; see the docstring)
        self.forward: Callable[[list[tuple[float, FileEvent]]], None] | None = None
        config = dict(document.get("TaskReportConfig") or {})
        s3 = (config.get("Destination") or {}).get("S3") or {}
        arn = str(s3.get("S3BucketArn", ""))
        directory = bucket_dir(buckets, arn)
        if directory is None:
            self._error = ("BucketNotMapped", _unmapped(arn))
            return
        try:
            report_dir = open_report_dir(directory, str(s3.get("Subdirectory", "")))
            try:
                self._writer = TaskReportWriter(
                    report_dir, ReportConfig.from_api(config), str(document["TaskExecutionArn"])
                )
            finally:
                os.close(report_dir)
        except ReportError as exc:
            self._error = ("ReportError", str(exc))

    def on_event(self, event: FileEvent) -> None:
        """The engine's sink (any worker thread): queue the event for the writer thread."""
        if self._closing or (self._writer is None and self.forward is None):
            return
        pending = self._pending
        if len(pending) >= _MAX_PENDING:
            self._wait_for_room()
        pending.append((time.time(), event))
        if self._thread is None:
            self._start()
        elif len(pending) == _BATCH:
            self._wake.set()

    def _start(self) -> None:
        with self._room:
            if self._thread is None and not self._closing:
                self._thread = threading.Thread(
                    target=self._write_loop, name="task-report", daemon=True
                )
                self._thread.start()

    def _wait_for_room(self) -> None:
        """Backpressure: the writer is `_MAX_PENDING` events behind; wait until it catches up."""
        self._wake.set()
        with self._room:
            while len(self._pending) >= _MAX_PENDING and not self._closing:
                thread = self._thread
                if thread is None or not thread.is_alive():
                    return  # nothing will drain it (the thread died: a bug, logged)
                self._room.wait(0.1)

    def _write_loop(self) -> None:
        pending = self._pending
        while True:
            self._wake.wait(_WAKE_SECONDS)
            self._wake.clear()
            closing = self._closing  # read before draining: whatever came before is written
            batch = [pending.popleft() for _ in range(len(pending))]
            with self._room:
                self._room.notify_all()
            self._write(batch)
            self._forward(batch)
            if closing:
                return

    def _write(self, batch: list[tuple[float, FileEvent]]) -> None:
        if not batch:
            return
        with self._lock:
            if self._writer is None:
                return
            try:
                self._writer.record_events(batch)
            except (OSError, ReportError) as exc:
                self._fail("ReportError", f"writing the task report failed: {exc}")
            except Exception as exc:  # a bug must not kill the writer and stall the engine
                log.exception("task report of %s", self.document.get("TaskExecutionArn"))
                self._fail("ReportError", f"writing the task report failed: {exc!r}")

    def _forward(self, batch: list[tuple[float, FileEvent]]) -> None:
        forward = self.forward
        if forward is None or not batch:
            return
        try:
            forward(batch)
        except Exception:  # a bug must not kill the writer and stall the engine
            log.exception("log events of %s", self.document.get("TaskExecutionArn"))

    def drain(self) -> None:
        """Stop taking events, let the writer write (and forward) what came (the engine has
        ended: nothing more comes), and end it. Again later, it does nothing."""
        with self._room:
            self._closing = True
            thread = self._thread
            self._room.notify_all()
        self._wake.set()
        if thread is not None:
            thread.join()
        pending = self._pending
        rest = [pending.popleft() for _ in range(len(pending))]
        self._write(rest)
        self._forward(rest)

    def _fail(self, code: str, detail: str) -> None:
        if self._writer is not None:
            self._writer.abort()
            self._writer = None
        self._error = (code, detail)

    def discard(self) -> None:
        """Another run of the job took over: leave nothing of this report behind."""
        with self._room:
            self._closing = True
            self._pending.clear()
            self._room.notify_all()
        self._wake.set()
        with self._lock:
            self._fail("Abandoned", "the job was taken over by another run")

    def finish(self, final: Mapping[str, Any]) -> dict[str, str]:
        """Write the summary (the transfer has ended: `final` is its last snapshot) and return
        the ReportResult."""
        self.drain()
        with self._lock:
            writer = self._writer
            if writer is not None:
                try:
                    writer.finish(self._summary(final))
                except (OSError, ReportError) as exc:
                    self._fail("ReportError", str(exc))
                self._writer = None
        if self._error is not None:
            log.warning("task report of %s: %s", self.document.get("TaskExecutionArn"), self._error)
            return {"Status": "ERROR", "ErrorCode": self._error[0], "ErrorDetail": self._error[1]}
        return {"Status": "SUCCESS"}

    def _summary(self, final: Mapping[str, Any]) -> ExecutionSummary:
        doc = self.document
        result = dict(final.get("Result") or {})
        source, destination = doc.get("Source") or {}, doc.get("Destination") or {}
        return ExecutionSummary(
            account_id=str(doc["TaskArn"]).split(":")[4],
            task_arn=str(doc["TaskArn"]),
            task_execution_arn=str(doc["TaskExecutionArn"]),
            source_location_arn=str(source.get("LocationArn", "")),
            destination_location_arn=str(destination.get("LocationArn", "")),
            source_location_uri=source.get("LocationUri"),
            destination_location_uri=destination.get("LocationUri"),
            status="SUCCESS" if final.get("Status") == "SUCCESS" else "ERROR",
            start_time=self.started,
            end_time=datetime.now(UTC),
            options=dict(doc.get("Options") or {}),
            counters={k: v for k, v in final.items() if k not in ("Status", "Result")},
            cancelled=result.get("ErrorCode") == "Cancelled",
            error_code=result.get("ErrorCode"),
            error_detail=result.get("ErrorDetail"),
            includes=tuple(str(f.get("Value", "")) for f in doc.get("Includes") or []),
            excludes=tuple(str(f.get("Value", "")) for f in doc.get("Excludes") or []),
        )
