"""One adapter per tool: how to start it on SRC → DST for an operation, and what it reports.

Operations:
- "copy":     an initial copy into an empty destination;
- "resync":   the same source into a destination that already holds (most of) it;
- "throttle": a copy capped at a given bytes-per-second.
A tool says which operations it supports; a scenario skips (and reports) the rest.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from benchmarks.measure import run_quiet

__all__ = [
    "ApiServer",
    "ApiTool",
    "CpTool",
    "EngineTool",
    "FpsyncTool",
    "Handle",
    "Op",
    "Outcome",
    "RcloneTool",
    "RsyncTool",
    "Tool",
    "all_tools",
    "ensure_debian_packages",
]

Op = Literal["copy", "resync", "throttle"]
GNU_TIME = "/usr/bin/time"
VERIFY_MODES = ("NONE", "ONLY_FILES_TRANSFERRED", "POINT_IN_TIME_CONSISTENT")


@dataclass
class Outcome:
    ok: bool
    seconds: float
    maxrss_kib: int | None = None
    detail: str = ""
    counters: dict[str, Any] = field(default_factory=dict)


class Handle(ABC):
    started: float

    @abstractmethod
    def running(self) -> bool: ...

    @abstractmethod
    def wait(self, timeout: float = 3600.0) -> Outcome: ...


class ProcessHandle(Handle):
    """A child process whose exit we collect with wait4, so we get its own peak RSS."""

    def __init__(self, cmd: list[str], env: dict[str, str] | None = None) -> None:
        self._out = tempfile.TemporaryFile()  # noqa: SIM115 - closed in wait()
        self._err = tempfile.TemporaryFile()  # noqa: SIM115 - closed in wait()
        self.cmd = cmd
        self.started = time.monotonic()
        # Peak RSS through GNU time: a child forked from this (large) Python process would
        # inherit its high-water mark, so wait4's ru_maxrss would report at least ours.
        self._rss_file: Path | None = None
        if Path(GNU_TIME).exists():
            fd, name = tempfile.mkstemp(prefix="rss-", suffix=".txt")
            os.close(fd)
            self._rss_file = Path(name)
            cmd = [GNU_TIME, "-f", "%M", "-o", name, *cmd]
        self._proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=self._out, stderr=self._err, env=env
        )
        self._outcome: Outcome | None = None

    def running(self) -> bool:
        if self._outcome is not None:
            return False
        # WNOWAIT: look without reaping, so wait4 can still collect the rusage.
        info = os.waitid(os.P_PID, self._proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        return info is None

    def wait(self, timeout: float = 3600.0) -> Outcome:
        if self._outcome is not None:
            return self._outcome
        _pid, status, usage = os.wait4(self._proc.pid, 0)
        seconds = time.monotonic() - self.started
        code = os.waitstatus_to_exitcode(status)
        self._proc.returncode = code
        self._out.seek(0)
        self._err.seek(0)
        out = self._out.read().decode(errors="replace")
        err = self._err.read().decode(errors="replace")
        self._out.close()
        self._err.close()
        counters: dict[str, Any] = {}
        detail = ""
        if out.strip().startswith("{"):
            try:
                counters = json.loads(out.strip().splitlines()[-1] if "\n" in out else out)
            except json.JSONDecodeError:
                try:
                    counters = json.loads(out)
                except json.JSONDecodeError:
                    counters = {}
        if code != 0:
            tail = (err.strip() or out.strip())[-400:]
            detail = f"exit {code}: {tail}"
        maxrss: int | None = usage.ru_maxrss
        if self._rss_file is not None:
            try:
                lines = self._rss_file.read_text().strip().splitlines()
                maxrss = int(lines[-1]) if lines else None
            except (OSError, ValueError):
                maxrss = None
            self._rss_file.unlink(missing_ok=True)
        self._outcome = Outcome(code == 0, seconds, maxrss, detail, counters)
        return self._outcome


class Tool(ABC):
    key: str  # stable identifier, e.g. "rsync"
    label: str  # shown in the report, e.g. "rsync -a"
    ours: bool = False
    ops: frozenset[str] = frozenset({"copy", "resync"})

    def supports(self, op: Op) -> bool:
        return op in self.ops

    def unavailable(self) -> str | None:
        """None when the tool can run here, else why not."""
        return None

    def version(self) -> str:
        return ""

    @abstractmethod
    def start(
        self, src: Path, dst: Path, op: Op, bytes_per_second: int | None = None
    ) -> Handle: ...

    def reset(self) -> None:  # noqa: B027 - optional hook, a no-op for most tools
        """Forget per-scenario state (e.g. stop a server) before the next scenario."""

    def close(self) -> None:
        self.reset()


# --- peers -----------------------------------------------------------------------------------


class _Binary(Tool):
    binary = ""
    package = ""

    def unavailable(self) -> str | None:
        if shutil.which(self.binary) is None:
            return f"`{self.binary}` not found (Debian package `{self.package}` not installed)"
        return None


class CpTool(_Binary):
    key, label, binary, package = "cp", "cp -a", "cp", "coreutils"
    ops = frozenset({"copy"})

    def version(self) -> str:
        return run_quiet(["cp", "--version"])

    def start(self, src: Path, dst: Path, op: Op, bytes_per_second: int | None = None) -> Handle:
        return ProcessHandle(["cp", "-a", f"{src}/.", f"{dst}/"])


class RsyncTool(_Binary):
    key, label, binary, package = "rsync", "rsync -a", "rsync", "rsync"
    ops = frozenset({"copy", "resync", "throttle"})

    def version(self) -> str:
        return run_quiet(["rsync", "--version"])

    def start(self, src: Path, dst: Path, op: Op, bytes_per_second: int | None = None) -> Handle:
        cmd = ["rsync", "-a"]
        if bytes_per_second:
            cmd.append(f"--bwlimit={max(1, bytes_per_second // 1024)}")  # KiB/s
        return ProcessHandle([*cmd, f"{src}/", f"{dst}/"])


class RcloneTool(_Binary):
    key, label, binary, package = "rclone", "rclone copy/sync --transfers 4", "rclone", "rclone"
    ops = frozenset({"copy", "resync", "throttle"})

    def version(self) -> str:
        return run_quiet(["rclone", "version"])

    def start(self, src: Path, dst: Path, op: Op, bytes_per_second: int | None = None) -> Handle:
        verb = "sync" if op == "resync" else "copy"
        cmd = ["rclone", verb, str(src), str(dst), "--transfers", "4", "--config", os.devnull]
        if bytes_per_second:
            cmd += ["--bwlimit", f"{max(1, bytes_per_second // 1024)}k"]  # KiB/s
        return ProcessHandle(cmd)


class FpsyncTool(_Binary):
    key, label, binary, package = "fpsync", "fpsync -n 2", "fpsync", "fpart"

    def __init__(self, workdir: Path) -> None:
        self._workdir = workdir

    def version(self) -> str:
        return run_quiet(["fpart", "-V"]) or "fpart (version unknown)"

    def start(self, src: Path, dst: Path, op: Op, bytes_per_second: int | None = None) -> Handle:
        tmp = Path(tempfile.mkdtemp(prefix="fpsync-", dir=self._workdir))
        return ProcessHandle(["fpsync", "-n", "2", "-t", str(tmp), f"{src}/", f"{dst}/"])


# --- ours: the engine alone ------------------------------------------------------------------


def _datasync_local_cmd() -> list[str]:
    script = Path(sys.executable).parent / "datasync-local"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "cli.main"]


def compile_ours() -> None:
    """Write the bytecode of our packages, as installing a package does. An editable install
    leaves it to the first import, which never writes it under PYTHONDONTWRITEBYTECODE=1 (set on
    this machine): every run would then time ~50 ms of compiling, not the engine."""
    import compileall

    here = Path(__file__).resolve().parent.parent
    for package in ("engine", "api", "agents", "cli"):
        compileall.compile_dir(here / package, quiet=1)


def ours_version() -> str:
    try:
        from importlib.metadata import version

        v = version("datasync-local")
    except Exception:  # not installed as a distribution
        v = "unknown"
    rev = run_quiet(
        ["git", "-C", str(Path(__file__).resolve().parent), "rev-parse", "--short", "HEAD"]
    )
    here = str(Path(__file__).resolve().parent.parent)
    dirty = run_quiet(
        ["git", "-C", here, "status", "--porcelain", "engine", "api", "agents", "cli"]
    )
    if rev and dirty:
        rev += " + uncommitted changes in the work tree"
    return f"datasync-local {v}" + (f" (git {rev})" if rev else "")


class EngineTool(Tool):
    ours = True
    ops = frozenset({"copy", "resync", "throttle"})

    def __init__(self, verify_mode: str = "NONE", hash_cache: Path | None = None) -> None:
        self.verify_mode = verify_mode
        short = {"ONLY_FILES_TRANSFERRED": "ONLY_FILES"}.get(verify_mode, verify_mode)
        # Without a cache directory: --no-hash-cache, so every run verifies by reading, as before
        # the verification cache existed; with one, POINT_IN_TIME_CONSISTENT keeps its digests
        # there (engine/hashcache.py) from run to run.
        self.hash_cache = hash_cache
        self.key = f"dsl-sync-{verify_mode}" + ("-cache" if hash_cache else "")
        self.label = f"datasync-local sync ({short}{', hash cache' if hash_cache else ''})"
        self._why: str | None = None
        self._checked = False

    def unavailable(self) -> str | None:
        if not self._checked:
            self._checked = True
            out = subprocess.run(
                [*_datasync_local_cmd(), "sync", "--help"],
                capture_output=True,
                text=True,
                check=False,
            )
            if out.returncode != 0:
                tail = (out.stderr or out.stdout).strip()[-300:]
                self._why = f"`datasync-local sync` not usable: {tail}"
        return self._why

    def version(self) -> str:
        return ours_version()

    def start(self, src: Path, dst: Path, op: Op, bytes_per_second: int | None = None) -> Handle:
        cmd = [*_datasync_local_cmd(), "sync", str(src), str(dst), "--no-progress", "--json"]
        cmd += ["--verify-mode", self.verify_mode]
        cmd += (
            ["--hash-cache-dir", str(self.hash_cache)] if self.hash_cache else ["--no-hash-cache"]
        )
        if bytes_per_second:
            cmd += ["--bytes-per-second", str(bytes_per_second)]
        return ProcessHandle(cmd)


# --- ours: end to end through the API --------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class ApiServer:
    """`datasync-local serve` as a subprocess, with a boto3 client pointed at it."""

    def __init__(self, root: Path, workdir: Path, extra_args: Sequence[str] = ()) -> None:
        self.root = root
        self.data_dir = Path(tempfile.mkdtemp(prefix="serve-", dir=workdir))
        self.port = _free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.access_key = "AKIDBENCH"
        self.secret = secrets.token_hex(20)
        self._log = open(self.data_dir / "serve.log", "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [
                *_datasync_local_cmd(),
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--data-dir",
                str(self.data_dir),
                "--root",
                str(root),
                "--access-key-id",
                self.access_key,
                "--secret-access-key",
                self.secret,
                *extra_args,  # e.g. --workers 2, --store postgresql://… (benchmarks.controlplane)
            ],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self.client: Any = None
        self.agent_arn = ""

    def make_client(self) -> Any:
        import boto3
        from botocore.config import Config

        return boto3.client(
            "datasync",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret,
            config=Config(retries={"max_attempts": 1}, max_pool_connections=4),
        )

    def log_tail(self) -> str:
        try:
            return (self.data_dir / "serve.log").read_text(errors="replace").strip()[-400:]
        except OSError:
            return ""

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        self.client = self.make_client()
        last = ""
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"`serve` exited with {self.proc.returncode}: {self.log_tail()}")
            try:
                agents = self.client.list_agents().get("Agents", [])
            except Exception as exc:
                last = f"{type(exc).__name__}: {exc}"
                time.sleep(0.2)
                continue
            if agents:
                self.agent_arn = agents[0]["AgentArn"]
                return
            last = "ListAgents returned no agent"
            time.sleep(0.2)
        raise RuntimeError(f"`serve` did not answer within {timeout:.0f} s ({last})")

    def peak_rss_kib(self) -> int | None:
        try:
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
        except OSError:
            return None
        return None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


class ApiHandle(Handle):
    def __init__(self, server: ApiServer, arn: str, started: float) -> None:
        self.server = server
        self.arn = arn
        self.started = started
        self._status = "QUEUED"
        self._last_poll = 0.0
        self._outcome: Outcome | None = None
        self._desc: dict[str, Any] = {}

    def _poll(self) -> None:
        self._desc = self.server.client.describe_task_execution(TaskExecutionArn=self.arn)
        self._status = self._desc.get("Status", "")
        self._last_poll = time.monotonic()

    def running(self) -> bool:
        if self._outcome is not None:
            return False
        if time.monotonic() - self._last_poll >= 0.025:
            self._poll()
        return self._status not in ("SUCCESS", "ERROR")

    def wait(self, timeout: float = 3600.0) -> Outcome:
        if self._outcome is not None:
            return self._outcome
        deadline = time.monotonic() + timeout
        while self._status not in ("SUCCESS", "ERROR"):
            if time.monotonic() > deadline:
                self._outcome = Outcome(False, time.monotonic() - self.started, detail="timeout")
                return self._outcome
            self._poll()
            if self._status not in ("SUCCESS", "ERROR"):
                time.sleep(0.025)
        seconds = time.monotonic() - self.started
        counters = {
            k: v
            for k, v in self._desc.items()
            if isinstance(v, int | str) and k != "TaskExecutionArn"
        }
        detail = ""
        if self._status != "SUCCESS":
            detail = json.dumps(self._desc.get("Result", {}), default=str)[-400:]
        self._outcome = Outcome(
            self._status == "SUCCESS", seconds, self.server.peak_rss_kib(), detail, counters
        )
        return self._outcome


class ApiTool(Tool):
    """datasync-local end to end: boto3 → API server → embedded agent → engine."""

    ours = True
    ops = frozenset({"copy", "resync", "throttle"})

    def __init__(self, root: Path, workdir: Path, verify_mode: str = "NONE") -> None:
        self.root = root
        self.workdir = workdir
        self.verify_mode = verify_mode
        self.key = f"dsl-api-{verify_mode}"
        short = {"ONLY_FILES_TRANSFERRED": "ONLY_FILES"}.get(verify_mode, verify_mode)
        self.label = f"datasync-local API e2e ({short})"
        self.server: ApiServer | None = None
        self._why: str | None = None
        self._checked = False
        self.last: ApiHandle | None = None

    def unavailable(self) -> str | None:
        if not self._checked:
            self._checked = True
            try:
                self._ensure()
            except Exception as exc:
                self._why = f"API server unavailable: {exc}"
                self.reset()
        return self._why

    def version(self) -> str:
        return ours_version() + " via `serve` + embedded agent, boto3"

    def _ensure(self) -> ApiServer:
        if self.server is None:
            server = ApiServer(self.root, self.workdir)
            try:
                server.wait_ready()
            except Exception:
                server.stop()
                raise
            self.server = server
        return self.server

    def _location(self, server: ApiServer, path: Path) -> str:
        arn: str = server.client.create_location_nfs(
            ServerHostname="localhost",
            Subdirectory=str(path),
            OnPremConfig={"AgentArns": [server.agent_arn]},
        )["LocationArn"]
        return arn

    def start(self, src: Path, dst: Path, op: Op, bytes_per_second: int | None = None) -> Handle:
        server = self._ensure()
        options: dict[str, Any] = {
            "VerifyMode": self.verify_mode,
            "BytesPerSecond": bytes_per_second or -1,
        }
        task = server.client.create_task(
            SourceLocationArn=self._location(server, src),
            DestinationLocationArn=self._location(server, dst),
            Name=f"bench-{dst.name}"[:256],
            Options=options,
        )["TaskArn"]
        started = time.monotonic()
        arn = server.client.start_task_execution(TaskArn=task)["TaskExecutionArn"]
        self.last = ApiHandle(server, arn, started)
        return self.last

    def reset(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None


# --- the line-up -----------------------------------------------------------------------------


def all_tools(root: Path, workdir: Path) -> list[Tool]:
    """Every tool variant the harness knows, ours first."""
    return [
        EngineTool("NONE"),
        EngineTool("ONLY_FILES_TRANSFERRED"),
        EngineTool("POINT_IN_TIME_CONSISTENT"),
        EngineTool("POINT_IN_TIME_CONSISTENT", hash_cache=workdir / "hash-cache"),
        ApiTool(root, workdir, "NONE"),
        ApiTool(root, workdir, "ONLY_FILES_TRANSFERRED"),
        CpTool(),
        RsyncTool(),
        RcloneTool(),
        FpsyncTool(workdir),
    ]


def ensure_debian_packages(packages: list[str], log: Any = print) -> dict[str, str]:
    """Install missing Debian packages where the machine allows; say what happened to each."""
    status: dict[str, str] = {}
    binaries = {"rsync": "rsync", "rclone": "rclone", "fpart": "fpsync", "time": GNU_TIME}
    missing = [p for p in packages if shutil.which(binaries.get(p, p)) is None]
    for p in packages:
        if p not in missing:
            status[p] = "present"
    if not missing:
        return status
    if shutil.which("apt-get") is None:
        return status | {p: "missing (no apt-get on this machine)" for p in missing}
    prefix: list[str] = []
    if os.geteuid() != 0:
        if shutil.which("sudo") is None:
            return status | {p: "missing (not root and no sudo)" for p in missing}
        prefix = ["sudo", "-n"]
    log(f"installing Debian packages: {' '.join(missing)}")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run([*prefix, "apt-get", "update", "-qq"], env=env, check=False, capture_output=True)
    for p in missing:
        out = subprocess.run(
            [*prefix, "apt-get", "install", "-y", "-qq", p],
            env=env,
            check=False,
            capture_output=True,
            text=True,
        )
        ok = out.returncode == 0 and shutil.which(binaries.get(p, p)) is not None
        status[p] = (
            "installed by the harness" if ok else f"missing (apt-get: {out.stderr.strip()[-200:]})"
        )
    return status
