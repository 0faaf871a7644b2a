"""Run by tests/api/test_sdk_clients.py inside a virtual environment that has Airflow's Amazon
provider (and nothing of ours): Airflow's own `DataSyncHook`, with the connection an operator
would configure (`AIRFLOW_CONN_AWS_DEFAULT`, its `endpoint_url` extra pointing at the server),
finds the locations by URI, creates a task, runs and waits for it as `DataSyncOperator` does,
and cancels a second run; prints what it saw as one JSON line.

argv[1]: JSON {"src", "dst", "agent"} (the directories of two NFS locations and the agent).
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from airflow.providers.amazon.aws.hooks.datasync import DataSyncHook


def main(args: dict[str, str]) -> dict[str, Any]:
    hook = DataSyncHook(wait_interval_seconds=1)
    seen: dict[str, Any] = {}
    arns = {}
    for side in ("src", "dst"):
        uri = f"nfs://localhost{args[side]}/"
        arns[side] = hook.create_location(
            uri,
            ServerHostname="localhost",
            Subdirectory=args[side],
            OnPremConfig={"AgentArns": [args["agent"]]},
        )
        seen[f"{side}_found"] = hook.get_location_arns(uri) == [arns[side]]
    task = hook.create_task(arns["src"], arns["dst"], Name="airflow")
    seen["task_found"] = hook.get_task_arns_for_location_arns([arns["src"]], [arns["dst"]])
    seen["task"] = task
    execution = hook.start_task_execution(task)
    seen["current"] = hook.get_current_task_execution_arn(task) in (execution, None)
    seen["succeeded"] = hook.wait_for_task_execution(execution, max_iterations=60)
    seen["described"] = hook.describe_task_execution(execution)["Status"]

    throttled = hook.start_task_execution(
        task, OverrideOptions={"BytesPerSecond": 1024, "TransferMode": "ALL"}
    )
    hook.cancel_task_execution(throttled)
    statuses = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        status = hook.describe_task_execution(throttled)["Status"]
        if not statuses or statuses[-1] != status:
            statuses.append(status)
        if status in ("SUCCESS", "ERROR"):
            break
        time.sleep(0.1)
    seen["cancelled"] = statuses
    return seen


if __name__ == "__main__":
    print(json.dumps(main(json.loads(sys.argv[1])), default=str))
