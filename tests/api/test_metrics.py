"""`GET /metrics` on a real server, parsed with prometheus_client's own text parser and checked
against what DescribeTaskExecution says of real transfers."""

from __future__ import annotations

import http.client
import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import botocore.exceptions
import httpx
import pytest
import sqlalchemy.exc
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text

from api.request_counts import RequestMeter
from api.schedule_runner import record_schedule_run
from api.store import Store
from tests.api.harness import (
    ACCESS_KEY,
    ACCOUNT,
    REGION,
    SECRET_KEY,
    Server,
    finished,
    make_tree,
    wait_for,
)
from tests.reliability.proc import ServeProcess

SLOW = 64 * 1024  # bytes per second: a running execution stays running while it is scraped


def scrape(server: Server, **headers: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    reply = httpx.get(f"{server.url}/metrics", headers=headers)
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"].startswith("text/plain")
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(reply.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def test_metrics_match_finished_transfers(
    server: Server, ds: Any, root: Path, locations: tuple[str, str]
) -> None:
    make_tree(os.fspath(root / "src"), 5, 20_000)
    src, dst = locations
    task = ds.create_task(SourceLocationArn=src, DestinationLocationArn=dst)["TaskArn"]
    first = finished(ds, ds.start_task_execution(TaskArn=task)["TaskExecutionArn"])
    make_tree(os.fspath(root / "src"), 2, 30_000, prefix="g")  # a second run moves only these
    second = finished(ds, ds.start_task_execution(TaskArn=task)["TaskExecutionArn"])
    assert first["Status"] == second["Status"] == "SUCCESS"
    assert second["FilesTransferred"] == 2  # the runs differ, so a sum is not one run twice

    samples = scrape(server)
    by_task = (("task_arn", task),)
    for counter, name in (
        ("FilesTransferred", "files_transferred"),
        ("BytesTransferred", "bytes_transferred"),
        ("BytesWritten", "bytes_written"),
        ("FilesVerified", "files_verified"),
    ):
        total = first[counter] + second[counter]
        assert samples[(f"datasync_local_task_{name}_total", by_task)] == total, counter
    assert (
        samples[("datasync_local_task_bytes_transferred_total", by_task)] == 5 * 20_000 + 2 * 30_000
    )
    assert samples[("datasync_local_task_files_failed_total", by_task)] == 0
    assert samples[("datasync_local_executions", (("status", "SUCCESS"),))] == 2
    assert samples[("datasync_local_agents", (("status", "ONLINE"),))] == 1
    assert samples[("datasync_local_agents", (("status", "OFFLINE"),))] == 0


def test_running_and_queued_executions(
    server: Server, ds: Any, root: Path, locations: tuple[str, str]
) -> None:
    make_tree(os.fspath(root / "src"), 4, 256 * 1024)
    src, dst = locations
    options = {"BytesPerSecond": SLOW}
    one = ds.create_task(SourceLocationArn=src, DestinationLocationArn=dst, Options=options)
    two = ds.create_task(SourceLocationArn=src, DestinationLocationArn=dst, Options=options)
    running = ds.start_task_execution(TaskArn=one["TaskArn"])["TaskExecutionArn"]
    wait_for(
        lambda: ds.describe_task_execution(TaskExecutionArn=running)["Status"] == "TRANSFERRING"
    )
    queued = ds.start_task_execution(TaskArn=two["TaskArn"])["TaskExecutionArn"]
    assert ds.describe_task_execution(TaskExecutionArn=queued)["Status"] == "QUEUED"

    wait_for(lambda: ds.describe_task_execution(TaskExecutionArn=running)["BytesTransferred"] > 0)
    samples = scrape(server)
    speed = ("datasync_local_execution_bytes_per_second", (("task_execution_arn", running),))
    assert samples[speed] > 0
    assert samples[("datasync_local_queue_depth", (("agent_arn", server.agent_arn),))] == 1
    limit = ("datasync_local_execution_bytes_per_second_limit", (("task_execution_arn", running),))
    assert samples[limit] == SLOW
    assert samples[("datasync_local_executions", (("status", "QUEUED"),))] == 1
    assert samples[("datasync_local_executions", (("status", "TRANSFERRING"),))] == 1

    ds.update_task_execution(TaskExecutionArn=running, Options={"BytesPerSecond": 1000})
    assert scrape(server)[limit] == 1000  # the new limit shows at the next scrape
    ds.cancel_task_execution(TaskExecutionArn=queued)
    ds.cancel_task_execution(TaskExecutionArn=running)
    finished(ds, running)


def test_schedule_runs_counter(server: Server) -> None:
    assert server.served is not None
    store = server.served.extras["backend"].store
    task = "arn:aws:datasync:us-east-1:000000000000:task/task-0123456789abcdef0"
    record_schedule_run(store, task)
    record_schedule_run(store, task)
    assert scrape(server)[("datasync_local_schedule_runs_total", (("task_arn", task),))] == 2


def test_metrics_token(tmp_path: Path, root: Path) -> None:
    srv = Server(str(tmp_path / "data"), [str(root)], metrics_token="s3cret").start()
    try:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret"}):
            reply = httpx.get(f"{srv.url}/metrics", headers=headers)
            assert reply.status_code == 401
            assert "datasync_local" not in reply.text
        samples = scrape(srv, Authorization="Bearer s3cret")
        assert samples[("datasync_local_agents", (("status", "ONLINE"),))] == 1
        assert httpx.get(f"{srv.url}/health").status_code == 200  # liveness stays open
    finally:
        srv.stop()


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]
MISSING_TASK = f"arn:aws:datasync:{REGION}:{ACCOUNT}:task/task-0123456789abcdef0"


def requests_of(samples: Samples, protocol: str) -> dict[tuple[str, str], float]:
    """`datasync_local_api_requests_total` of one protocol, as {(operation, code): count}."""
    out: dict[tuple[str, str], float] = {}
    for (name, labels), value in samples.items():
        tags = dict(labels)
        if name == "datasync_local_api_requests_total" and tags["protocol"] == protocol:
            out[(tags["operation"], tags["code"])] = value
    return out


def histogram(samples: Samples, protocol: str, operation: str) -> tuple[list[float], float, float]:
    """(cumulative bucket counts in `le` order, _count, _sum) of one operation's latency."""
    series = (("operation", operation), ("protocol", protocol))
    buckets = sorted(
        (float(dict(labels)["le"]), value)
        for (name, labels), value in samples.items()
        if name == "datasync_local_api_request_duration_seconds_bucket"
        and tuple(kv for kv in labels if kv[0] != "le") == series
    )
    name = "datasync_local_api_request_duration_seconds"
    return (
        [v for _, v in buckets],
        samples[(f"{name}_count", series)],
        samples[(f"{name}_sum", series)],
    )


def test_api_requests_by_operation_and_code_with_latency(server: Server, ds: Any) -> None:
    for _ in range(3):
        ds.list_tasks()
    for _ in range(2):
        with pytest.raises(ds.exceptions.InvalidRequestException):
            ds.describe_task(TaskArn=MISSING_TASK)
    logs = server.client("logs")
    logs.describe_log_groups()
    with pytest.raises(botocore.exceptions.ClientError) as refused:  # a wrong signature
        server.client(aws_secret_access_key="wrong-secret").list_agents()
    assert refused.value.response["Error"]["Code"] == "InvalidSignatureException"
    # unsigned, and naming an operation no model has: counted as "unknown" (bounded labels)
    odd = httpx.post(server.url, headers={"x-amz-target": "FmrsService.NoSuchThing"}, content=b"{}")
    assert odd.status_code == 403

    samples = scrape(server)
    assert requests_of(samples, "datasync") == {
        ("ListTasks", "OK"): 3,
        ("DescribeTask", "InvalidRequestException"): 2,
        ("ListAgents", "InvalidSignatureException"): 1,
        ("unknown", "UnrecognizedClientException"): 1,
    }
    assert requests_of(samples, "logs") == {("DescribeLogGroups", "OK"): 1}
    # the embedded agent's polls are jobs requests too, answered OK
    assert requests_of(samples, "jobs").get(("StartNextPendingJobExecution", "OK"), 0) > 0

    buckets, count, total = histogram(samples, "datasync", "ListTasks")
    assert count == 3 and buckets[-1] == 3  # +Inf holds every request
    assert buckets == sorted(buckets) and len(buckets) == 15 and total > 0
    buckets, count, _ = histogram(samples, "datasync", "DescribeTask")
    assert count == 2 and buckets[-1] == 2  # failed requests are timed too

    ds.list_tasks()  # counted by the next scrape, whose own process flushes first
    assert requests_of(scrape(server), "datasync")[("ListTasks", "OK")] == 4


class Pinned:
    """One keep-alive connection to a `serve --workers N` port, and the worker that accepted it
    (found through /proc: the process holding the server end of this TCP connection)."""

    def __init__(self, port: int, workers: list[int]) -> None:
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.conn.request("GET", "/health")  # accepted by a worker once it is answered
        assert self.conn.getresponse().read() == b'{"status":"ok"}'
        assert self.conn.sock is not None
        self.local_port: int = self.conn.sock.getsockname()[1]
        self.worker = self._owner(workers)

    def _owner(self, workers: list[int]) -> int:
        inode = None
        with open("/proc/net/tcp", encoding="ascii") as fh:
            for line in fh.readlines()[1:]:
                fields = line.split()
                local, remote = fields[1].split(":"), fields[2].split(":")
                if int(local[1], 16) == self.port and int(remote[1], 16) == self.local_port:
                    inode = fields[9]
        assert inode is not None, "the server end of the connection is not in /proc/net/tcp"
        for pid in workers:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                try:
                    if os.readlink(f"/proc/{pid}/fd/{fd}") == f"socket:[{inode}]":
                        return pid
                except OSError:
                    continue
        raise AssertionError(f"no worker holds socket {inode}")

    def call(self, operation: str, params: dict[str, Any]) -> int:
        """A SigV4-signed DataSync call on this connection (so: on this worker); its status."""
        body = json.dumps(params).encode()
        request = AWSRequest(
            "POST",
            f"http://127.0.0.1:{self.port}/",
            data=body,
            headers={
                "X-Amz-Target": f"FmrsService.{operation}",
                "Content-Type": "application/x-amz-json-1.1",
            },
        )
        SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY), "datasync", REGION).add_auth(request)
        self.conn.request("POST", "/", body, dict(request.headers.items()))
        reply = self.conn.getresponse()
        reply.read()
        return reply.status

    def scrape(self) -> str:
        self.conn.request("GET", "/metrics")
        reply = self.conn.getresponse()
        text = reply.read().decode()
        assert reply.status == 200, text
        return text

    def still_pinned(self) -> bool:
        return self.conn.sock is not None and self.conn.sock.getsockname()[1] == self.local_port


def _children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children", encoding="ascii") as fh:
        return [int(p) for p in fh.read().split()]


def test_workers_count_into_one_total_that_every_worker_answers(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    serve = ServeProcess(data, [], "--workers", "2", "--no-embedded-agent").start()
    pinned: dict[int, Pinned] = {}
    try:
        workers = wait_for(lambda: len(_children(serve.pid)) == 2 and _children(serve.pid))
        first = Pinned(serve.port, workers)
        pinned[first.worker] = first
        # the kernel wakes the same idle worker for every new connection (most of 60 went to
        # one under load): with the first worker stopped, only the other one can accept
        os.kill(first.worker, signal.SIGSTOP)
        try:
            second = Pinned(serve.port, workers)
        finally:
            os.kill(first.worker, signal.SIGCONT)
        pinned[second.worker] = second
        assert len(pinned) == 2, f"both connections went to the same worker: {pinned}"
        a, b = pinned.values()
        for _ in range(3):
            assert a.call("ListTasks", {}) == 200
        for _ in range(5):
            assert b.call("ListTasks", {}) == 200
        assert b.call("DescribeTask", {"TaskArn": MISSING_TASK}) == 400
        assert a.still_pinned() and b.still_pinned()  # no call went to another worker

        expected = {("ListTasks", "OK"): 8, ("DescribeTask", "InvalidRequestException"): 1}
        deadline = time.monotonic() + 15  # the other worker flushes within a second
        for worker in (a, b):
            while True:
                samples: Samples = {}
                for family in text_string_to_metric_families(worker.scrape()):
                    for sample in family.samples:
                        samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
                if requests_of(samples, "datasync") == expected:
                    break
                assert time.monotonic() < deadline, requests_of(samples, "datasync")
                time.sleep(0.2)
            _, count, _ = histogram(samples, "datasync", "ListTasks")
            assert count == 8
            assert worker.still_pinned()  # this answer came from this worker
    finally:
        for connection in pinned.values():
            connection.conn.close()
        serve.stop()
    assert serve.proc is not None and serve.proc.returncode == 0


def test_a_failed_flush_keeps_its_counts_for_the_next(tmp_path: Path) -> None:
    store = Store.in_directory(str(tmp_path / "data"))
    try:
        meter = RequestMeter(store)
        meter.observe("datasync", "ListTasks", "OK", 0.002)
        meter.flush()
        meter.observe("datasync", "ListTasks", "OK", 0.003)
        with store.engine.begin() as conn:  # the store refuses the write: the table is gone
            conn.execute(text("ALTER TABLE request_counts RENAME TO request_counts_away"))
        with pytest.raises(sqlalchemy.exc.DBAPIError):
            meter.flush()
        meter.observe("datasync", "ListTasks", "InvalidRequestException", 20.0)
        with store.engine.begin() as conn:
            conn.execute(text("ALTER TABLE request_counts_away RENAME TO request_counts"))
        counts = meter.read()
        assert counts.requests == (
            ("datasync", "ListTasks", "InvalidRequestException", 1.0),
            ("datasync", "ListTasks", "OK", 2.0),
        )
        (latency,) = counts.histograms
        assert dict(latency.buckets)["0.005"] == 2.0
        assert latency.buckets[-1] == ("+Inf", 3.0)
        assert latency.total == pytest.approx(20.005)
    finally:
        store.close()


def test_a_clean_stop_flushes_the_last_counts(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    serve = ServeProcess(data, [], "--no-embedded-agent").start()
    try:
        client = serve.client()
        for _ in range(4):
            client.list_tasks()
    finally:
        serve.stop()  # at once: well within the second between two flushes
    assert serve.proc is not None and serve.proc.returncode == 0
    store = Store.in_directory(str(data))
    try:
        counts = RequestMeter(store).read()
    finally:
        store.close()
    assert ("datasync", "ListTasks", "OK", 4.0) in counts.requests
