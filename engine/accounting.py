"""One place where a transfer's bytes are paid for and counted.

Every copy loop (engine/copier.py's three data paths, engine/sparse.py's extents) moves data
only through `Accounting.charge`: it pays the shared `TokenBucket` for the bytes about to move
*before* they are written (so `BytesPerSecond` holds from the first byte and a rate change
applies from the next chunk), checks for a cancel, runs the move and counts what it moved.
Before, each loop did the three separately and each in its own way (after rclone's
`accounting.Account` and s3transfer's bandwidth-limited stream, which do both in one read).

Bytes that move without data going through this process are counted with `count` and never
paid: a sparse file's holes (logical bytes; a hole moves no data), the files a copy helper
process placed (helpers only run unthrottled, by design; the parent counts their bytes from the
answers) and journaled files of a resumed work item.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from engine.errors import TransferCancelled
from engine.throttle import TokenBucket

__all__ = ["Accounting", "ByteCounter"]

_MIN_CHUNK, _MAX_CHUNK = 16 << 10, 1 << 20


class ByteCounter(Protocol):
    """Where the bytes are counted (a Progress; a copy helper's stand-in)."""

    def add_bytes(self, n: int) -> None: ...


class Accounting:
    """A transfer's byte accounting: its token bucket, its counter and its cancel flag."""

    def __init__(
        self, bucket: TokenBucket, counter: ByteCounter, cancelled: Callable[[], bool]
    ) -> None:
        self.bucket = bucket
        self.counter = counter
        self.cancelled = cancelled

    @property
    def limited(self) -> bool:
        return self.bucket.limited

    def chunk(self, unlimited: int) -> int:
        """How much to move per step: `unlimited` while there is no limit, else ~1/20 s of the
        current rate (bounded), so a rate change applies soon and the limit holds in any window."""
        if not self.bucket.limited:
            return unlimited
        return max(_MIN_CHUNK, min(_MAX_CHUNK, self.bucket.bytes_per_second // 20))

    def charge(self, nbytes: int, move: Callable[[], int]) -> int:
        """Pay for `nbytes` (waiting as the rate says), then `move()` them (one read and write,
        or one kernel copy, of at most about that many bytes) and count the bytes it reports
        moved, which it returns. Raises TransferCancelled when cancelled before or while
        waiting; what `move` raises propagates with nothing counted."""
        if self.cancelled():
            raise TransferCancelled()
        bucket = self.bucket
        if nbytes > 0 and bucket.limited and not bucket.consume(nbytes, self.cancelled):
            raise TransferCancelled()
        moved = move()
        if moved:
            self.counter.add_bytes(moved)
        return moved

    def count(self, nbytes: int) -> None:
        """Count bytes that moved without being paid for (see the module's docstring)."""
        self.counter.add_bytes(nbytes)
