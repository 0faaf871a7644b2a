"""`python -m benchmarks run [--quick] [--scale F] [--repeat N] [--only SCENARIO...] ...`"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from benchmarks import datasets
from benchmarks.measure import can_drop_caches, remove_trees
from benchmarks.report import format_report, machine_info, plot
from benchmarks.scenarios import NO_DATASET, SCENARIOS, Context, ScenarioResult, run_scenario
from benchmarks.tools import Tool, all_tools, compile_ours, ensure_debian_packages

QUICK_SCALE = 0.05
DEFAULT_OUT = Path(__file__).resolve().parent / "results"
TOOL_PACKAGES = {"rsync": "rsync", "rclone": "rclone", "fpsync": "fpart"}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="generate the data sets, run the scenarios, write the report")
    r.add_argument("--quick", action="store_true", help=f"scale {QUICK_SCALE}: a few minutes")
    r.add_argument("--scale", type=float, help="shrink every data set by this factor (1 = full)")
    r.add_argument("--repeat", type=int, default=3, help="interleaved runs per tool (default 3)")
    r.add_argument(
        "--only", nargs="+", metavar="SCENARIO", choices=list(SCENARIOS), help="scenarios to run"
    )
    r.add_argument(
        "--tools",
        nargs="+",
        metavar="TOOL",
        help="tool keys or prefixes: dsl-sync, dsl-api, cp, rsync, rclone, fpsync (default: all)",
    )
    r.add_argument("--out", type=Path, default=DEFAULT_OUT, help="report directory")
    r.add_argument(
        "--workdir",
        type=Path,
        help="where the run's temporary directory goes (default: $TMPDIR or /tmp)",
    )
    r.add_argument("--keep", action="store_true", help="keep the work dir (data sets) afterwards")
    r.add_argument("--no-install", action="store_true", help="do not apt-get install missing peers")
    r.add_argument("--seed", type=int, default=datasets.DEFAULT_SEED)
    r.add_argument("--no-plots", action="store_true")
    r.add_argument(
        "--serve-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="add ARG to `serve` in the control-plane scenarios (repeatable, e.g. --serve-arg=-v)",
    )
    r.add_argument(
        "--store-url",
        help="PostgreSQL URL for the `serve --store` variants (env DATASYNC_LOCAL_BENCH_STORE)",
    )
    m = sub.add_parser(
        "report", help="re-render report.md and plots from results.json files (later ones win)"
    )
    m.add_argument("inputs", nargs="+", type=Path, metavar="RESULTS_JSON")
    m.add_argument("--out", type=Path, default=DEFAULT_OUT, help="report directory")
    return p


def load_results(paths: Sequence[Path]) -> tuple[dict[str, Any], dict[str, ScenarioResult]]:
    """Merge results.json files: scenarios of later files replace earlier ones."""
    meta: dict[str, Any] = {}
    results: dict[str, ScenarioResult] = {}
    runs: list[str] = []
    for path in paths:
        data = json.loads(path.read_text())
        run_meta = data["run"]
        runs.append(
            f"{run_meta['started']} UTC, scale {run_meta['scale']}, {run_meta['repeat']} "
            f"repeats: {', '.join(data['results'])} (`{run_meta['command']}`)"
        )
        tools = {**meta.get("tools", {}), **run_meta.get("tools", {})}
        seconds = meta.get("seconds", 0.0) + run_meta.get("seconds", 0.0)
        meta = {**meta, **run_meta, "tools": tools, "seconds": seconds}
        for name, d in data["results"].items():
            results[name] = ScenarioResult(**d)
    if len(runs) > 1:
        meta["runs"] = runs
    return meta, {n: results[n] for n in SCENARIOS if n in results}


def write_report(
    meta: dict[str, Any], results: dict[str, ScenarioResult], out: Path, plots: bool
) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    meta["plots"] = [str(p) for p in plot(results, out)] if plots else []
    path = out / "report.md"
    path.write_text(format_report(meta, results))
    return path


def report(args: argparse.Namespace) -> int:
    meta, results = load_results(args.inputs)
    path = write_report(meta, results, args.out, plots=True)
    (args.out / "results.json").write_text(
        json.dumps({"run": meta, "results": {k: asdict(v) for k, v in results.items()}}, indent=1)
        + "\n"
    )
    print(f"benchmarks: report in {path}")
    return 0


def _selected(tools: list[Tool], wanted: Sequence[str] | None) -> tuple[list[Tool], list[Tool]]:
    if not wanted:
        return tools, []
    keep = [t for t in tools if any(t.key == w or t.key.startswith(w) for w in wanted)]
    return keep, [t for t in tools if t not in keep]


def _disk_needed(names: Sequence[str], scale: float, repeat: int, n_tools: int, seed: int) -> int:
    sets = {SCENARIOS[n].dataset for n in names} - {NO_DATASET}
    per = {s: datasets.disk_bytes(s, scale, seed) for s in sets}
    largest = max(per.values(), default=0)
    copies = 3 if can_drop_caches() else repeat * max(1, n_tools) + 1
    return sum(per.values()) + largest * copies


def run(args: argparse.Namespace) -> int:
    scale = args.scale if args.scale is not None else (QUICK_SCALE if args.quick else 1.0)
    names = args.only or list(SCENARIOS)
    log = print
    started = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M")
    t0 = time.monotonic()

    install: dict[str, str] = {}
    if not args.no_install:
        wanted = [
            pkg
            for key, pkg in TOOL_PACKAGES.items()
            if not args.tools or any(key.startswith(w) or w == key for w in args.tools)
        ]
        install = ensure_debian_packages(["time", *wanted], log)
    compile_ours()

    # always a new directory of our own (inside --workdir when given): the only thing removed
    if args.workdir:
        args.workdir.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="dsl-bench-", dir=args.workdir)).resolve()
    tools, not_selected = _selected(all_tools(workdir, workdir), args.tools)
    try:
        datasets.check_free_space(
            workdir, _disk_needed(names, scale, args.repeat, len(tools), args.seed)
        )
    except datasets.InsufficientDiskSpace as exc:
        print(f"benchmarks: {exc}", file=sys.stderr)
        remove_trees([workdir])
        return 2

    log(f"benchmarks: scale {scale}, {args.repeat} repeats, work dir {workdir}")
    tool_status: dict[str, str] = {}
    for t in tools:
        why = t.unavailable()
        tool_status[t.label] = f"unavailable: {why}" if why else (t.version() or "available")
        log(f"  {t.label}: {tool_status[t.label]}")
    for t in not_selected:
        tool_status[t.label] = "not selected (--tools)"
    for pkg, st in install.items():
        if st != "present":
            tool_status[f"Debian package {pkg}"] = st

    ctx = Context(
        workdir=workdir,
        scale=scale,
        repeat=args.repeat,
        tools=tools,
        seed=args.seed,
        serve_args=args.serve_arg,
        store_url=args.store_url,
    )
    results: dict[str, ScenarioResult] = {}
    out: Path = args.out
    cmd = (
        "python -m benchmarks " + " ".join(sys.argv[1:]) if sys.argv[1:] else "python -m benchmarks"
    )
    meta: dict[str, Any] = {
        "started": started,
        "command": cmd,
        "scale": scale,
        "repeat": args.repeat,
        "seed": args.seed,
        "seconds": 0.0,
        "machine": machine_info(workdir.parent),
        "tools": tool_status,
        "cache": (
            "Source warm: re-read completely just before each timed run (page cache). "
            "Destinations: a fresh directory per run; "
            + (
                "previous destinations removed, then `sync; echo 1 > /proc/sys/vm/drop_caches`, "
                "before each run (root)."
                if can_drop_caches()
                else "previous destinations removed only at the end of each scenario (not root, "
                "so caches cannot be dropped)."
            )
        ),
        "plots": [],
    }

    def save() -> None:
        meta["seconds"] = time.monotonic() - t0
        out.mkdir(parents=True, exist_ok=True)
        (out / "results.json").write_text(
            json.dumps(
                {"run": meta, "results": {k: asdict(v) for k, v in results.items()}}, indent=1
            )
            + "\n"
        )

    code = 0
    try:
        for i, name in enumerate(names):
            results[name] = run_scenario(ctx, name)
            save()  # partial results survive an interrupted run
            later = {SCENARIOS[n].dataset for n in names[i + 1 :]}
            for ds in [d for d in ctx.generated if d not in later and not args.keep]:
                remove_trees([ctx.generated.pop(ds)])  # free the disk early
    except datasets.InsufficientDiskSpace as exc:
        print(f"benchmarks: {exc}", file=sys.stderr)
        code = 2
    finally:
        for t in tools:
            t.close()
    if results:
        path = write_report(meta, results, out, plots=not args.no_plots)
        save()
        log(f"benchmarks: report in {path} ({time.monotonic() - t0:.0f} s)")
    if not args.keep:
        remove_trees([workdir])
    return code


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "run":
        return run(args)
    if args.command == "report":
        return report(args)
    return 2  # pragma: no cover


if __name__ == "__main__":
    sys.exit(main())
