"""The report: machine facts, medians, ratios against each peer, targets, and plots."""

from __future__ import annotations

import os
import platform
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.measure import Spread, spread
from benchmarks.scenarios import ScenarioResult

__all__ = [
    "PEERS",
    "TARGETS",
    "TargetRow",
    "evaluate_targets",
    "format_report",
    "machine_info",
    "median_of",
    "parse_markdown_table",
    "plot",
    "ratio_table",
]

MIB = 1024 * 1024
PEERS = ["cp", "rsync", "rclone", "fpsync"]
PEER_LABELS = {"cp": "cp -a", "rsync": "rsync -a", "rclone": "rclone", "fpsync": "fpsync"}
Results = Mapping[str, ScenarioResult]


# --- machine ---------------------------------------------------------------------------------


def _first(cmd: Sequence[str]) -> str:
    try:
        out = subprocess.run(list(cmd), capture_output=True, text=True, check=False, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return out.stdout.strip().splitlines()[-1] if out.stdout.strip() else ""


def machine_info(workdir: Path) -> dict[str, str]:
    mem = ""
    cpu = ""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    fs = _first(["findmnt", "-n", "-o", "FSTYPE,SOURCE,OPTIONS", "-T", str(workdir)])
    return {
        "cores": str(os.cpu_count()),
        "cpu": cpu,
        "memory": mem,
        "kernel": f"{platform.system()} {platform.release()}",
        "filesystem": f"{fs} (work dir {workdir})" if fs else str(workdir),
        "python": platform.python_version(),
        "load average (1/5/15 min) when the run started": " / ".join(
            f"{x:.2f}" for x in os.getloadavg()
        ),
    }


# --- numbers ---------------------------------------------------------------------------------


def median_of(res: ScenarioResult | None, key: str) -> float | None:
    if res is None:
        return None
    vals = res.values.get(key)
    return spread(vals).median if vals else None


def ratio_table(results: Results) -> list[dict[str, str]]:
    """One row per (scenario, our tool): our median / each peer's median."""
    rows: list[dict[str, str]] = []
    for res in results.values():
        if res.unit != "s":
            continue
        peers = [p for p in PEERS if p in res.labels]
        if not peers:
            continue
        for ours in res.ours:
            m = median_of(res, ours)
            if m is None:
                continue
            row = {"scenario": res.title, "datasync-local": res.labels[ours]}
            for p in PEERS:
                pm = median_of(res, p)
                if p not in res.labels:
                    row[PEER_LABELS[p]] = "—"
                elif pm is None or pm == 0:
                    row[PEER_LABELS[p]] = "n/a"
                else:
                    row[PEER_LABELS[p]] = f"{m / pm:.2f}×"
            rows.append(row)
    return rows


# --- targets ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class TargetRow:
    case: str
    must: str
    goal: str
    measured: str
    must_ok: bool | None  # None: not measured
    goal_ok: bool | None


Evaluator = Callable[[Results], tuple[str, float | None]]


def _why(res: ScenarioResult, key: str) -> str:
    if key not in res.labels:
        return f"{key} not selected or not applicable"
    why = res.skipped.get(key) or "; ".join(res.failures.get(key, [])[:1]) or "no data"
    return f"{res.labels[key]}: {why[:160]}"


def _ratio(scenario: str, ours: str, ref: str) -> Evaluator:
    def ev(results: Results) -> tuple[str, float | None]:
        res = results.get(scenario)
        if res is None:
            return "not run", None
        a, b = median_of(res, ours), median_of(res, ref)
        for key, val in ((ours, a), (ref, b)):
            if val is None:
                return f"not measured ({_why(res, key)})", None
        assert a is not None and b is not None
        r = a / b
        return f"{r:.3f}× ({a:.3f} s vs {b:.3f} s)", r

    return ev


def _absolute(
    scenario: str, key: str, pick: Callable[[ScenarioResult], float | None], fmt: str
) -> Evaluator:
    def ev(results: Results) -> tuple[str, float | None]:
        res = results.get(scenario)
        if res is None:
            return "not run", None
        v = pick(res)
        if v is None:
            return f"not measured ({_why(res, key)})", None
        return fmt.format(v), v

    return ev


def _rss_mb(res: ScenarioResult) -> float | None:
    m = median_of(res, "dsl-sync-NONE")
    return None if m is None else m * MIB / 1e6


def _p99(res: ScenarioResult) -> float | None:
    v = res.extra.get("p99")
    return float(v) if v is not None else None


def _throttle_worst(res: ScenarioResult, key: str) -> tuple[float, float] | None:
    runs = res.extra.get("analyses", {}).get(key)
    if not runs:
        return None
    err = spread([r["error_pct"] for r in runs]).median
    ahead = max(r["max_ahead"] for r in runs)
    return err, ahead


@dataclass(frozen=True)
class Target:
    case: str
    must: str
    goal: str
    evaluate: Evaluator
    must_ok: Callable[[float], bool]
    goal_ok: Callable[[float], bool]


def _throttle_target(key: str, label: str) -> list[Target]:
    def ev_err(results: Results) -> tuple[str, float | None]:
        res = results.get("throttle")
        if res is None:
            return "not run", None
        w = _throttle_worst(res, key)
        if w is None:
            return f"not measured ({_why(res, key)})", None
        return f"{w[0]:+.2f}% (median elapsed vs ideal)", abs(w[0])

    def ev_ahead(results: Results) -> tuple[str, float | None]:
        res = results.get("throttle")
        if res is None:
            return "not run", None
        w = _throttle_worst(res, key)
        if w is None:
            return "not measured", None
        return f"{w[1] / MIB:.2f} MiB (worst run)", w[1] / MIB

    return [
        Target(
            f"T throttle, elapsed ({label})",
            "within ±2%",
            "±1%",
            ev_err,
            lambda v: v <= 2,
            lambda v: v <= 1,
        ),
        Target(
            f"T throttle, ahead of ideal ({label})",
            "≤ 1 MiB",
            "≤ 0.25 MiB",
            ev_ahead,
            lambda v: v <= 1,
            lambda v: v <= 0.25,
        ),
    ]


def _le(x: float) -> Callable[[float], bool]:
    return lambda v: v <= x


def _lt(x: float) -> Callable[[float], bool]:
    return lambda v: v < x


TARGETS: list[Target] = [
    Target("D1 copy, VerifyMode NONE", "≤ 1.10× cp -a", "≤ 1.0× cp -a",
           _ratio("d1-copy", "dsl-sync-NONE", "cp"), _le(1.10), _le(1.0)),
    Target("D1 copy, ONLY_FILES_TRANSFERRED", "≤ 0.6× rsync -a", "≤ 0.5× rsync -a",
           _ratio("d1-copy", "dsl-sync-ONLY_FILES_TRANSFERRED", "rsync"), _le(0.6), _le(0.5)),
    Target("D2 copy, full metadata (NONE) vs rsync", "≤ 1.0× rsync -a", "—",
           _ratio("d2-copy", "dsl-sync-NONE", "rsync"), _le(1.0), _le(1.0)),
    Target("D2 copy, full metadata (NONE) vs cp", "—", "≤ 1.1× cp -a",
           _ratio("d2-copy", "dsl-sync-NONE", "cp"), lambda v: True, _le(1.1)),
    Target("D3 copy (NONE) vs rsync", "≤ 0.6× rsync -a", "—",
           _ratio("d3-copy", "dsl-sync-NONE", "rsync"), _le(0.6), _le(0.6)),
    Target("D3 copy (NONE) vs cp", "—", "≤ 1.1× cp -a",
           _ratio("d3-copy", "dsl-sync-NONE", "cp"), lambda v: True, _le(1.1)),
    Target("D2 no-op re-sync", "≤ 1.5× rsync -a", "≤ 1.0× rsync -a",
           _ratio("d2-noop", "dsl-sync-NONE", "rsync"), _le(1.5), _le(1.0)),
    Target("D4 no-op re-sync, peak RSS (engine)", "< 250 MB", "< 100 MB",
           _absolute("d4-rss", "dsl-sync-NONE", _rss_mb, "{:.0f} MB"), _lt(250), _lt(100)),
    *_throttle_target("dsl-sync-NONE", "engine"),
    *_throttle_target("dsl-api-NONE", "API"),
    Target("live rate change (UpdateTaskExecution)", "≤ 1 s", "≤ 0.25 s",
           _absolute("rate-change", "dsl-api-NONE", lambda r: median_of(r, "dsl-api-NONE"),
                     "{:.2f} s (median)"), _le(1.0), _le(0.25)),
    Target("DescribeTaskExecution p99 under 50 pollers", "< 100 ms", "< 20 ms",
           _absolute("describe-latency", "dsl-api-NONE", _p99, "{:.1f} ms"), _lt(100), _lt(20)),
    Target("end to end through the API, D2", "≤ 1.2× engine alone", "≤ 1.05×",
           _ratio("d2-copy", "dsl-api-NONE", "dsl-sync-NONE"), _le(1.2), _le(1.05)),
]  # fmt: skip


def evaluate_targets(results: Results, targets: Sequence[Target] = TARGETS) -> list[TargetRow]:
    rows: list[TargetRow] = []
    for t in targets:
        text, value = t.evaluate(results)
        if value is None:
            rows.append(TargetRow(t.case, t.must, t.goal, text, None, None))
        else:
            must = t.must_ok(value) if t.must != "—" else None
            goal = t.goal_ok(value) if t.goal != "—" else None
            rows.append(TargetRow(t.case, t.must, t.goal, text, must, goal))
    return rows


def _verdict(ok: bool | None, text: str) -> str:
    if text == "—":
        return "—"
    if ok is None:
        return "not measured"
    return "PASS" if ok else "**FAIL**"


# --- Markdown --------------------------------------------------------------------------------


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    def clean(s: str) -> str:
        return s.replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(clean(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def parse_markdown_table(text: str, column: str) -> list[dict[str, str]]:
    """Read back the first table with a column named `column` (for tests and tools)."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        cells = _cells(line)
        if column in cells and i + 1 < len(lines) and lines[i + 1].startswith("|---"):
            header = cells
            rows = []
            for body in lines[i + 2 :]:
                if not body.startswith("|"):
                    break
                rows.append(dict(zip(header, _cells(body), strict=False)))
            return rows
    raise KeyError(f"no table with a column {column!r}")


def _cells(line: str) -> list[str]:
    line = line.strip()
    if not (line.startswith("|") and line.endswith("|")):
        return []
    parts: list[str] = []
    cur = ""
    i = 1
    while i < len(line) - 1:
        ch = line[i]
        if ch == "\\" and i + 1 < len(line) - 1 and line[i + 1] == "|":
            cur += "|"
            i += 2
            continue
        if ch == "|":
            parts.append(cur.strip())
            cur = ""
        else:
            cur += ch
        i += 1
    parts.append(cur.strip())
    return parts


def _fmt(v: float, unit: str) -> str:
    if unit == "s":
        return f"{v:.3f}"
    return f"{v:.1f}"


def _medians_rows(results: Results) -> list[list[str]]:
    rows: list[list[str]] = []
    for res in results.values():
        for key, label in res.labels.items():
            vals = res.values.get(key)
            if key in res.skipped:
                rows.append([res.title, label, f"unavailable: {res.skipped[key]}", "", "", ""])
                continue
            fails = res.failures.get(key, [])
            if not vals:
                why = fails[0] if fails else "no data"
                rows.append([res.title, label, f"failed: {why[:200]}", "", "", ""])
                continue
            s: Spread = spread(vals)
            if res.name == "describe-latency":
                rows.append([res.title, label, f"p50 {vals[0]:.1f} ms, p99 {vals[1]:.1f} ms",
                             "", str(res.extra.get("calls", "")), ""])  # fmt: skip
                continue
            rng = f"{_fmt(s.low, res.unit)}–{_fmt(s.high, res.unit)}"
            thr = ""
            if res.unit == "s" and res.name.endswith("-copy") and s.median > 0:
                thr = f"{res.bytes / s.median / 1e6:.0f} MB/s, {res.files / s.median:.0f} files/s"
            secs = res.extra.get("seconds", {}).get(key) if res.unit == "MiB" else None
            if secs:
                thr = f"the no-op took {spread(secs).median:.2f} s (median)"
            note = f"{len(fails)} failed run(s): {fails[0][:120]}" if fails else ""
            rows.append([res.title, label, f"{_fmt(s.median, res.unit)} {res.unit}", rng,
                         f"{s.n}", thr + ("; " if thr and note else "") + note])  # fmt: skip
    return rows


def format_report(run: Mapping[str, Any], results: Results) -> str:
    out: list[str] = []
    out.append("# datasync-local benchmark report\n")
    if run.get("runs"):
        out.append("Merged from several runs (each scenario from the last run that had it):\n")
        out += [f"- {r}" for r in run["runs"]]
        out.append("\nData sets and targets: BENCHMARKS.md.\n")
    else:
        out.append(
            f"Run at {run.get('started', '')} UTC, `{run.get('command', '')}`: scale "
            f"{run.get('scale')}, {run.get('repeat')} interleaved repeats, total "
            f"{run.get('seconds', 0):.0f} s. Data sets and targets: BENCHMARKS.md.\n"
        )
    out.append("## Machine\n")
    out.append(_table(["what", "value"], [[k, v] for k, v in run.get("machine", {}).items()]))
    out.append("\n## Tools\n")
    out.append(
        _table(["tool", "version / status"], [[k, v] for k, v in run.get("tools", {}).items()])
    )
    out.append("\n## Cache state and method\n")
    out.append(str(run.get("cache", "")) + "\n")
    for res in results.values():
        if res.notes:
            out.append(f"- **{res.title}**: " + " ".join(res.notes))
    out.append("\n## Data sets at this scale\n")
    out.append(_table(
        ["scenario", "data set", "files", "bytes", "scenario wall time"],
        [[r.title, r.dataset, str(r.files), f"{r.bytes / 1e6:.1f} MB", f"{r.seconds:.0f} s"]
         for r in results.values()],
    ))  # fmt: skip
    out.append("\n## Medians (min–max over interleaved runs)\n")
    out.append(_table(["scenario", "tool", "median", "min–max", "runs", "throughput / notes"],
                      _medians_rows(results)))  # fmt: skip
    ratios = ratio_table(results)
    out.append("\n## Ratios against each peer (our median / peer median; < 1 is faster)\n")
    if ratios:
        header = ["scenario", "datasync-local", *[PEER_LABELS[p] for p in PEERS]]
        out.append(_table(header, [[r[h] for h in header] for r in ratios]))
    else:
        out.append(
            "No ratio could be computed (no datasync-local run and peer run in one scenario)."
        )
    thr = results.get("throttle")
    if thr and thr.extra.get("analyses"):
        out.append("\n## Throttle accuracy (T, 8 MiB/s)\n")
        rows = []
        for key, runs in thr.extra["analyses"].items():
            rows.append([
                thr.labels[key],
                f"{runs[0]['ideal']:.2f} s",
                f"{spread([r['elapsed'] for r in runs]).median:.2f} s",
                f"{spread([r['error_pct'] for r in runs]).median:+.2f}%",
                f"{max(r['max_ahead'] for r in runs) / MIB:.2f} MiB",
                f"{spread([r['wall'] for r in runs]).median:.2f} s",
            ])  # fmt: skip
        out.append(_table(["tool", "ideal", "elapsed (median)", "error", "max ahead (worst)",
                           "wall incl. start-up"], rows))  # fmt: skip
    for res in results.values():  # scenarios that bring their own tables (benchmarks.cpbench)
        for table in res.extra.get("tables", []):
            out.append(f"\n## {table['title']}\n")
            out.append(_table(table["header"], table["rows"]))
    out.append("\n## Targets (BENCHMARKS.md)\n")
    trows = evaluate_targets(results)
    out.append(_table(
        ["case", "measured", "must", "must?", "goal", "goal?"],
        [[t.case, t.measured, t.must, _verdict(t.must_ok, t.must), t.goal, _verdict(t.goal_ok, t.goal)]
         for t in trows],
    ))  # fmt: skip
    plots = run.get("plots", [])
    if plots:
        out.append("\n## Plots\n")
        out += [f"![{Path(p).stem}]({Path(p).name})" for p in plots]
    return "\n".join(out) + "\n"


# --- plots -----------------------------------------------------------------------------------


def plot(results: Results, out_dir: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    made: list[Path] = []

    def save(fig: Any, name: str) -> None:
        fig.tight_layout()
        path = out_dir / name
        fig.savefig(path, dpi=90)
        plt.close(fig)
        made.append(path)

    copies = [r for r in results.values() if r.name.endswith("-copy") and r.values]
    if copies:
        fig, axes = plt.subplots(1, len(copies), figsize=(5 * len(copies), 4.5), squeeze=False)
        for ax, res in zip(axes[0], copies, strict=True):
            keys = [k for k in res.labels if res.values.get(k)]
            meds = [res.bytes / spread(res.values[k]).median / 1e6 for k in keys]
            colors = ["tab:blue" if k in res.ours else "tab:gray" for k in keys]
            ax.barh([res.labels[k] for k in keys], meds, color=colors)
            ax.set_title(f"{res.title}\n{res.files} files, {res.bytes / 1e6:.0f} MB")
            ax.set_xlabel("MB/s (median)")
            ax.invert_yaxis()
        save(fig, "throughput.png")
    thr = results.get("throttle")
    if thr and thr.extra.get("series"):
        fig, (ax, ax2) = plt.subplots(
            2, 1, figsize=(8, 7), sharex=True, gridspec_kw={"height_ratios": [2, 1]}
        )
        rate = thr.extra["rate"]
        tmax = 0.0
        for key, series in thr.extra["series"].items():
            xs = [t for t, _ in series if t >= -0.5]
            ys = [b / MIB for t, b in series if t >= -0.5]
            ax.plot(xs, ys, label=thr.labels[key], drawstyle="steps-post")
            ahead = [(min(b, thr.bytes) - rate * max(t, 0.0)) / MIB for t, b in series if t >= -0.5]
            ax2.plot(xs, ahead, label=thr.labels[key])
            tmax = max(tmax, max(xs, default=0.0))
        ax2.axhline(0, color="k", ls="--", lw=1)
        ax2.axhline(1, color="tab:red", ls=":", lw=1, label="must: ≤ 1 MiB ahead")
        ax2.set_ylabel("MiB ahead of ideal")
        ax2.set_xlabel("seconds since data started to flow")
        ax2.grid(alpha=0.3)
        ax2.legend(fontsize="small")
        ideal_t = thr.bytes / rate
        ax.plot([0, ideal_t], [0, thr.bytes / MIB], "k--", label=f"ideal {rate / MIB:.0f} MiB/s")
        ax.set_ylabel("MiB in destination")
        ax.set_title("Throttled copy of T: bytes over time (100 ms samples)")
        ax.set_xlim(-0.5, max(tmax, ideal_t) + 0.5)
        ax.legend()
        ax.grid(alpha=0.3)
        save(fig, "throttle.png")
    rc = results.get("rate-change")
    if rc and rc.extra.get("series"):
        fig, ax = plt.subplots(figsize=(8, 4.5))
        for key, series in rc.extra["series"].items():
            ax.plot([t for t, _ in series], [b / MIB for _, b in series], label=rc.labels[key])
        ax.axvline(rc.extra.get("t_update", 0.0), color="k", ls="--", label="UpdateTaskExecution")
        ax.set_xlabel("seconds")
        ax.set_ylabel("MiB in destination")
        ax.set_title("Live rate change 2 → 8 MiB/s")
        ax.legend()
        ax.grid(alpha=0.3)
        save(fig, "rate-change.png")
    return made
