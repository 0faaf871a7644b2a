"""The Deadline routes on a control plane of two `serve` processes sharing one store, with a
real `datasync-local agent` process (`--server A,B`) copying under a throttle.

IDs are the same through either process; a suspension asked of B reaches the agent of an
execution started through A (bytes stop, the phase stays); a clientToken used through B is
replayed through A without a second effect after the execution was resumed; the execution then
ends SUCCESS with the trees identical and no temporaries left.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from tests.agents.remote import (
    AgentProcess,
    activate,
    locations,
    same_tree,
    temporaries,
    wait_bytes,
    wait_status,
)
from tests.api.harness import ACCESS_KEY, REGION, SECRET_KEY, location_root, make_tree, wait_for
from tests.reliability.proc import ServeProcess

MiB = 1 << 20


def deadline_of(server: ServeProcess) -> Any:
    make: Any = boto3.client
    return make(
        "deadline",
        endpoint_url=server.url,
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        config=Config(inject_host_prefix=False, retries={"max_attempts": 1, "mode": "standard"}),
    )


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


def _ids(dl: Any, arn: str) -> dict[str, str]:
    farm = dl.list_farms()["farms"][0]["farmId"]
    ids = {"farmId": farm, "queueId": dl.list_queues(farmId=farm)["queues"][0]["queueId"]}
    ids["jobId"] = next(j["jobId"] for j in dl.list_jobs(**ids)["jobs"] if j["name"] == arn)
    return ids


def test_two_processes_one_farm_suspension_and_tokens(
    tmp_path: Path, pair: tuple[ServeProcess, ServeProcess]
) -> None:
    a, b = pair
    control: Any = a  # ServeProcess.client takes Config members, not a service: only datasync
    tree = location_root(tmp_path / "files")
    for name in ("a", "b", "c"):
        make_tree(str(tree / "src" / name), 2, MiB, prefix=name)
    agent = AgentProcess(f"{a.url},{b.url}", tmp_path / "state", [tree], name="both")
    try:
        arn = activate(control, agent)
        task = locations(control, arn, tree / "src", tree / "dst", Options={"BytesPerSecond": MiB})
        via_a, via_b = a.client(), b.client()
        execution = via_a.start_task_execution(TaskArn=task)["TaskExecutionArn"]
        wait_bytes(via_b, execution, MiB // 2)

        dl_a, dl_b = deadline_of(a), deadline_of(b)
        ids = _ids(dl_a, execution)
        assert _ids(dl_b, execution) == ids  # one farm, the same IDs through either process
        steps = {s["name"]: s["stepId"] for s in dl_b.list_steps(**ids)["steps"]}
        transfer = {**ids, "stepId": steps["Transfer"]}
        wait_for(lambda: len(dl_b.list_tasks(**transfer)["tasks"]) == 3, 20)

        dl_b.update_job(**ids, targetTaskRunStatus="SUSPENDED", clientToken="multi-1")
        wait_for(lambda: dl_a.get_job(**ids)["taskRunStatus"] == "SUSPENDED", 20)
        frozen = via_a.describe_task_execution(TaskExecutionArn=execution)
        time.sleep(1.5)
        later = via_b.describe_task_execution(TaskExecutionArn=execution)
        assert later["Status"] == frozen["Status"] == "TRANSFERRING"
        assert later["BytesWritten"] == frozen["BytesWritten"] < 6 * MiB

        dl_a.update_job(**ids, targetTaskRunStatus="READY", clientToken="multi-2")
        # the replay through the other process answers and does nothing: nothing is suspended
        dl_a.update_job(**ids, targetTaskRunStatus="SUSPENDED", clientToken="multi-1")
        runs = [t["runStatus"] for t in dl_b.list_tasks(**transfer)["tasks"]]
        assert "SUSPENDED" not in runs, runs
        targets = [t.get("targetRunStatus") for t in dl_b.list_tasks(**transfer)["tasks"]]
        assert "SUSPENDED" not in targets, targets

        done = wait_status(via_b, execution, ("SUCCESS", "ERROR"), timeout=60)
        assert done["Status"] == "SUCCESS", done
        assert same_tree(tree / "src", tree / "dst") and temporaries(tree / "dst") == []
        finished = dl_a.get_job(**ids)
        assert finished["taskRunStatus"] == "SUCCEEDED" and finished["taskFailureRetryCount"] == 0
    finally:
        agent.stop()
