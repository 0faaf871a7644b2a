"""Agents, locations, tasks, tags and pagination through boto3."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from tests.api.harness import Server


def test_agents(server: Server, ds: Any) -> None:
    agents = ds.list_agents()["Agents"]
    assert [a["AgentArn"] for a in agents] == [server.agent_arn]
    assert agents[0]["Status"] == "ONLINE"
    described = ds.describe_agent(AgentArn=server.agent_arn)
    assert described["Name"] == "embedded" and described["EndpointType"] == "PUBLIC"
    assert described["Platform"]["Version"]
    ds.update_agent(AgentArn=server.agent_arn, Name="renamed")
    assert ds.describe_agent(AgentArn=server.agent_arn)["Name"] == "renamed"
    with pytest.raises(ds.exceptions.InvalidRequestException, match="Activation key"):
        ds.create_agent(ActivationKey="AAAAA-BBBBB-CCCCC-DDDDD-EEEEE")
    missing = server.agent_arn[:-3] + "fff"
    with pytest.raises(ds.exceptions.InvalidRequestException, match="not found"):
        ds.describe_agent(AgentArn=missing)


def test_delete_agent_in_use_is_refused(server: Server, ds: Any, locations: Any) -> None:
    with pytest.raises(ds.exceptions.InvalidRequestException, match="used by location"):
        ds.delete_agent(AgentArn=server.agent_arn)


def test_locations_crud(server: Server, ds: Any, root: Path, locations: tuple[str, str]) -> None:
    src, dst = locations
    nfs = ds.describe_location_nfs(LocationArn=src)
    assert nfs["LocationUri"] == f"nfs://localhost{root}/src/"
    assert nfs["OnPremConfig"]["AgentArns"] == [server.agent_arn]
    assert nfs["MountOptions"] == {"Version": "AUTOMATIC"}
    smb = ds.describe_location_smb(LocationArn=dst)
    assert smb["LocationUri"] == f"smb://127.0.0.1{root}/dst/"
    assert smb["AgentArns"] == [server.agent_arn]
    with pytest.raises(ds.exceptions.InvalidRequestException, match="not NFS"):
        ds.describe_location_nfs(LocationArn=dst)

    (root / "other").mkdir()
    ds.update_location_nfs(LocationArn=src, Subdirectory=os.fspath(root / "other"))
    assert ds.describe_location_nfs(LocationArn=src)["LocationUri"].endswith("/other/")
    ds.update_location_smb(LocationArn=dst, User="alice", Password="secret")
    smb = ds.describe_location_smb(LocationArn=dst)
    assert smb["User"] == "alice" and "Password" not in smb

    listed = ds.list_locations()["Locations"]
    assert sorted(loc["LocationArn"] for loc in listed) == sorted([src, dst])
    only_nfs = ds.list_locations(
        Filters=[{"Name": "LocationType", "Values": ["NFS"], "Operator": "Equals"}]
    )["Locations"]
    assert [loc["LocationArn"] for loc in only_nfs] == [src]
    by_uri = ds.list_locations(
        Filters=[{"Name": "LocationUri", "Values": ["smb://"], "Operator": "BeginsWith"}]
    )["Locations"]
    assert [loc["LocationArn"] for loc in by_uri] == [dst]
    recent = ds.list_locations(
        Filters=[
            {"Name": "CreationTime", "Values": ["2000-01-01 00:00:00"], "Operator": "GreaterThan"}
        ]
    )["Locations"]
    assert len(recent) == 2
    with pytest.raises(ds.exceptions.InvalidRequestException, match="operator"):
        ds.list_locations(
            Filters=[{"Name": "LocationType", "Values": ["1"], "Operator": "LessThan"}]
        )

    ds.delete_location(LocationArn=src)
    with pytest.raises(ds.exceptions.InvalidRequestException, match="not found"):
        ds.describe_location_nfs(LocationArn=src)


@pytest.mark.parametrize(
    ("hostname", "subdirectory", "match"),
    [
        ("localhost", "/etc", "outside"),
        ("localhost", "{root}/src/../../etc", "outside"),
        ("localhost", "{root}/escape", "outside"),  # a symlink pointing out of the root
        ("nas.example.com", "{root}/src", "not this agent's host"),
        ("localhost", "relative/path", "does not match|absolute"),
    ],
)
def test_location_paths_are_confined_to_roots(
    server: Server,
    ds: Any,
    root: Path,
    tmp_path: Path,
    hostname: str,
    subdirectory: str,
    match: str,
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir(exist_ok=True)
    (root / "escape").symlink_to(outside)
    with pytest.raises(ds.exceptions.InvalidRequestException, match=match):
        ds.create_location_nfs(
            ServerHostname=hostname,
            Subdirectory=subdirectory.format(root=root),
            OnPremConfig={"AgentArns": [server.agent_arn]},
        )


def test_tasks_crud(server: Server, ds: Any, locations: tuple[str, str]) -> None:
    src, dst = locations
    task = ds.create_task(
        SourceLocationArn=src,
        DestinationLocationArn=dst,
        Name="nightly",
        Options={"VerifyMode": "ONLY_FILES_TRANSFERRED", "BytesPerSecond": 1048576},
        Excludes=[{"FilterType": "SIMPLE_PATTERN", "Value": "*.tmp|/cache"}],
        Tags=[{"Key": "team", "Value": "ops"}],
    )["TaskArn"]
    assert task.startswith("arn:aws:datasync:us-east-1:111122223333:task/task-")
    described = ds.describe_task(TaskArn=task)
    assert described["Status"] == "AVAILABLE"
    assert described["Name"] == "nightly" and described["TaskMode"] == "BASIC"
    options = described["Options"]
    assert options["VerifyMode"] == "ONLY_FILES_TRANSFERRED"
    assert options["BytesPerSecond"] == 1048576
    assert options["OverwriteMode"] == "ALWAYS" and options["TaskQueueing"] == "ENABLED"
    assert "CurrentTaskExecutionArn" not in described
    assert described["Excludes"][0]["Value"] == "*.tmp|/cache"

    ds.update_task(TaskArn=task, Options={"LogLevel": "BASIC"}, Name="renamed")
    options = ds.describe_task(TaskArn=task)["Options"]
    assert options["LogLevel"] == "BASIC" and options["BytesPerSecond"] == 1048576  # merged

    with pytest.raises(ds.exceptions.InvalidRequestException, match="used by task"):
        ds.delete_location(LocationArn=src)
    with pytest.raises(ds.exceptions.InvalidRequestException, match="Schedule"):
        ds.create_task(  # schedules are supported (issue 13); an invalid one is refused
            SourceLocationArn=src,
            DestinationLocationArn=dst,
            Schedule={"ScheduleExpression": "rate(0 hours)"},
        )

    tasks = ds.list_tasks(
        Filters=[{"Name": "LocationId", "Values": [dst], "Operator": "Contains"}]
    )["Tasks"]
    assert [(t["TaskArn"], t["Name"], t["Status"]) for t in tasks] == [
        (task, "renamed", "AVAILABLE")
    ]
    assert ds.list_tags_for_resource(ResourceArn=task)["Tags"] == [{"Key": "team", "Value": "ops"}]
    ds.delete_task(TaskArn=task)
    assert ds.list_tasks()["Tasks"] == []
    with pytest.raises(ds.exceptions.InvalidRequestException, match="not found"):
        ds.describe_task(TaskArn=task)


def test_tags(ds: Any, locations: tuple[str, str]) -> None:
    src, _ = locations
    ds.tag_resource(ResourceArn=src, Tags=[{"Key": "a", "Value": "1"}, {"Key": "b", "Value": "2"}])
    ds.tag_resource(ResourceArn=src, Tags=[{"Key": "a", "Value": "3"}])
    assert ds.list_tags_for_resource(ResourceArn=src)["Tags"] == [
        {"Key": "a", "Value": "3"},
        {"Key": "b", "Value": "2"},
    ]
    ds.untag_resource(ResourceArn=src, Keys=["a"])
    assert ds.list_tags_for_resource(ResourceArn=src)["Tags"] == [{"Key": "b", "Value": "2"}]
    with pytest.raises(ds.exceptions.InvalidRequestException, match="not found"):
        ds.tag_resource(ResourceArn=src[:-3] + "999", Tags=[{"Key": "a", "Value": "1"}])


def test_pagination_everywhere(server: Server, ds: Any, root: Path) -> None:
    made = []
    for i in range(7):
        (root / f"d{i}").mkdir()
        made.append(
            ds.create_location_nfs(
                ServerHostname="localhost",
                Subdirectory=os.fspath(root / f"d{i}"),
                OnPremConfig={"AgentArns": [server.agent_arn]},
                Tags=[{"Key": f"k{j}", "Value": "v"} for j in range(i)],
            )["LocationArn"]
        )
    first = ds.list_locations(MaxResults=3)
    assert len(first["Locations"]) == 3 and first["NextToken"]
    seen = [
        loc["LocationArn"]
        for page in ds.get_paginator("list_locations").paginate(PaginationConfig={"PageSize": 2})
        for loc in page["Locations"]
    ]
    assert seen == sorted(made)
    tags = [
        t["Key"]
        for page in ds.get_paginator("list_tags_for_resource").paginate(
            ResourceArn=made[6], PaginationConfig={"PageSize": 4}
        )
        for t in page["Tags"]
    ]
    assert tags == [f"k{j}" for j in range(6)]
    tasks = [
        ds.create_task(SourceLocationArn=made[i], DestinationLocationArn=made[i + 1])["TaskArn"]
        for i in range(5)
    ]
    listed = [
        t["TaskArn"]
        for page in ds.get_paginator("list_tasks").paginate(PaginationConfig={"PageSize": 2})
        for t in page["Tasks"]
    ]
    assert listed == sorted(tasks)
    agents = list(ds.get_paginator("list_agents").paginate(PaginationConfig={"PageSize": 1}))
    assert len(agents) == 1
    with pytest.raises(ds.exceptions.InvalidRequestException, match="NextToken"):
        ds.list_tasks(NextToken="bm90LWEtdG9rZW4")  # valid base64 of something, wrong shape


def test_delete_an_unused_agent(server: Server, ds: Any, root: Path) -> None:
    assert server.served is not None
    other = server.served.extras["backend"].register_agent("spare", [str(root)])
    assert {a["AgentArn"] for a in ds.list_agents()["Agents"]} == {server.agent_arn, other}
    ds.tag_resource(ResourceArn=other, Tags=[{"Key": "k", "Value": "v"}])
    ds.delete_agent(AgentArn=other)
    assert [a["AgentArn"] for a in ds.list_agents()["Agents"]] == [server.agent_arn]
    with pytest.raises(ds.exceptions.InvalidRequestException, match="not found"):
        ds.list_tags_for_resource(ResourceArn=other)
