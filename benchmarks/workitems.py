"""Work items (issue 12), measured once through a real server and real agent processes:

* **suspend latency**: a throttled copy is suspended with boto3 `deadline` UpdateJob; the
  destination's size (temporaries included) is polled every 20 ms: the time from the call to
  its last growth, and to the acknowledgement (no item running any more);
* **bytes re-copied on resume**, relative to the tree: TransferMode=ALL (so nothing is spared
  as unchanged, only by the journal): bytes of the files finished before the suspension that
  were written again (their inode changed), and bytes of the in-flight temporaries dropped;
* **the same for a takeover** after kill -9 of one of two agents (lease 3 s);
* **aggregate throttle accuracy** with 2 and 4 agents: the slope of the destination's size
  between 10% and 90% of the tree, over the execution's BytesPerSecond;
* **the cost of items on D2 and D3** through the API: a copy split into items against the same
  tree under one top-level directory (which runs as one item, as before items), alternating,
  fresh destination each run; the ratio of medians (wall, and CPU of agent + server).

    .venv/bin/python -m benchmarks.workitems [--scale 0.1] [--d3-scale 0.05] [--runs 3] [--out DIR]
        [--only d3_cost ...] [--cost-split-min FILES,BYTES]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from botocore.config import Config

from api.store import Store
from api.workitems import list_items
from benchmarks.datasets import generate
from contract.workitems import DEFAULT_SPLIT_MIN_BYTES, DEFAULT_SPLIT_MIN_FILES, ItemKind
from tests.agents.remote import AgentProcess, activate
from tests.api.harness import Server, wait_for

LEASE = 3.0
FILE = 256 * 1024
TERMINAL = ("SUCCESS", "ERROR")
STEPS = (
    "suspend_resume",
    "takeover",
    "throttle_2_agents",
    "throttle_4_agents",
    "d2_cost",
    "d3_cost",
)


def _tree(root: Path, dirs: int, files: int, size: int = FILE) -> int:
    """`dirs` top-level directories of `files` incompressible files; the total bytes."""
    block = os.urandom(size)
    total = 0
    for d in range(dirs):
        (root / f"d{d}").mkdir(parents=True, exist_ok=True)
        for f in range(files):
            data = block[f:] + block[:f]  # distinct contents, same size
            (root / f"d{d}" / f"f{f:03d}").write_bytes(data)
            total += len(data)
    return total


def _size(root: Path) -> int:
    total = 0
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except FileNotFoundError:
                continue
    return total


def _inodes(root: Path) -> dict[str, tuple[int, int]]:
    """rel → (inode, size) of the files under their real names."""
    out: dict[str, tuple[int, int]] = {}
    for p in root.rglob("*"):
        if p.is_file() and not p.name.startswith(".~dsl."):
            st = p.stat()
            out[str(p.relative_to(root))] = (st.st_ino, st.st_size)
    return out


class Sampler:
    """The destination's size every `interval` seconds, on a thread."""

    def __init__(self, root: Path, interval: float = 0.02) -> None:
        self.root, self.interval = root, interval
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.monotonic(), _size(self.root)))
            time.sleep(self.interval)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


class Bench:
    def __init__(self, base: Path, split_min: tuple[int, int] = (0, 0)) -> None:
        """`split_min`: the server's smallest split tree (files, bytes); the suspend, takeover
        and throttle trees are small, so they are split whatever their size (0, 0)."""
        self.base = base
        self.root = base / "root"
        self.root.mkdir(parents=True)
        self.server = Server(
            str(base / "data"),
            [],
            embedded_agent=False,
            agent_timeout=LEASE,
            split_min=split_min,
        ).start()
        self.agents: list[AgentProcess] = []
        self.arns: list[str] = []
        # one client each: making a boto3 client costs ~5 ms of this process's CPU (where the
        # server runs too), which polling every 25 ms would add to the measured runs
        self.ds = self.server.client()
        self.dl = self.server.client("deadline", config=Config(inject_host_prefix=False))

    @property
    def store(self) -> Store:
        assert self.server.served is not None
        store: Store = self.server.served.extras["backend"].store
        return store

    def agent(self, name: str, concurrency: int = 1) -> str:
        proc = AgentProcess(
            self.server.url, self.base / f"state-{name}", [self.root], name=name,
            concurrency=concurrency,
        )  # fmt: skip
        self.agents.append(proc)
        arn = activate(self.server, proc)
        self.arns.append(arn)
        return arn

    def task(self, src: Path, dst: Path, agents: list[str], **task: Any) -> str:
        ds = self.ds
        source, destination = (
            ds.create_location_nfs(
                ServerHostname="localhost",
                Subdirectory=str(path),
                OnPremConfig={"AgentArns": agents},
            )["LocationArn"]
            for path in (src, dst)
        )
        arn: str = ds.create_task(
            SourceLocationArn=source, DestinationLocationArn=destination, **task
        )["TaskArn"]
        return arn

    def finished(self, arn: str, timeout: float = 1800) -> dict[str, Any]:
        def done() -> dict[str, Any] | None:
            d: dict[str, Any] = self.ds.describe_task_execution(TaskExecutionArn=arn)
            return d if d["Status"] in TERMINAL else None

        result: dict[str, Any] = wait_for(done, timeout, 0.025)
        assert result["Status"] == "SUCCESS", result.get("Result")
        return result

    def job_ids(self, arn: str) -> dict[str, str]:
        dl = self.dl
        farm = dl.list_farms()["farms"][0]["farmId"]
        for queue in dl.list_queues(farmId=farm)["queues"]:
            ids = {"farmId": farm, "queueId": queue["queueId"]}
            for job in dl.list_jobs(**ids)["jobs"]:
                if job["name"] == arn:
                    return {**ids, "jobId": job["jobId"]}
        raise AssertionError(f"no Deadline job for {arn}")

    def planned(self, arn: str) -> None:
        def items() -> bool:
            return any(i.kind == ItemKind.TRANSFER for i in list_items(self.store, arn))

        wait_for(items, 60, 0.05)

    def none_running(self, arn: str) -> bool:
        return not any(i.running for i in list_items(self.store, arn) if i.kind != ItemKind.PREPARE)

    def stop(self) -> None:
        for agent in self.agents:
            agent.stop()
        self.agents, self.arns = [], []

    def close(self) -> None:
        self.stop()
        self.server.stop()


def _recopied(before: dict[str, tuple[int, int]], dst: Path) -> int:
    after = _inodes(dst)
    return sum(size for rel, (ino, size) in before.items() if after.get(rel, (ino, 0))[0] != ino)


def _dropped(samples: list[tuple[float, int]], since: float) -> int:
    """Bytes of temporaries dropped: the size's fall after `since` (it only grows otherwise)."""
    after = [s for t, s in samples if t >= since]
    if not after:
        return 0
    return max(0, max(after) - after[-1])


def suspend_resume(bench: Bench, rate: int) -> dict[str, Any]:
    src, dst = bench.root / "s-src", bench.root / "s-dst"
    total = _tree(src, dirs=4, files=24)
    agent = bench.agent("solo", concurrency=2)
    task = bench.task(
        src, dst, [agent],
        Options={"BytesPerSecond": rate, "TransferMode": "ALL", "VerifyMode": "NONE"},
    )  # fmt: skip
    arn = bench.ds.start_task_execution(TaskArn=task)["TaskExecutionArn"]
    bench.planned(arn)
    ids = bench.job_ids(arn)
    with Sampler(dst) as sampler:
        wait_for(lambda: _size(dst) >= total // 3, 300, 0.02)
        asked = time.monotonic()
        bench.dl.update_job(**ids, targetTaskRunStatus="SUSPENDED")
        wait_for(lambda: bench.none_running(arn), 30, 0.01)
        acknowledged = time.monotonic() - asked
        time.sleep(2.0)
    samples = list(sampler.samples)
    grew = [t for (t, s), (_, prev) in zip(samples[1:], samples, strict=False) if s > prev]
    last_growth = max([t for t in grew if t >= asked] or [asked]) - asked
    before = _inodes(dst)
    dropped = _dropped(samples, asked)
    bench.dl.update_job(**ids, targetTaskRunStatus="READY")
    bench.finished(arn)
    recopied = _recopied(before, dst)
    bench.stop()
    return {
        "tree_bytes": total,
        "rate": rate,
        "suspend_last_byte_s": round(last_growth, 3),
        "suspend_acknowledged_s": round(acknowledged, 3),
        "finished_at_suspend_bytes": sum(size for _, size in before.values()),
        "recopied_on_resume_ratio": recopied / total,
        "dropped_temporaries_ratio": dropped / total,
    }


def takeover(bench: Bench, rate: int) -> dict[str, Any]:
    src, dst = bench.root / "k-src", bench.root / "k-dst"
    total = _tree(src, dirs=6, files=4, size=1 << 20)  # big files: journaled as they finish
    agents = [bench.agent("stays"), bench.agent("dies")]
    task = bench.task(
        src, dst, agents,
        Options={"BytesPerSecond": rate, "TransferMode": "ALL", "VerifyMode": "NONE"},
    )  # fmt: skip
    arn = bench.ds.start_task_execution(TaskArn=task)["TaskExecutionArn"]

    def victim_mid_item() -> bool:
        return any(
            i.running and i.agent_arn == agents[1] and i.kind == ItemKind.TRANSFER
            for i in list_items(bench.store, arn)
        )

    with Sampler(dst) as sampler:
        wait_for(victim_mid_item, 120, 0.02)
        wait_for(lambda: _size(dst) >= total // 3, 300, 0.02)
        killed = time.monotonic()
        bench.agents[1].kill()
        before = _inodes(dst)
        done = bench.finished(arn)
    recopied = _recopied(before, dst)
    dropped = _dropped(sampler.samples, killed)
    taken = [i.index for i in list_items(bench.store, arn) if i.execution_number > 1]
    bench.stop()
    return {
        "tree_bytes": total,
        "items_taken_over": len(taken),
        "recopied_on_takeover_ratio": recopied / total,
        "dropped_temporaries_ratio": dropped / total,
        "FilesTransferred": done["FilesTransferred"],
        "files": 6 * 4,
    }


def _slope(samples: list[tuple[float, int]], total: int) -> float:
    """Least-squares bytes/s between 10% and 90% of `total`."""
    pts = [(t, s) for t, s in samples if 0.1 * total <= s <= 0.9 * total]
    if len(pts) < 3:
        return float("nan")
    mt = statistics.fmean(t for t, _ in pts)
    ms = statistics.fmean(s for _, s in pts)
    num = sum((t - mt) * (s - ms) for t, s in pts)
    den = sum((t - mt) ** 2 for t, _ in pts)
    return num / den if den else float("nan")


def throttle(bench: Bench, agents: int, rate: int) -> dict[str, Any]:
    src, dst = bench.root / f"t{agents}-src", bench.root / f"t{agents}-dst"
    seconds = 12
    files = max(4, rate * seconds // (FILE * 4 * agents))
    total = _tree(src, dirs=4 * agents, files=files)
    arns = [bench.agent(f"t{agents}-{i}") for i in range(agents)]
    task = bench.task(src, dst, arns, Options={"BytesPerSecond": rate, "VerifyMode": "NONE"})
    arn = bench.ds.start_task_execution(TaskArn=task)["TaskExecutionArn"]
    with Sampler(dst, interval=0.1) as sampler:
        bench.finished(arn)
    slope = _slope(sampler.samples, total)
    holders = {i.agent_arn for i in list_items(bench.store, arn) if i.kind == ItemKind.TRANSFER}
    bench.stop()
    return {
        "agents": agents,
        "rate": rate,
        "tree_bytes": total,
        "agents_that_ran_items": len(holders),
        "measured_bytes_per_second": round(slope),
        "accuracy": slope / rate,
    }


def _cpu(pid: int) -> float:
    """CPU seconds of process `pid` and its waited-for children (its listing helpers)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = sum(int(fields[i]) for i in (11, 12, 13, 14))  # utime stime cutime cstime
    return ticks / os.sysconf("SC_CLK_TCK")


def d2_cost(bench: Bench, scale: float, runs: int, dataset: str = "D2") -> dict[str, Any]:
    """The cost of items on `dataset` (D2, D3) against the same tree run as one item."""
    name = dataset.lower()
    split_src = bench.root / name
    files = generate(dataset, split_src, scale)
    whole_parent = bench.root / f"{name}-whole"
    whole_parent.mkdir()
    shutil.copytree(split_src, whole_parent / "only", symlinks=True)  # one entry: one item
    agent = bench.agent(name)
    proc = bench.agents[-1].proc
    assert proc is not None
    times: dict[str, list[float]] = {"split": [], "whole": []}
    # CPU of the agent and of this process (the server runs in it): less sensitive than wall
    # time to the other load of a shared machine
    cpu: dict[str, list[float]] = {"split": [], "whole": []}
    items: dict[str, int] = {}
    for i in range(runs):
        for kind, src in (("split", split_src), ("whole", whole_parent)):
            dst = bench.root / f"{name}-{kind}-{i}"
            task = bench.task(src, dst, [agent])
            start = time.perf_counter()
            cpu_start = _cpu(proc.pid) + time.process_time()
            arn = bench.ds.start_task_execution(TaskArn=task)["TaskExecutionArn"]
            bench.finished(arn)
            times[kind].append(time.perf_counter() - start)
            time.sleep(0.5)  # the agent's last report and helpers' exit
            cpu[kind].append(_cpu(proc.pid) + time.process_time() - cpu_start)
            items[kind] = len([x for x in list_items(bench.store, arn) if x.index > 0])
            shutil.rmtree(dst)
    bench.stop()
    split, whole = statistics.median(times["split"]), statistics.median(times["whole"])
    return {
        "dataset": dataset,
        "files": files,
        "scale": scale,
        "runs": runs,
        "items": items,
        "split_s": [round(t, 3) for t in times["split"]],
        "whole_s": [round(t, 3) for t in times["whole"]],
        "ratio_of_medians": split / whole,
        "cpu_split_s": [round(t, 3) for t in cpu["split"]],
        "cpu_whole_s": [round(t, 3) for t in cpu["whole"]],
        "cpu_ratio_of_medians": statistics.median(cpu["split"]) / statistics.median(cpu["whole"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", type=float, default=0.1, help="of D2 (1.0: 50,000 files)")
    parser.add_argument("--d3-scale", type=float, default=0.05, help="of D3 (1.0: 4.5 GB)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--rate", type=int, default=4 * 1024 * 1024)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument(
        "--cost-split-min",
        default=f"{DEFAULT_SPLIT_MIN_FILES},{DEFAULT_SPLIT_MIN_BYTES}",
        metavar="FILES,BYTES",
        help="the server's smallest split tree for d2_cost/d3_cost (default: serve's own; "
        "0,0 splits any tree, to see the cost per item)",
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=STEPS,
        help="run only this measurement (repeatable; default: all of them)",
    )
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="dsl-workitems-"))
    results: dict[str, Any] = {}
    files, size = (int(x) for x in args.cost_split_min.split(","))
    benches: dict[str, Bench] = {}

    def bench_for(step: str) -> Bench:
        kind = "cost" if step.endswith("_cost") else "items"
        if kind not in benches:
            split_min = (files, size) if kind == "cost" else (0, 0)
            benches[kind] = Bench(base / kind, split_min)
        return benches[kind]

    try:
        steps: list[tuple[str, Callable[[], dict[str, Any]]]] = [
            ("suspend_resume", lambda: suspend_resume(bench_for("items"), args.rate)),
            ("takeover", lambda: takeover(bench_for("items"), args.rate)),
            ("throttle_2_agents", lambda: throttle(bench_for("items"), 2, args.rate)),
            ("throttle_4_agents", lambda: throttle(bench_for("items"), 4, args.rate)),
            ("d2_cost", lambda: d2_cost(bench_for("d2_cost"), args.scale, args.runs)),
            ("d3_cost", lambda: d2_cost(bench_for("d3_cost"), args.d3_scale, args.runs, "D3")),
        ]
        for name, step in steps:
            if args.only and name not in args.only:
                continue
            results[name] = step()
            print(name, json.dumps(results[name]), flush=True)
    finally:
        for bench in benches.values():
            bench.close()
        shutil.rmtree(base, ignore_errors=True)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
