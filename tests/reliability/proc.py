"""`datasync-local serve` as a real child process, for faults that need one (kill -9, limits)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import boto3
import httpx
from botocore.config import Config

from tests.api.harness import ACCESS_KEY, ACCOUNT, REGION, SECRET_KEY, free_port

REPO = Path(__file__).resolve().parents[2]


class ServeProcess:
    """One `serve` process on 127.0.0.1; `start` again after `kill9` reuses port and data dir."""

    def __init__(self, data_dir: Path, roots: list[Path], *extra: str) -> None:
        self.data_dir = data_dir
        self.roots = roots
        self.extra = extra
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = data_dir.parent / f"serve-{self.port}.log"

    def start(self, timeout: float = 60) -> ServeProcess:
        """Start it and wait until it answers; `timeout` only bounds a start that hangs (a start
        takes a second or two, many more on a machine loaded by parallel test workers)."""
        args = [
            sys.executable,
            "-m",
            "cli.main",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--data-dir",
            str(self.data_dir),
            "--account-id",
            ACCOUNT,
            "--region",
            REGION,
            "--access-key-id",
            ACCESS_KEY,
            "--secret-access-key",
            SECRET_KEY,
            # tests split their tiny trees into work items (tests/api/harness.Server does too)
            "--split-min-files",
            "0",
            "--split-min-bytes",
            "0",
            *[a for r in self.roots for a in ("--root", str(r))],
            *self.extra,
        ]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(args, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"serve exited {self.proc.returncode}: {self.output()}")
            try:
                httpx.get(self.url + "/", timeout=1)
                return self
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    said = self.output()
                    self.stop()  # not left running (and holding its port) after the test
                    raise AssertionError(f"serve did not start: {said}") from None
                time.sleep(0.05)

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def kill9(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            self.kill9()

    def rss_kib(self) -> int:
        with open(f"/proc/{self.pid}/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise AssertionError("no VmRSS")

    def cpu_seconds(self) -> float:
        """User + system CPU time the server process has used so far."""
        with open(f"/proc/{self.pid}/stat", encoding="ascii") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def client(self, **config: Any) -> Any:
        make: Any = boto3.client
        return make(
            "datasync",
            endpoint_url=self.url,
            region_name=REGION,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            config=Config(
                retries={"max_attempts": 1, "mode": "standard"},
                connect_timeout=5,
                read_timeout=30,
                **config,
            ),
        )
