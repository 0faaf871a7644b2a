"""`aws logs tail GROUP --follow` (AWS CLI v2) reads an execution's TRANSFER log while it runs.

AWS CLI v2 is Debian's `awscli` package at /usr/bin/aws (`make debian-tools` installs it); the
venv's `aws` is CLI v1, which has no `logs tail`, so the test calls /usr/bin/aws by its path.
`tail --follow` calls FilterLogEvents with `startTime`, `interleaved` and the paginator's
tokens, then polls every 5 seconds from the newest timestamp it saw, de-duplicating by eventId:
the test reads its output until every file and the execution's end line appeared (bounded in
time), then kills it. The CLI's output to a pipe is block-buffered, hence PYTHONUNBUFFERED.
"""

from __future__ import annotations

import os
import queue
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.api.harness import (
    ACCESS_KEY,
    REGION,
    SECRET_KEY,
    Server,
    finished,
    nfs_task,
    serving,
    wait_for,
)

AWS_V2 = Path("/usr/bin/aws")
GROUP = "/datasync/tail"
FILES = [f"tail-{i:02d}.bin" for i in range(16)]

pytestmark = pytest.mark.skipif(
    not AWS_V2.exists(), reason="AWS CLI v2 (/usr/bin/aws) is not installed: make debian-tools"
)


@pytest.fixture
def srv(tmp_path: Path) -> Iterator[Server]:
    with serving(tmp_path) as server:
        yield server


def _reader(stream: object, lines: queue.Queue[str | None]) -> None:
    for line in stream:  # type: ignore[attr-defined]
        lines.put(line.rstrip("\n"))
    lines.put(None)


def test_aws_logs_tail_follow_names_every_file_while_it_runs(srv: Server) -> None:
    root: Path = srv.root  # type: ignore[attr-defined]
    for name in FILES:
        (root / "src" / name).write_bytes(os.urandom(24 * 1024))
    ds = srv.client()
    _, _, task = nfs_task(
        ds,
        srv.agent_arn,
        root / "src",
        root / "dst",
        CloudWatchLogGroupArn=f"arn:aws:logs:{REGION}:111122223333:log-group:{GROUP}:*",
        # ~6 s at 64 KiB/s: the execution is still running while tail polls
        Options={"LogLevel": "TRANSFER", "BytesPerSecond": 64 * 1024},
    )
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(root.parent),  # no ~/.aws of the machine's
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_PAGER": "",
        # /usr/bin/aws is a Python program that never flushes its output in --follow mode: to a
        # pipe, lines would sit in its buffer until the kill
        "PYTHONUNBUFFERED": "1",
    }
    tail = subprocess.Popen(
        [str(AWS_V2), "logs", "tail", GROUP, "--follow", "--since", "1h",
         "--format", "short", "--endpoint-url", srv.url],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    lines: queue.Queue[str | None] = queue.Queue()
    threading.Thread(target=_reader, args=(tail.stdout, lines), daemon=True).start()
    seen: list[str] = []
    try:
        # the execution starts once tail polls (its first FilterLogEvents counted in /metrics):
        # the CLI's own start took longer than the ~6 s run when parallel test workers load
        # the machine, and the run had ended before tail printed anything
        wait_for(
            lambda: 'operation="FilterLogEvents"' in httpx.get(f"{srv.url}/metrics").text,
            timeout=60,
            interval=0.2,
        )
        arn = ds.start_task_execution(TaskArn=task)["TaskExecutionArn"]
        running_while_tailing = False
        deadline = time.monotonic() + 60
        missing = set(FILES)
        ended = False
        while (missing or not ended) and time.monotonic() < deadline:
            try:
                line = lines.get(timeout=1)
            except queue.Empty:
                continue
            if line is None:
                break  # tail exited
            seen.append(line)
            if "Transferred file" in line and not running_while_tailing:
                status = ds.describe_task_execution(TaskExecutionArn=arn)["Status"]
                running_while_tailing = status not in ("SUCCESS", "ERROR")
            missing -= {n for n in missing if f"Transferred file /{n}," in line}
            ended = ended or f"Execution {arn} ended with status" in line
    finally:
        tail.kill()
        _, err = tail.communicate(timeout=10)
    assert not missing, (sorted(missing), seen, err)
    assert ended, (seen, err)
    assert running_while_tailing, "the execution had ended before tail printed a file"
    assert any(f"Execution {arn} started" in line for line in seen)
    # every event once: tail re-polls from the newest timestamp and de-duplicates by eventId
    transferred = [line for line in seen if "Transferred file" in line]
    assert len(transferred) == len(FILES), transferred
    assert finished(ds, arn)["Status"] == "SUCCESS"
