"""Several `serve` processes on one store act as one control plane (both stores: PostgreSQL
shared through DATASYNC_LOCAL_STORE, or SQLite shared by processes of one host in one data dir).

Real `datasync-local serve` and `agent` processes: an execution started through A is described,
throttled and cancelled through B; kill -9 of A mid-transfer while the agent (`--server A,B`)
finishes through B; `--workers 2` serves from two processes on one port with one embedded agent
and one holder of the control-plane lease.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from api.server import LEADER_LEASE
from api.store import Store
from tests.agents.remote import (
    AgentProcess,
    activate,
    locations,
    same_tree,
    temporaries,
    wait_bytes,
    wait_status,
)
from tests.api.harness import location_root, make_tree, wait_for
from tests.reliability.proc import ServeProcess

MiB = 1 << 20


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    path = location_root(tmp_path / "files")
    make_tree(str(path / "src"), 6, MiB)
    return path


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[ServeProcess, ServeProcess]]:
    data = tmp_path / "data"
    data.mkdir()
    a = ServeProcess(data, [], "--no-embedded-agent", "--agent-timeout", "8").start()
    b = ServeProcess(data, [], "--no-embedded-agent", "--agent-timeout", "8")
    try:
        b.start()
        yield a, b
    finally:
        b.stop()
        a.stop()


@pytest.fixture
def agents() -> Iterator[list[AgentProcess]]:
    started: list[AgentProcess] = []
    try:
        yield started
    finally:
        for agent in started:
            agent.stop()


def _agent(tmp_path: Path, urls: str, tree: Path, started: list[AgentProcess]) -> AgentProcess:
    agent = AgentProcess(urls, tmp_path / "state", [tree], name="both")
    started.append(agent)
    return agent


def test_started_through_a_described_throttled_and_cancelled_through_b(
    tmp_path: Path,
    pair: tuple[ServeProcess, ServeProcess],
    tree: Path,
    agents: list[AgentProcess],
) -> None:
    a, b = pair
    arn = activate(a, _agent(tmp_path, f"{a.url},{b.url}", tree, agents))
    via_a, via_b = a.client(), b.client()
    assert via_b.describe_agent(AgentArn=arn)["Status"] == "ONLINE"
    task = locations(b, arn, tree / "src", tree / "dst", Options={"BytesPerSecond": MiB})
    execution = via_a.start_task_execution(TaskArn=task)["TaskExecutionArn"]
    wait_bytes(via_b, execution, MiB // 2)
    assert via_b.describe_task(TaskArn=task)["Status"] == "RUNNING"
    via_b.update_task_execution(TaskExecutionArn=execution, Options={"BytesPerSecond": -1})
    assert (
        via_a.describe_task_execution(TaskExecutionArn=execution)["Options"]["BytesPerSecond"] == -1
    )
    done = wait_status(via_b, execution, ("SUCCESS", "ERROR"), timeout=20)
    assert done["Status"] == "SUCCESS", done
    assert same_tree(tree / "src", tree / "dst")

    for name in os.listdir(tree / "dst"):
        os.unlink(tree / "dst" / name)
    second = via_a.start_task_execution(
        TaskArn=task, OverrideOptions={"BytesPerSecond": 512 * 1024}
    )["TaskExecutionArn"]
    wait_bytes(via_b, second, 256 * 1024)
    via_b.cancel_task_execution(TaskExecutionArn=second)
    ended = wait_status(via_a, second, ("ERROR", "SUCCESS"), timeout=15)
    assert ended["Status"] == "ERROR" and ended["Result"]["ErrorCode"] == "Cancelled", ended
    assert temporaries(tree / "dst") == []


def test_kill_9_of_a_mid_transfer_and_the_agent_finishes_through_b(
    tmp_path: Path,
    pair: tuple[ServeProcess, ServeProcess],
    tree: Path,
    agents: list[AgentProcess],
) -> None:
    a, b = pair
    arn = activate(a, _agent(tmp_path, f"{a.url},{b.url}", tree, agents))
    via_b = b.client()
    task = locations(a, arn, tree / "src", tree / "dst", Options={"BytesPerSecond": MiB})
    execution = a.client().start_task_execution(TaskArn=task)["TaskExecutionArn"]
    wait_bytes(via_b, execution, MiB + MiB // 2)
    a.kill9()
    done = wait_status(via_b, execution, ("SUCCESS", "ERROR"), timeout=40)
    assert done["Status"] == "SUCCESS", done
    assert same_tree(tree / "src", tree / "dst") and temporaries(tree / "dst") == []
    assert via_b.describe_agent(AgentArn=arn)["Status"] == "ONLINE"
    # B took the singleton duties over from the dead A
    store = Store.in_directory(str(tmp_path / "data"))
    try:
        wait_for(
            lambda: (
                (lease := store.lease(LEADER_LEASE)) is not None and f":{b.pid}:" in lease.holder
            ),
            timeout=20,
        )
    finally:
        store.close()


def _children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children", encoding="ascii") as fh:
        return [int(p) for p in fh.read().split()]


def test_workers_serve_one_port_with_one_embedded_agent_and_one_leader(
    tmp_path: Path, tree: Path
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    serve = ServeProcess(data, [tree], "--workers", "2").start()
    try:
        workers = wait_for(lambda: len(_children(serve.pid)) == 2 and _children(serve.pid))
        ds = serve.client()
        listed = wait_for(lambda: ds.list_agents()["Agents"])
        assert len(listed) == 1 and listed[0]["Status"] == "ONLINE"
        task = locations(serve, listed[0]["AgentArn"], tree / "src", tree / "dst")
        execution = ds.start_task_execution(TaskArn=task)["TaskExecutionArn"]
        # many short connections: both workers answer, all from one shared state
        for _ in range(5):
            serve.client().describe_task_execution(TaskExecutionArn=execution)
        done = wait_status(ds, execution, ("SUCCESS", "ERROR"), timeout=40)
        assert done["Status"] == "SUCCESS", done
        assert same_tree(tree / "src", tree / "dst")
        store = Store.in_directory(str(data))
        try:
            lease = store.lease(LEADER_LEASE)
            assert lease is not None
            assert int(lease.holder.split(":")[1]) in workers
        finally:
            store.close()
    finally:
        serve.stop()
    assert serve.proc is not None and serve.proc.returncode == 0
