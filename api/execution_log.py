"""Writing execution logs: the control plane's own lines (start, end, errors) and the agents'
per-file events, into the log group the task names (`CloudWatchLogGroupArn`) or `DEFAULT_GROUP`,
one stream per task (its `task-…` id), as DataSync publishes them.

* `hook` is a store execution hook (api.store.Store.execution_hooks): every write of an
  execution whose `History` grew since the last logged state writes, unless `Options.LogLevel`
  is OFF, the execution's start and end lines (with the error, if any) in its log group, in the
  same transaction as the execution (automation that polls DescribeTaskExecution until SUCCESS
  and then reads the log must find the end line at once), and, after the write committed, one
  structured line on the `datasync_local.executions` logger (serve's own log: JSON with the
  execution, task, old and new status, result). The count of
  states logged so far rides in the execution document (`_LoggedStates`), written by the same
  compare-and-swap, so a state is logged once whichever process wrote it.
* `ingest` formats a batch of an agent's file events (contract/log_events.EventBatch, by
  column) with api.logs_query's DataSync line formats, keeping what `should_log` lets through,
  and stores them with one `executemany`. The common kinds (transferred, verified, deleted,
  skipped) go straight from the columns to their line, no `FileEvent` in between; a failure,
  or an event with extras, goes through `file_lines`. `parse_batch` reads the request body.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from sqlalchemy import Connection

from api.domain import repository
from api.domain.task import Task
from api.errors import InvalidRequestException, SerializationException
from api.logs_query import (
    FileMeta,
    LogCategory,
    execution_finished,
    execution_started,
    file_deleted,
    file_failed,
    file_skipped,
    file_transferred,
    file_verified,
    should_log,
    verification_failed,
)
from api.store import ExecutionEffect, Store
from api.store_logs import LogStore
from contract import Doc
from contract.log_events import BatchNotJson, EventBatch, decode_batch
from engine.events import FileEvent, FileEventKind, FileFacts

__all__ = ["DEFAULT_GROUP", "ExecutionLog", "group_name", "parse_batch", "task_log_group"]

DEFAULT_GROUP = "/aws/datasync"
events_log = logging.getLogger("datasync_local.executions")


def group_name(arn: str | None) -> str:
    """`arn:aws:logs:REGION:ACCOUNT:log-group:NAME[:*]` → NAME; no ARN → DEFAULT_GROUP."""
    if not arn:
        return DEFAULT_GROUP
    _, _, rest = arn.partition(":log-group:")
    name = rest[:-2] if rest.endswith(":*") else rest
    return name or DEFAULT_GROUP


def task_log_group(store: Store, task_arn: str) -> str:
    """The log group a task's executions write to (the default one once the task is gone)."""
    task = repository.get(store, Task, task_arn)
    return group_name(None if task is None else task.cloud_watch_log_group_arn)


def parse_batch(body: bytes) -> EventBatch:
    """The event batch of a request body: SerializationException if it is not JSON,
    InvalidRequestException if it is not a batch (saying what is wrong)."""
    try:
        return decode_batch(body)
    except BatchNotJson:
        raise SerializationException("The request body is not valid JSON.") from None
    except ValueError as exc:
        raise InvalidRequestException(f"Invalid event batch: {exc}.") from None


def _stream(doc: Doc) -> str:
    return str(doc["TaskArn"]).rsplit("/", 1)[-1]


def _meta(facts: FileFacts, folder: bool) -> FileMeta:
    return FileMeta(
        type="D" if folder else "R",
        mode=facts.mode,
        uid=facts.uid,
        gid=facts.gid,
        size=facts.size,
        atime_ns=0,  # the engine does not carry atime (it never preserves it)
        mtime_ns=facts.mtime_ns,
    )


def file_lines(event: FileEvent) -> tuple[LogCategory, list[str]]:
    """DataSync's line(s) for one file event, and their category."""
    if event.kind is FileEventKind.FAILED:
        if event.phase == "Verify" and event.source is not None:
            dst = event.destination
            return LogCategory.ERROR, verification_failed(
                event.path,
                _meta(event.source, event.folder),
                _meta(dst, event.folder) if dst else None,
                event.source.checksum or "unknown",
                dst.checksum if dst else None,
            )
        return LogCategory.ERROR, [
            file_failed(event.path, event.phase or "Transfer", event.reason or "failed")
        ]
    if event.kind is FileEventKind.TRANSFERRED:
        line = file_transferred(event.path, event.size or 0, event.checksum)
    elif event.kind is FileEventKind.VERIFIED:
        line = file_verified(event.path, event.checksum)
    elif event.kind is FileEventKind.DELETED:
        line = file_deleted(event.path)
    else:
        line = file_skipped(event.path, event.reason or "skipped")
    return LogCategory.FILE, [line]


class ExecutionLog:
    def __init__(self, store: Store, logs: LogStore) -> None:
        self.store = store
        self.logs = logs

    def _group(self, doc: Doc) -> str:
        if "_LogGroup" not in doc:
            doc["_LogGroup"] = task_log_group(self.store, doc["TaskArn"])
        return str(doc["_LogGroup"])

    def hook(self, doc: Doc) -> ExecutionEffect | None:
        """The effect of writing `doc` on the logs: its new states' lines are inserted in the
        execution write's own transaction (a reader who sees SUCCESS finds the end line, and a
        lost compare-and-swap inserts nothing, so its retry logs each state once); the serve
        log's lines follow the commit."""
        history = doc.get("History") or []
        logged = int(doc.get("_LoggedStates", 0))
        if len(history) <= logged:
            return None
        new = history[logged:]
        previous = history[logged - 1][0] if logged else None
        doc["_LoggedStates"] = len(history)
        group = self._group(doc)
        level = str((doc.get("Options") or {}).get("LogLevel", "OFF"))
        lines: list[tuple[int, str]] = []
        serve_lines: list[str] = []
        source, destination = doc.get("_Source") or {}, doc.get("_Destination") or {}
        for index, (status, at) in enumerate(new, start=logged):
            ms = int(float(at) * 1000)
            ended = status in ("SUCCESS", "ERROR")
            record: dict[str, Any] = {
                "event": "ExecutionStatus",
                "TaskExecutionArn": doc["TaskExecutionArn"],
                "TaskArn": doc["TaskArn"],
                "From": previous,
                "Status": status,
                "Time": at,
            }
            if ended:
                record["Result"] = doc.get("Result")
            serve_lines.append(json.dumps(record, separators=(",", ":")))
            previous = status
            if level == "OFF":
                continue
            if index == 0:  # its first state (QUEUED or LAUNCHING): the execution started
                lines.append(
                    (
                        ms,
                        execution_started(
                            doc["TaskExecutionArn"],
                            str(source.get("LocationUri", "")),
                            str(destination.get("LocationUri", "")),
                        ),
                    )
                )
            elif ended:
                result = doc.get("Result") or {}
                failed = doc.get("FilesFailed") or {}
                failures = sum(v for v in failed.values() if isinstance(v, int))
                detail = None
                if status == "ERROR":
                    detail = f"{result.get('ErrorCode', '')}: {result.get('ErrorDetail', '')}"
                lines.append(
                    (
                        ms,
                        execution_finished(
                            doc["TaskExecutionArn"],
                            status,
                            int(doc.get("FilesTransferred", 0)),
                            int(doc.get("BytesWritten", 0)),
                            failures,
                            detail,
                        ),
                    )
                )
        stream = _stream(doc)

        def within(conn: Connection) -> None:
            self.logs.insert(conn, group, stream, lines)

        def after() -> None:
            for line in serve_lines:
                events_log.info(line)
            if lines:
                self.logs.prune_due()

        return ExecutionEffect(within if lines else None, after)

    def ingest(self, doc: Doc, batch: EventBatch) -> int:
        """Store an agent's batch of file events for execution `doc`; returns how many lines."""
        level = str((doc.get("Options") or {}).get("LogLevel", "OFF"))
        if level == "OFF":
            return 0
        arn = doc["TaskExecutionArn"]
        suffix = f" ({arn.rsplit('/', 1)[-1]})"  # once per batch: this runs once per file
        files = should_log(level, LogCategory.FILE)
        lines: list[tuple[int, str]] = []
        add = lines.append
        extras = batch.extras
        columns = zip(batch.timestamps, batch.kinds, batch.paths, batch.sizes, batch.checksums,
                      batch.reasons, strict=True)  # fmt: skip
        for index, (ts, kind, path, size, checksum, reason) in enumerate(columns):
            if kind == "F" or index in extras:
                category, messages = file_lines(batch.event(index))
                if should_log(level, category):
                    lines.extend((ts, m + suffix) for m in messages)
            elif not files:
                continue
            elif kind == "T":
                add((ts, file_transferred(path, size or 0, checksum) + suffix))
            elif kind == "V":
                add((ts, file_verified(path, checksum) + suffix))
            elif kind == "D":
                add((ts, file_deleted(path) + suffix))
            else:
                add((ts, file_skipped(path, reason or "skipped") + suffix))
        if batch.dropped > 0:
            lines.append(
                (
                    lines[-1][0] if lines else int(time.time() * 1000),
                    f"[WARN] Execution {arn}: {batch.dropped} log events were dropped by the agent",
                )
            )
        group = doc.get("_LogGroup") or task_log_group(self.store, doc["TaskArn"])
        return self.logs.append(str(group), _stream(doc), lines)
