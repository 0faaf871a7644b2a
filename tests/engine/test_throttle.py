from __future__ import annotations

import threading

import pytest

from engine.throttle import UNLIMITED, TokenBucket


class FakeClock:
    """A clock whose sleep advances time: no real sleeping in these tests."""

    def __init__(self) -> None:
        self.t = 1000.0
        self.slept = 0.0

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        assert seconds > 0
        self.t += seconds
        self.slept += seconds


def send(bucket: TokenBucket, clock: FakeClock, total: int, chunk: int) -> list[tuple[float, int]]:
    """Write `total` bytes in chunks through the bucket; return (time, bytes written so far)."""
    series, done = [], 0
    while done < total:
        n = min(chunk, total - done)
        assert bucket.consume(n)
        done += n
        series.append((clock.now(), done))
    return series


def test_limit_holds_from_the_first_byte_and_overall() -> None:
    clock = FakeClock()
    rate = 8 << 20
    bucket = TokenBucket(rate, clock)
    start = clock.now()
    series = send(bucket, clock, 64 << 20, 400 << 10)
    elapsed = series[-1][0] - start
    assert elapsed == pytest.approx(8.0, rel=0.01)
    for t, done in series:  # never ahead of the ideal line (bucket starts empty)
        assert done <= (t - start) * rate + 1


def test_any_window_of_a_second_stays_within_the_rate() -> None:
    clock = FakeClock()
    rate = 1 << 20
    bucket = TokenBucket(rate, clock)
    series = send(bucket, clock, 5 << 20, 64 << 10)
    # Idle for a while: credit is capped at the small burst, not a second's worth.
    clock.sleep(10.0)
    series += [(t, d + (5 << 20)) for t, d in send(bucket, clock, 3 << 20, 64 << 10)]
    for i, (t0, d0) in enumerate(series):
        for t1, d1 in series[i + 1 :]:
            if t1 - t0 >= 1.0:
                assert d1 - d0 <= rate * (t1 - t0) + bucket.statistics().bytes_per_second * 0.02 + (
                    64 << 10
                )


def test_rate_change_applies_without_burst() -> None:
    clock = FakeClock()
    bucket = TokenBucket(1 << 20, clock)
    send(bucket, clock, 1 << 20, 64 << 10)
    t0 = clock.now()
    bucket.set_rate(4 << 20)
    send(bucket, clock, 4 << 20, 64 << 10)
    assert clock.now() - t0 == pytest.approx(1.0, rel=0.05)
    t1 = clock.now()
    bucket.set_rate(512 << 10)
    send(bucket, clock, 512 << 10, 64 << 10)
    assert clock.now() - t1 == pytest.approx(1.0, rel=0.05)


def test_unlimited_never_waits_and_switching_to_limited_starts_empty() -> None:
    clock = FakeClock()
    bucket = TokenBucket(UNLIMITED, clock)
    send(bucket, clock, 100 << 20, 1 << 20)
    assert clock.slept == 0
    bucket.set_rate(1 << 20)
    t0 = clock.now()
    send(bucket, clock, 1 << 20, 64 << 10)
    assert clock.now() - t0 == pytest.approx(1.0, rel=0.05)


def test_waiters_see_a_rate_change_while_sleeping() -> None:
    clock = FakeClock()
    bucket = TokenBucket(1000, clock)
    ticket = bucket.reserve(10_000)  # 10 s at the old rate
    slices: list[float] = []
    orig_sleep = clock.sleep

    def sleep(seconds: float) -> None:
        slices.append(seconds)
        orig_sleep(seconds)
        if len(slices) == 3:
            bucket.set_rate(UNLIMITED)

    clock.sleep = sleep  # type: ignore[method-assign]
    assert bucket.wait(ticket)
    assert len(slices) == 3  # woke up within one slice of the change
    assert max(slices) <= 0.05


def test_cancel_stops_a_waiter_and_bad_rates_are_refused() -> None:
    clock = FakeClock()
    bucket = TokenBucket(10, clock)
    flag = threading.Event()
    ticket = bucket.reserve(1000)
    orig_sleep = clock.sleep

    def sleep(seconds: float) -> None:
        orig_sleep(seconds)
        flag.set()

    clock.sleep = sleep  # type: ignore[method-assign]
    assert bucket.wait(ticket, cancelled=flag.is_set) is False
    with pytest.raises(ValueError):
        bucket.set_rate(0)
