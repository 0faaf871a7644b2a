"""The jobs endpoint, driven by boto3's own `iot-jobs-data` client, and a real agent over HTTP."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import httpx
import pytest
from botocore.exceptions import ClientError

from agents.agent import Agent, encode_details
from agents.client import JobsClient
from agents.locations import resolve_location
from engine import LocationError
from tests.api.harness import (
    ACCESS_KEY,
    REGION,
    SECRET_KEY,
    Server,
    make_tree,
    nfs_task,
    wait_for,
)


@pytest.fixture
def remote(server: Server, root: Path) -> dict[str, Any]:
    """A remote agent registered in the store, a task on it, and both clients."""
    assert server.served is not None
    backend = server.served.app.state.backend
    agent_arn = backend.register_agent("remote", [str(root)])
    ds = server.client()
    _src, _dst, task = nfs_task(ds, agent_arn, root / "src", root / "dst")
    return {
        "agent": agent_arn,
        "thing": agent_arn.rsplit("/", 1)[1],
        "task": task,
        "ds": ds,
        "jobs": server.client("iot-jobs-data"),
    }


def test_claim_report_finish(remote: dict[str, Any]) -> None:
    ds, jobs, thing = remote["ds"], remote["jobs"], remote["thing"]
    assert jobs.start_next_pending_job_execution(thingName=thing).get("execution") is None
    first = ds.start_task_execution(TaskArn=remote["task"])["TaskExecutionArn"]
    second = ds.start_task_execution(
        TaskArn=remote["task"], Includes=[{"FilterType": "SIMPLE_PATTERN", "Value": "/a"}]
    )["TaskExecutionArn"]
    pending = jobs.get_pending_job_executions(thingName=thing)
    assert [j["jobId"] for j in pending["queuedJobs"]] == [
        first.rsplit("/", 1)[1],
        second.rsplit("/", 1)[1],
    ]
    claimed = jobs.start_next_pending_job_execution(thingName=thing, stepTimeoutInMinutes=5)
    execution = claimed["execution"]
    assert execution["jobId"] == first.rsplit("/", 1)[1]  # FIFO
    assert execution["status"] == "IN_PROGRESS" and execution["versionNumber"] == 2
    document = json.loads(execution["jobDocument"])
    assert document["Source"]["Subdirectory"].endswith("/src")
    assert document["Options"]["VerifyMode"] == "POINT_IN_TIME_CONSISTENT"
    assert ds.describe_task_execution(TaskExecutionArn=first)["Status"] == "LAUNCHING"
    # while a job runs, $next hands the same one back (re-attach), never a second one
    again = jobs.start_next_pending_job_execution(thingName=thing)["execution"]
    assert again["jobId"] == execution["jobId"]

    counters = {"EstimatedFilesToTransfer": 3, "FilesTransferred": 1, "BytesWritten": 10}
    state = jobs.update_job_execution(
        thingName=thing,
        jobId=execution["jobId"],
        status="IN_PROGRESS",
        statusDetails={"phase": "TRANSFERRING", "counters": json.dumps(counters)},
        expectedVersion=2,
        includeJobExecutionState=True,
    )["executionState"]
    assert state["versionNumber"] == 3
    assert state["statusDetails"]["control:bytesPerSecond"] == "-1"
    described = ds.describe_task_execution(TaskExecutionArn=first)
    assert described["Status"] == "TRANSFERRING" and described["FilesTransferred"] == 1

    with pytest.raises(ClientError) as info:  # stale expectedVersion
        jobs.update_job_execution(
            thingName=thing, jobId=execution["jobId"], status="IN_PROGRESS", expectedVersion=2
        )
    assert info.value.response["Error"]["Code"] == "VersionMismatch"
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 409

    ds.update_task_execution(TaskExecutionArn=first, Options={"BytesPerSecond": 4096})
    state = jobs.update_job_execution(
        thingName=thing,
        jobId=execution["jobId"],
        status="SUCCEEDED",
        statusDetails={
            "phase": "SUCCESS",
            "counters": json.dumps({**counters, "FilesTransferred": 3}),
            "result": json.dumps({"TransferStatus": "SUCCESS", "VerifyStatus": "SUCCESS"}),
        },
        expectedVersion=3,
        includeJobExecutionState=True,
        includeJobDocument=True,
    )
    assert state["executionState"]["status"] == "SUCCEEDED"
    assert state["executionState"]["statusDetails"]["control:bytesPerSecond"] == "4096"
    assert json.loads(state["jobDocument"])["TaskExecutionArn"] == first
    final = ds.describe_task_execution(TaskExecutionArn=first)
    assert final["Status"] == "SUCCESS" and final["FilesTransferred"] == 3

    with pytest.raises(jobs.exceptions.InvalidStateTransitionException):
        jobs.update_job_execution(thingName=thing, jobId=execution["jobId"], status="IN_PROGRESS")
    assert (
        jobs.describe_job_execution(thingName=thing, jobId=execution["jobId"])["execution"][
            "status"
        ]
        == "SUCCEEDED"
    )
    assert (
        jobs.start_next_pending_job_execution(thingName=thing)["execution"]["jobId"]
        == (second.rsplit("/", 1)[1])
    )


def test_cancel_reaches_the_agent_in_the_reply(remote: dict[str, Any]) -> None:
    ds, jobs, thing = remote["ds"], remote["jobs"], remote["thing"]
    arn = ds.start_task_execution(TaskArn=remote["task"])["TaskExecutionArn"]
    job = jobs.start_next_pending_job_execution(thingName=thing)["execution"]
    ds.cancel_task_execution(TaskExecutionArn=arn)
    assert ds.describe_task_execution(TaskExecutionArn=arn)["Status"] == "CANCELLING"
    state = jobs.update_job_execution(
        thingName=thing, jobId=job["jobId"], status="IN_PROGRESS", includeJobExecutionState=True
    )["executionState"]
    assert state["statusDetails"]["control:cancel"] == "true"
    jobs.update_job_execution(thingName=thing, jobId=job["jobId"], status="FAILED")
    ended = ds.describe_task_execution(TaskExecutionArn=arn)
    assert ended["Status"] == "ERROR" and ended["Result"]["ErrorCode"] == "Cancelled"


def test_protocol_errors(remote: dict[str, Any], server: Server) -> None:
    ds, jobs, thing = remote["ds"], remote["jobs"], remote["thing"]
    with pytest.raises(jobs.exceptions.ResourceNotFoundException):
        jobs.get_pending_job_executions(thingName="agent-00000000000000000")
    with pytest.raises(jobs.exceptions.ResourceNotFoundException):
        jobs.describe_job_execution(thingName=thing, jobId="exec-00000000000000000")
    ds.start_task_execution(TaskArn=remote["task"])
    job = jobs.start_next_pending_job_execution(thingName=thing)["execution"]
    with pytest.raises(jobs.exceptions.InvalidRequestException, match="set by the service"):
        jobs.update_job_execution(thingName=thing, jobId=job["jobId"], status="CANCELED")
    with pytest.raises(jobs.exceptions.InvalidRequestException, match="statusDetails"):
        jobs.update_job_execution(
            thingName=thing,
            jobId=job["jobId"],
            status="IN_PROGRESS",
            statusDetails={"phase": "x" * 1025},
        )
    unsigned = httpx.get(f"{server.url}/things/{thing}/jobs")
    assert unsigned.status_code == 403
    assert unsigned.headers["x-amzn-ErrorType"] == "UnrecognizedClientException"
    as_datasync = server.client("datasync")  # datasync-scoped signature on the jobs endpoint
    assert as_datasync.meta.service_model.signing_name == "datasync"


def test_silent_agent_loses_its_job_and_goes_offline(remote: dict[str, Any]) -> None:
    ds, jobs, thing = remote["ds"], remote["jobs"], remote["thing"]
    arn = ds.start_task_execution(TaskArn=remote["task"])["TaskExecutionArn"]
    jobs.start_next_pending_job_execution(thingName=thing)
    ended = wait_for(
        lambda: (d := ds.describe_task_execution(TaskExecutionArn=arn))["Status"] == "ERROR" and d,
        timeout=10,
    )
    assert ended["Result"]["ErrorCode"] == "AgentTimeout"
    assert ds.describe_agent(AgentArn=remote["agent"])["Status"] == "OFFLINE"
    assert ds.describe_task(TaskArn=remote["task"])["Status"] == "UNAVAILABLE"
    job = jobs.describe_job_execution(thingName=thing, jobId=arn.rsplit("/", 1)[1])["execution"]
    assert job["status"] == "TIMED_OUT"
    time.sleep(0.1)
    assert ds.describe_agent(AgentArn=remote["agent"])["Status"] == "ONLINE"  # it spoke again


def test_agent_over_loopback_http_runs_a_transfer(
    remote: dict[str, Any], server: Server, root: Path
) -> None:
    make_tree(str(root / "src"), 5, 20_000)
    ds = remote["ds"]
    arn = ds.start_task_execution(TaskArn=remote["task"])["TaskExecutionArn"]

    async def main() -> str:
        client = JobsClient(server.url, ACCESS_KEY, SECRET_KEY, REGION)
        agent = Agent(client, remote["thing"], [str(root)], poll_interval=0.1, report_interval=0.3)
        async with anyio.create_task_group() as tg:
            tg.start_soon(agent.run)

            def finished() -> str | None:
                status = ds.describe_task_execution(TaskExecutionArn=arn)["Status"]
                return status if status in ("SUCCESS", "ERROR") else None

            with anyio.fail_after(20):
                while (status := await anyio.to_thread.run_sync(finished)) is None:
                    await anyio.sleep(0.1)
            await agent.stop()
            tg.cancel_scope.cancel()
        await client.aclose()
        assert status is not None
        return status

    assert anyio.run(main) == "SUCCESS"
    assert sorted(os.listdir(root / "dst")) == sorted(os.listdir(root / "src"))


def test_agent_refuses_paths_outside_its_roots(tmp_path: Path, root: Path) -> None:
    location = {"ServerHostname": "localhost", "Subdirectory": str(root / "src")}
    assert resolve_location(location, [str(root)]) == os.path.realpath(root / "src")
    (root / "link").symlink_to(tmp_path)
    for bad in (
        {"ServerHostname": "localhost", "Subdirectory": str(root / "link")},
        {"ServerHostname": "localhost", "Subdirectory": str(root / ".." / "data")},
        {"ServerHostname": "elsewhere.example", "Subdirectory": str(root / "src")},
        {"ServerHostname": "localhost", "Subdirectory": "src"},
    ):
        with pytest.raises(LocationError):
            resolve_location(bad, [str(root)])


def test_status_details_stay_within_the_protocol_limit() -> None:
    snapshot = {
        "Status": "ERROR",
        "FilesTransferred": 10**12,
        "FilesListed": {"AtSource": 5, "AtDestinationForDelete": 0},
        "Result": {"TransferStatus": "ERROR", "ErrorCode": "X", "ErrorDetail": "y" * 5000},
    }
    details = encode_details(snapshot)
    assert details["phase"] == "ERROR"
    assert all(0 < len(v) <= 1024 for v in details.values())
    assert json.loads(details["result"])["ErrorDetail"].endswith("...")
    assert json.loads(details["counters"])["FilesListed"]["AtSource"] == 5


def test_agent_fails_a_job_outside_its_own_roots(
    remote: dict[str, Any], server: Server, tmp_path: Path
) -> None:
    ds = remote["ds"]
    arn = ds.start_task_execution(TaskArn=remote["task"])["TaskExecutionArn"]

    async def main() -> None:
        client = JobsClient(server.url, ACCESS_KEY, SECRET_KEY, REGION)
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        agent = Agent(client, remote["thing"], [str(elsewhere)], poll_interval=0.1)
        async with anyio.create_task_group() as tg:
            tg.start_soon(agent.run)
            with anyio.fail_after(10):
                while (
                    await anyio.to_thread.run_sync(
                        lambda: ds.describe_task_execution(TaskExecutionArn=arn)["Status"]
                    )
                    != "ERROR"
                ):
                    await anyio.sleep(0.1)
            await agent.stop()
            tg.cancel_scope.cancel()
        await client.aclose()

    anyio.run(main)
    result = ds.describe_task_execution(TaskExecutionArn=arn)["Result"]
    assert result["ErrorCode"] == "LocationError"
    assert "outside this agent's roots" in result["ErrorDetail"]
