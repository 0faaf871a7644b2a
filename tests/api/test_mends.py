"""Regressions of issue 10's mends: signing region, whole-value patterns, forged NextTokens,
UpdateTaskExecution's one BytesPerSecond rule, and executionNumber on the jobs endpoint."""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.api.harness import Server


def test_a_request_signed_for_another_region_is_refused(server: Server) -> None:
    other = server.client(region_name="eu-west-1")
    with pytest.raises(ClientError) as info:
        other.list_tasks()
    assert info.value.response["Error"]["Code"] == "InvalidSignatureException"
    assert "eu-west-1" in info.value.response["Error"]["Message"]
    assert server.client().list_tasks()["Tasks"] == []  # the server's own region still works


def test_a_subdirectory_with_a_trailing_newline_is_refused(
    server: Server, ds: Any, root: Path
) -> None:
    with pytest.raises(ds.exceptions.InvalidRequestException, match="Subdirectory"):
        ds.create_location_nfs(
            ServerHostname="localhost",
            Subdirectory=os.fspath(root / "src") + "\n",
            OnPremConfig={"AgentArns": [server.agent_arn]},
        )


@pytest.mark.parametrize(
    "forged",
    [
        "arn:aws:datasync:us-east-1:111122223333:task/task-00000000000000000",
        "zzzz",
        # the old format with a digest of another key
        "arn:x\x00" + hashlib.sha256(b"arn:y").hexdigest()[:16],
    ],
)
def test_a_forged_next_token_that_decodes_is_an_invalid_request(ds: Any, forged: str) -> None:
    token = base64.urlsafe_b64encode(forged.encode()).decode()
    with pytest.raises(ds.exceptions.InvalidRequestException, match="NextToken"):
        ds.list_tasks(NextToken=token)


def test_issued_tokens_still_page(ds: Any, server: Server, root: Path) -> None:
    for sub in ("src", "dst", "src"):
        ds.create_location_nfs(
            ServerHostname="localhost",
            Subdirectory=os.fspath(root / sub),
            OnPremConfig={"AgentArns": [server.agent_arn]},
        )
    first = ds.list_locations(MaxResults=2)
    rest = ds.list_locations(MaxResults=2, NextToken=first["NextToken"])
    assert len(first["Locations"]) == 2 and len(rest["Locations"]) == 1


def test_update_task_execution_bytes_per_second_rule(ds: Any, locations: tuple[str, str]) -> None:
    task = ds.create_task(SourceLocationArn=locations[0], DestinationLocationArn=locations[1])
    arn = ds.start_task_execution(TaskArn=task["TaskArn"], OverrideOptions={"BytesPerSecond": 1})[
        "TaskExecutionArn"
    ]
    # the rule is checked before the status, so the answer does not depend on how far it got
    with pytest.raises(ds.exceptions.InvalidRequestException, match=r"-1 \(unlimited\)"):
        ds.update_task_execution(TaskExecutionArn=arn, Options={"BytesPerSecond": 0})


def test_describe_job_execution_honours_execution_number(tmp_path: Path) -> None:
    from tests.api.harness import location_root, nfs_task

    root = location_root(tmp_path)
    server = Server(str(tmp_path / "data"), [str(root)], embedded_agent=False).start()
    try:
        assert server.served is not None
        agent = server.served.app.state.backend.register_agent("remote", [str(root)])
        ds, jobs = server.client(), server.client("iot-jobs-data")
        _src, _dst, task = nfs_task(ds, agent, root / "src", root / "dst")
        ds.start_task_execution(TaskArn=task)
        thing = agent.rsplit("/", 1)[1]
        job = jobs.start_next_pending_job_execution(thingName=thing)["execution"]
        same = jobs.describe_job_execution(thingName=thing, jobId=job["jobId"], executionNumber=1)
        assert same["execution"]["executionNumber"] == 1
        with pytest.raises(jobs.exceptions.ResourceNotFoundException, match="execution number"):
            jobs.describe_job_execution(thingName=thing, jobId=job["jobId"], executionNumber=7)
        with pytest.raises(jobs.exceptions.ResourceNotFoundException, match="execution number"):
            jobs.update_job_execution(
                thingName=thing, jobId=job["jobId"], status="IN_PROGRESS", executionNumber=7
            )
    finally:
        server.stop()
