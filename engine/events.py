"""Per-file outcomes, as they happen: what execution logs, task reports and work-item journals read.

The engine counts every item in one place (`engine/progress.Progress`); the same call that counts
an item hands a `FileEvent` to the run's sink, so a log line can never disagree with a counter.
The sink is called from the engine's worker threads, several at once: it must be cheap and
thread-safe (append to a queue, batch elsewhere). A dry run emits nothing.
"""

from __future__ import annotations

import enum
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["EventSink", "FileEvent", "FileEventKind", "FileFacts"]


class FileEventKind(enum.Enum):
    TRANSFERRED = "TRANSFERRED"  # placed under its real name, data and metadata
    VERIFIED = "VERIFIED"  # verification passed for it
    DELETED = "DELETED"  # removed at the destination (PreserveDeletedFiles=REMOVE)
    SKIPPED = "SKIPPED"  # counted in FilesSkipped (never overwritten, or never transferable)
    FAILED = "FAILED"  # counted in FilesFailed / FoldersFailed


@dataclass(frozen=True, slots=True)
class FileFacts:
    """One side of an item, as DataSync's verification-failure log lines print it."""

    size: int
    mtime_ns: int
    mode: int
    uid: int
    gid: int
    checksum: str | None = None  # xxh3-128 hex, where it was computed

    @classmethod
    def of(cls, st: os.stat_result, checksum: bytes | None = None) -> FileFacts:
        return cls(
            size=st.st_size,
            mtime_ns=st.st_mtime_ns,
            mode=stat.S_IMODE(st.st_mode),
            uid=st.st_uid,
            gid=st.st_gid,
            checksum=checksum.hex() if checksum is not None else None,
        )


@dataclass(frozen=True, slots=True)
class FileEvent:
    kind: FileEventKind
    path: str  # relative to the location root, with a leading "/" (as FileFailure.path)
    folder: bool = False  # a directory (else a file, symbolic link or device)
    size: int | None = None  # bytes of the file, when known
    checksum: str | None = None  # xxh3-128 hex, where the engine computed one
    phase: str | None = None  # FAILED: Prepare | Transfer | Verify | Delete
    reason: str | None = None  # FAILED and SKIPPED: why
    source: FileFacts | None = None  # FAILED in Verify: both sides, where they could be read
    destination: FileFacts | None = None


EventSink = Callable[[FileEvent], None]
