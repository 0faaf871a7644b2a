"""Counters and phases of one transfer, named as DescribeTaskExecution names them.

The counter names are read from botocore's `DescribeTaskExecutionResponse` shape (every long and
every structure of longs it has: `Files*` and, in models that carry them, `Folders*`), so the
engine, the agent and the API share one vocabulary with no renaming layer. Files and folders are
counted apart: a directory counts in the `Folders*` counters only, and the location's root
directory in none (it is the location, not an item of it). Every update takes one short lock;
`snapshot()` copies everything under it, so a reader never sees half an update.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from functools import cache
from typing import Any

from engine.events import EventSink, FileEvent, FileEventKind, FileFacts
from engine.model import structure_members

__all__ = ["PHASES", "FileFailure", "Progress", "counter_names"]

PHASES = ("Prepare", "Transfer", "Verify")
_PHASE_STATUS = {"Prepare": "PREPARING", "Transfer": "TRANSFERRING", "Verify": "VERIFYING"}
_MAX_FAILURES_KEPT = 1000


@cache
def counter_names() -> tuple[tuple[str, ...], dict[str, tuple[str, ...]]]:
    """(flat long counters, {nested structure: its long members})."""
    members = structure_members("DescribeTaskExecutionResponse")
    flat = tuple(name for name, m in members.items() if m.get("type") == "long")
    nested = {
        name: tuple(m["members"])
        for name, m in members.items()
        if name.startswith(("Files", "Folders")) and m.get("type") == "structure"
    }
    return flat, nested


def folder_counter(name: str, folder: bool) -> str:
    """`FilesTransferred` -> `FoldersTransferred` for a folder (when the model has it)."""
    return name.replace("Files", "Folders", 1) if folder and name in _HAS_FOLDER_TWIN else name


def _folder_twins() -> frozenset[str]:
    flat, nested = counter_names()
    names = set(flat) | set(nested)
    return frozenset(n for n in names if "Files" in n and n.replace("Files", "Folders", 1) in names)


_HAS_FOLDER_TWIN = _folder_twins()


@dataclass(frozen=True)
class FileFailure:
    """One item that could not be prepared, transferred, verified or deleted."""

    phase: str  # Prepare | Transfer | Verify | Delete
    path: str  # relative to the location root, with a leading "/"
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


class Progress:
    """The one place an item is counted; `sink` (engine/events.py) hears of every counted item
    from the same call, so logs, reports and journals agree with the counters."""

    def __init__(self, sink: EventSink | None = None) -> None:
        self.sink = sink
        flat, nested = counter_names()
        self._lock = threading.Lock()
        self._flat: dict[str, int] = dict.fromkeys(flat, 0)
        self._nested: dict[str, dict[str, int]] = {
            k: dict.fromkeys(v, 0) for k, v in nested.items()
        }
        self._status = "LAUNCHING"
        self._in_flight: dict[str, int] = {}  # files being copied or hashed: path -> size
        self._phase_status = dict.fromkeys(PHASES, "PENDING")
        self._phase_started: dict[str, float] = {}
        self._phase_ms = dict.fromkeys(PHASES, 0)
        self._started = time.monotonic()
        self._ended: float | None = None
        self._error_code: str | None = None
        self._error_detail: str | None = None
        self.failures: list[FileFailure] = []

    # -- files in flight (what `sync`'s progress names; not part of the API's snapshot) -----------
    def working(self, path: str, size: int) -> None:
        """A file's data is being copied or hashed from now until `worked(path)`."""
        with self._lock:
            self._in_flight[path] = size

    def worked(self, path: str) -> None:
        with self._lock:
            self._in_flight.pop(path, None)

    def in_flight(self, limit: int = 8) -> list[tuple[str, int]]:
        """Up to `limit` (path, size) being worked on, the longest-running first. Files that copy
        helper processes copy are not seen here (they are small and quick by design)."""
        with self._lock:
            return [item for item, _ in zip(self._in_flight.items(), range(limit), strict=False)]

    # -- counters --------------------------------------------------------------------------------
    def add(self, name: str, n: int = 1, folder: bool = False) -> None:
        """Add to a flat counter; `folder` turns a `Files*` name into its `Folders*` twin."""
        with self._lock:
            self._flat[folder_counter(name, folder)] += n

    def transferred(
        self, path: str, folder: bool, size: int | None = None, digest: bytes | None = None
    ) -> None:
        """An item placed under its real name (FilesTransferred / FoldersTransferred)."""
        self.add("FilesTransferred", folder=folder)
        self._emit(FileEventKind.TRANSFERRED, path, folder, size, digest)

    def verified(
        self, path: str, folder: bool, size: int | None = None, digest: bytes | None = None
    ) -> None:
        self.add("FilesVerified", folder=folder)
        self._emit(FileEventKind.VERIFIED, path, folder, size, digest)

    def deleted(self, path: str, folder: bool, size: int | None = None) -> None:
        self.add("FilesDeleted", folder=folder)
        self._emit(FileEventKind.DELETED, path, folder, size)

    def skipped(self, path: str, folder: bool, reason: str, size: int | None = None) -> None:
        self.add("FilesSkipped", folder=folder)
        self._emit(FileEventKind.SKIPPED, path, folder, size, reason=reason)

    def _emit(
        self,
        kind: FileEventKind,
        path: str,
        folder: bool,
        size: int | None = None,
        digest: bytes | None = None,
        reason: str | None = None,
    ) -> None:
        if self.sink is not None:
            checksum = digest.hex() if digest is not None else None
            self.sink(FileEvent(kind, path, folder, size, checksum, reason=reason))

    def add_bytes(self, n: int) -> None:
        """Data written to the destination (no compression here: all three byte counters agree)."""
        with self._lock:
            flat = self._flat
            flat["BytesWritten"] += n
            flat["BytesTransferred"] += n
            flat["BytesCompressed"] += n

    def set_estimates(
        self,
        files: int,
        nbytes: int,
        deletes: int,
        listed: dict[str, int],
        folders: int = 0,
        folder_deletes: int = 0,
        folders_listed: dict[str, int] | None = None,
    ) -> None:
        with self._lock:
            flat = self._flat
            flat["EstimatedFilesToTransfer"] = files
            flat["EstimatedBytesToTransfer"] = nbytes
            flat["EstimatedFilesToDelete"] = deletes
            flat["FilesPrepared"] = files
            self._nested["FilesListed"].update(listed)
            if "FoldersPrepared" in flat:  # a model with the Folders* members
                flat["EstimatedFoldersToTransfer"] = folders
                flat["EstimatedFoldersToDelete"] = folder_deletes
                flat["FoldersPrepared"] = folders
                self._nested["FoldersListed"].update(folders_listed or {})

    def fail(
        self,
        phase: str,
        path: str,
        reason: str,
        folder: bool = False,
        source: FileFacts | None = None,
        destination: FileFacts | None = None,
    ) -> None:
        """One item failed in `phase` (Prepare | Transfer | Verify | Delete, or List: a folder
        that could not be listed, which is a failure of PREPARING); `source`/`destination` are
        both sides of a verification failure, for the sink."""
        counters = self._nested["FoldersFailed" if folder and "FoldersFailed" in self._nested
                                else "FilesFailed"]  # fmt: skip
        key = phase if phase in counters else "Prepare"
        with self._lock:
            counters[key] += 1
            if len(self.failures) < _MAX_FAILURES_KEPT:
                self.failures.append(FileFailure("Prepare" if phase == "List" else phase, path,
                                                 reason))  # fmt: skip
        if self.sink is not None:
            self.sink(
                FileEvent(
                    FileEventKind.FAILED,
                    path,
                    folder,
                    phase="Prepare" if phase == "List" else phase,
                    reason=reason,
                    source=source,
                    destination=destination,
                )
            )

    def failed(self, phase: str | None = None) -> int:
        """Items (files and folders) that failed in `phase` (all phases if None)."""
        with self._lock:
            total = 0
            for name in ("FilesFailed", "FoldersFailed"):
                counts = self._nested.get(name, {})
                if phase is None:
                    total += sum(counts.values())
                else:
                    total += counts.get(phase, 0) + (
                        counts.get("List", 0) if phase == "Prepare" else 0
                    )
            return total

    # -- phases ----------------------------------------------------------------------------------
    def begin(self, phase: str) -> None:
        with self._lock:
            self._status = _PHASE_STATUS[phase]
            self._phase_started[phase] = time.monotonic()

    def end(self, phase: str, ok: bool) -> None:
        with self._lock:
            started = self._phase_started.get(phase)
            if started is not None:
                self._phase_ms[phase] = int((time.monotonic() - started) * 1000)
            self._phase_status[phase] = "SUCCESS" if ok else "ERROR"

    def skip(self, phase: str) -> None:
        """A phase with nothing to do (Verify with VerifyMode=NONE): it succeeds in 0 ms."""
        with self._lock:
            self._phase_status[phase] = "SUCCESS"

    def finish(self, error_code: str | None = None, error_detail: str | None = None) -> None:
        with self._lock:
            self._ended = time.monotonic()
            self._error_code, self._error_detail = error_code, error_detail
            self._status = "ERROR" if error_code else "SUCCESS"
            for phase, started in self._phase_started.items():
                if self._phase_status[phase] == "PENDING":  # interrupted inside this phase
                    self._phase_ms[phase] = int((self._ended - started) * 1000)
                    self._phase_status[phase] = "ERROR" if error_code else "SUCCESS"

    @property
    def status(self) -> str:
        with self._lock:
            return self._status

    # -- reading ---------------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """A consistent, JSON-ready, DescribeTaskExecution-shaped view."""
        with self._lock:
            now = self._ended if self._ended is not None else time.monotonic()
            result: dict[str, Any] = {}
            for phase in PHASES:
                ms = self._phase_ms[phase]
                if self._phase_status[phase] == "PENDING" and phase in self._phase_started:
                    ms = int((now - self._phase_started[phase]) * 1000)
                result[f"{phase}Duration"] = ms
                result[f"{phase}Status"] = self._phase_status[phase]
            result["TotalDuration"] = int((now - self._started) * 1000)
            if self._error_code:
                result["ErrorCode"] = self._error_code
                result["ErrorDetail"] = self._error_detail or ""
            snap: dict[str, Any] = {"Status": self._status, **self._flat}
            snap.update({k: dict(v) for k, v in self._nested.items()})
            snap["Result"] = result
            return snap
