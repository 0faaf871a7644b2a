"""Run by tests/api/test_sdk_clients.py inside a virtual environment that has aiobotocore (and
nothing of ours): drives one execution of an existing task through the DataSync API with an
unmodified aiobotocore client and prints what it saw as one JSON line.

argv[1]: JSON {"url", "region", "key", "secret", "task"}.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

from aiobotocore.session import get_session
from botocore.exceptions import ClientError


async def main(args: dict[str, str]) -> dict[str, Any]:
    session = get_session()
    async with session.create_client(
        "datasync",
        endpoint_url=args["url"],
        region_name=args["region"],
        aws_access_key_id=args["key"],
        aws_secret_access_key=args["secret"],
    ) as ds:
        seen: dict[str, Any] = {}
        started = await ds.start_task_execution(
            TaskArn=args["task"], OverrideOptions={"BytesPerSecond": 1024 * 1024}
        )
        arn = started["TaskExecutionArn"]
        seen["throttled"] = await ds.update_task_execution(
            TaskExecutionArn=arn, Options={"BytesPerSecond": 8 * 1024 * 1024}
        )
        statuses: list[str] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            described = await ds.describe_task_execution(TaskExecutionArn=arn)
            if not statuses or statuses[-1] != described["Status"]:
                statuses.append(described["Status"])
            if described["Status"] in ("SUCCESS", "ERROR"):
                break
            await asyncio.sleep(0.1)
        seen["statuses"] = statuses
        seen["described"] = {
            key: described.get(key)
            for key in ("Status", "FilesTransferred", "BytesWritten", "Options", "Result")
        }
        listed = await ds.list_task_executions(TaskArn=args["task"])
        seen["listed"] = [e["TaskExecutionArn"] for e in listed["TaskExecutions"]]
        seen["arn"] = arn
        try:
            await ds.describe_task_execution(TaskExecutionArn=arn + "0")
        except ClientError as exc:
            seen["error"] = exc.response["Error"]["Code"]
        return seen


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(json.loads(sys.argv[1]))), default=str))
