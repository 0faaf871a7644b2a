"""Counters and phases of one transfer, named as DescribeTaskExecution names them.

The counter names are read from botocore's `DescribeTaskExecutionResponse` shape (the BASIC-mode
subset: folders count as files there, so the `Folders*` members are left out), so the engine, the
agent and the API share one vocabulary with no renaming layer. Every update takes one short lock;
`snapshot()` copies everything under it, so a reader never sees half an update.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from functools import cache
from typing import Any

from engine.model import structure_members

__all__ = ["PHASES", "FileFailure", "Progress", "counter_names"]

PHASES = ("Prepare", "Transfer", "Verify")
_PHASE_STATUS = {"Prepare": "PREPARING", "Transfer": "TRANSFERRING", "Verify": "VERIFYING"}
_MAX_FAILURES_KEPT = 1000


@cache
def counter_names() -> tuple[tuple[str, ...], dict[str, tuple[str, ...]]]:
    """(flat long counters, {nested structure: its long members}) for BASIC mode."""
    members = structure_members("DescribeTaskExecutionResponse")
    flat = tuple(
        name for name, m in members.items() if m.get("type") == "long" and "Folder" not in name
    )
    nested = {name: tuple(members[name]["members"]) for name in ("FilesListed", "FilesFailed")}
    return flat, nested


@dataclass(frozen=True)
class FileFailure:
    """One item that could not be prepared, transferred, verified or deleted."""

    phase: str  # Prepare | Transfer | Verify | Delete
    path: str  # relative to the location root, with a leading "/"
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


class Progress:
    def __init__(self) -> None:
        flat, nested = counter_names()
        self._lock = threading.Lock()
        self._flat: dict[str, int] = dict.fromkeys(flat, 0)
        self._nested: dict[str, dict[str, int]] = {
            k: dict.fromkeys(v, 0) for k, v in nested.items()
        }
        self._status = "LAUNCHING"
        self._phase_status = dict.fromkeys(PHASES, "PENDING")
        self._phase_started: dict[str, float] = {}
        self._phase_ms = dict.fromkeys(PHASES, 0)
        self._started = time.monotonic()
        self._ended: float | None = None
        self._error_code: str | None = None
        self._error_detail: str | None = None
        self.failures: list[FileFailure] = []

    # -- counters --------------------------------------------------------------------------------
    def add(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._flat[name] += n

    def add_bytes(self, n: int) -> None:
        """Data written to the destination (no compression here: all three byte counters agree)."""
        with self._lock:
            flat = self._flat
            flat["BytesWritten"] += n
            flat["BytesTransferred"] += n
            flat["BytesCompressed"] += n

    def set_estimates(self, files: int, nbytes: int, deletes: int, listed: dict[str, int]) -> None:
        with self._lock:
            self._flat["EstimatedFilesToTransfer"] = files
            self._flat["EstimatedBytesToTransfer"] = nbytes
            self._flat["EstimatedFilesToDelete"] = deletes
            self._flat["FilesPrepared"] = files
            self._nested["FilesListed"].update(listed)

    def fail(self, phase: str, path: str, reason: str) -> None:
        with self._lock:
            self._nested["FilesFailed"][phase] += 1
            if len(self.failures) < _MAX_FAILURES_KEPT:
                self.failures.append(FileFailure(phase, path, reason))

    def failed(self, phase: str | None = None) -> int:
        with self._lock:
            counts = self._nested["FilesFailed"]
            return counts[phase] if phase else sum(counts.values())

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
