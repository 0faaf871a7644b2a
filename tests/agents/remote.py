"""Real on-prem agent processes (`python -m cli.main agent`) for tests, and their activation."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from tests.api.harness import wait_for

REPO = Path(__file__).resolve().parents[2]
KEY_RE = re.compile(r"^ActivationKey: ([A-Z0-9]{5}(?:-[A-Z0-9]{5}){4})$")
TEMP_PREFIX = ".~dsl."


class AgentProcess:
    """One `datasync-local agent` subprocess; stdout lines are collected by a thread."""

    def __init__(
        self,
        server_url: str,
        state_dir: Path,
        roots: list[Path],
        *,
        name: str = "test-agent",
        mounts: tuple[str, ...] = (),
        concurrency: int | None = None,
        log: Path | None = None,
    ) -> None:
        self.args = [
            sys.executable,
            "-m",
            "cli.main",
            "agent",
            "--server",
            server_url,
            "--name",
            name,
            "--state-dir",
            str(state_dir),
            "--poll-interval",
            "0.2",
            "--report-interval",
            "0.5",
        ]
        for root in roots:
            self.args += ["--root", str(root)]
        for mount in mounts:
            self.args += ["--mount", mount]
        if concurrency is not None:
            self.args += ["--concurrency", str(concurrency)]
        self.state_dir = state_dir
        self.env: dict[str, str] = {}
        self.log = log or state_dir.with_name(state_dir.name + ".log")
        self.lines: list[str] = []
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> AgentProcess:
        self.lines = []
        env = {k: v for k, v in os.environ.items() if not k.startswith("DATASYNC_LOCAL_AGENT_")}
        env.update(self.env)
        with open(self.log, "a", encoding="utf-8") as err:
            self.proc = subprocess.Popen(
                self.args,
                cwd=REPO,
                env=env,
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
            )
        proc = self.proc

        def read() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                self.lines.append(line.rstrip("\n"))

        threading.Thread(target=read, daemon=True).start()
        return self

    def configure_by_environment(self) -> AgentProcess:
        """Move every flag into DATASYNC_LOCAL_AGENT_* variables (ROOT colon-separated)."""
        flags: dict[str, list[str]] = {}
        rest = self.args[4:]
        for flag, value in zip(rest[::2], rest[1::2], strict=True):
            flags.setdefault(flag[2:].replace("-", "_").upper(), []).append(value)
        self.env = {
            f"DATASYNC_LOCAL_AGENT_{name}": (":" if name == "ROOT" else ",").join(values)
            for name, values in flags.items()
        }
        self.args = self.args[:4]
        return self

    def line(self, pattern: str, timeout: float = 20.0, after: int = 0) -> re.Match[str]:
        regex = re.compile(pattern)

        def found() -> re.Match[str] | None:
            for line in self.lines[after:]:
                match = regex.search(line)
                if match:
                    return match
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"agent exited {self.proc.returncode}: {self.output()}")
            return None

        match: re.Match[str] = wait_for(found, timeout=timeout)
        return match

    def key(self, after: int = 0, timeout: float = 20.0) -> str:
        return self.line(KEY_RE.pattern, timeout, after).group(1)

    def output(self) -> str:
        stderr = self.log.read_text(encoding="utf-8") if self.log.exists() else ""
        return "\n".join(self.lines) + "\n--- stderr ---\n" + stderr[-4000:]

    @property
    def identity(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.state_dir / "agent.json").read_text())
        return data

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def stop(self, timeout: float = 30.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        return self.proc.returncode


class HasClient(Protocol):
    """A control plane a test talks to: the in-thread `Server` or a `ServeProcess`."""

    def client(self, service: str = "datasync") -> Any: ...


def activate(server: HasClient, agent: AgentProcess, name: str | None = None) -> str:
    """Start `agent`, approve its key with boto3 CreateAgent, wait until it runs; its ARN.
    Without `name` the agent keeps the name it registered with."""
    agent.start()
    key = agent.key()
    named = {"AgentName": name} if name else {}
    arn: str = server.client().create_agent(ActivationKey=key, **named)["AgentArn"]
    agent.line(r"^Activated: " + re.escape(arn))
    return arn


def locations(
    server: HasClient, agent_arn: str | Sequence[str], src: Path, dst: Path, **task: Any
) -> str:
    """NFS source + SMB destination on `agent_arn` (or on every agent of a list, which then
    share the task's executions) and a task between them; the task ARN."""
    agent_arns = [agent_arn] if isinstance(agent_arn, str) else list(agent_arn)
    ds = server.client()
    source = ds.create_location_nfs(
        ServerHostname="localhost",
        Subdirectory=str(src),
        OnPremConfig={"AgentArns": agent_arns},
    )["LocationArn"]
    destination = ds.create_location_smb(
        ServerHostname="127.0.0.1",
        Subdirectory=str(dst),
        AgentArns=agent_arns,
    )["LocationArn"]
    arn: str = ds.create_task(SourceLocationArn=source, DestinationLocationArn=destination, **task)[
        "TaskArn"
    ]
    return arn


def temporaries(root: Path) -> list[str]:
    return [os.path.join(d, f) for d, _, files in os.walk(root) for f in files if TEMP_PREFIX in f]


def wait_status(ds: Any, arn: str, statuses: tuple[str, ...], timeout: float = 30.0) -> Any:
    def check() -> Any:
        described = ds.describe_task_execution(TaskExecutionArn=arn)
        return described if described["Status"] in statuses else None

    return wait_for(check, timeout=timeout, interval=0.1)


def wait_bytes(ds: Any, arn: str, at_least: int, timeout: float = 30.0) -> Any:
    def check() -> Any:
        described = ds.describe_task_execution(TaskExecutionArn=arn)
        if described["Status"] in ("SUCCESS", "ERROR"):
            raise AssertionError(f"execution ended early: {described}")
        return described if described.get("BytesWritten", 0) >= at_least else None

    return wait_for(check, timeout=timeout, interval=0.1)


def same_tree(a: Path, b: Path) -> bool:
    def files(root: Path) -> dict[str, bytes]:
        return {
            str(p.relative_to(root)): p.read_bytes()
            for p in sorted(root.rglob("*"))
            if p.is_file() and TEMP_PREFIX not in p.name
        }

    return files(a) == files(b)


def deadline(seconds: float) -> float:
    return time.monotonic() + seconds


class ServeProcess:
    """`datasync-local serve --no-embedded-agent` as a subprocess (to kill -9 it)."""

    def __init__(self, data_dir: Path, agent_timeout: float) -> None:
        from tests.api.harness import ACCESS_KEY, ACCOUNT, SECRET_KEY, free_port

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = data_dir.with_name(data_dir.name + "-serve.log")
        self.args = [
            sys.executable,
            "-m",
            "cli.main",
            "serve",
            "--no-embedded-agent",
            "--data-dir",
            str(data_dir),
            "--port",
            str(self.port),
            "--access-key-id",
            ACCESS_KEY,
            "--secret-access-key",
            SECRET_KEY,
            "--account-id",
            ACCOUNT,
            "--agent-timeout",
            str(agent_timeout),
            "--split-min-files",  # tests split their tiny trees into work items
            "0",
            "--split-min-bytes",
            "0",
        ]
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> ServeProcess:
        import socket

        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(self.args, cwd=REPO, stdout=out, stderr=out)

        def up() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"serve exited: {self.log.read_text()[-2000:]}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
            except OSError:
                return False
            return True

        try:
            wait_for(up, timeout=60)  # bounds a hung start; a loaded machine takes many seconds
        except AssertionError:
            self.stop()  # not left running after the test
            raise
        return self

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()

    def client(self, service: str = "datasync") -> Any:
        import boto3
        from botocore.config import Config

        from tests.api.harness import ACCESS_KEY, REGION, SECRET_KEY

        make: Any = boto3.client
        return make(
            service,
            endpoint_url=self.url,
            region_name=REGION,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            config=Config(retries={"max_attempts": 1}, connect_timeout=5, read_timeout=30),
        )
