"""The page's Suspend and Resume reach real agent processes: two `datasync-local agent`
subprocesses share a throttled execution, the page suspends it (the wish travels in their jobs
replies), lists which agent held which item, resumes it, and the trees end identical."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.agents.remote import (
    AgentProcess,
    activate,
    locations,
    same_tree,
    temporaries,
    wait_status,
)
from tests.api.harness import Server, make_tree, wait_for
from tests.ui.client import act, logged_in, running_row, transfers


@pytest.fixture
def agents() -> Iterator[list[AgentProcess]]:
    started: list[AgentProcess] = []
    yield started
    for agent in started:
        agent.stop()


def test_suspend_and_resume_reach_two_agent_processes(
    tmp_path: Path, root: Path, agents: list[AgentProcess]
) -> None:
    for n in range(4):
        make_tree(str(root / "src" / f"d{n}"), 2, 192 * 1024, prefix=f"d{n}-")
    server = Server(str(tmp_path / "data"), [], embedded_agent=False, agent_timeout=5.0).start()
    try:
        arns = []
        for name in ("p1", "p2"):
            agent = AgentProcess(server.url, tmp_path / f"state-{name}", [root], name=name)
            agents.append(agent)
            arns.append(activate(server, agent, name))
        ds = server.client()
        task = locations(
            server,
            arns,
            root / "src",
            root / "dst",
            Options={"BytesPerSecond": 128 * 1024, "VerifyMode": "NONE"},
        )
        arn = ds.start_task_execution(TaskArn=task)["TaskExecutionArn"]
        client, csrf = logged_in(server)

        def both_running() -> dict[str, Any] | None:
            row = running_row(client, arn)
            holders = (
                {i["AgentArn"] for i in transfers(row) if i["Status"] == "RUNNING"} if row else ()
            )
            return row if set(holders) == set(arns) else None

        wait_for(both_running, 30)  # each agent holds an item
        assert act(client, csrf, action="suspend", TaskExecutionArn=arn).status_code == 200

        def suspended() -> dict[str, Any] | None:
            row = running_row(client, arn)
            waiting = [i for i in transfers(row) if i["Status"] != "SUCCEEDED"] if row else []
            return row if waiting and all(i["Status"] == "SUSPENDED" for i in waiting) else None

        row = wait_for(suspended, 30)
        assert {i["AgentArn"] for i in transfers(row) if i["AgentArn"]} == set(arns)
        assert row["Status"] == "TRANSFERRING"
        frozen = ds.describe_task_execution(TaskExecutionArn=arn)["BytesWritten"]
        time.sleep(1.5)  # both agents have stopped: nothing moves
        again = wait_for(suspended, 5)
        assert again["BytesTransferred"] == row["BytesTransferred"]
        assert ds.describe_task_execution(TaskExecutionArn=arn)["BytesWritten"] == frozen

        assert act(client, csrf, action="resume", TaskExecutionArn=arn).status_code == 200
        done = wait_status(ds, arn, ("SUCCESS", "ERROR"), timeout=60)
        assert done["Status"] == "SUCCESS", done
        assert same_tree(root / "src", root / "dst") and temporaries(root) == []
    finally:
        server.stop()
