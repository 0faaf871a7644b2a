"""Operator control of work items through the Deadline Update* routes (api/deadline over
api/workitems), with real boto3 `deadline` and `datasync` clients on a real server.

The executions here have a plan (items 1…n, and a REMOVE item when the task says REMOVE) that no
agent runs: the server has no embedded agent, and the agent the locations name is activated but
never polls. The plan is written through the store's own `add_items`, exactly the rows a plan
upload makes, so what is tested is the routes and the domain's semantics: suspend, resume,
cancel, mark, UpdateStep/UpdateJob over several items, the end rule they lead to, clientToken
replays and conflicts, and that both suspensions and tokens survive a restart. Suspending items
that agents are running is tested with real agents where the agent runner lives.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from botocore.exceptions import ClientError

from api.store import Store
from api.workitems import ItemStatus, new_row
from contract.workitems import ItemKind, ItemScope
from tests.api.harness import Server, location_root, nfs_task, wait_for
from tests.api.test_deadline import deadline

DIRS = ("a", "b", "c")


@dataclass
class Plan:
    server: Server
    execution_arn: str
    ids: dict[str, str]  # farmId, queueId, jobId
    steps: dict[str, str]  # step name → stepId
    tasks: dict[int, str]  # item index → taskId

    @property
    def dl(self) -> Any:
        return deadline(self.server)

    def task(self, index: int) -> dict[str, Any]:
        step = self.steps["Transfer"] if index <= len(DIRS) else self.steps["Remove"]
        found: dict[str, Any] = self.dl.get_task(**self.ids, stepId=step, taskId=self.tasks[index])
        return found

    def update(self, index: int, target: str, **extra: Any) -> Any:
        step = self.steps["Transfer"] if index <= len(DIRS) else self.steps["Remove"]
        return self.dl.update_task(
            **self.ids, stepId=step, taskId=self.tasks[index], targetRunStatus=target, **extra
        )

    def refresh(self) -> None:
        """Read the IDs again (after a restart: they must be the same)."""
        dl = self.dl
        farm = dl.list_farms()["farms"][0]["farmId"]
        assert farm == self.ids["farmId"]
        steps = {s["name"]: s["stepId"] for s in dl.list_steps(**self.ids)["steps"]}
        assert steps == self.steps


def _store(server: Server) -> Store:
    assert server.served is not None
    store: Store = server.served.extras["backend"].store
    return store


@pytest.fixture
def plan(tmp_path: Path) -> Iterator[Plan]:
    root = location_root(tmp_path)
    for name in DIRS:
        (root / "src" / name).mkdir()
    server = Server(str(tmp_path / "data"), [str(root)], embedded_agent=False).start()
    try:
        # an activated (remote) agent that never polls: nothing runs the items, and a restart
        # of the control plane leaves its executions alone (their agent may re-attach)
        url = f"{server.url}/agent-activation"
        pending = httpx.post(url, json={"Name": "never-polls", "Roots": [str(root)]}).json()
        ds = server.client()
        agent = ds.create_agent(ActivationKey=pending["ActivationKey"])["AgentArn"]
        _, _, task = nfs_task(
            ds,
            agent,
            root / "src",
            root / "dst",
            Options={"PreserveDeletedFiles": "REMOVE", "VerifyMode": "NONE"},
        )
        arn = ds.start_task_execution(TaskArn=task)["TaskExecutionArn"]
        now = 1.0e9
        rows = [new_row(arn, 0, ItemKind.PREPARE, None, ItemStatus("SUCCEEDED"), now)]
        for index, name in enumerate(DIRS, start=1):
            scope = ItemScope(name, True, 1, 10)
            rows.append(new_row(arn, index, ItemKind.TRANSFER, scope, ItemStatus("READY"), now))
        remove = len(DIRS) + 1
        rows.append(new_row(arn, remove, ItemKind.REMOVE, None, ItemStatus("PENDING"), now))
        assert _store(server).add_items(rows)

        dl = deadline(server)
        farm = dl.list_farms()["farms"][0]["farmId"]
        queue = dl.list_queues(farmId=farm)["queues"][0]["queueId"]
        ids = {"farmId": farm, "queueId": queue}
        ids["jobId"] = dl.list_jobs(**ids)["jobs"][0]["jobId"]
        steps = {s["name"]: s["stepId"] for s in dl.list_steps(**ids)["steps"]}
        tasks: dict[int, str] = {}
        for name in ("Prepare", "Transfer", "Remove"):
            for listed in dl.list_tasks(**ids, stepId=steps[name])["tasks"]:
                tasks[int(listed["taskId"].rsplit("-", 1)[1])] = listed["taskId"]
        yield Plan(server, arn, ids, steps, tasks)
    finally:
        server.stop()


def test_the_plan_as_steps_and_tasks(plan: Plan) -> None:
    assert list(plan.steps) == ["Prepare", "Transfer", "Remove"]
    assert sorted(plan.tasks) == [0, 1, 2, 3, 4]
    paths = [plan.task(i)["parameters"]["path"]["path"] for i in (1, 2, 3)]
    assert paths == list(DIRS)
    assert plan.task(4)["runStatus"] == "PENDING"  # REMOVE waits for every TRANSFER item
    transfer = plan.dl.get_step(**plan.ids, stepId=plan.steps["Transfer"])
    assert transfer["taskRunStatus"] == "READY" and transfer["taskRunStatusCounts"]["READY"] == 3
    assert plan.dl.get_job(**plan.ids)["taskRunStatus"] == "READY"
    pages = plan.dl.get_paginator("list_tasks").paginate(
        **plan.ids, stepId=plan.steps["Transfer"], PaginationConfig={"PageSize": 2}
    )
    sizes = [len(p["tasks"]) for p in pages]
    assert sizes == [2, 1]
    listed = plan.dl.list_tasks(**plan.ids, stepId=plan.steps["Transfer"], maxResults=2)
    assert [t["taskId"] for t in listed["tasks"]] == [plan.tasks[1], plan.tasks[2]]


def test_suspend_and_resume_one_item(plan: Plan) -> None:
    ds = plan.server.client()
    assert plan.update(2, "SUSPENDED") is not None
    assert plan.task(2)["runStatus"] == "SUSPENDED"
    assert [plan.task(i)["runStatus"] for i in (1, 3)] == ["READY", "READY"]
    counts = plan.dl.get_step(**plan.ids, stepId=plan.steps["Transfer"])["taskRunStatusCounts"]
    assert (counts["SUSPENDED"], counts["READY"]) == (1, 2)
    status = ds.describe_task_execution(TaskExecutionArn=plan.execution_arn)["Status"]
    assert status not in ("SUCCESS", "ERROR")

    plan.update(2, "READY")
    assert plan.task(2)["runStatus"] == "READY" and plan.task(2)["failureRetryCount"] == 0


def test_step_and_job_updates_and_the_end_they_lead_to(plan: Plan) -> None:
    dl, ds = plan.dl, plan.server.client()
    dl.update_step(**plan.ids, stepId=plan.steps["Transfer"], targetTaskRunStatus="SUSPENDED")
    assert [plan.task(i)["runStatus"] for i in (1, 2, 3)] == ["SUSPENDED"] * 3
    assert dl.get_job(**plan.ids)["taskRunStatus"] == "SUSPENDED"  # nothing else will run
    dl.update_job(**plan.ids, targetTaskRunStatus="READY")
    assert [plan.task(i)["runStatus"] for i in (1, 2, 3)] == ["READY"] * 3

    # mark two done without running them, skip the third: the execution ends ERROR naming it
    plan.update(1, "SUCCEEDED")
    plan.update(2, "SUCCEEDED")
    plan.update(3, "CANCELED")
    assert plan.task(3)["runStatus"] == "CANCELED"
    # the REMOVE item never becomes READY now (not every TRANSFER item succeeded): skip it too
    dl.update_step(**plan.ids, stepId=plan.steps["Remove"], targetTaskRunStatus="CANCELED")
    assert plan.task(4)["runStatus"] == "CANCELED"

    def ended() -> dict[str, Any] | None:
        doc: dict[str, Any] = ds.describe_task_execution(TaskExecutionArn=plan.execution_arn)
        return doc if doc["Status"] in ("SUCCESS", "ERROR") else None

    doc = wait_for(ended, timeout=10)
    assert doc["Status"] == "ERROR" and "item 3 (c)" in doc["Result"]["ErrorDetail"]
    job = dl.get_job(**plan.ids)
    assert job["taskRunStatus"] == "CANCELED" and "endedAt" in job
    assert job["taskRunStatusCounts"]["SUCCEEDED"] == 3  # items 0, 1, 2

    # requeueing anything of an ended execution is a conflict
    with pytest.raises(ClientError) as caught:
        plan.update(3, "READY")
    conflict = caught.value.response
    assert conflict["Error"]["Code"] == "ConflictException"
    assert conflict["reason"] == "STATUS_CONFLICT"  # type: ignore[typeddict-item]
    assert conflict["resourceId"] == plan.tasks[3]  # type: ignore[typeddict-item]


def test_client_token_replay_conflict_and_restart(plan: Plan) -> None:
    plan.update(1, "SUSPENDED", clientToken="token-1")
    assert plan.task(1)["runStatus"] == "SUSPENDED"
    plan.update(1, "READY", clientToken="token-2")
    assert plan.task(1)["runStatus"] == "READY"

    # the replay answers as the first time did and has no second effect
    assert "ResponseMetadata" in plan.update(1, "SUSPENDED", clientToken="token-1")
    assert plan.task(1)["runStatus"] == "READY"
    # the same token for another request is a conflict
    for index, target in ((1, "CANCELED"), (2, "SUSPENDED")):
        with pytest.raises(ClientError) as caught:
            plan.update(index, target, clientToken="token-1")
        assert caught.value.response["Error"]["Code"] == "ConflictException"
        assert caught.value.response["resourceType"] == "clientToken"  # type: ignore[typeddict-item]
    assert plan.task(2)["runStatus"] == "READY"

    # a suspension and the tokens survive a restart
    plan.update(3, "SUSPENDED", clientToken="token-3")
    plan.server.restart()
    plan.refresh()
    assert plan.task(3)["runStatus"] == "SUSPENDED"
    plan.update(1, "SUSPENDED", clientToken="token-1")
    assert plan.task(1)["runStatus"] == "READY"
    with pytest.raises(ClientError) as caught:
        plan.update(1, "FAILED", clientToken="token-1")
    assert caught.value.response["Error"]["Code"] == "ConflictException"
    plan.update(3, "READY", clientToken="token-4")
    assert plan.task(3)["runStatus"] == "READY"


def test_suspend_a_running_item_through_the_jobs_protocol(tmp_path: Path) -> None:
    """UpdateTask SUSPENDED on an item an agent runs: it keeps RUNNING with the target until the
    agent (driven over the jobs protocol: tests/agents/test_work_items.Fleet) acknowledges,
    then it is SUSPENDED without a retry counted, the execution keeps its phase, and READY
    offers it again under a new executionNumber."""
    from tests.agents.test_work_items import SCOPES, Fleet

    root = location_root(tmp_path)
    server = Server(str(tmp_path / "data"), [str(root)], embedded_agent=False).start()
    try:
        fleet = Fleet(server, root, remote=True)
        arn, _job_ids = fleet.planned(SCOPES[1:])  # items 1 (a) and 2 (b)
        running = fleet.claim(0)
        assert running is not None
        fleet.report(0, running, counters={"FilesTransferred": 2}, phase="TRANSFERRING")

        # an agent's own credentials call only the jobs endpoint
        key, secret = fleet.keys[0]
        agent = deadline(server, aws_access_key_id=key, aws_secret_access_key=secret)
        with pytest.raises(ClientError) as caught:
            agent.list_farms()
        assert caught.value.response["Error"]["Code"] == "AccessDeniedException"

        dl = deadline(server)
        farm = dl.list_farms()["farms"][0]["farmId"]
        ids = {"farmId": farm, "queueId": dl.list_queues(farmId=farm)["queues"][0]["queueId"]}
        ids["jobId"] = next(j["jobId"] for j in dl.list_jobs(**ids)["jobs"] if j["name"] == arn)
        steps = {s["name"]: s["stepId"] for s in dl.list_steps(**ids)["steps"]}
        ids["stepId"] = steps["Transfer"]
        tasks = dl.list_tasks(**ids)["tasks"]
        by_path = {
            dl.get_task(**ids, taskId=t["taskId"])["parameters"]["path"]["path"]: t for t in tasks
        }
        assert sorted(by_path) == ["a", "b"]
        held = by_path["a"]["taskId"]
        assert dl.get_task(**ids, taskId=held)["runStatus"] == "RUNNING"
        assert dl.get_step(**ids)["taskRunStatus"] == "RUNNING"

        dl.update_task(**ids, taskId=held, targetRunStatus="SUSPENDED")
        wished = dl.get_task(**ids, taskId=held)
        assert (wished["runStatus"], wished["targetRunStatus"]) == ("RUNNING", "SUSPENDED")
        state = fleet.report(0, running, counters={"FilesTransferred": 3})
        assert state["statusDetails"]["control:suspend"] == "true"
        fleet.report(0, running, "FAILED", **{"agent:interrupted": "SUSPENDED"})
        suspended = dl.get_task(**ids, taskId=held)
        assert suspended["runStatus"] == "SUSPENDED" and suspended["failureRetryCount"] == 0
        described = fleet.describe(arn)
        assert described["Status"] == "TRANSFERRING" and described["FilesTransferred"] == 3

        dl.update_task(**ids, taskId=held, targetRunStatus="READY")
        assert dl.get_task(**ids, taskId=held)["runStatus"] == "READY"
        again = fleet.claim(1)
        assert again is not None and again["jobId"] == running["jobId"]
        assert again["executionNumber"] == running["executionNumber"] + 1
        assert dl.get_task(**ids, taskId=held)["runStatus"] == "RUNNING"
    finally:
        server.stop()
