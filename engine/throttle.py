"""The transfer's bandwidth limiter: one token bucket shared by every worker of a transfer.

Design (after s3transfer's `LeakyBucket` and rclone's drained `TokenBucket`):

* Credit accrues at `BytesPerSecond` from the moment limiting starts; the bucket starts **empty**,
  so the limit holds from the very first byte.
* Callers book bytes with `reserve(n)` (FIFO by booking order, like a ticket) and then wait with
  `wait(ticket)` before writing them. Booking is cheap and takes a short lock; nobody holds the lock
  while sleeping.
* Unused credit (an idle worker, the gap between two files) is capped at `burst` bytes, so after a
  pause the limit still holds over any window of a second or more.
* `set_rate()` may come from any thread at any moment: credit already earned is kept but the idle
  surplus is dropped (no burst across a change), and sleepers re-evaluate within `max_sleep`.
* The clock is injectable (`Clock`): tests drive it without real sleeps.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

__all__ = ["UNLIMITED", "BucketStatistics", "Clock", "MonotonicClock", "TokenBucket"]

UNLIMITED = -1


class Clock(Protocol):
    def now(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class MonotonicClock:
    def now(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


@dataclass(frozen=True)
class BucketStatistics:
    bytes_per_second: int
    booked_bytes: int
    credited_bytes: float


class TokenBucket:
    def __init__(
        self,
        bytes_per_second: int = UNLIMITED,
        clock: Clock | None = None,
        burst_seconds: float = 0.02,
        max_sleep: float = 0.05,
    ) -> None:
        self._clock = clock or MonotonicClock()
        self._lock = threading.Lock()
        self._burst_seconds = burst_seconds
        self._max_sleep = max_sleep
        self._rate = UNLIMITED
        self._booked = 0  # bytes handed out as tickets
        self._credit = 0.0  # bytes paid for so far (never above booked + burst)
        self._last = self._clock.now()
        self.set_rate(bytes_per_second)

    # -- configuration ---------------------------------------------------------------------------
    @property
    def bytes_per_second(self) -> int:
        return self._rate

    @property
    def limited(self) -> bool:
        return self._rate != UNLIMITED

    def set_rate(self, bytes_per_second: int) -> None:
        if bytes_per_second != UNLIMITED and bytes_per_second <= 0:
            raise ValueError("BytesPerSecond must be -1 (unlimited) or positive")
        with self._lock:
            now = self._clock.now()
            if self._rate == UNLIMITED:
                # Start limiting from an empty bucket: nothing earned yet.
                self._credit = float(self._booked)
            else:
                self._advance(now)
                # Keep credit owed to already-booked bytes, drop any idle surplus.
                self._credit = min(self._credit, float(self._booked))
            self._last = now
            self._rate = bytes_per_second

    def statistics(self) -> BucketStatistics:
        with self._lock:
            self._advance(self._clock.now())
            return BucketStatistics(self._rate, self._booked, self._credit)

    # -- consuming -------------------------------------------------------------------------------
    def _burst(self) -> float:
        return max(1.0, self._rate * self._burst_seconds)

    def _advance(self, now: float) -> None:
        """Credit the time elapsed since the last update (lock held)."""
        if self._rate != UNLIMITED:
            earned = (now - self._last) * self._rate
            if earned > 0:
                self._credit = min(self._credit + earned, self._booked + self._burst())
        self._last = now

    def reserve(self, nbytes: int) -> int:
        """Book `nbytes`; returns the ticket to `wait()` on before using them."""
        with self._lock:
            self._advance(self._clock.now())
            self._booked += nbytes
            if self._rate == UNLIMITED:
                self._credit = float(self._booked)
            return self._booked

    def delay(self, ticket: int) -> float:
        """Seconds until `ticket` is paid for at the current rate (0 if it is)."""
        with self._lock:
            self._advance(self._clock.now())
            if self._rate == UNLIMITED:
                return 0.0
            missing = ticket - self._credit
            return missing / self._rate if missing > 0 else 0.0

    def wait(self, ticket: int, cancelled: Callable[[], bool] | None = None) -> bool:
        """Sleep until `ticket` is paid for. Returns False if `cancelled()` became true first.

        Sleeps in slices of at most `max_sleep`, re-reading the rate each time, so a rate change or
        a cancel takes effect within that slice. No lock is held while sleeping.
        """
        while True:
            if cancelled is not None and cancelled():
                return False
            remaining = self.delay(ticket)
            if remaining <= 0:
                return True
            self._clock.sleep(min(remaining, self._max_sleep))

    def consume(self, nbytes: int, cancelled: Callable[[], bool] | None = None) -> bool:
        """Book and wait in one call; returns False if cancelled while waiting."""
        if self._rate == UNLIMITED:
            with self._lock:
                self._booked += nbytes
                self._credit = float(self._booked)
            return True
        return self.wait(self.reserve(nbytes), cancelled)
