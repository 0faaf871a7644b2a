"""Measuring: cache preparation, directory sizes, time series, and their analysis.

Everything here is pure or nearly so, so the analysis can be tested on synthetic series.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "RateChange",
    "Spread",
    "ThrottleAnalysis",
    "analyse_rate_change",
    "analyse_throttle",
    "can_drop_caches",
    "dir_bytes",
    "drop_caches",
    "percentile",
    "remove_trees",
    "sample_dir_bytes",
    "spread",
    "warm_tree",
]

Series = list[tuple[float, int]]  # (seconds since start, bytes)


@dataclass(frozen=True)
class Spread:
    median: float
    low: float
    high: float
    n: int


def spread(values: Sequence[float]) -> Spread:
    if not values:
        raise ValueError("no values")
    return Spread(statistics.median(values), min(values), max(values), len(values))


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100)."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-p * len(ordered) // 100))))
    return ordered[rank - 1]


# --- cache state -----------------------------------------------------------------------------

_DROP = Path("/proc/sys/vm/drop_caches")


def can_drop_caches() -> bool:
    return os.geteuid() == 0 and os.access(_DROP, os.W_OK)


def drop_caches() -> None:
    os.sync()
    _DROP.write_text("1\n")


def remove_trees(paths: Iterable[Path]) -> None:
    """Delete trees (with `rm -rf` where present: much faster than rmtree on 10⁶ files)."""
    paths = [p for p in paths if os.path.lexists(p)]
    if not paths:
        return
    if shutil.which("rm"):
        subprocess.run(["rm", "-rf", "--", *map(str, paths)], check=False)
    for p in paths:
        shutil.rmtree(p, ignore_errors=True)


def warm_tree(root: Path, read_data: bool = True) -> int:
    """Re-read a tree (metadata, and contents when read_data) so it is in the page cache."""
    total = 0
    buf = bytearray(1 << 20)
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            path = os.path.join(dirpath, name)
            if not read_data:
                os.lstat(path)
                continue
            with open(path, "rb", buffering=0) as fh:
                while n := fh.readinto(buf):
                    total += n
    return total


# --- sizes over time -------------------------------------------------------------------------


def dir_bytes(root: Path) -> int:
    """Total st_size of every regular file under root, hidden temporaries included."""
    total = 0
    stack = [str(root)]
    while stack:
        d = stack.pop()
        try:
            it = os.scandir(d)
        except OSError:
            continue
        with it:
            for e in it:
                try:
                    if e.is_dir(follow_symlinks=False):
                        stack.append(e.path)
                    elif e.is_file(follow_symlinks=False):
                        total += e.stat(follow_symlinks=False).st_size
                except OSError:  # renamed or removed between listing and stat
                    continue
    return total


def sample_dir_bytes(
    root: Path, running: Callable[[], bool], interval: float = 0.1, timeout: float = 600.0
) -> Series:
    """Poll dir_bytes(root) every `interval` s while running() is true, plus one last sample."""
    t0 = time.monotonic()
    series: Series = [(0.0, dir_bytes(root))]
    next_t = t0 + interval
    while running():
        now = time.monotonic()
        if now - t0 > timeout:
            break
        if now < next_t:
            time.sleep(min(interval, next_t - now))
            continue
        series.append((time.monotonic() - t0, dir_bytes(root)))
        next_t += interval
    series.append((time.monotonic() - t0, dir_bytes(root)))
    return series


# --- throttle analysis -----------------------------------------------------------------------


@dataclass(frozen=True)
class ThrottleAnalysis:
    ideal: float  # seconds: total / rate
    elapsed: float  # seconds from the data starting to flow until all bytes were there
    error_pct: float  # (elapsed - ideal) / ideal × 100
    max_ahead: float  # bytes: max over samples of written - rate × (t - start)
    start: float  # the data start (seconds, on the series' clock)
    complete: bool  # did the series reach total?


def analyse_throttle(series: Series, rate: float, total: int) -> ThrottleAnalysis:
    """Compare a bytes-over-time series with the ideal line `rate × t`.

    The data start is where the line through the first two non-empty samples meets zero (kept
    between the last empty sample and the first non-empty one), so process start-up and the
    tool's own scan do not count against it; the end is where the series crosses `total`,
    interpolated between the two samples around it. `max_ahead` is how far the tool ran ahead of
    the ideal line started at the data start, at worst (0 if never).
    """
    if rate <= 0 or total <= 0:
        raise ValueError("rate and total must be positive")
    if not series:
        raise ValueError("empty series")
    first = next((i for i, (_, b) in enumerate(series) if b > 0), None)
    if first is None:
        return ThrottleAnalysis(total / rate, series[-1][0], 0.0, 0.0, series[-1][0], False)
    t_zero = series[first - 1][0] if first > 0 else series[0][0]
    t1, b1 = series[first]
    start = t_zero
    if first + 1 < len(series):
        t2, b2 = series[first + 1]
        if b2 > b1 and b1 < total:
            start = t1 - b1 * (t2 - t1) / (b2 - b1)
    start = min(max(start, t_zero), t1)
    end = None
    max_ahead = 0.0
    prev_t, prev_b = start, 0
    slope = 0.0  # bytes/s over the last interval before the end
    for t, b in series[first:]:
        max_ahead = max(max_ahead, min(b, total) - rate * (t - start))
        if b >= total:
            # extrapolate the last full interval's slope to `total` (the final sample is clipped)
            end = t
            if slope > 0:
                end = min(t, max(prev_t, prev_t + (total - prev_b) / slope))
            break
        if t > prev_t and prev_b > 0:
            slope = (b - prev_b) / (t - prev_t)
        prev_t, prev_b = t, b
    complete = end is not None
    elapsed = (end if end is not None else series[-1][0]) - start
    ideal = total / rate
    return ThrottleAnalysis(
        ideal=ideal,
        elapsed=elapsed,
        error_pct=(elapsed - ideal) / ideal * 100.0,
        max_ahead=max(0.0, max_ahead),
        start=start,
        complete=complete,
    )


@dataclass(frozen=True)
class RateChange:
    delay: float  # seconds from the update call until the rate changed (least-squares knee)
    rate_before: float  # measured, bytes/s
    rate_after: float  # measured, bytes/s


def _slope(points: Sequence[tuple[float, int]]) -> float:
    if len(points) < 2:
        return 0.0
    xs = [p[0] for p in points]
    ys = [float(p[1]) for p in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / den if den else 0.0


def analyse_rate_change(
    series: Series, t_update: float, old_rate: float, new_rate: float, step: float = 0.01
) -> RateChange:
    """Find when a rate change took effect after `t_update`.

    Fits, over the samples from t_update until the copy finished, a line of slope old_rate that
    bends into slope new_rate after a delay d (free intercept), and returns the d that fits best.
    """
    done_at = next((t for t, b in series if b >= series[-1][1]), series[-1][0])
    after = [(t - t_update, b) for t, b in series if t_update <= t <= done_at]
    before = [(t, b) for t, b in series if t <= t_update and b > 0]
    if len(after) < 3:
        raise ValueError("too few samples after the update")
    horizon = after[-1][0]
    best_d, best_sse = 0.0, float("inf")
    d = 0.0
    while d <= horizon:
        model = [old_rate * min(x, d) + new_rate * max(0.0, x - d) for x, _ in after]
        c = statistics.fmean(b - m for (_, b), m in zip(after, model, strict=True))
        sse = sum((b - c - m) ** 2 for (_, b), m in zip(after, model, strict=True))
        if sse < best_sse:
            best_d, best_sse = d, sse
        d += step
    rate_after = _slope([(x, b) for x, b in after if x >= best_d + 0.2])
    return RateChange(delay=best_d, rate_before=_slope(before), rate_after=rate_after)


def run_quiet(cmd: Sequence[str], timeout: float = 30.0) -> str:
    """First line of a command's output ('' if it fails): used for tool versions."""
    try:
        out = subprocess.run(
            list(cmd), capture_output=True, text=True, timeout=timeout, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    text = (out.stdout or out.stderr).strip()
    return text.splitlines()[0] if text else ""
