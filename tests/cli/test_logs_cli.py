"""The AWS CLI reads execution logs from the server's CloudWatch Logs subset.

The dev extras carry AWS CLI v1, which has no `aws logs tail` (a v2 command); its
`aws logs filter-log-events` makes the same FilterLogEvents calls `tail` makes (with its
`--start-time` and the paginator's tokens), so this is the CLI's path through the same code.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.api.harness import (
    ACCESS_KEY,
    REGION,
    SECRET_KEY,
    Server,
    nfs_task,
    serving,
    wait_for,
)

GROUP = "/datasync/cli"


@pytest.fixture
def srv(tmp_path: Path) -> Iterator[Server]:
    with serving(tmp_path) as server:
        yield server


def test_aws_cli_filter_log_events(srv: Server) -> None:
    root: Path = srv.root  # type: ignore[attr-defined]
    (root / "src" / "hello.txt").write_text("hello")
    ds = srv.client()
    _, _, task = nfs_task(
        ds,
        srv.agent_arn,
        root / "src",
        root / "dst",
        CloudWatchLogGroupArn=f"arn:aws:logs:{REGION}:111122223333:log-group:{GROUP}",
        Options={"LogLevel": "TRANSFER"},
    )
    arn = ds.start_task_execution(TaskArn=task)["TaskExecutionArn"]
    wait_for(
        lambda: ds.describe_task_execution(TaskExecutionArn=arn)["Status"] in ("SUCCESS", "ERROR")
    )
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_DEFAULT_REGION": REGION,
    }

    def cli() -> list[str] | None:
        p = subprocess.run(
            ["aws", "logs", "filter-log-events", "--log-group-name", GROUP,
             "--start-time", "0", "--endpoint-url", srv.url, "--output", "json"],
            capture_output=True, text=True, timeout=60, env=env,
        )  # fmt: skip
        assert p.returncode == 0, p.stderr
        found = [e["message"] for e in json.loads(p.stdout)["events"]]
        return found if any("ended with status" in m for m in found) else None

    found = wait_for(cli, 15, 0.5)
    assert any(m.startswith("[INFO] Transferred file /hello.txt, 5 bytes") for m in found)
    assert any(arn in m for m in found)
