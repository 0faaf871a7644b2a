"""Task reports (`TaskReportConfig`): a summary of each execution and, for `STANDARD`, one
detail report per list — transferred, skipped, verified, deleted — written as JSON into a local
bucket directory.

What DataSync documents (user guide, "Monitoring your transfers with task reports"): reports are
JSON; the summary holds the account, the source and destination locations, the totals of items
skipped, transferred, verified and deleted, the bytes, whether the execution completed, was
cancelled or failed, the start and end times with the duration, and the task's settings; a
STANDARD report adds the four lists, each filtered by `ReportLevel` (`ERRORS_ONLY` or
`SUCCESSES_AND_ERRORS`), which `Overrides.{Transferred,Skipped,Verified,Deleted}.ReportLevel`
changes per list. A transferred item says what was transferred (content, metadata or both), its
type and size and the result; a skipped item says why; `ObjectVersionIds=INCLUDE` adds the new
object version (S3 only, so never here for files).

**Shape chosen here** (no published example of the JSON or of the object names could be found, so
this is this project's choice, kept stable; the names follow the API's spelling):

    <Subdirectory>/Summary-Reports/<task-id>/<exec-id>/<exec-id>.summary.json
    <Subdirectory>/Detailed-Reports/<task-id>/<exec-id>/<exec-id>.transferred.json
                                                        <exec-id>.skipped.json
                                                        <exec-id>.verified.json
                                                        <exec-id>.deleted.json

A detail report is `{"TaskExecutionArn": ..., "ReportType": "TRANSFERRED", "ReportLevel": ...,
"Items": [ {item}, ... ]}` with items such as `{"RelativePath": "/a/b.txt", "Type": "FILE",
"Size": 12, "TransferType": "CONTENT_AND_METADATA", "Result": "SUCCESS",
"Timestamp": "2026-01-01T00:00:00.000Z"}`, a failed one adding `ErrorCode` and `ErrorDetail`, a
skipped one `Reason`, a verified one `SrcChecksum` / `DstChecksum`. The summary is shown by
`ExecutionSummary.to_json` plus `TaskReportConfig` and the per-list counts (`DetailReports`).

**Per item cost**: `record_events` takes the engine's events a batch at a time and writes a
success (nearly every item) straight to its JSON text, from a template per list, with the C
string encoder `json.dumps` itself uses and an ISO timestamp whose date and time of day are
made once per second: no `ReportItem`, `datetime` or dict per item. The text is the very one
`json.dumps(item.to_json(...))` gives (tests/engine/test_report.py holds them together). A
failure, rare, goes the general way (`event_item`, `ReportItem.to_json`).

**Streaming and atomicity**: each detail file is opened under a temporary name (`.<name>.tmp`)
when its first item comes, items are written as they arrive (nothing is kept but counters), and
`finish` renames every file into place, the summary last, so a reader never sees half a report
and the summary's presence means the whole report is there. `abort` (or an exception inside the
`with` block) removes the temporaries. All file operations are relative to directory fds opened
without following symlinks, below the bucket directory the caller resolved.
"""

from __future__ import annotations

import contextlib
import enum
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from json.encoder import encode_basestring_ascii
from types import TracebackType
from typing import IO

from engine.errors import DataSyncLocalError
from engine.events import FileEvent, FileEventKind
from engine.model import enum_values
from engine.settings import remove_deleted_in

__all__ = [
    "ExecutionSummary",
    "ItemList",
    "ReportConfig",
    "ReportError",
    "ReportItem",
    "TaskReportWriter",
    "event_item",
    "open_report_dir",
]

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW


class ReportError(DataSyncLocalError):
    """The report cannot be written (ReportResult ERROR); the message says why."""


class ItemList(enum.Enum):
    TRANSFERRED = "Transferred"
    SKIPPED = "Skipped"
    VERIFIED = "Verified"
    DELETED = "Deleted"


@dataclass(frozen=True)
class ReportConfig:
    """The parts of `TaskReportConfig` that shape the files (Destination is the caller's)."""

    output_type: str = "STANDARD"
    report_level: str = "ERRORS_ONLY"
    overrides: Mapping[ItemList, str] = field(default_factory=dict)
    object_version_ids: str = "NONE"

    def __post_init__(self) -> None:
        for name, value, shape in (
            ("OutputType", self.output_type, "ReportOutputType"),
            ("ReportLevel", self.report_level, "ReportLevel"),
            ("ObjectVersionIds", self.object_version_ids, "ObjectVersionIds"),
            *((f"Overrides.{k.value}", v, "ReportLevel") for k, v in self.overrides.items()),
        ):
            allowed = enum_values(shape)
            if value not in allowed:
                raise ReportError(f"TaskReportConfig.{name} {value!r} is not one of {allowed}")

    @classmethod
    def from_api(cls, config: Mapping[str, object]) -> ReportConfig:
        """Build from the API's `TaskReportConfig` (already validated against the model).

        Where the request leaves `ReportLevel` out this project reports ERRORS_ONLY (DataSync
        documents no default); `OutputType` defaults to STANDARD likewise.
        """
        overrides: dict[ItemList, str] = {}
        raw = config.get("Overrides")
        if isinstance(raw, Mapping):
            for item in ItemList:
                override = raw.get(item.value)
                if isinstance(override, Mapping) and isinstance(override.get("ReportLevel"), str):
                    overrides[item] = str(override["ReportLevel"])
        return cls(
            output_type=str(config.get("OutputType", "STANDARD")),
            report_level=str(config.get("ReportLevel", "ERRORS_ONLY")),
            overrides=overrides,
            object_version_ids=str(config.get("ObjectVersionIds", "NONE")),
        )

    def level(self, item_list: ItemList) -> str:
        return self.overrides.get(item_list, self.report_level)

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {
            "OutputType": self.output_type,
            "ReportLevel": self.report_level,
            "ObjectVersionIds": self.object_version_ids,
        }
        if self.overrides:
            out["Overrides"] = {k.value: {"ReportLevel": v} for k, v in self.overrides.items()}
        return out


@dataclass(frozen=True)
class ReportItem:
    """One file, directory, link or device the execution acted on, as the engine reports it."""

    item_list: ItemList
    path: str  # relative to the location root, '/'-separated
    kind: str = "FILE"  # FILE | DIRECTORY | SYMLINK | DEVICE | FIFO | SOCKET
    size: int = 0
    ok: bool = True
    error_code: str | None = None
    error_detail: str | None = None
    transfer_type: str | None = None  # CONTENT_AND_METADATA | METADATA_ONLY (transferred)
    reason: str | None = None  # why skipped (e.g. UNCHANGED, EXCLUDED) or the failure's cause
    src_checksum: str | None = None
    dst_checksum: str | None = None
    dst_version_id: str | None = None
    timestamp: datetime | None = None

    def to_json(self, include_version: bool) -> dict[str, object]:
        out: dict[str, object] = {
            "RelativePath": "/" + self.path.lstrip("/"),
            "Type": self.kind,
            "Size": self.size,
        }
        for key, value in (
            ("TransferType", self.transfer_type),
            ("Reason", self.reason),
            ("SrcChecksum", self.src_checksum),
            ("DstChecksum", self.dst_checksum),
        ):
            if value is not None:
                out[key] = value
        if include_version and self.dst_version_id is not None:
            out["DstVersionId"] = self.dst_version_id
        out["Result"] = "SUCCESS" if self.ok else "ERROR"
        if not self.ok:
            out["ErrorCode"] = self.error_code or "UNKNOWN"
            if self.error_detail:
                out["ErrorDetail"] = self.error_detail
        if self.timestamp is not None:
            out["Timestamp"] = _iso(self.timestamp)
        return out


@dataclass(frozen=True)
class ExecutionSummary:
    """What the summary report says about the execution, from the control plane's record."""

    account_id: str
    task_arn: str
    task_execution_arn: str
    source_location_arn: str
    destination_location_arn: str
    status: str  # the execution's final Status: SUCCESS | ERROR
    start_time: datetime
    end_time: datetime
    options: Mapping[str, str | int]
    counters: Mapping[str, int | Mapping[str, int]]  # DescribeTaskExecution names
    source_location_uri: str | None = None
    destination_location_uri: str | None = None
    cancelled: bool = False
    error_code: str | None = None
    error_detail: str | None = None
    includes: tuple[str, ...] = ()
    excludes: tuple[str, ...] = ()

    @property
    def result(self) -> str:
        """COMPLETED, CANCELLED or ERROR: "completed, canceled, or encountered an error"."""
        if self.cancelled:
            return "CANCELLED"
        return "COMPLETED" if self.status == "SUCCESS" else "ERROR"

    def to_json(self) -> dict[str, object]:
        source: dict[str, object] = {"LocationArn": self.source_location_arn}
        destination: dict[str, object] = {"LocationArn": self.destination_location_arn}
        if self.source_location_uri:
            source["LocationUri"] = self.source_location_uri
        if self.destination_location_uri:
            destination["LocationUri"] = self.destination_location_uri
        result: dict[str, object] = {"Status": self.result}
        if self.error_code:
            result["ErrorCode"] = self.error_code
        if self.error_detail:
            result["ErrorDetail"] = self.error_detail
        out: dict[str, object] = {
            "AccountId": self.account_id,
            "TaskArn": self.task_arn,
            "TaskExecutionArn": self.task_execution_arn,
            "Source": source,
            "Destination": destination,
            "Result": result,
            "StartTime": _iso(self.start_time),
            "EndTime": _iso(self.end_time),
            "TotalDuration": int((self.end_time - self.start_time).total_seconds() * 1000),
            "Options": dict(self.options),
            "Totals": {
                k: (dict(v) if isinstance(v, Mapping) else v) for k, v in self.counters.items()
            },
        }
        if self.includes:
            out["Includes"] = [{"FilterType": "SIMPLE_PATTERN", "Value": v} for v in self.includes]
        if self.excludes:
            out["Excludes"] = [{"FilterType": "SIMPLE_PATTERN", "Value": v} for v in self.excludes]
        return out


def _iso(instant: datetime) -> str:
    """`2026-12-02T15:28:02.654Z`. `isoformat` rather than `strftime`: the same text at half the
    cost, and it runs once per report item (`+00:00` is always the last six characters)."""
    return instant.astimezone(UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


class _Stamps:
    """`_iso` of epoch seconds, its date and time of day made once per second (the items of
    one second share them): a slice and a format per item instead of a `datetime`."""

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def text(self, at: float) -> str:
        second, milli = divmod(int(at * 1000), 1000)
        if second != self._second:
            self._second = second
            self._prefix = datetime.fromtimestamp(second, UTC).isoformat()[:19]
        return f"{self._prefix}.{milli:03d}Z"


_LISTS = {
    FileEventKind.TRANSFERRED: ItemList.TRANSFERRED,
    FileEventKind.VERIFIED: ItemList.VERIFIED,
    FileEventKind.DELETED: ItemList.DELETED,
    FileEventKind.SKIPPED: ItemList.SKIPPED,
}
_FAILED_LISTS = {"Verify": ItemList.VERIFIED, "Delete": ItemList.DELETED}


def event_item(event: FileEvent, now: datetime) -> ReportItem:
    """The task-report item for one engine event (a failure goes to the list of what failed:
    verifying, deleting, else transferring)."""
    kind = "DIRECTORY" if event.folder else "FILE"
    if event.kind is FileEventKind.FAILED:
        phase = event.phase or "Transfer"
        src, dst = event.source, event.destination
        return ReportItem(
            _FAILED_LISTS.get(phase, ItemList.TRANSFERRED),
            event.path,
            kind,
            size=event.size or (src.size if src else 0),
            ok=False,
            error_code=f"{phase}Failed",
            error_detail=event.reason,
            src_checksum=src.checksum if src else None,
            dst_checksum=dst.checksum if dst else None,
            timestamp=now,
        )
    item_list = _LISTS[event.kind]
    return ReportItem(
        item_list,
        event.path,
        kind,
        size=event.size or 0,
        transfer_type="CONTENT_AND_METADATA" if item_list is ItemList.TRANSFERRED else None,
        reason=event.reason if item_list is ItemList.SKIPPED else None,
        src_checksum=event.checksum if item_list is ItemList.VERIFIED else None,
        dst_checksum=event.checksum if item_list is ItemList.VERIFIED else None,
        timestamp=now,
    )


def _success_text(item_list: ItemList, event: FileEvent, stamp: str) -> str:
    """`json.dumps(event_item(event, ...).to_json(...))` of a success, made directly."""
    path = encode_basestring_ascii("/" + event.path.lstrip("/"))
    extra = ""
    if item_list is ItemList.TRANSFERRED:
        extra = ', "TransferType": "CONTENT_AND_METADATA"'
    elif item_list is ItemList.VERIFIED:
        if event.checksum is not None:
            checksum = encode_basestring_ascii(event.checksum)
            extra = f', "SrcChecksum": {checksum}, "DstChecksum": {checksum}'
    elif item_list is ItemList.SKIPPED and event.reason is not None:
        extra = f', "Reason": {encode_basestring_ascii(event.reason)}'
    return (
        f'{{"RelativePath": {path}, "Type": "{"DIRECTORY" if event.folder else "FILE"}", '
        f'"Size": {event.size or 0}{extra}, "Result": "SUCCESS", "Timestamp": "{stamp}"}}'
    )


def _id(arn: str, marker: str) -> str:
    """`task-…` / `exec-…` from an ARN (the last path component that starts with `marker`)."""
    for part in reversed(arn.split("/")):
        if part.startswith(marker):
            return part
    raise ReportError(f"{arn!r} holds no {marker}… id")


def _mkdirs(parent_fd: int, parts: list[str]) -> int:
    """Open (creating as needed) `parts` below `parent_fd`, never following a symlink."""
    fd = os.dup(parent_fd)
    try:
        for part in parts:
            if part in ("", ".", "..") or "\x00" in part:
                raise ReportError(f"report path component {part!r} is not allowed")
            with contextlib.suppress(FileExistsError):
                os.mkdir(part, 0o755, dir_fd=fd)
            try:
                nxt = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except OSError as exc:  # a symlink or a file where a directory should be
                raise ReportError(
                    f"cannot use {part!r} as a report directory: {exc.strerror}"
                ) from exc
            os.close(fd)
            fd = nxt
        return fd
    except BaseException:
        os.close(fd)
        raise


def open_report_dir(bucket_dir: str, subdirectory: str) -> int:
    """A directory fd for `Subdirectory` below a mapped bucket's directory (created as needed).

    `subdirectory` is the S3 prefix: `/`-separated, `..` refused, symlinks never followed, so the
    report can only land inside the bucket directory.
    """
    try:
        root = os.open(bucket_dir, _DIR_FLAGS)
    except OSError as exc:
        raise ReportError(f"bucket directory {bucket_dir!r}: {exc.strerror}") from exc
    try:
        parts = [p for p in subdirectory.split("/") if p not in ("", ".")]
        if ".." in parts:
            raise ReportError(f"Subdirectory {subdirectory!r} climbs out of the bucket with '..'")
        return _mkdirs(root, parts)
    finally:
        os.close(root)


class _StreamedList:
    """One detail report being written: a temporary file holding a JSON object whose `Items`
    array grows one element per record."""

    def __init__(self, dir_fd: int, name: str, header: dict[str, object]) -> None:
        self.dir_fd, self.name, self.tmp = dir_fd, name, f".{name}.tmp"
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.tmp, dir_fd=dir_fd)  # a leftover of a crashed writer
        fd = os.open(
            self.tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644, dir_fd=dir_fd
        )
        self.fh: IO[str] = os.fdopen(fd, "w", encoding="ascii", buffering=1 << 16)
        head = json.dumps(header)
        self.fh.write(head[:-1] + ', "Items": [')
        self.count = 0

    def write(self, item: dict[str, object]) -> None:
        self.write_texts([json.dumps(item)])

    def write_texts(self, texts: list[str]) -> None:
        """Append items already in their JSON text, in one write."""
        if texts:
            self.fh.write(("\n" if self.count == 0 else ",\n") + ",\n".join(texts))
            self.count += len(texts)

    def commit(self) -> None:
        self.fh.write("\n]}\n")
        self.fh.flush()
        os.fsync(self.fh.fileno())
        self.fh.close()
        os.rename(self.tmp, self.name, src_dir_fd=self.dir_fd, dst_dir_fd=self.dir_fd)

    def discard(self) -> None:
        if not self.fh.closed:
            self.fh.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.tmp, dir_fd=self.dir_fd)


def _write_atomic(dir_fd: int, name: str, body: dict[str, object]) -> None:
    """Write `body` as JSON to a temporary beside `name`, fsync, and rename it into place."""
    tmp = f".{name}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644, dir_fd=dir_fd)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as fh:
            json.dump(body, fh, indent=2)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.rename(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp, dir_fd=dir_fd)
        raise


@dataclass
class _Counts:
    successes: int = 0
    errors: int = 0
    reported: int = 0


class TaskReportWriter:
    """Writes one execution's task report as items come; `finish` makes it visible.

    Use as a context manager: leaving the block by an exception discards the temporaries (the
    caller then sets ReportResult ERROR); `finish(summary)` writes the summary and renames
    everything into place (ReportResult SUCCESS).
    """

    def __init__(self, report_dir_fd: int, config: ReportConfig, task_execution_arn: str) -> None:
        self.config = config
        self.arn = task_execution_arn
        self.exec_id = _id(task_execution_arn, "exec-")
        task_id = _id(task_execution_arn, "task-")
        self._summary_dir = _mkdirs(report_dir_fd, ["Summary-Reports", task_id, self.exec_id])
        self._detail_dir: int | None = None
        if config.output_type == "STANDARD":
            self._detail_dir = _mkdirs(report_dir_fd, ["Detailed-Reports", task_id, self.exec_id])
        self._lists: dict[ItemList, _StreamedList] = {}
        self.counts: dict[ItemList, _Counts] = {item: _Counts() for item in ItemList}
        self._done = False
        self._stamps = _Stamps()
        # the lists whose successes are written (a STANDARD report, not ERRORS_ONLY)
        self._successes = {
            item: self._detail_dir is not None and config.level(item) != "ERRORS_ONLY"
            for item in ItemList
        }

    def __enter__(self) -> TaskReportWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self._done:
            self.abort()

    def file_name(self, item_list: ItemList) -> str:
        return f"{self.exec_id}.{item_list.value.lower()}.json"

    def record(self, item: ReportItem) -> None:
        """Count `item` and, if its list's ReportLevel wants it, write it out now."""
        counts = self.counts[item.item_list]
        if item.ok:
            counts.successes += 1
        else:
            counts.errors += 1
        if self._detail_dir is None:
            return
        if item.ok and self.config.level(item.item_list) == "ERRORS_ONLY":
            return
        self._list(item.item_list).write(item.to_json(self.config.object_version_ids == "INCLUDE"))
        counts.reported += 1

    def record_events(self, events: Iterable[tuple[float, FileEvent]]) -> None:
        """Count and write a batch of the engine's events, each with its time (epoch seconds):
        `record(event_item(...))` of each, in order, at a fraction of the cost."""
        texts: dict[ItemList, list[str]] = {}
        counts, successes, stamp = self.counts, self._successes, self._stamps.text
        include_version = self.config.object_version_ids == "INCLUDE"
        for at, event in events:
            item_list = _LISTS.get(event.kind)
            if item_list is None:  # a failure: rare, the general way
                item = event_item(event, datetime.fromtimestamp(at, UTC))
                counts[item.item_list].errors += 1
                if self._detail_dir is not None:
                    text = json.dumps(item.to_json(include_version))
                    texts.setdefault(item.item_list, []).append(text)
                continue
            counts[item_list].successes += 1
            if successes[item_list]:
                texts.setdefault(item_list, []).append(_success_text(item_list, event, stamp(at)))
        for item_list, written in texts.items():
            self._list(item_list).write_texts(written)
            counts[item_list].reported += len(written)

    def _list(self, item_list: ItemList) -> _StreamedList:
        streamed = self._lists.get(item_list)
        if streamed is None:
            assert self._detail_dir is not None
            header: dict[str, object] = {
                "TaskExecutionArn": self.arn,
                "ReportType": item_list.name,
                "ReportLevel": self.config.level(item_list),
            }
            streamed = _StreamedList(self._detail_dir, self.file_name(item_list), header)
            self._lists[item_list] = streamed
        return streamed

    def finish(self, summary: ExecutionSummary) -> None:
        """Close every detail report and write the summary, each by rename, the summary last.

        A STANDARD report always has its transferred, skipped and verified lists (empty if
        nothing came); the deleted list exists when deletes were reported or
        `PreserveDeletedFiles` is REMOVE.
        """
        if summary.task_execution_arn != self.arn:
            raise ReportError("the summary is for another execution")
        try:
            if self._detail_dir is not None:
                wanted = [ItemList.TRANSFERRED, ItemList.SKIPPED, ItemList.VERIFIED]
                if remove_deleted_in(summary.options):
                    wanted.append(ItemList.DELETED)
                for item_list in wanted:
                    self._list(item_list)
                for streamed in self._lists.values():
                    streamed.commit()
            body = summary.to_json()
            body["TaskReportConfig"] = self.config.to_json()
            body["DetailReports"] = {
                item.value: {
                    "Successes": c.successes,
                    "Errors": c.errors,
                    "Reported": c.reported,
                    **({"File": self.file_name(item)} if item in self._lists else {}),
                }
                for item, c in self.counts.items()
            }
            _write_atomic(self._summary_dir, f"{self.exec_id}.summary.json", body)
        except OSError as exc:
            self.abort()
            raise ReportError(f"writing the task report failed: {exc}") from exc
        self._done = True
        self._close_dirs()

    def abort(self) -> None:
        """Remove every temporary; nothing of this report becomes visible."""
        for streamed in self._lists.values():
            streamed.discard()
        self._done = True
        self._close_dirs()

    def _close_dirs(self) -> None:
        for fd in (self._summary_dir, self._detail_dir):
            if fd is not None and fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._summary_dir, self._detail_dir = -1, None
