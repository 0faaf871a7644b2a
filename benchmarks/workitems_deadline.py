"""The Deadline routes over an execution of many work items (issue 12): how long GetJob,
GetStep, GetTask, ListTasks (one page) and UpdateTask take through a real server and a real
boto3 `deadline` client, when the execution has `--items` items.

The plan is written with the store's own `add_items` (the rows a plan upload makes), for an
execution whose agent never polls, so nothing but the measured calls touches it. Each call is
made `--runs` times; the median and the best are reported in milliseconds, with the CPU time
of this process (the server runs in it) per call.

    .venv/bin/python -m benchmarks.workitems_deadline [--items 10000] [--runs 7] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from botocore.config import Config

from api.store import Store
from api.workitems import ItemStatus, new_row
from contract.workitems import ItemKind, ItemScope
from tests.api.harness import Server, location_root, nfs_task


def _timed(call: Callable[[], Any], runs: int) -> dict[str, float]:
    walls: list[float] = []
    cpus: list[float] = []
    for _ in range(runs):
        cpu = time.process_time()
        start = time.perf_counter()
        call()
        walls.append(time.perf_counter() - start)
        cpus.append(time.process_time() - cpu)
    return {
        "median_ms": round(1000 * statistics.median(walls), 2),
        "best_ms": round(1000 * min(walls), 2),
        "cpu_median_ms": round(1000 * statistics.median(cpus), 2),
    }


def measure(items: int, runs: int) -> dict[str, Any]:
    base = Path(tempfile.mkdtemp(prefix="dsl-deadline-"))
    server = Server(str(base / "data"), [], embedded_agent=False).start()
    try:
        root = location_root(base)
        url = f"{server.url}/agent-activation"
        pending = httpx.post(url, json={"Name": "never-polls", "Roots": [str(root)]}).json()
        ds = server.client()
        agent = ds.create_agent(ActivationKey=pending["ActivationKey"])["AgentArn"]
        _, _, task = nfs_task(ds, agent, root / "src", root / "dst")
        arn = ds.start_task_execution(TaskArn=task)["TaskExecutionArn"]
        assert server.served is not None
        store: Store = server.served.extras["backend"].store
        now = time.time()
        rows = [new_row(arn, 0, ItemKind.PREPARE, None, ItemStatus("SUCCEEDED"), now)]
        for index in range(1, items + 1):
            scope = ItemScope(f"d{index:05d}", True, 1, 10)
            rows.append(new_row(arn, index, ItemKind.TRANSFER, scope, ItemStatus("READY"), now))
        assert store.add_items(rows)
        dl = server.client("deadline", config=Config(inject_host_prefix=False))
        farm = dl.list_farms()["farms"][0]["farmId"]
        ids = {"farmId": farm, "queueId": dl.list_queues(farmId=farm)["queues"][0]["queueId"]}
        ids["jobId"] = dl.list_jobs(**ids)["jobs"][0]["jobId"]
        steps = {s["name"]: s["stepId"] for s in dl.list_steps(**ids)["steps"]}
        step = {**ids, "stepId": steps["Transfer"]}
        middle = f"task-{steps['Transfer'][5:]}-{items // 2}"
        flips = iter(["SUSPENDED", "READY"] * runs)
        out: dict[str, Any] = {"items": items, "runs": runs}
        out["GetJob"] = _timed(lambda: dl.get_job(**ids), runs)
        out["GetStep"] = _timed(lambda: dl.get_step(**step), runs)
        out["ListSteps"] = _timed(lambda: dl.list_steps(**ids), runs)
        out["GetTask"] = _timed(lambda: dl.get_task(**step, taskId=middle), runs)
        out["ListTasks_page"] = _timed(lambda: dl.list_tasks(**step, maxResults=100), runs)
        out["UpdateTask"] = _timed(
            lambda: dl.update_task(**step, taskId=middle, targetRunStatus=next(flips)), runs
        )
        return out
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    result = measure(args.items, args.runs)
    print(json.dumps(result), flush=True)
    if args.out is not None:
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
