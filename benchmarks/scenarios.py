"""The scenarios of BENCHMARKS.md, each run for every tool that supports it, interleaved.

Method (see BENCHMARKS.md, "Method"): every timed run copies into a fresh destination directory;
old destinations are deleted only before a run when the page cache can be dropped afterwards
(root: `sync; echo 1 > /proc/sys/vm/drop_caches`), else at the end of the scenario. The source
is re-read just before each timed run, so every tool starts from the same warm source.
Tools take turns (A B C A B C …), and each round starts with the next tool (rotation).
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks import cpbench, datasets
from benchmarks.measure import (
    analyse_rate_change,
    analyse_throttle,
    can_drop_caches,
    dir_bytes,
    drop_caches,
    percentile,
    remove_trees,
    sample_dir_bytes,
    warm_tree,
)
from benchmarks.tools import ApiTool, Op, Outcome, Tool

__all__ = ["SCENARIOS", "Context", "ScenarioResult", "run_scenario"]

MIB = datasets.MIB
NO_DATASET = "—"  # a scenario that generates no data set


@dataclass
class ScenarioResult:
    name: str
    title: str
    dataset: str
    unit: str  # "s", "MiB" (peak RSS), "ms"
    files: int = 0
    bytes: int = 0
    labels: dict[str, str] = field(default_factory=dict)  # tool key -> label
    ours: list[str] = field(default_factory=list)  # keys of our tools
    values: dict[str, list[float]] = field(default_factory=dict)  # tool key -> measurements
    skipped: dict[str, str] = field(default_factory=dict)  # tool key -> reason
    failures: dict[str, list[str]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0  # wall time of the whole scenario


@dataclass
class Context:
    workdir: Path
    scale: float
    repeat: int
    tools: list[Tool]
    seed: int = datasets.DEFAULT_SEED
    log: Callable[[str], None] = print
    serve_args: list[str] = field(default_factory=list)  # added to `serve` (benchmarks.cpbench)
    store_url: str | None = None  # a PostgreSQL URL for the `--store` variants
    generated: dict[str, Path] = field(default_factory=dict)
    pending: list[Path] = field(default_factory=list)
    _n: int = 0

    def dataset(self, name: str) -> Path:
        if name not in self.generated:
            path = self.workdir / f"src-{name}"
            if path.exists():
                shutil.rmtree(path)
            t = time.monotonic()
            n = datasets.generate(name, path, self.scale, self.seed)
            self.log(f"  generated {name}: {n} files in {time.monotonic() - t:.1f} s")
            self.generated[name] = path
        return self.generated[name]

    def fresh_dst(self, tag: str) -> Path:
        self._n += 1
        path = self.workdir / f"dst-{self._n:04d}-{tag}"
        path.mkdir()
        self.pending.append(path)
        return path

    def prepare(self, src: Path | None, read_data: bool = True) -> None:
        """Before a timed run: drop old destinations where caches can be dropped, warm src."""
        if can_drop_caches():
            if self.pending:
                remove_trees(self.pending)
                self.pending.clear()
            drop_caches()
        if src is not None:
            warm_tree(src, read_data)

    def cleanup(self) -> None:
        remove_trees(self.pending)
        self.pending.clear()


def _rounds(tools: list[Tool], repeat: int) -> list[Tool]:
    """A B C, B C A, C A B …: interleaved, each round rotated by one."""
    order: list[Tool] = []
    for r in range(repeat):
        k = r % len(tools) if tools else 0
        order += tools[k:] + tools[:k]
    return order


def _select(ctx: Context, res: ScenarioResult, op: Op, keys: set[str] | None = None) -> list[Tool]:
    chosen: list[Tool] = []
    for tool in ctx.tools:
        if keys is not None and tool.key not in keys:
            continue
        if not tool.supports(op):
            continue
        res.labels[tool.key] = tool.label
        if tool.ours:
            res.ours.append(tool.key)
        why = tool.unavailable()
        if why:
            res.skipped[tool.key] = why
            continue
        chosen.append(tool)
    return chosen


def _record(res: ScenarioResult, tool: Tool, out: Outcome, value: float) -> None:
    if out.ok:
        res.values.setdefault(tool.key, []).append(value)
    else:
        res.failures.setdefault(tool.key, []).append(out.detail or "failed")


def _check_copy(res: ScenarioResult, tool: Tool, out: Outcome, dst: Path, expect: int) -> Outcome:
    if out.ok:
        got = dir_bytes(dst)
        if got != expect:
            out.ok = False
            out.detail = f"destination holds {got} bytes, expected {expect}"
    return out


# --- copy ------------------------------------------------------------------------------------


def _copy(ctx: Context, res: ScenarioResult, keys: set[str] | None = None) -> None:
    src = ctx.dataset(res.dataset)
    res.files = sum(1 for _ in datasets.layout(res.dataset, ctx.scale, ctx.seed))
    res.bytes = datasets.total_bytes(res.dataset, ctx.scale, ctx.seed)
    tools = _select(ctx, res, "copy", keys)
    for tool in _rounds(tools, ctx.repeat):
        ctx.prepare(src)
        dst = ctx.fresh_dst(tool.key)
        out = tool.start(src, dst, "copy").wait()
        out = _check_copy(res, tool, out, dst, res.bytes)
        _record(res, tool, out, out.seconds)
        ctx.log(f"  {tool.label:<42} {out.seconds:8.3f} s {'' if out.ok else out.detail[:120]}")
    res.notes.append(
        "fresh destination per run; source re-read (warm page cache) before each run; "
        + (
            "old destinations deleted, then `sync; echo 1 > drop_caches`, before each run"
            if can_drop_caches()
            else "old destinations deleted only at the end (cannot drop caches: not root)"
        )
    )


# --- re-sync ---------------------------------------------------------------------------------


def _cp_a(src: Path, dst: Path) -> None:
    subprocess.run(["cp", "-a", f"{src}/.", f"{dst}/"], check=True)


def _noop(ctx: Context, res: ScenarioResult, keys: set[str] | None = None) -> None:
    src = ctx.dataset(res.dataset)
    res.files = sum(1 for _ in datasets.layout(res.dataset, ctx.scale, ctx.seed))
    res.bytes = datasets.total_bytes(res.dataset, ctx.scale, ctx.seed)
    tools = _select(ctx, res, "resync", keys)
    if res.dataset == "D4" and ctx.scale > 0.01:
        for slow in [t for t in tools if t.key == "fpsync"]:
            tools.remove(slow)
            res.skipped[slow.key] = (
                "not run on D4 (above scale 0.01): its no-op of 50,000 files already takes "
                "~10 s (fpart, then rsync per chunk), 1,000,000 files would take minutes per run"
            )
    ctx.prepare(None)
    base = ctx.fresh_dst("noop-base")
    t = time.monotonic()
    _cp_a(src, base)
    ctx.log(f"  destination prepared with cp -a in {time.monotonic() - t:.1f} s")
    rss = res.unit == "MiB"
    for tool in _rounds(tools, ctx.repeat):
        warm_tree(src, read_data=False)
        warm_tree(base, read_data=False)
        if isinstance(tool, ApiTool):
            tool.reset()  # a fresh server, so its peak RSS is this run's
        out = tool.start(src, base, "resync").wait()
        transferred = out.counters.get("FilesTransferred")
        if out.ok and transferred not in (None, 0):
            out.ok = False
            out.detail = f"not a no-op: FilesTransferred={transferred}"
        if rss:
            value = (out.maxrss_kib or 0) / 1024
            res.extra.setdefault("seconds", {}).setdefault(tool.key, []).append(out.seconds)
        else:
            value = out.seconds
        _record(res, tool, out, value)
        ctx.log(
            f"  {tool.label:<42} {out.seconds:8.3f} s  peak RSS {(out.maxrss_kib or 0) / 1024:7.1f}"
            f" MiB {'' if out.ok else out.detail[:120]}"
        )
    res.notes.append(
        "one destination made with `cp -a` (untimed), then every tool re-syncs into it in turn; "
        "source and destination metadata re-read (warm dentry/inode cache) before each run"
    )
    if rss:
        res.notes.append(
            "peak RSS: GNU time's %M (max RSS of the tool's process and the children it waited "
            "for; without /usr/bin/time, wait4's ru_maxrss); for the API tool, VmHWM "
            "of a freshly started `serve` process (server + embedded agent + engine)"
        )


def _changed(ctx: Context, res: ScenarioResult, keys: set[str] | None = None) -> None:
    src = ctx.dataset(res.dataset)
    files = list(datasets.layout(res.dataset, ctx.scale, ctx.seed))
    res.files = len(files)
    res.bytes = sum(f.size for f in files)
    rng = random.Random(ctx.seed)
    changed = rng.sample(files, max(1, len(files) // 100))
    res.extra["changed_files"] = len(changed)
    tools = _select(ctx, res, "resync", keys)
    for tool in _rounds(tools, ctx.repeat):
        ctx.prepare(None)
        dst = ctx.fresh_dst(tool.key)
        _cp_a(src, dst)
        for f in changed:  # same size, other bytes, older mtime: a changed file
            p = dst / f.path
            p.write_bytes(os.urandom(f.size))
            os.utime(p, (946684800, 946684800))
        warm_tree(src)
        out = tool.start(src, dst, "resync").wait()
        _record(res, tool, out, out.seconds)
        ctx.log(f"  {tool.label:<42} {out.seconds:8.3f} s {'' if out.ok else out.detail[:120]}")
    res.notes.append(
        f"{len(changed)} files (1%) rewritten in a fresh `cp -a` copy of the destination with "
        "other bytes and an older mtime, then each tool re-syncs; source warm"
    )


def _changed_verified(ctx: Context, res: ScenarioResult, keys: set[str]) -> None:
    """A nightly re-sync with full verification: one destination brought in sync (untimed, which
    also fills the verification cache of the cached tool), then per run 1% of its files
    rewritten (same size, other bytes, older mtime) and re-synced with
    POINT_IN_TIME_CONSISTENT. Each run restores the destination, so every run starts alike."""
    src = ctx.dataset(res.dataset)
    files = list(datasets.layout(res.dataset, ctx.scale, ctx.seed))
    res.files = len(files)
    res.bytes = sum(f.size for f in files)
    rng = random.Random(ctx.seed)
    changed = rng.sample(files, max(1, len(files) // 100))
    res.extra["changed_files"] = len(changed)
    tools = _select(ctx, res, "resync", keys)
    ctx.prepare(None)
    dsts: dict[str, Path] = {}
    for tool in tools:
        dsts[tool.key] = dst = ctx.fresh_dst(tool.key)
        _cp_a(src, dst)
        warm = tool.start(src, dst, "resync").wait()  # untimed: fills the cache where there is one
        if not warm.ok:
            res.failures.setdefault(tool.key, []).append(f"warm-up: {warm.detail}")
    for tool in _rounds(tools, ctx.repeat):
        dst = dsts[tool.key]
        for f in changed:
            p = dst / f.path
            p.write_bytes(os.urandom(f.size))
            os.utime(p, (946684800, 946684800))
        warm_tree(src)
        warm_tree(dst)
        out = tool.start(src, dst, "resync").wait()
        _record(res, tool, out, out.seconds)
        ctx.log(f"  {tool.label:<42} {out.seconds:8.3f} s {'' if out.ok else out.detail[:120]}")
    res.notes.append(
        f"{len(changed)} files (1%) rewritten in place (other bytes, older mtime) in a destination "
        "kept in sync by each tool (warm-up run untimed), then re-synced with "
        "POINT_IN_TIME_CONSISTENT; source and destination warm (page cache), so the times show "
        "the reading and hashing saved, not disk speed"
    )


# --- throttle --------------------------------------------------------------------------------


def _throttle(ctx: Context, res: ScenarioResult) -> None:
    src = ctx.dataset("T")
    rate = datasets.get("T").rate
    res.files = 1
    res.bytes = datasets.total_bytes("T", ctx.scale, ctx.seed)
    res.extra["rate"] = rate
    tools = _select(ctx, res, "throttle", {"dsl-sync-NONE", "dsl-api-NONE", "rsync", "rclone"})
    analyses: dict[str, list[dict[str, Any]]] = {}
    series_by_tool: dict[str, list[tuple[float, int]]] = {}
    for tool in _rounds(tools, ctx.repeat):
        ctx.prepare(src)
        dst = ctx.fresh_dst(tool.key)
        handle = tool.start(src, dst, "throttle", rate)
        series = sample_dir_bytes(dst, handle.running, 0.1)
        out = handle.wait()
        if not out.ok:
            _record(res, tool, out, 0.0)
            ctx.log(f"  {tool.label:<42} failed: {out.detail[:160]}")
            continue
        a = analyse_throttle(series, rate, res.bytes)
        analyses.setdefault(tool.key, []).append(
            {
                "elapsed": a.elapsed,
                "ideal": a.ideal,
                "error_pct": a.error_pct,
                "max_ahead": a.max_ahead,
                "wall": out.seconds,
                "complete": a.complete,
            }
        )
        series_by_tool.setdefault(tool.key, [(t - a.start, b) for t, b in series])
        _record(res, tool, out, a.elapsed)
        ctx.log(
            f"  {tool.label:<42} data {a.elapsed:6.2f} s (ideal {a.ideal:.2f}, "
            f"{a.error_pct:+.1f}%), max ahead {a.max_ahead / MIB:.2f} MiB, wall {out.seconds:.2f} s"
        )
    res.extra["analyses"] = analyses
    res.extra["series"] = series_by_tool
    res.notes.append(
        "destination size (all files, temporaries included) polled every 100 ms; elapsed runs "
        "from the data start (the first samples' line extrapolated to zero) to the moment all "
        "bytes are there (interpolated); the ideal line starts at the data start"
    )


def _rate_change(ctx: Context, res: ScenarioResult) -> None:
    src = ctx.dataset("T")
    res.bytes = datasets.total_bytes("T", ctx.scale, ctx.seed)
    res.files = 1
    old, new = 2 * MIB, 8 * MIB
    res.extra.update(old_rate=old, new_rate=new)
    tools = _select(ctx, res, "throttle", {"dsl-api-NONE"})
    runs: list[dict[str, float]] = []
    for tool in _rounds(tools, ctx.repeat):
        assert isinstance(tool, ApiTool)
        ctx.prepare(src)
        dst = ctx.fresh_dst("rate")
        handle = tool.start(src, dst, "throttle", old)
        t0 = time.monotonic()
        box: dict[str, list[tuple[float, int]]] = {}
        stop = threading.Event()

        def sample(
            dst: Path = dst,
            handle: Any = handle,
            box: dict[str, list[tuple[float, int]]] = box,
            stop: threading.Event = stop,
        ) -> None:
            box["s"] = sample_dir_bytes(dst, lambda: handle.running() and not stop.is_set(), 0.05)

        th = threading.Thread(target=sample, daemon=True)
        th.start()
        deadline = t0 + 60
        while dir_bytes(dst) == 0 and time.monotonic() < deadline and handle.running():
            time.sleep(0.02)
        time.sleep(1.5)
        server = tool.server
        assert server is not None and tool.last is not None
        t_update = time.monotonic() - t0
        try:
            server.client.update_task_execution(
                TaskExecutionArn=tool.last.arn, Options={"BytesPerSecond": new}
            )
        except Exception as exc:
            stop.set()
            th.join()
            handle.wait(120)
            res.failures.setdefault(tool.key, []).append(f"UpdateTaskExecution: {exc}")
            continue
        out = handle.wait()
        th.join()
        series = box.get("s", [])
        if not out.ok:
            _record(res, tool, out, 0.0)
            continue
        try:
            rc = analyse_rate_change(series, t_update, old, new)
        except ValueError as exc:
            res.failures.setdefault(tool.key, []).append(f"analysis: {exc}")
            continue
        runs.append({"delay": rc.delay, "rate_before": rc.rate_before, "rate_after": rc.rate_after})
        _record(res, tool, out, rc.delay)
        res.extra.setdefault("series", {}).setdefault(tool.key, series)
        res.extra.setdefault("t_update", t_update)
        ctx.log(
            f"  {tool.label:<42} new rate after {rc.delay:.2f} s "
            f"({rc.rate_before / MIB:.2f} → {rc.rate_after / MIB:.2f} MiB/s)"
        )
    res.extra["runs"] = runs
    res.notes.append(
        f"copy of T started at {old // MIB} MiB/s; 1.5 s after data flows, UpdateTaskExecution sets "
        f"{new // MIB} MiB/s; destination size sampled every 50 ms; the delay is the knee of a "
        "least-squares two-slope fit"
    )


# --- DescribeTaskExecution under load --------------------------------------------------------


def _describe_latency(ctx: Context, res: ScenarioResult, pollers: int = 50) -> None:
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    from benchmarks.pollers import poller_process, write_signed_request

    src = ctx.dataset("D3")
    res.bytes = datasets.total_bytes("D3", ctx.scale, ctx.seed)
    res.files = sum(1 for _ in datasets.layout("D3", ctx.scale, ctx.seed))
    tools = _select(ctx, res, "copy", {"dsl-api-NONE"})
    if not tools:
        return
    tool = tools[0]
    assert isinstance(tool, ApiTool)
    duration = 10.0 if ctx.scale >= 0.5 else 4.0
    procs = 2
    ctx.prepare(src)
    handle = tool.start(src, ctx.fresh_dst("lat"), "copy")
    server = tool.server
    assert server is not None and tool.last is not None
    req_file = ctx.workdir / "describe-request.json"

    def publish(arn: str) -> None:
        write_signed_request(req_file, server.endpoint, server.access_key, server.secret, arn)

    publish(tool.last.arn)
    transfers = 0
    with ProcessPoolExecutor(procs, mp_context=get_context("spawn")) as pool:
        futures = [
            pool.submit(poller_process, server.endpoint, str(req_file), pollers // procs, duration)
            for _ in range(procs)
        ]
        while True:
            out = handle.wait()
            transfers += 1
            if not out.ok:
                res.failures.setdefault(tool.key, []).append(out.detail)
                break
            if all(f.done() for f in futures):
                break
            handle = tool.start(src, ctx.fresh_dst("lat"), "copy")
            assert tool.last is not None
            publish(tool.last.arn)
        results = [f.result() for f in futures]
    ms = [x * 1000 for r in results for x in r["latencies"]]
    errors = [e for r in results for e in r["errors"]]
    n_errors = sum(r["error_count"] for r in results)
    if ms:
        p50, p99 = percentile(ms, 50), percentile(ms, 99)
        res.values[tool.key] = [p50, p99]
        res.extra.update(
            p50=p50,
            p99=p99,
            calls=len(ms),
            rate=len(ms) / duration,
            transfers=transfers,
            errors=n_errors,
        )
        ctx.log(
            f"  {len(ms)} DescribeTaskExecution calls ({len(ms) / duration:.0f}/s): p50 {p50:.1f} ms,"
            f" p99 {p99:.1f} ms, during {transfers} back-to-back D3 copies, {n_errors} errors"
        )
    if n_errors:
        res.failures.setdefault(tool.key, []).append(f"{n_errors} errors, e.g. {errors[0]}")
    res.notes.append(
        f"{pollers} closed-loop pollers ({procs} processes × {pollers // procs} threads, each "
        "with its own keep-alive connection) replay a SigV4-signed DescribeTaskExecution request "
        f"for {duration:.0f} s while full-speed D3 copies run back to back through the API; the "
        "pollers share the machine's 2 cores with the server and the transfer"
    )


# --- the catalogue ---------------------------------------------------------------------------

COPY_KEYS = {
    "dsl-sync-NONE",
    "dsl-sync-ONLY_FILES_TRANSFERRED",
    "dsl-api-NONE",
    "cp",
    "rsync",
    "rclone",
    "fpsync",
}
RESYNC_KEYS = {
    "dsl-sync-NONE",
    "dsl-sync-ONLY_FILES_TRANSFERRED",
    "dsl-api-NONE",
    "rsync",
    "rclone",
    "fpsync",
}
PITC_CACHE_KEYS = {
    "dsl-sync-POINT_IN_TIME_CONSISTENT",
    "dsl-sync-POINT_IN_TIME_CONSISTENT-cache",
    "rsync",
}
VERIFY_KEYS = {
    "dsl-sync-NONE",
    "dsl-sync-ONLY_FILES_TRANSFERRED",
    "dsl-sync-POINT_IN_TIME_CONSISTENT",
}


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    dataset: str
    unit: str
    run: Callable[[Context, ScenarioResult], None]


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in [
        Scenario(
            "d1-copy", "D1 copy (large files)", "D1", "s", lambda c, r: _copy(c, r, COPY_KEYS)
        ),
        Scenario(
            "d2-copy", "D2 copy (small files)", "D2", "s", lambda c, r: _copy(c, r, COPY_KEYS)
        ),
        Scenario(
            "d3-copy", "D3 copy (mixed sizes)", "D3", "s", lambda c, r: _copy(c, r, COPY_KEYS)
        ),
        Scenario("d2-noop", "D2 no-op re-sync", "D2", "s", lambda c, r: _noop(c, r, RESYNC_KEYS)),
        Scenario(
            "d2-changed",
            "D2 re-sync, 1% changed",
            "D2",
            "s",
            lambda c, r: _changed(c, r, RESYNC_KEYS),
        ),
        Scenario(
            "d3-changed-pitc",
            "D3 re-sync, 1% changed, POINT_IN_TIME_CONSISTENT with and without the hash cache",
            "D3",
            "s",
            lambda c, r: _changed_verified(c, r, PITC_CACHE_KEYS),
        ),
        Scenario(
            "verify-cost",
            "VerifyMode cost (D2 copy)",
            "D2",
            "s",
            lambda c, r: _copy(c, r, VERIFY_KEYS),
        ),
        Scenario("throttle", "T throttled copy (8 MiB/s)", "T", "s", _throttle),
        Scenario("rate-change", "Live rate change (UpdateTaskExecution)", "T", "s", _rate_change),
        Scenario(
            "d4-rss",
            "D4 no-op re-sync, peak RSS",
            "D4",
            "MiB",
            lambda c, r: _noop(c, r, RESYNC_KEYS),
        ),
        Scenario(
            "describe-latency",
            "DescribeTaskExecution under 50 pollers",
            "D3",
            "ms",
            _describe_latency,
        ),
        Scenario(
            "describe-openloop",
            "DescribeTaskExecution open loop, 200 and 500 req/s",
            "D3",
            "ms",
            cpbench.describe_openloop,
        ),
        Scenario("sign-cost", "CPU of one signed request", NO_DATASET, "µs", cpbench.sign_cost),
        Scenario("fleet", "Simulated agent fleet, 200 calls/s", NO_DATASET, "ms", cpbench.fleet),
    ]
}


def run_scenario(ctx: Context, name: str) -> ScenarioResult:
    sc = SCENARIOS[name]
    res = ScenarioResult(sc.name, sc.title, sc.dataset, sc.unit)
    t = time.monotonic()
    ctx.log(f"[{sc.name}] {sc.title}")
    for tool in ctx.tools:
        tool.reset()
    try:
        sc.run(ctx, res)
    except datasets.InsufficientDiskSpace:
        raise
    except Exception as exc:  # a scenario that breaks is reported, not hidden
        res.notes.append(f"scenario aborted: {type(exc).__name__}: {exc}")
        ctx.log(f"  aborted: {type(exc).__name__}: {exc}")
    finally:
        for tool in ctx.tools:
            tool.reset()
        ctx.cleanup()
    res.seconds = time.monotonic() - t
    return res
