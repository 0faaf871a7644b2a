"""On-prem agents as real processes (`python -m cli.main agent`) against a real server.

Activation through boto3 `create_agent`, transfers on the remote agent, UpdateTaskExecution and
cancel reaching it, `kill -9` of the agent, a frozen agent coming back after its lease ran out, a
control-plane restart mid-transfer, two agents on one server, key expiry and credentials scoped
to one agent. Transfers are throttled (`BytesPerSecond`) so they can be interrupted.
"""

from __future__ import annotations

import os
import signal
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.agents.remote import (
    AgentProcess,
    ServeProcess,
    activate,
    locations,
    same_tree,
    temporaries,
    wait_bytes,
    wait_status,
)
from tests.api.harness import Server, location_root, make_tree, wait_for

MiB = 1 << 20
TIMEOUT = 3.0  # the server's --agent-timeout in these tests


@pytest.fixture
def root(tmp_path: Path) -> Path:
    path = location_root(tmp_path)
    make_tree(str(path / "src"), 6, MiB)
    return path


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    srv = Server(str(tmp_path / "data"), [], embedded_agent=False, agent_timeout=TIMEOUT)
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def agents(tmp_path: Path) -> Iterator[list[AgentProcess]]:
    started: list[AgentProcess] = []
    yield started
    for agent in started:
        agent.stop()


def _agent(
    tmp_path: Path, server: Server, started: list[AgentProcess], name: str, roots: list[Path]
) -> AgentProcess:
    agent = AgentProcess(server.url, tmp_path / f"state-{name}", roots, name=name)
    started.append(agent)
    return agent


def test_activation_transfer_and_resume_without_new_key(
    tmp_path: Path, server: Server, root: Path, agents: list[AgentProcess]
) -> None:
    ds = server.client()
    agent = _agent(tmp_path, server, agents, "first", [root])
    agent.start()
    key = agent.key()
    time.sleep(0.5)
    assert ds.list_agents()["Agents"] == []  # pending: not an agent yet
    arn = ds.create_agent(ActivationKey=key, AgentName="lab-nas")["AgentArn"]
    agent.line(r"^Activated: ")
    with pytest.raises(ds.exceptions.InvalidRequestException, match="already used"):
        ds.create_agent(ActivationKey=key)
    state = agent.state_dir / "agent.json"
    assert stat.S_IMODE(state.stat().st_mode) == 0o600
    assert agent.identity["agent_arn"] == arn
    listed = ds.list_agents()["Agents"]
    assert [(a["AgentArn"], a["Name"], a["Status"]) for a in listed] == [(arn, "lab-nas", "ONLINE")]
    assert "SecretAccessKey" not in str(ds.describe_agent(AgentArn=arn))

    task = locations(server, arn, root / "src", root / "dst")
    assert ds.describe_task(TaskArn=task)["Status"] == "AVAILABLE"
    execution = ds.start_task_execution(TaskArn=task)["TaskExecutionArn"]
    done = wait_status(ds, execution, ("SUCCESS", "ERROR"))
    assert done["Status"] == "SUCCESS", done
    assert done["FilesTransferred"] >= 6 and same_tree(root / "src", root / "dst")

    # a restart reuses the stored credentials: no new key, and work goes on
    assert agent.stop() == 0
    agent.start()
    agent.line(r"^Resuming as " + arn)
    assert not any("ActivationKey" in line for line in agent.lines)
    (root / "src" / "new.txt").write_text("after restart")
    again = ds.start_task_execution(TaskArn=task)["TaskExecutionArn"]
    done = wait_status(ds, again, ("SUCCESS", "ERROR"))
    assert done["Status"] == "SUCCESS" and done["FilesTransferred"] >= 1
    assert (root / "dst" / "new.txt").read_text() == "after restart"


def _half_copied(server: Server, arn: str, root: Path) -> tuple[str, str]:
    """A task at 1 MiB/s on agent `arn`, started and half a MiB in: (task, execution)."""
    ds = server.client()
    task = locations(server, arn, root / "src", root / "dst", Options={"BytesPerSecond": MiB})
    execution = ds.start_task_execution(TaskArn=task)["TaskExecutionArn"]
    wait_bytes(ds, execution, MiB // 2)
    return task, execution


def test_update_and_cancel_reach_the_remote_agent(
    tmp_path: Path, server: Server, root: Path, agents: list[AgentProcess]
) -> None:
    ds = server.client()
    arn = activate(server, _agent(tmp_path, server, agents, "a", [root]))
    task, execution = _half_copied(server, arn, root)
    started = time.monotonic()
    ds.update_task_execution(TaskExecutionArn=execution, Options={"BytesPerSecond": -1})
    done = wait_status(ds, execution, ("SUCCESS", "ERROR"))
    assert done["Status"] == "SUCCESS", done
    assert time.monotonic() - started < 4.0  # 6 MiB at 1 MiB/s would need ~5 s more
    assert same_tree(root / "src", root / "dst")

    for name in os.listdir(root / "dst"):
        os.unlink(root / "dst" / name)
    execution = ds.start_task_execution(
        TaskArn=task, OverrideOptions={"BytesPerSecond": 512 * 1024}
    )["TaskExecutionArn"]
    wait_bytes(ds, execution, 256 * 1024)
    ds.cancel_task_execution(TaskExecutionArn=execution)
    ended = wait_status(ds, execution, ("ERROR", "SUCCESS"), timeout=10)
    assert ended["Status"] == "ERROR" and ended["Result"]["ErrorCode"] == "Cancelled", ended
    assert temporaries(root / "dst") == []


def test_kill_9_mid_transfer_then_the_agent_returns(
    tmp_path: Path, server: Server, root: Path, agents: list[AgentProcess]
) -> None:
    ds = server.client()
    agent = _agent(tmp_path, server, agents, "k", [root])
    arn = activate(server, agent)
    task = locations(server, arn, root / "src", root / "dst", Options={"BytesPerSecond": MiB})
    execution = ds.start_task_execution(TaskArn=task)["TaskExecutionArn"]
    wait_bytes(ds, execution, MiB + MiB // 2)
    agent.kill()
    killed = time.monotonic()
    ended = wait_status(ds, execution, ("ERROR", "SUCCESS"), timeout=TIMEOUT + 5)
    assert time.monotonic() - killed < TIMEOUT + 3.5
    assert ended["Status"] == "ERROR", ended
    assert ended["Result"]["ErrorCode"] == "AgentTimeout"
    assert "agent was lost" in ended["Result"]["ErrorDetail"]
    assert ds.describe_agent(AgentArn=arn)["Status"] == "OFFLINE"
    assert ds.list_agents()["Agents"][0]["Status"] == "OFFLINE"
    assert ds.describe_task(TaskArn=task)["Status"] == "UNAVAILABLE"
    # no half-written file under a final name: each is complete or absent (temporaries aside)
    for path in (root / "dst").iterdir():
        if not path.name.startswith(".~dsl."):
            assert path.read_bytes() == (root / "src" / path.name).read_bytes(), path

    agent.start()
    agent.line(r"^Resuming as ")
    wait_for(lambda: ds.describe_agent(AgentArn=arn)["Status"] == "ONLINE", timeout=10)
    assert ds.describe_task(TaskArn=task)["Status"] == "AVAILABLE"
    rerun = ds.start_task_execution(TaskArn=task, OverrideOptions={"BytesPerSecond": -1})
    done = wait_status(ds, rerun["TaskExecutionArn"], ("SUCCESS", "ERROR"))
    assert done["Status"] == "SUCCESS", done
    assert same_tree(root / "src", root / "dst") and temporaries(root / "dst") == []


def test_frozen_agent_past_its_lease_abandons_the_old_work(
    tmp_path: Path, server: Server, root: Path, agents: list[AgentProcess]
) -> None:
    ds = server.client()
    agent = _agent(tmp_path, server, agents, "f", [root])
    arn = activate(server, agent)
    task, execution = _half_copied(server, arn, root)
    agent.signal(signal.SIGSTOP)
    try:
        ended = wait_status(ds, execution, ("ERROR", "SUCCESS"), timeout=TIMEOUT + 5)
        assert ended["Result"]["ErrorCode"] == "AgentTimeout"
    finally:
        agent.signal(signal.SIGCONT)
    # it reports with its old version, hears the job is over, stops and cleans up
    wait_for(lambda: "abandoning it" in agent.log.read_text(), timeout=10)
    wait_for(lambda: temporaries(root / "dst") == [], timeout=10)
    time.sleep(1.5)
    after = ds.describe_task_execution(TaskExecutionArn=execution)
    assert after["Status"] == "ERROR" and after["Result"]["ErrorCode"] == "AgentTimeout"
    assert after["BytesWritten"] == ended["BytesWritten"]  # nothing overwritten
    wait_for(lambda: ds.describe_agent(AgentArn=arn)["Status"] == "ONLINE", timeout=10)
    rerun = ds.start_task_execution(TaskArn=task, OverrideOptions={"BytesPerSecond": -1})
    done = wait_status(ds, rerun["TaskExecutionArn"], ("SUCCESS", "ERROR"))
    assert done["Status"] == "SUCCESS", done


def test_control_plane_restart_mid_transfer(
    tmp_path: Path, server: Server, root: Path, agents: list[AgentProcess]
) -> None:
    ds = server.client()
    arn = activate(server, _agent(tmp_path, server, agents, "r", [root]))
    _task, execution = _half_copied(server, arn, root)
    server.stop()
    time.sleep(1.5)  # the agent keeps copying and retries its reports meanwhile
    server.start()
    ds = server.client()
    assert ds.describe_task_execution(TaskExecutionArn=execution)["Status"] not in (
        "ERROR",
        "SUCCESS",
    )
    done = wait_status(ds, execution, ("SUCCESS", "ERROR"), timeout=30)
    assert done["Status"] == "SUCCESS", done
    assert done["FilesTransferred"] >= 6
    assert same_tree(root / "src", root / "dst") and temporaries(root / "dst") == []


def test_two_agents_and_credentials_scoped_to_one_agent(
    tmp_path: Path, server: Server, agents: list[AgentProcess]
) -> None:
    ds = server.client()
    roots = [tmp_path / "one", tmp_path / "two"]
    for r in roots:
        make_tree(str(r / "src"), 3, MiB)
        (r / "dst").mkdir()
    first = _agent(tmp_path, server, agents, "one", [roots[0]])
    second = _agent(tmp_path, server, agents, "two", [roots[1]])
    arns = [activate(server, first, "one"), activate(server, second, "two")]
    assert {a["AgentArn"] for a in ds.list_agents()["Agents"]} == set(arns)
    tasks = [
        locations(server, a, r / "src", r / "dst", Options={"BytesPerSecond": MiB})
        for a, r in zip(arns, roots, strict=True)
    ]
    runs = [ds.start_task_execution(TaskArn=t)["TaskExecutionArn"] for t in tasks]
    both = wait_for(
        lambda: all(
            ds.describe_task_execution(TaskExecutionArn=r)["Status"] == "TRANSFERRING" for r in runs
        ),
        timeout=15,
    )
    assert both  # at the same time, each on its own agent
    for run, r in zip(runs, roots, strict=True):
        assert wait_status(ds, run, ("SUCCESS", "ERROR"))["Status"] == "SUCCESS"
        assert same_tree(r / "src", r / "dst")

    # one agent's credentials: its own jobs only, never another's, never the DataSync API
    mine = first.identity
    kwargs = {
        "aws_access_key_id": mine["access_key_id"],
        "aws_secret_access_key": mine["secret_access_key"],
    }
    jobs = server.client("iot-jobs-data", **kwargs)
    assert "queuedJobs" in jobs.get_pending_job_executions(thingName=mine["thing_name"])
    other = second.identity["thing_name"]
    for call in (
        lambda: jobs.get_pending_job_executions(thingName=other),
        lambda: jobs.start_next_pending_job_execution(thingName=other),
        lambda: server.client(**kwargs).list_tasks(),
    ):
        with pytest.raises(ClientError) as info:
            call()
        assert info.value.response["Error"]["Code"] == "AccessDeniedException"
    # and the operator cannot act as an activated agent either
    with pytest.raises(ClientError) as info:
        server.client("iot-jobs-data").get_pending_job_executions(thingName=other)
    assert info.value.response["Error"]["Code"] == "AccessDeniedException"


def test_unapproved_agent_gets_nothing_and_keys_expire(
    tmp_path: Path, server: Server, root: Path, agents: list[AgentProcess]
) -> None:
    assert server.served is not None
    server.served.app.state.backend.config.activation_ttl = 1.5
    ds = server.client()
    with pytest.raises(ds.exceptions.InvalidRequestException, match="not recognised"):
        ds.create_agent(ActivationKey="AAAAA-BBBBB-CCCCC-DDDDD-EEEEE")
    agent = _agent(tmp_path, server, agents, "late", [root])
    agent.start()
    key = agent.key()
    server.served.app.state.backend.config.activation_ttl = 1800  # for the keys to come
    time.sleep(2.0)
    with pytest.raises(ds.exceptions.InvalidRequestException, match="expired"):
        ds.create_agent(ActivationKey=key)
    assert ds.list_agents()["Agents"] == []
    assert not (agent.state_dir / "agent.json").exists()
    # the agent noticed and shows a fresh key, which works
    fresh = agent.key(after=agent.lines.index(f"ActivationKey: {key}") + 1, timeout=15)
    assert fresh != key
    arn = ds.create_agent(ActivationKey=fresh)["AgentArn"]
    agent.line(r"^Activated: ")
    assert ds.describe_agent(AgentArn=arn)["Status"] == "ONLINE"


def test_paths_resolve_on_the_agent(
    tmp_path: Path, server: Server, root: Path, agents: list[AgentProcess]
) -> None:
    ds = server.client()
    outside = tmp_path / "outside"
    outside.mkdir()
    (root / "nas").mkdir()
    (root / "link").symlink_to(outside)
    agent = AgentProcess(
        server.url,
        tmp_path / "state-p",
        [root],
        name="p",
        mounts=("nas.example:/export=" + str(root / "nas"),),
    )
    agents.append(agent)
    arn = activate(server, agent)

    def run(source: tuple[str, str]) -> Any:
        src = ds.create_location_nfs(
            ServerHostname=source[0],
            Subdirectory=source[1],
            OnPremConfig={"AgentArns": [arn]},
        )["LocationArn"]
        dst = ds.create_location_nfs(
            ServerHostname="localhost",
            Subdirectory=str(root / "dst"),
            OnPremConfig={"AgentArns": [arn]},
        )["LocationArn"]
        task = ds.create_task(SourceLocationArn=src, DestinationLocationArn=dst)["TaskArn"]
        execution = ds.start_task_execution(TaskArn=task)["TaskExecutionArn"]
        return wait_status(ds, execution, ("SUCCESS", "ERROR"))

    (root / "nas" / "sub").mkdir()
    (root / "nas" / "sub" / "from-nas.txt").write_text("mounted")
    assert run(("nas.example", "/export/sub"))["Status"] == "SUCCESS"
    assert (root / "dst" / "from-nas.txt").read_text() == "mounted"

    for host, path, words in (
        ("localhost", str(root / "link"), [str(root / "link"), "outside this agent's roots"]),
        ("localhost", str(root / "src/../.."), ["outside this agent's roots"]),
        ("other.example", "/export", ["other.example:/export", "not reachable"]),
        ("nas.example", "/elsewhere", ["nas.example:/elsewhere", "none of its mounts"]),
    ):
        ended = run((host, path))
        assert ended["Status"] == "ERROR"
        assert ended["Result"]["ErrorCode"] == "LocationError"
        for word in words:
            assert word in ended["Result"]["ErrorDetail"], ended["Result"]


def test_concurrency_and_deleted_agent(
    tmp_path: Path, server: Server, agents: list[AgentProcess]
) -> None:
    ds = server.client()
    root = tmp_path / "c"
    for name in ("a", "b", "c"):
        make_tree(str(root / f"src-{name}"), 2, MiB)
        (root / f"dst-{name}").mkdir()
    agent = AgentProcess(server.url, tmp_path / "state-c", [root], name="c", concurrency=2)
    agents.append(agent)
    arn = activate(server, agent)
    tasks = [
        locations(
            server, arn, root / f"src-{n}", root / f"dst-{n}", Options={"BytesPerSecond": MiB}
        )
        for n in ("a", "b", "c")
    ]
    runs = [ds.start_task_execution(TaskArn=t)["TaskExecutionArn"] for t in tasks]

    def statuses() -> list[str]:
        return [ds.describe_task_execution(TaskExecutionArn=r)["Status"] for r in runs]

    seen = wait_for(lambda: (s := statuses())[:2] == ["TRANSFERRING"] * 2 and s, timeout=15)
    assert seen[2] == "QUEUED"  # two slots: the third waits for one
    for run in runs:
        assert wait_status(ds, run, ("SUCCESS", "ERROR"))["Status"] == "SUCCESS"

    # a deleted agent's credentials stop working: the agent says so and exits 1
    for task in tasks:
        described = ds.describe_task(TaskArn=task)
        ds.delete_task(TaskArn=task)
        ds.delete_location(LocationArn=described["SourceLocationArn"])
        ds.delete_location(LocationArn=described["DestinationLocationArn"])
    ds.delete_agent(AgentArn=arn)
    assert agent.proc is not None
    assert agent.proc.wait(timeout=15) == 1
    assert "refused this agent's credentials" in agent.log.read_text()


def test_control_plane_killed_mid_transfer(tmp_path: Path, agents: list[AgentProcess]) -> None:
    """kill -9 of a `serve` process: the agent keeps copying, re-attaches, the run succeeds."""
    root = tmp_path / "root"
    make_tree(str(root / "src"), 6, MiB)
    (root / "dst").mkdir()
    serve = ServeProcess(tmp_path / "data", agent_timeout=TIMEOUT).start()
    try:
        ds = serve.client()
        agent = AgentProcess(serve.url, tmp_path / "state-s", [root], name="s")
        agents.append(agent)
        arn = activate(serve, agent)
        task = locations(serve, arn, root / "src", root / "dst", Options={"BytesPerSecond": MiB})
        execution = ds.start_task_execution(TaskArn=task)["TaskExecutionArn"]
        wait_bytes(ds, execution, MiB)
        serve.kill()
        time.sleep(1.0)
        serve.start()
        ds = serve.client()
        done = wait_status(ds, execution, ("SUCCESS", "ERROR"), timeout=30)
        assert done["Status"] == "SUCCESS", (done, agent.output())
        assert same_tree(root / "src", root / "dst") and temporaries(root / "dst") == []
        assert ds.describe_agent(AgentArn=arn)["Status"] == "ONLINE"
    finally:
        serve.stop()


def test_agent_restart_reattaches_and_sigterm_stops_cleanly(
    tmp_path: Path, root: Path, agents: list[AgentProcess]
) -> None:
    """Within its lease a restarted agent takes its running job back; SIGTERM ends a job as
    AgentStopped with temporaries removed. The agent here is configured by environment only."""
    server = Server(str(tmp_path / "data"), [], embedded_agent=False, agent_timeout=30)
    server.start()
    try:
        ds = server.client()
        agent = AgentProcess(server.url, tmp_path / "state-e", [root], name="env-configured")
        agent.configure_by_environment()
        agents.append(agent)
        arn = activate(server, agent)
        assert ds.describe_agent(AgentArn=arn)["Name"] == "env-configured"
        task = locations(server, arn, root / "src", root / "dst", Options={"BytesPerSecond": MiB})
        execution = ds.start_task_execution(TaskArn=task)["TaskExecutionArn"]
        wait_bytes(ds, execution, MiB)
        agent.kill()
        agent.start()
        agent.line(r"^Resuming as ")
        ds.update_task_execution(TaskExecutionArn=execution, Options={"BytesPerSecond": -1})
        done = wait_status(ds, execution, ("SUCCESS", "ERROR"))
        assert done["Status"] == "SUCCESS", done  # re-attached, not lost
        assert same_tree(root / "src", root / "dst") and temporaries(root / "dst") == []

        for path in (root / "dst").iterdir():
            path.unlink()
        execution = ds.start_task_execution(TaskArn=task)["TaskExecutionArn"]
        wait_bytes(ds, execution, MiB // 2)
        assert agent.stop() == 0
        ended = ds.describe_task_execution(TaskExecutionArn=execution)
        assert ended["Status"] == "ERROR", ended
        assert ended["Result"]["ErrorCode"] == "AgentStopped"
        assert temporaries(root / "dst") == []
    finally:
        server.stop()
