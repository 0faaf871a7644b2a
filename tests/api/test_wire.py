"""The JSON 1.1 wire: framing, error shapes, limits — with raw signed HTTP where boto3 can't go."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from tests.api.harness import ACCESS_KEY, REGION, SECRET_KEY, Server


def signed(
    server: Server,
    body: bytes,
    target: str | None = "FmrsService.ListAgents",
    *,
    path: str = "/",
    method: str = "POST",
    service: str = "datasync",
    secret: str = SECRET_KEY,
    access_key: str = ACCESS_KEY,
) -> httpx.Response:
    headers = {"Content-Type": "application/x-amz-json-1.1"}
    if target is not None:
        headers["X-Amz-Target"] = target
    request = AWSRequest(method=method, url=server.url + path, data=body, headers=headers)
    SigV4Auth(Credentials(access_key, secret), service, REGION).add_auth(request)
    return httpx.request(
        method, server.url + path, content=body, headers=dict(request.headers.items())
    )


def error_of(response: httpx.Response) -> dict[str, Any]:
    body: dict[str, Any] = response.json()
    assert set(body) >= {"__type", "message"}
    assert "Traceback" not in response.text
    return body


def test_success_framing(server: Server) -> None:
    response = signed(server, b"{}")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/x-amz-json-1.1"
    assert response.headers["x-amzn-RequestId"]
    agents = response.json()["Agents"]
    assert agents[0]["Status"] == "ONLINE"
    assert "NextToken" not in response.json()  # absent members are omitted, not null


def test_timestamps_are_epoch_numbers(server: Server) -> None:
    body = json.dumps({"AgentArn": server.agent_arn}).encode()
    response = signed(server, body, "FmrsService.DescribeAgent")
    doc = response.json()
    assert isinstance(doc["CreationTime"], float | int)
    assert isinstance(doc["LastConnectionTime"], float | int)
    assert "Roots" not in doc  # internal state never reaches the wire


@pytest.mark.parametrize(
    ("body", "target", "code"),
    [
        (b"{not json", "FmrsService.ListAgents", "SerializationException"),
        (b"[1, 2]", "FmrsService.ListAgents", "SerializationException"),
        (b"{}", None, "UnknownOperationException"),
        (b"{}", "FmrsService.NoSuchThing", "UnknownOperationException"),
        (b"{}", "Other.ListAgents", "UnknownOperationException"),
    ],
)
def test_unreadable_requests_are_4xx_in_the_error_shape(
    server: Server, body: bytes, target: str | None, code: str
) -> None:
    response = signed(server, body, target)
    assert response.status_code == 400
    assert error_of(response)["__type"] == code


def test_oversized_body_is_413(server: Server) -> None:
    body = json.dumps({"Name": "x" * (1024 * 1024 + 10)}).encode()
    response = signed(server, body, "FmrsService.ListAgents")
    assert response.status_code == 413
    assert error_of(response)["__type"] == "RequestEntityTooLargeException"


def test_unknown_route_is_4xx_in_the_error_shape(server: Server) -> None:
    response = httpx.get(server.url + "/nowhere")
    assert response.status_code == 400
    assert error_of(response)["__type"] == "UnknownOperationException"


def test_invalid_request_body_has_every_modeled_member(server: Server) -> None:
    body = json.dumps({"TaskArn": "nope"}).encode()
    response = signed(server, body, "FmrsService.DescribeTask")
    assert response.status_code == 400
    error = error_of(response)
    assert error["__type"] == "InvalidRequestException"
    assert error["errorCode"] == "InvalidRequestException"
    assert error["datasyncErrorCode"] == "ValidationError"
    assert "TaskArn" in error["message"]


def test_boto3_raises_the_modeled_exception(ds: Any) -> None:
    with pytest.raises(ds.exceptions.InvalidRequestException) as info:
        ds.describe_task(
            TaskArn="arn:aws:datasync:us-east-1:111122223333:task/task-0123456789abcdef0"
        )
    assert info.value.response["Error"]["Code"] == "InvalidRequestException"
    assert info.value.response["datasyncErrorCode"] == "ResourceNotFound"
    assert "not found" in info.value.response["Error"]["Message"]


def test_cloud_location_types_are_refused_clearly(ds: Any) -> None:
    with pytest.raises(ds.exceptions.InvalidRequestException) as info:
        ds.create_location_s3(
            S3BucketArn="arn:aws:s3:::bucket",
            S3Config={"BucketAccessRoleArn": "arn:aws:iam::111122223333:role/r"},
        )
    assert "not supported by this server" in str(info.value)
    with pytest.raises(ds.exceptions.InvalidRequestException, match="not supported"):
        ds.create_location_efs(
            EfsFilesystemArn="arn:aws:elasticfilesystem:us-east-1:111122223333:file-system/fs-12345678",
            Ec2Config={
                "SubnetArn": "arn:aws:ec2:us-east-1:111122223333:subnet/subnet-12345678",
                "SecurityGroupArns": [
                    "arn:aws:ec2:us-east-1:111122223333:security-group/sg-12345678"
                ],
            },
        )
