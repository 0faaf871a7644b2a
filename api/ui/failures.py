"""Which files a finished execution failed, for the status page's "Recent" table.

From the execution log the store keeps (`log_events`, written by api.execution_log): the
`[ERROR] Failed to <phase> file <path>: <reason>` and `[NOTICE] Verification failed <> <path>`
lines of that execution (every line ends with its `(exec-…)` id). A task whose LogLevel is OFF
logs none; then the Result's ErrorDetail, which names the first few failed files, stands in.

A finished execution's failures no longer change, so each is looked up once per process and
kept (for the last `_CACHE` executions); the page polls every second.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from dataclasses import asdict, dataclass
from typing import Any

from api.domain.execution import Execution
from api.execution_log import task_log_group
from api.store import Store
from api.store_logs import LogStore

__all__ = ["LIMIT", "FailedFile", "FailedFiles", "FailureIndex"]

LIMIT = 20  # failed files listed per execution (the log has them all)
_CACHE = 256
# the execution log's stream lags the execution's end by an agent's last event batch
_SETTLE_SECONDS = 10.0
_FAILED = re.compile(r"\[ERROR\] Failed to (\w+) file (/.*?): (.*) \(exec-[0-9a-f]+\)", re.S)
_NOT_VERIFIED = re.compile(r"\[NOTICE\] Verification failed <> (/.*) \(exec-[0-9a-f]+\)", re.S)


@dataclass(frozen=True)
class FailedFile:
    Path: str
    Phase: str  # Prepare, Transfer, Verify, Delete (DataSync's FilesFailed keys)
    Reason: str


@dataclass(frozen=True)
class FailedFiles:
    """An execution's failed files as the page shows them."""

    Files: tuple[FailedFile, ...] = ()
    More: bool = False  # more than LIMIT were logged
    Detail: str | None = None  # the Result's ErrorDetail, when nothing was logged

    def to_json(self) -> dict[str, Any]:
        return {
            "Files": [asdict(f) for f in self.Files],
            "More": self.More,
            "Detail": self.Detail,
        }


def parse(message: str) -> FailedFile | None:
    """One failure line of the execution log, or None if it is not one."""
    if match := _FAILED.fullmatch(message):
        return FailedFile(match[2], match[1].capitalize(), match[3])
    if match := _NOT_VERIFIED.fullmatch(message):
        return FailedFile(match[1], "Verify", "verification failed")
    return None


class FailureIndex:
    """The failed files of finished executions, looked up in the execution log once each."""

    def __init__(self, store: Store, logs: LogStore) -> None:
        self.store = store
        self.logs = logs
        self._known: OrderedDict[str, FailedFiles] = OrderedDict()
        self._lock = threading.Lock()

    def of(self, execution: Execution, now: float) -> FailedFiles:
        arn = execution.arn
        with self._lock:
            if arn in self._known:
                return self._known[arn]
        found = self._look_up(execution)
        ended = execution.history[-1][1] if execution.history else now
        if now - ended >= _SETTLE_SECONDS:  # its last events are in: keep the answer
            with self._lock:
                self._known[arn] = found
                while len(self._known) > _CACHE:
                    self._known.popitem(last=False)
        return found

    def _look_up(self, execution: Execution) -> FailedFiles:
        failed = execution.counters.get("FilesFailed") or {}
        if not any(isinstance(v, int) and v > 0 for v in failed.values()):
            return FailedFiles()
        group = execution.log_group or task_log_group(self.store, execution.task_arn)
        stream = execution.task_arn.rsplit("/", 1)[-1]
        suffix = f"% ({execution.job_id})"
        events = self.logs.matching(
            group,
            stream,
            int(execution.start_time * 1000) - 60_000,  # agents' clocks may lag
            ["[ERROR] Failed to %" + suffix, "[NOTICE] Verification failed <> %" + suffix],
            LIMIT + 1,
        )
        files = tuple(f for _, message in events if (f := parse(message)) is not None)
        if files:
            return FailedFiles(files[:LIMIT], len(files) > LIMIT)
        detail = execution.result.get("ErrorDetail")
        return FailedFiles(Detail=str(detail) if detail else None)
