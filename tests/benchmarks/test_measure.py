"""Throttle-series and rate-change analysis on synthetic series; medians and percentiles."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.measure import (
    analyse_rate_change,
    analyse_throttle,
    dir_bytes,
    percentile,
    spread,
)

MIB = 1024 * 1024
RATE = 8 * MIB


def ideal_series(
    total: int, rate: float, delay: float, step: float = 0.1
) -> list[tuple[float, int]]:
    """A perfect throttled copy that starts `delay` s after the process, sampled every `step`."""
    out = []
    t = 0.0
    while True:
        b = int(min(total, max(0.0, (t - delay) * rate)))
        out.append((round(t, 6), b))
        if b >= total:
            return out
        t += step


def test_perfect_throttle_is_on_the_line() -> None:
    total = 64 * MIB
    a = analyse_throttle(ideal_series(total, RATE, delay=0.37), RATE, total)
    assert a.complete
    assert a.ideal == pytest.approx(8.0)
    assert a.elapsed == pytest.approx(8.0, abs=0.01)
    assert abs(a.error_pct) < 0.2
    assert a.max_ahead < 0.01 * MIB
    assert a.start == pytest.approx(0.37, abs=0.01)


def test_slow_tool_is_late_and_never_ahead() -> None:
    total = 64 * MIB
    a = analyse_throttle(ideal_series(total, RATE * 0.95, delay=0.2), RATE, total)
    assert a.elapsed == pytest.approx(8.0 / 0.95, abs=0.02)
    assert a.error_pct == pytest.approx((1 / 0.95 - 1) * 100, abs=0.3)
    assert a.max_ahead == 0.0


def test_bursty_tool_runs_ahead() -> None:
    # writes 1 MiB bursts at the start of every 1/8 s: ahead by up to ~1 MiB
    total = 16 * MIB
    series = [(0.0, 0), (0.05, 0)]
    t = 0.1
    while True:
        bursts = int((t - 0.1) * 8) + 1
        b = min(total, bursts * MIB)
        series.append((round(t, 6), b))
        if b >= total:
            break
        t += 0.1
    a = analyse_throttle(series, RATE, total)
    assert a.complete
    assert a.max_ahead > 0.5 * MIB
    assert a.error_pct < 0  # finished before the ideal 2 s


def test_incomplete_series_is_flagged() -> None:
    total = 64 * MIB
    series = ideal_series(total, RATE, 0.0)[:20]
    a = analyse_throttle(series, RATE, total)
    assert not a.complete


def test_rate_change_knee_is_found() -> None:
    old, new, t_update, delay = 2 * MIB, 8 * MIB, 2.0, 0.3
    series = []
    t = 0.0
    while t < 6.0:
        if t <= t_update + delay:
            b = old * t
        else:
            b = old * (t_update + delay) + new * (t - t_update - delay)
        series.append((t, int(b)))
        t = round(t + 0.05, 6)
    rc = analyse_rate_change(series, t_update, old, new)
    assert rc.delay == pytest.approx(delay, abs=0.03)
    assert rc.rate_before == pytest.approx(old, rel=0.01)
    assert rc.rate_after == pytest.approx(new, rel=0.01)


def test_rate_change_immediate() -> None:
    old, new = 2 * MIB, 8 * MIB
    series = [
        (t / 20, int(old * min(t / 20, 1.0) + new * max(0.0, t / 20 - 1.0))) for t in range(80)
    ]
    rc = analyse_rate_change(series, 1.0, old, new)
    assert rc.delay < 0.03


def test_spread_and_percentile() -> None:
    s = spread([3.0, 1.0, 2.0, 10.0])
    assert (s.median, s.low, s.high, s.n) == (2.5, 1.0, 10.0, 4)
    values = [float(i) for i in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile([5.0], 99) == 5.0
    with pytest.raises(ValueError):
        spread([])


def test_dir_bytes_counts_hidden_temporaries(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "f").write_bytes(b"x" * 10)
    (tmp_path / ".f.XyZ123").write_bytes(b"x" * 5)  # rsync's temporary
    (tmp_path / "g.partial").write_bytes(b"x" * 7)  # rclone's
    (tmp_path / "link").symlink_to("a/f")
    assert dir_bytes(tmp_path) == 22
