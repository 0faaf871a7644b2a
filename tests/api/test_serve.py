"""`datasync-local serve` as a process: flags and env, first-start credentials, SIGTERM, and the
DescribeTaskExecution latency under 50 concurrent pollers while the engine copies at full speed."""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from cli.serve import add_arguments, config_from_args
from tests.api.harness import (
    ACCESS_KEY,
    REGION,
    SECRET_KEY,
    free_port,
    make_tree,
    nfs_task,
    wait_for,
)

REPO = Path(__file__).resolve().parents[2]


def test_flags_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATASYNC_LOCAL_ROOT", "/a:/b")
    monkeypatch.setenv("DATASYNC_LOCAL_PORT", "9999")
    monkeypatch.setenv("DATASYNC_LOCAL_ACCESS_KEY_ID", "AKENV")
    monkeypatch.setenv("DATASYNC_LOCAL_NO_EMBEDDED_AGENT", "true")
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    config = config_from_args(parser.parse_args([]))
    assert config.roots == ["/a", "/b"] and config.port == 9999
    assert config.access_key_id == "AKENV" and not config.embedded_agent
    assert config.host == "127.0.0.1" and config.agent_timeout == 300
    config = config_from_args(
        parser.parse_args(["--root", "/c", "--port", "1", "--region", "eu-west-1"])
    )
    assert config.roots == ["/c"] and config.port == 1 and config.region == "eu-west-1"


class Process:
    def __init__(self, data_dir: Path, root: Path, *extra: str, env: dict[str, str] | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        args = [
            sys.executable,
            "-m",
            "cli.main",
            "serve",
            "--port",
            str(self.port),
            "--data-dir",
            str(data_dir),
            "--root",
            str(root),
            "--account-id",
            "111122223333",
            *extra,
        ]
        self.proc = subprocess.Popen(
            args,
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, **(env or {})},
        )
        try:  # bounds a hung start; with parallel test workers a start can take many seconds
            wait_for(self._up, timeout=60, interval=0.1)
        except AssertionError:
            self.stop()  # not left running after the test
            raise

    def _up(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(
                f"server exited: {self.proc.stdout.read() if self.proc.stdout else ''}"
            )
        try:
            httpx.get(self.url + "/", timeout=1)
        except httpx.HTTPError:
            return False
        return True

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            out, _ = self.proc.communicate(timeout=40)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate()
        return out or ""


@pytest.fixture
def process(tmp_path: Path) -> Iterator[tuple[Process, Path]]:
    root = tmp_path / "root"
    (root / "src").mkdir(parents=True)
    (root / "dst").mkdir()
    proc = Process(
        tmp_path / "data", root, "--access-key-id", ACCESS_KEY, "--secret-access-key", SECRET_KEY
    )
    try:
        yield proc, root
    finally:
        proc.stop()


def client(url: str) -> Any:
    return boto3.client(
        "datasync",
        endpoint_url=url,
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
    )


def embedded_task(ds: Any, root: Path, options: dict[str, Any]) -> str:
    """NFS locations root/src and root/dst on the embedded agent, and a task between them."""
    agent = ds.list_agents()["Agents"][0]["AgentArn"]
    return nfs_task(ds, agent, root / "src", root / "dst", Options=options)[2]


def test_first_start_generates_and_prints_credentials_once(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    first = Process(tmp_path / "data", root)
    out = first.stop()
    # stdout is a pipe, not a terminal: the secret stays in the file the output points to
    path = tmp_path / "data" / "credentials.json"
    stored = json.loads(path.read_text())
    access, secret = stored["AccessKeyId"], stored["SecretAccessKey"]
    assert secret not in out
    assert f"Generated credentials for access key id {access}" in out and str(path) in out
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"
    second = Process(tmp_path / "data", root)
    url = second.url
    ds = boto3.client(
        "datasync",
        endpoint_url=url,
        region_name=REGION,
        aws_access_key_id=access,
        aws_secret_access_key=secret,
    )
    assert ds.list_agents()["Agents"][0]["Status"] == "ONLINE"
    assert secret not in second.stop()  # printed only on the first start


def test_sigterm_cancels_running_execution_cleanly(process: tuple[Process, Path]) -> None:
    proc, root = process
    make_tree(str(root / "src"), 2, 512 * 1024)
    ds = client(proc.url)
    task = embedded_task(ds, root, {"BytesPerSecond": 65536})
    arn = ds.start_task_execution(TaskArn=task)["TaskExecutionArn"]
    wait_for(lambda: ds.describe_task_execution(TaskExecutionArn=arn)["Status"] == "TRANSFERRING")
    started = time.monotonic()
    proc.stop()
    assert proc.proc.returncode == 0
    assert time.monotonic() - started < 15
    again = Process(
        proc_data := root.parent / "data",
        root,
        "--access-key-id",
        ACCESS_KEY,
        "--secret-access-key",
        SECRET_KEY,
    )
    try:
        ended = client(again.url).describe_task_execution(TaskExecutionArn=arn)
        assert ended["Status"] == "ERROR" and ended["Result"]["ErrorCode"] == "Cancelled"
        assert set(os.listdir(root / "dst")) <= set(os.listdir(root / "src"))
        assert proc_data.exists()
    finally:
        again.stop()


def _signed(url: str, target: str, payload: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(payload).encode()
    request = AWSRequest(
        method="POST",
        url=url + "/",
        data=body,
        headers={
            "X-Amz-Target": f"FmrsService.{target}",
            "Content-Type": "application/x-amz-json-1.1",
        },
    )
    SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY), "datasync", REGION).add_auth(request)
    return body, dict(request.headers.items())


@pytest.mark.slow
@pytest.mark.exclusive  # its latency bounds hold for its own 50 pollers, not beside other tests
def test_describe_latency_with_50_pollers_during_full_speed_transfer(
    process: tuple[Process, Path],
) -> None:
    """Prints p50/p99; no timed assertion. The engine copies 256 MiB per execution at full speed
    (TransferMode=ALL, so every run copies everything) and a driver starts the next execution as
    soon as one ends, so the engine is busy during the whole measurement."""
    proc, root = process
    make_tree(str(root / "src"), 64, 4 * 1024 * 1024)
    ds = client(proc.url)
    task = embedded_task(ds, root, {"TransferMode": "ALL", "VerifyMode": "NONE"})
    samples: list[float] = []
    statuses: list[str] = []
    executions: list[str] = []
    current: list[tuple[bytes, dict[str, str]]] = []
    seconds = 5.0
    stop_at = time.monotonic() + seconds

    def post(conn: http.client.HTTPConnection, request: tuple[bytes, dict[str, str]]) -> Any:
        body, headers = request
        conn.request("POST", "/", body=body, headers=headers)
        response = conn.getresponse()
        payload = response.read()
        assert response.status == 200, payload
        return json.loads(payload)

    def driver() -> None:  # keeps the engine busy: the next execution starts as one ends
        conn = http.client.HTTPConnection("127.0.0.1", proc.port, timeout=30)
        while time.monotonic() < stop_at:
            arn = post(conn, _signed(proc.url, "StartTaskExecution", {"TaskArn": task}))[
                "TaskExecutionArn"
            ]
            executions.append(arn)
            current[:] = [_signed(proc.url, "DescribeTaskExecution", {"TaskExecutionArn": arn})]
            while (status := post(conn, current[0])["Status"]) not in ("SUCCESS", "ERROR"):
                time.sleep(0.05)
            assert status == "SUCCESS"

    def poller() -> None:  # one keep-alive connection per poller, like 50 separate clients
        conn = http.client.HTTPConnection("127.0.0.1", proc.port, timeout=30)
        while time.monotonic() < stop_at:
            begin = time.perf_counter()
            status = post(conn, current[0])["Status"]
            samples.append(time.perf_counter() - begin)
            statuses.append(status)

    driving = threading.Thread(target=driver)
    driving.start()
    wait_for(lambda: current, timeout=10, interval=0.01)
    pollers = [threading.Thread(target=poller) for _ in range(50)]
    for thread in pollers:
        thread.start()
    for thread in [*pollers, driving]:
        thread.join(timeout=60)
    samples.sort()
    p50 = statistics.median(samples) * 1000
    p99 = samples[max(0, int(len(samples) * 0.99) - 1)] * 1000
    written = sum(
        ds.describe_task_execution(TaskExecutionArn=arn)["BytesWritten"] for arn in executions
    )
    busy = sum(s != "SUCCESS" for s in statuses) / len(statuses)
    print(
        f"\nDescribeTaskExecution with 50 concurrent pollers for {seconds:.0f} s while the engine "
        f"copied {written / 2**20:.0f} MiB in {len(executions)} executions: {len(samples)} "
        f"requests, p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {samples[-1] * 1000:.1f} ms "
        f"({busy:.0%} of answers showed a running execution)"
    )
    assert len(executions) >= 2
