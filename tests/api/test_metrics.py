"""`GET /metrics` on a real server, parsed with prometheus_client's own text parser and checked
against what DescribeTaskExecution says of real transfers."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from api.metrics import record_schedule_run
from tests.api.harness import Server, finished, make_tree, wait_for

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
