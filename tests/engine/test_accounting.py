"""Accounting.charge: the one place a copy loop pays the token bucket and counts bytes."""

from __future__ import annotations

import pytest

from engine.accounting import Accounting
from engine.errors import TransferCancelled
from engine.progress import Progress
from engine.throttle import UNLIMITED, TokenBucket
from tests.engine.test_throttle import FakeClock


def _written(progress: Progress) -> int:
    return int(progress.snapshot()["BytesWritten"])


def test_charge_counts_what_moved_not_what_was_paid() -> None:
    progress = Progress()
    account = Accounting(TokenBucket(UNLIMITED), progress, lambda: False)
    assert account.charge(4096, lambda: 1000) == 1000
    assert account.charge(4096, lambda: 0) == 0
    assert _written(progress) == 1000


def test_a_failed_move_counts_nothing() -> None:
    progress = Progress()
    account = Accounting(TokenBucket(UNLIMITED), progress, lambda: False)

    def fail() -> int:
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError):
        account.charge(100, fail)
    assert _written(progress) == 0


def test_the_bucket_is_paid_before_the_move() -> None:
    clock = FakeClock()
    start = clock.t
    account = Accounting(TokenBucket(1000, clock), Progress(), lambda: False)
    seen: list[float] = []

    def move() -> int:
        seen.append(clock.now())
        return 500

    account.charge(500, move)
    account.charge(500, move)
    # the bucket starts empty: each move runs only once its bytes are earned
    assert seen[0] - start == pytest.approx(0.5, abs=0.06)
    assert seen[1] - start == pytest.approx(1.0, abs=0.06)


def test_a_cancel_stops_before_the_move() -> None:
    moved: list[int] = []

    def move() -> int:
        moved.append(10)
        return 10

    account = Accounting(TokenBucket(UNLIMITED), Progress(), lambda: True)
    with pytest.raises(TransferCancelled):
        account.charge(10, move)
    assert moved == []


def test_count_pays_nothing() -> None:
    bucket = TokenBucket(1000, FakeClock())
    progress = Progress()
    account = Accounting(bucket, progress, lambda: False)
    account.count(1 << 20)  # e.g. a sparse file's hole
    assert bucket.statistics().booked_bytes == 0
    assert _written(progress) == 1 << 20


def test_chunks_follow_the_rate() -> None:
    bucket = TokenBucket(UNLIMITED)
    account = Accounting(bucket, Progress(), lambda: False)
    assert account.chunk(64 << 20) == 64 << 20
    bucket.set_rate(2 << 20)
    assert account.chunk(64 << 20) == (2 << 20) // 20
    bucket.set_rate(1)
    assert account.chunk(64 << 20) == 16 << 10
