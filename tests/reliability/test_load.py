"""Load: 200 concurrent signed clients (threads, httpx keep-alive, botocore SigV4) mixing
DescribeTaskExecution / ListTasks / ListTaskExecutions / StartTaskExecution /
UpdateTaskExecution against a real `serve` process while its embedded agent copies trees.

Invariants: zero 5xx and zero transport errors; every 4xx is in the DataSync error shape and one
the mix provokes on purpose (an execution already running, an update of a finished one); no lost
execution (every started execution is listed by ListTaskExecutions and ends SUCCESS); every client
is served from the start (its first answer within 5 s: no connection starved); server RSS
(/proc/<pid>/status) at the end is below 1.5x its value after warm-up. p50/p99 latency, request
count and RSS are printed.

Bounded: `DSL_LOAD_SECONDS` (default 20 for `make test`; 60 for the full issue-6 figure) and
`DSL_LOAD_CLIENTS` (default 200).
"""

from __future__ import annotations

import collections
import http.client
import json
import os
import random
import statistics
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.harness import make_tree, nfs_task, wait_for
from tests.reliability.proc import ServeProcess
from tests.reliability.wire import check_error_shape, datasync_headers

SECONDS = float(os.environ.get("DSL_LOAD_SECONDS", "20"))
CLIENTS = int(os.environ.get("DSL_LOAD_CLIENTS", "200"))
TASKS = 10
EXPECTED_4XX = {"TaskExecutionAlreadyRunning", "InvalidExecutionStatus"}
MIX = [
    ("DescribeTaskExecution", 40),
    ("ListTasks", 12),
    ("ListTaskExecutions", 12),
    ("StartTaskExecution", 12),
    ("UpdateTaskExecution", 24),
]


class Load:
    def __init__(self, url: str, port: int, tasks: list[str], executions: list[str]) -> None:
        self.url = url
        self.port = port
        self.signatures: dict[tuple[str, bytes], dict[str, str]] = {}
        self.firsts: list[float] = []  # each client's first request, connection included
        self.tasks = tasks
        self.executions = executions  # appended to by StartTaskExecution (list.append is atomic)
        self.lock = threading.Lock()
        self.latencies: list[float] = []
        self.statuses: collections.Counter[str] = collections.Counter()
        self.problems: list[str] = []
        self.stop_at = 0.0

    def body(self, op: str, rng: random.Random) -> dict[str, Any]:
        if op == "DescribeTaskExecution":
            return {"TaskExecutionArn": rng.choice(self.executions)}
        if op == "ListTasks":
            return {"MaxResults": rng.choice([10, 100])}
        if op == "ListTaskExecutions":
            return {"TaskArn": rng.choice(self.tasks)} if rng.random() < 0.7 else {}
        if op == "StartTaskExecution":
            return {"TaskArn": rng.choice(self.tasks)}
        return {
            "TaskExecutionArn": rng.choice(self.executions[-TASKS * 2 :]),
            "Options": {"BytesPerSecond": rng.choice([1 << 20, 4 << 20, 16 << 20, -1])},
        }

    def signed(self, op: str, raw: bytes) -> dict[str, str]:
        """SigV4 headers for this exact request. A signature is valid for its 15 minutes, so
        each distinct request is signed once and re-sent (as a retrying SDK may): the server
        still verifies every request, and the client's CPU goes to sending, not signing."""
        key = (op, raw)
        headers = self.signatures.get(key)
        if headers is None:
            headers = datasync_headers(self.url + "/", op, raw)
            self.signatures[key] = headers
        return headers

    def client(self, number: int) -> None:
        rng = random.Random(number)
        ops = [op for op, weight in MIX for _ in range(weight)]
        latencies: list[float] = []
        statuses: collections.Counter[str] = collections.Counter()
        problems: list[str] = []
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        firsts = self.firsts
        try:
            while time.monotonic() < self.stop_at:
                op = rng.choice(ops)
                raw = json.dumps(self.body(op, rng)).encode()
                headers = self.signed(op, raw)
                started = time.perf_counter()
                try:
                    conn.request("POST", "/", body=raw, headers=headers)
                    response = conn.getresponse()
                    payload = response.read()
                except OSError as exc:  # incl. http.client's exceptions
                    problems.append(f"{op}: transport error {exc!r}")
                    statuses["transport error"] += 1
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
                    continue
                latencies.append(time.perf_counter() - started)
                if len(latencies) == 1:
                    firsts.append(latencies[0])
                status = response.status
                statuses[f"{op} {status}"] += 1
                if status == 200:
                    if op == "StartTaskExecution":
                        self.executions.append(json.loads(payload)["TaskExecutionArn"])
                    continue
                try:
                    error = check_error_shape(
                        httpx.Response(status, headers=response.getheaders(), content=payload)
                    )
                except (AssertionError, ValueError) as exc:
                    problems.append(f"{op}: {status} {exc}")
                    continue
                if error.get("datasyncErrorCode") not in EXPECTED_4XX:
                    problems.append(f"{op}: unexpected {error}")
        finally:
            conn.close()
        with self.lock:
            self.latencies += latencies
            self.statuses.update(statuses)
            self.problems += problems


class RssSampler(threading.Thread):
    def __init__(self, serve: ServeProcess) -> None:
        super().__init__(daemon=True)
        self.serve = serve
        self.samples: list[tuple[float, int]] = []
        self.done = threading.Event()

    def run(self) -> None:
        started = time.monotonic()
        while not self.done.wait(0.25):
            self.samples.append((time.monotonic() - started, self.serve.rss_kib()))


@pytest.mark.slow
@pytest.mark.exclusive  # its bounds (first responses within 5 s) hold for its own load alone
def test_200_signed_clients_while_transfers_run(tmp_path: Path) -> None:
    root = tmp_path / "root"
    serve = ServeProcess(tmp_path / "data", [root])
    for i in range(TASKS):
        make_tree(str(root / f"src{i}"), 10, 32 * 1024)
        (root / f"dst{i}").mkdir()
    serve.start()
    try:
        ds = serve.client()
        agent = ds.list_agents()["Agents"][0]["AgentArn"]
        tasks = []
        # ALL: every execution copies again, so transfers run throughout the load
        options = {"TransferMode": "ALL", "BytesPerSecond": 2 << 20}
        for i in range(TASKS):
            src, dst = root / f"src{i}", root / f"dst{i}"
            tasks.append(nfs_task(ds, agent, src, dst, Options=options)[2])
        executions = [ds.start_task_execution(TaskArn=t)["TaskExecutionArn"] for t in tasks[:3]]
        initial = len(executions)

        load = Load(serve.url, serve.port, tasks, executions)
        sampler = RssSampler(serve)
        sampler.start()
        load.stop_at = time.monotonic() + SECONDS
        threads = [
            threading.Thread(target=load.client, args=(n,), daemon=True) for n in range(CLIENTS)
        ]
        began, cpu_before = time.monotonic(), serve.cpu_seconds()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=SECONDS + 120)
        elapsed = time.monotonic() - began
        server_cpu = serve.cpu_seconds() - cpu_before
        assert not any(t.is_alive() for t in threads), "a client hung"
        sampler.done.set()
        sampler.join()

        # every execution started during the load finishes, and none is lost
        def all_done() -> list[dict[str, Any]]:
            listed: list[dict[str, Any]] = []
            for page in ds.get_paginator("list_task_executions").paginate():
                listed += page["TaskExecutions"]
            return listed if all(e["Status"] in ("SUCCESS", "ERROR") for e in listed) else []

        listed = {e["TaskExecutionArn"]: e["Status"] for e in wait_for(all_done, timeout=120)}
        missing = set(executions) - set(listed)
        assert not missing, f"lost executions: {sorted(missing)[:5]}"
        failed = {a: s for a, s in listed.items() if s != "SUCCESS"}
        assert not failed, [
            ds.describe_task_execution(TaskExecutionArn=a).get("Result") for a in list(failed)[:3]
        ]

        latencies = sorted(load.latencies)
        p50 = statistics.median(latencies)
        p99 = latencies[int(len(latencies) * 0.99) - 1]
        warm = [kib for t, kib in sampler.samples if t >= min(5.0, SECONDS / 4)]
        rss_warm, rss_final, rss_max = warm[0], sampler.samples[-1][1], max(warm)
        fives = {k: v for k, v in load.statuses.items() if k.split()[-1].startswith("5")}
        print(
            f"\nload: {CLIENTS} clients for {elapsed:.1f} s, {len(latencies)} requests "
            f"({len(latencies) / elapsed:.0f}/s), p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms;"
            f" {len(executions) - initial} executions started during the load, all SUCCESS; "
            f"server RSS after warm-up {rss_warm} KiB, final {rss_final} KiB, max {rss_max} KiB; "
            f"slowest first request {max(load.firsts) * 1000:.0f} ms; "
            f"server CPU {server_cpu / elapsed:.0%} of one core; 5xx: {sum(fives.values())}; "
            + ", ".join(f"{k}: {v}" for k, v in sorted(load.statuses.items()))
        )
        assert not fives, fives
        # fairness: every client was served from the start (uvloop once left most unread)
        assert len(load.firsts) == CLIENTS and max(load.firsts) < 5.0, sorted(load.firsts)[-5:]
        assert not load.problems, load.problems[:10]
        assert len(executions) - initial > 0, "the mix started nothing"
        assert rss_final < 1.5 * rss_warm, (rss_warm, rss_final)
    finally:
        serve.stop()
