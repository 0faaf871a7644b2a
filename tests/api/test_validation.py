"""Server-side validation from botocore's model: every kind of rule, each naming the field."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.config import Config

from api.errors import InvalidRequestException
from api.validation import compile_pattern, validate_input
from tests.api.harness import Server

TASK = "arn:aws:datasync:us-east-1:111122223333:task/task-0123456789abcdef0"


@pytest.mark.parametrize(
    ("operation", "params", "field"),
    [
        ("DescribeTask", {}, "TaskArn is required"),  # required
        ("DescribeTask", {"TaskArn": "task-1"}, "TaskArn does not match"),  # pattern
        ("DescribeTask", {"TaskArn": TASK, "Bogus": 1}, "Bogus is not a member"),  # unknown
        ("DescribeTask", {"TaskArn": 7}, "TaskArn must be a string"),  # type
        ("ListTasks", {"MaxResults": 101}, "MaxResults must be at most 100"),  # max value
        ("ListTasks", {"MaxResults": -1}, "MaxResults must be at least 0"),  # min value
        ("StartTaskExecution", {"TaskArn": TASK, "OverrideOptions": {"Uid": "ROOT"}}, "Uid"),
        (  # max length
            "UpdateAgent",
            {
                "AgentArn": "arn:aws:datasync:us-east-1:111122223333:agent/agent-0123456789abcdef0",
                "Name": "n" * 257,
            },
            "Name must have at most 256 characters",
        ),
        (  # list size
            "StartTaskExecution",
            {"TaskArn": TASK, "Includes": [{"FilterType": "SIMPLE_PATTERN", "Value": "/a"}] * 2},
            "Includes must have at most 1 items",
        ),
        (  # nested enum
            "StartTaskExecution",
            {"TaskArn": TASK, "Includes": [{"FilterType": "REGEX", "Value": "/a"}]},
            "Includes[0].FilterType must be one of SIMPLE_PATTERN",
        ),
        ("TagResource", {"ResourceArn": TASK, "Tags": [{"Key": "bad key!"}]}, "Tags[0].Key"),
        (
            "UpdateTaskExecution",
            {
                "TaskExecutionArn": TASK + "/execution/exec-0123456789abcdef0",
                "Options": {"BytesPerSecond": -2},
            },
            "at least -1",
        ),
    ],
)
def test_model_rules(operation: str, params: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidRequestException) as info:
        validate_input(operation, params)
    assert field in info.value.message


def test_valid_requests_pass() -> None:
    validate_input("ListTasks", {"MaxResults": 0})
    validate_input(
        "StartTaskExecution",
        {"TaskArn": TASK, "OverrideOptions": {"VerifyMode": "NONE", "BytesPerSecond": 10}},
    )


def test_java_unicode_classes_are_translated() -> None:
    subdirectory = compile_pattern("^[a-zA-Z0-9_\\-\\+\\./\\(\\)\\p{Zs}]+$")
    assert subdirectory("/srv/my data")
    assert not subdirectory("/srv/a;b")
    details = compile_pattern("[^\\p{C}]+")
    assert details('{"a":1}') and not details("a\x00b") and not details("")


def test_server_checks_what_boto3_does_not(server: Server) -> None:
    unchecked = server.client(
        config=Config(parameter_validation=False, retries={"max_attempts": 1})
    )
    with pytest.raises(unchecked.exceptions.InvalidRequestException, match="TaskArn is required"):
        unchecked.describe_task()
    ds = server.client()
    with pytest.raises(ds.exceptions.InvalidRequestException, match=r"OverrideOptions\.VerifyMode"):
        ds.start_task_execution(TaskArn=TASK, OverrideOptions={"VerifyMode": "SOMETIMES"})
    with pytest.raises(ds.exceptions.InvalidRequestException, match="MaxResults"):
        ds.list_tasks(MaxResults=1000)


def test_cross_field_rules(server: Server, locations: tuple[str, str]) -> None:
    ds = server.client()
    src, dst = locations
    with pytest.raises(ds.exceptions.InvalidRequestException, match="Atime"):
        ds.create_task(
            SourceLocationArn=src,
            DestinationLocationArn=dst,
            Options={"Atime": "BEST_EFFORT", "Mtime": "NONE"},
        )
    with pytest.raises(ds.exceptions.InvalidRequestException, match="PreserveDeletedFiles"):
        ds.create_task(
            SourceLocationArn=src,
            DestinationLocationArn=dst,
            Options={"PreserveDeletedFiles": "REMOVE", "TransferMode": "ALL"},
        )
    with pytest.raises(ds.exceptions.InvalidRequestException, match="POINT_IN_TIME"):
        ds.create_task(
            SourceLocationArn=src,
            DestinationLocationArn=dst,
            TaskMode="ENHANCED",
            Options={"VerifyMode": "POINT_IN_TIME_CONSISTENT"},
        )
    task = ds.create_task(SourceLocationArn=src, DestinationLocationArn=dst)["TaskArn"]
    with pytest.raises(ds.exceptions.InvalidRequestException, match="Atime"):
        ds.start_task_execution(TaskArn=task, OverrideOptions={"Mtime": "NONE"})
    with pytest.raises(ds.exceptions.InvalidRequestException, match="Atime"):
        ds.update_task(TaskArn=task, Options={"Atime": "NONE"})
