"""api.scheduler: agent choice among several, takeover, the one claim path, timers, nobody-online.

Most tests drive the backend and the jobs protocol over a real store with a clock the test moves
(so timeouts of minutes take no time); one runs the failover end to end through boto3.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from api.config import ServerConfig
from api.errors import (
    InvalidStateTransitionException,
    ResourceNotFoundException,
)
from api.jobs import Jobs
from api.models import Backend
from api.store import Store
from api.workitems import SUCCEEDED, WorkItem, change_item, list_items
from contract.workitems import ItemScope, PlanUpload
from tests.api.harness import Server, location_root, wait_for


class Clock:
    def __init__(self) -> None:
        self.t = 1_800_000_000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def world(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """Two agents bound to both locations of one task, a movable clock, the jobs protocol."""
    root = location_root(tmp_path)
    clock = Clock()
    store = Store.in_directory(str(tmp_path / "data"))
    backend = Backend(
        store, ServerConfig(account_id="111122223333", agent_timeout=60.0, clock=clock)
    )
    a = backend.register_agent("a", [str(root)])
    b = backend.register_agent("b", [str(root)])

    def nfs(path: Path) -> str:
        arn: str = backend.create_location_nfs(
            {
                "ServerHostname": "localhost",
                "Subdirectory": str(path),
                "OnPremConfig": {"AgentArns": [a, b]},
            }
        )["LocationArn"]
        return arn

    task = backend.create_task(
        {"SourceLocationArn": nfs(root / "src"), "DestinationLocationArn": nfs(root / "dst")}
    )["TaskArn"]
    try:
        yield {
            "backend": backend,
            "jobs": Jobs(backend),
            "clock": clock,
            "a": a,
            "b": b,
            "task": task,
        }
    finally:
        store.close()


def thing(arn: str) -> str:
    return arn.rsplit("/", 1)[1]


def start(world: dict[str, Any], **extra: Any) -> str:
    arn: str = world["backend"].start_task_execution({"TaskArn": world["task"], **extra})[
        "TaskExecutionArn"
    ]
    return arn


def describe(world: dict[str, Any], arn: str) -> Any:
    return world["backend"].describe_task_execution({"TaskExecutionArn": arn})


def test_lost_agent_job_is_taken_over_by_the_other_agent(world: dict[str, Any]) -> None:
    jobs, clock, a, b = world["jobs"], world["clock"], world["a"], world["b"]
    arn = start(world)
    job = jobs.start_next(thing(a), {})["execution"]
    assert job["executionNumber"] == 1
    assert jobs.start_next(thing(b), {}) == {}  # not b's: its owner is ONLINE
    clock.t += 30
    jobs.start_next(thing(b), {})  # b keeps speaking, a falls silent
    clock.t += 31  # a's lease (60 s from its claim) ran out
    assert jobs.reap() == 1
    assert describe(world, arn)["Status"] == "LAUNCHING"  # queued again, not failed
    again = jobs.start_next(thing(b), {})["execution"]
    assert again["jobId"] == job["jobId"] and again["executionNumber"] == 2
    with pytest.raises(ResourceNotFoundException):  # the lost agent is fenced off
        jobs.update(thing(a), job["jobId"], {"status": "SUCCEEDED"})
    with pytest.raises(ResourceNotFoundException, match="execution number 1"):
        jobs.update(thing(b), job["jobId"], {"status": "IN_PROGRESS", "executionNumber": 1})
    jobs.update(thing(b), job["jobId"], {"status": "SUCCEEDED", "executionNumber": 2})
    assert describe(world, arn)["Status"] == "SUCCESS"


def test_executions_spread_over_online_agents_and_skip_offline_ones(
    world: dict[str, Any],
) -> None:
    backend, clock, a, b = world["backend"], world["clock"], world["a"], world["b"]
    first = start(world)
    second = start(world, Includes=[{"FilterType": "SIMPLE_PATTERN", "Value": "/x"}])
    owners = {backend.store.execution(e)["AgentArn"] for e in (first, second)}
    assert owners == {a, b}  # each agent has one slot: the second goes to the idle one
    assert describe(world, second)["Status"] == "LAUNCHING"
    # a goes OFFLINE; only b speaks: a's unclaimed execution moves to b
    clock.t += 61
    world["jobs"].start_next(thing(b), {})
    world["jobs"].reap()
    assert {backend.store.execution(e)["AgentArn"] for e in (first, second)} == {b}


def test_unclaimed_execution_with_every_agent_offline_ends_clearly(
    world: dict[str, Any],
) -> None:
    backend, jobs, clock = world["backend"], world["jobs"], world["clock"]
    arn = start(world)
    assert backend.describe_task({"TaskArn": world["task"]})["Status"] == "RUNNING"
    clock.t += 61  # both agents OFFLINE
    assert backend.describe_task({"TaskArn": world["task"]})["Status"] == "UNAVAILABLE"
    jobs.reap()
    assert describe(world, arn)["Status"] == "LAUNCHING"  # it waits, bounded
    clock.t += 61  # unclaimed_timeout (= agent timeout) after the last agent went OFFLINE
    assert jobs.reap() == 1
    ended = describe(world, arn)
    assert ended["Status"] == "ERROR"
    assert ended["Result"]["ErrorCode"] == "AgentUnavailable"
    assert world["a"] in ended["Result"]["ErrorDetail"]
    job = jobs.describe(thing(world["a"]), thing(arn), False)["execution"]
    assert job["status"] == "CANCELED"


def test_step_timer_shorter_than_agent_timeout_times_the_job_out(world: dict[str, Any]) -> None:
    jobs, clock, a = world["jobs"], world["clock"], world["a"]
    world["backend"].config.agent_timeout = 300.0
    arn = start(world)
    job = jobs.start_next(thing(a), {"stepTimeoutInMinutes": 1})["execution"]
    assert job["approximateSecondsBeforeTimedOut"] == 60
    clock.t += 40
    jobs.update(thing(a), job["jobId"], {"status": "IN_PROGRESS"})  # a heartbeat, same timer
    clock.t += 21
    assert jobs.reap() == 1
    ended = describe(world, arn)
    assert ended["Status"] == "ERROR" and ended["Result"]["ErrorCode"] == "StepTimedOut"
    state = jobs.describe(thing(a), job["jobId"], False)["execution"]
    assert state["status"] == "TIMED_OUT"
    with pytest.raises(InvalidStateTransitionException):  # terminal stays terminal
        jobs.update(thing(a), job["jobId"], {"status": "SUCCEEDED"})
    assert describe(world, arn)["Status"] == "ERROR"


def test_step_timer_reset_and_cleared(world: dict[str, Any]) -> None:
    jobs, clock, a = world["jobs"], world["clock"], world["a"]
    world["backend"].config.agent_timeout = 300.0
    arn = start(world)
    job = jobs.start_next(thing(a), {"stepTimeoutInMinutes": 1})["execution"]
    clock.t += 50
    jobs.update(thing(a), job["jobId"], {"status": "IN_PROGRESS", "stepTimeoutInMinutes": 1})
    clock.t += 50
    assert jobs.reap() == 0  # reset 50 s ago
    jobs.update(thing(a), job["jobId"], {"status": "IN_PROGRESS", "stepTimeoutInMinutes": -1})
    clock.t += 200
    assert jobs.reap() == 0 and describe(world, arn)["Status"] == "LAUNCHING"


def test_update_never_claims_a_queued_job(world: dict[str, Any]) -> None:
    jobs, a = world["jobs"], world["a"]
    arn = start(world)
    with pytest.raises(InvalidStateTransitionException, match="StartNextPendingJobExecution"):
        jobs.update(thing(a), thing(arn), {"status": "IN_PROGRESS"})


def test_claims_honour_the_declared_slots(world: dict[str, Any]) -> None:
    jobs, a = world["jobs"], world["a"]
    world["backend"].scheduler.online = lambda arn: arn == a  # type: ignore[method-assign]
    arns = [
        start(world, Includes=[{"FilterType": "SIMPLE_PATTERN", "Value": f"/{i}"}])
        for i in range(3)
    ]
    slots = {"agent:slots": "2", "agent:running": "-"}
    one = jobs.start_next(thing(a), {"statusDetails": slots})["execution"]["jobId"]
    running = {"agent:slots": "2", "agent:running": one}
    two = jobs.start_next(thing(a), {"statusDetails": running})["execution"]["jobId"]
    both = {"agent:slots": "2", "agent:running": f"{one},{two}"}
    assert jobs.start_next(thing(a), {"statusDetails": both}) == {}
    assert [thing(x) for x in arns[:2]] == [one, two]


def test_cancel_that_returned_200_is_never_followed_by_success(world: dict[str, Any]) -> None:
    backend, jobs, a = world["backend"], world["jobs"], world["a"]
    arn = start(world)
    job = jobs.start_next(thing(a), {})["execution"]
    backend.cancel_task_execution({"TaskExecutionArn": arn})
    # the agent finished before it heard of the cancel
    jobs.update(
        thing(a),
        job["jobId"],
        {
            "status": "SUCCEEDED",
            "statusDetails": {"result": json.dumps({"TransferStatus": "SUCCESS"})},
        },
    )
    ended = describe(world, arn)
    assert ended["Status"] == "ERROR" and ended["Result"]["ErrorCode"] == "Cancelled"


def test_failover_between_two_agents_end_to_end(tmp_path: Path) -> None:
    """Through boto3: agent a claims and goes silent, agent b takes the job over and ends it."""
    root = location_root(tmp_path)
    server = Server(str(tmp_path / "data"), [str(root)], embedded_agent=False, agent_timeout=1.5)
    server.start()
    try:
        assert server.served is not None
        backend = server.served.app.state.backend
        a = backend.register_agent("a", [str(root)])
        b = backend.register_agent("b", [str(root)])
        ds, jobs = server.client(), server.client("iot-jobs-data")
        locations = [
            ds.create_location_nfs(
                ServerHostname="localhost",
                Subdirectory=str(root / sub),
                OnPremConfig={"AgentArns": [a, b]},
            )["LocationArn"]
            for sub in ("src", "dst")
        ]
        task = ds.create_task(SourceLocationArn=locations[0], DestinationLocationArn=locations[1])
        arn = ds.start_task_execution(TaskArn=task["TaskArn"])["TaskExecutionArn"]
        claimed = jobs.start_next_pending_job_execution(thingName=thing(a))["execution"]

        def b_takes_it() -> Any:
            return jobs.start_next_pending_job_execution(thingName=thing(b)).get("execution")

        taken = wait_for(b_takes_it, timeout=15, interval=0.2)
        assert taken["jobId"] == claimed["jobId"] and taken["executionNumber"] == 2
        jobs.update_job_execution(thingName=thing(b), jobId=taken["jobId"], status="SUCCEEDED")
        assert ds.describe_task_execution(TaskExecutionArn=arn)["Status"] == "SUCCESS"
    finally:
        server.stop()


def _plan_and_claim(world: dict[str, Any], scopes: list[ItemScope]) -> str:
    """Start an execution, plan it into `scopes` through the jobs protocol, claim one item;
    returns the execution's ARN."""
    jobs, agent = world["jobs"], thing(world["a"])
    arn = start(world)
    plan = jobs.start_next(agent, {})["execution"]
    jobs.upload_plan(agent, plan["jobId"], PlanUpload(plan["executionNumber"], scopes).to_json())
    jobs.update(agent, plan["jobId"], {"status": "SUCCEEDED"})
    assert jobs.start_next(agent, {})["execution"]["jobId"].startswith(arn.rsplit("/", 1)[1])
    return arn


def _end_without_roll_up(world: dict[str, Any], arn: str, index: int) -> None:
    """An item's end written, and the process "killed" before the roll-up into its execution."""

    def ended(current: WorkItem) -> WorkItem:
        return replace(current, status=SUCCEEDED, ended_at=current.updated_at)

    assert change_item(world["backend"].store, arn, index, ended) is not None


def test_an_execution_whose_items_all_ended_without_its_roll_up_is_settled_by_the_reaper(
    world: dict[str, Any],
) -> None:
    """An item's last report and its execution's roll-up are two writes: a process killed
    between them (seen in tests/reliability/test_crash.py under load) left the execution
    TRANSFERRING for good, its items all SUCCEEDED. The reaper settles it."""
    arn = _plan_and_claim(world, [ItemScope("d", True, 1, 10)])
    _end_without_roll_up(world, arn, 1)
    assert describe(world, arn)["Status"] not in ("SUCCESS", "ERROR")
    world["jobs"].reap()
    assert describe(world, arn)["Status"] == "SUCCESS"


def test_the_roots_files_item_left_pending_by_a_kill_is_released_by_the_reaper(
    world: dict[str, Any],
) -> None:
    """The same window, one item earlier: the root's files wait PENDING for the items beneath
    the root, and the release comes with the roll-up of the last of those (seen with seed 1 of
    tests/reliability/test_crash.py under load: PREPARING for good, item 1 PENDING)."""
    arn = _plan_and_claim(world, [ItemScope("", False, 1, 10), ItemScope("d", True, 1, 10)])
    store = world["backend"].store
    assert [i.status.value for i in list_items(store, arn)[1:]] == ["PENDING", "RUNNING"]
    _end_without_roll_up(world, arn, 2)
    world["jobs"].reap()
    assert list_items(store, arn)[1].status.value == "READY"  # the embedded agent takes it next
