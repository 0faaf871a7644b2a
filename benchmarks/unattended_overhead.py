"""Log and report overhead (issue 13): one D2 copy through a real server with LogLevel OFF and no
task report, against the same copy with LogLevel TRANSFER and a STANDARD report at
SUCCESSES_AND_ERRORS, alternating (each round in a rotated order), fresh destination each run.
Prints the ratio of medians of the wall time, of the process's CPU time (user + system, every
thread: the server, the embedded agent and the engine share this process) and of its user time
alone, and the ratio of the least of each (on a loaded machine the least run is the one other
work disturbed least). The CPU ratio is the steadier on a shared machine, where other work
stretches the wall time of whichever run it meets; the user time is what logs and reports add
(Python), where the system time also carries the file system's moods.

Two traps of this machine (shared/BENCHMARKS.md) are kept out: each run copies into a fresh
destination and every destination is removed only at the end (a create right after an
`rm -rf` pays for the deleted inodes, in wall and in system time), and the source is re-read
before each run (a reclaim daemon evicts page cache idle for ~30 s). The benchmark's own
polling (boto3 DescribeTaskExecution every 50 ms, on the main thread) is left out of the CPU:
its client side is that thread's CPU time, subtracted.

    .venv/bin/python -m benchmarks.unattended_overhead [--scale 0.2] [--runs 3] [--kinds logged]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.datasets import generate
from tests.api.harness import Server, nfs_task, wait_for


def _warm(tree: Path) -> None:
    """Read every file of `tree` (into the page cache, as `find -exec cat` would)."""
    for directory, _, names in os.walk(tree):
        for name in names:
            with open(os.path.join(directory, name), "rb") as fh:
                while fh.read(1 << 20):
                    pass


def _run(ds: Any, task: str) -> tuple[float, float, float]:
    """(wall seconds, CPU seconds, user seconds) of this process from StartTaskExecution to
    SUCCESS, less the CPU of this thread (the polling client)."""
    before, mine = os.times(), time.thread_time()
    start = time.perf_counter()
    arn = ds.start_task_execution(TaskArn=task)["TaskExecutionArn"]
    final = wait_for(
        lambda: (
            (d := ds.describe_task_execution(TaskExecutionArn=arn))["Status"]
            in ("SUCCESS", "ERROR")
            and d
        ),
        1800,
        0.05,
    )
    elapsed = time.perf_counter() - start
    after, polling = os.times(), time.thread_time() - mine
    user = after.user - before.user - polling  # the polling is nearly all user time
    used = user + after.system - before.system
    assert final["Status"] == "SUCCESS", final["Result"]
    return elapsed, used, user


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", type=float, default=0.2)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--kinds",
        default="plain,logs,report,logged",
        help="which runs, comma-separated (plain is always one: the ratios are to it)",
    )
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="dsl-unattended-"))
    try:
        root, bucket = base / "root", base / "bucket"
        root.mkdir()
        bucket.mkdir()
        files = generate("D2", root / "src", args.scale)
        server = Server(str(base / "data"), [str(root)], buckets={"reports": str(bucket)}).start()
        try:
            ds = server.client()
            report = {
                "Destination": {
                    "S3": {
                        "S3BucketArn": "arn:aws:s3:::reports",
                        "BucketAccessRoleArn": "arn:aws:iam::111122223333:role/r",
                    }
                },
                "OutputType": "STANDARD",
                "ReportLevel": "SUCCESSES_AND_ERRORS",
            }
            kinds: dict[str, dict[str, Any]] = {
                "plain": {"Options": {"LogLevel": "OFF"}},
                "logs": {"Options": {"LogLevel": "TRANSFER"}},
                "report": {"Options": {"LogLevel": "OFF"}, "TaskReportConfig": report},
                "logged": {"Options": {"LogLevel": "TRANSFER"}, "TaskReportConfig": report},
            }
            wanted = {"plain", *args.kinds.split(",")}
            kinds = {k: v for k, v in kinds.items() if k in wanted}
            times: dict[str, list[float]] = {k: [] for k in kinds}
            cpus: dict[str, list[float]] = {k: [] for k in kinds}
            users: dict[str, list[float]] = {k: [] for k in kinds}
            order = list(kinds)
            for i in range(args.runs):
                # each round starts one kind later, so no kind always runs first or last
                for kind in order[i % len(order) :] + order[: i % len(order)]:
                    extra = kinds[kind]
                    dst = root / f"dst-{kind}-{i}"
                    _, _, task = nfs_task(ds, server.agent_arn, root / "src", dst, **extra)
                    _warm(root / "src")
                    wall, cpu, user = _run(ds, task)
                    times[kind].append(wall)
                    cpus[kind].append(cpu)
                    users[kind].append(user)
        finally:
            server.stop()
        print(
            f"D2 x{args.scale}: {files} files, {args.runs} runs each "
            "(median and least, each as a ratio to plain's; every run in brackets)"
        )
        for label, table in (("wall", times), ("cpu", cpus), ("user", users)):
            plain, least = statistics.median(table["plain"]), min(table["plain"])
            for kind, runs in table.items():
                median = statistics.median(runs)
                shown = ", ".join(f"{t:.2f}" for t in runs)
                print(
                    f"  {label:4s} {kind:8s} {median:6.2f} s {median / plain:5.2f}x  "
                    f"least {min(runs):6.2f} s {min(runs) / least:5.2f}x  [{shown}]"
                )
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
