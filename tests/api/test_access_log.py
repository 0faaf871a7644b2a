"""`serve --access-log`: one JSON line per API request, naming what /metrics counts; and the
Deadline routes go through the same edge (counted, logged) as every other protocol."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import botocore.exceptions
import pytest
from botocore.config import Config

from api.request_counts import RequestMeter
from api.store import Store
from tests.api.harness import ACCESS_KEY, REGION, SECRET_KEY, wait_for
from tests.reliability.proc import ServeProcess

MISSING_TASK = "arn:aws:datasync:us-east-1:111122223333:task/task-0123456789abcdef0"


def _deadline(serve: ServeProcess) -> Any:
    make: Any = boto3.client
    return make(
        "deadline",
        endpoint_url=serve.url,
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        config=Config(inject_host_prefix=False, retries={"max_attempts": 1, "mode": "standard"}),
    )


def _access_lines(serve: ServeProcess) -> list[dict[str, Any]]:
    lines = []
    for line in serve.log.read_text(errors="replace").splitlines():
        _, _, message = line.partition(" datasync_local.access: ")
        if message:
            lines.append(json.loads(message))
    return lines


def test_every_api_request_gets_one_access_line(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    serve = ServeProcess(data, [], "--no-embedded-agent", "--access-log").start()
    try:
        ds = serve.client()
        ds.list_tasks()
        with pytest.raises(botocore.exceptions.ClientError):
            ds.describe_task(TaskArn=MISSING_TASK)
        farms = _deadline(serve).list_farms()["farms"]
        with pytest.raises(botocore.exceptions.ClientError) as bad:
            _deadline(serve).get_farm(farmId="farm-" + "0" * 32)
        assert bad.value.response["Error"]["Code"] == "ResourceNotFoundException"
        lines = wait_for(lambda: len(_access_lines(serve)) >= 4 and _access_lines(serve))
    finally:
        serve.stop()
    assert len(farms) == 1
    seen = [(x["protocol"], x["operation"], x["code"], x["status"]) for x in lines]
    assert seen == [
        ("datasync", "ListTasks", "OK", 200),
        ("datasync", "DescribeTask", "InvalidRequestException", 400),
        ("deadline", "ListFarms", "OK", 200),
        ("deadline", "GetFarm", "ResourceNotFoundException", 404),
    ]
    for line in lines:
        assert line["accessKeyId"] == ACCESS_KEY and line["client"] == "127.0.0.1"
        assert line["ms"] >= 0 and line["requestId"] and line["time"].endswith("+00:00")
        assert SECRET_KEY not in json.dumps(line)
    assert lines[2]["method"] == "GET" and lines[2]["path"] == "/2023-10-12/farms"
    # the Deadline calls are counted in /metrics' request counts like every other protocol's
    store = Store.in_directory(str(data))
    try:
        counts = RequestMeter(store).read().requests
    finally:
        store.close()
    assert ("deadline", "ListFarms", "OK", 1.0) in counts
    assert ("deadline", "GetFarm", "ResourceNotFoundException", 1.0) in counts


def test_no_access_lines_by_default(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    serve = ServeProcess(data, [], "--no-embedded-agent").start()
    try:
        serve.client().list_tasks()
    finally:
        serve.stop()
    assert _access_lines(serve) == []
