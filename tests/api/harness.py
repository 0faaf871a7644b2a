"""A real server for tests: `cli.serve.build` + uvicorn on a free 127.0.0.1 port, in a thread,
and real boto3 clients signed with the test credentials."""

from __future__ import annotations

import os
import random
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
import uvicorn
from botocore.config import Config

from cli.serve import ServeConfig, Served, build

ACCESS_KEY = "AKIDTESTDATASYNCLOCAL"
SECRET_KEY = "test-secret-key-0123456789"
ACCOUNT = "111122223333"
REGION = "us-east-1"
_CONFIG = Config(
    retries={"max_attempts": 1, "mode": "standard"}, connect_timeout=5, read_timeout=30
)


_PORT_BLOCK = 2000  # ports each test process hands out in turn
_FIRST_PORT = 10000


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


def _port_block() -> range | None:
    """The ports this test process hands out: a block of its own below the kernel's ephemeral
    range, chosen by its pytest-xdist worker number (gw0, gw1, …; 0 without xdist).

    Why not bind port 0: the kernel hands that port back to the next bind(0) or client
    connect() once our probe socket closes, and a server started a moment later finds it taken
    (or, worse, a test talks to another test's server). Under the ephemeral range no client
    socket is ever given one of these ports, and workers never share a block."""
    low = _ephemeral_low()
    blocks = (low - _FIRST_PORT) // _PORT_BLOCK
    if blocks < 1:
        return None  # an unusual ephemeral range: fall back to the kernel's choice
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    index = int(worker) % blocks if worker.isdigit() else 0
    first = _FIRST_PORT + index * _PORT_BLOCK
    return range(first, first + _PORT_BLOCK)


_BLOCK = _port_block()
# a random start: two pytest sessions of one worker number (two checkouts tested at once) rarely
# walk the same ports at the same time; the bind probe skips any port already in use
_NEXT = random.randrange(_PORT_BLOCK)
_PORT_LOCK = threading.Lock()


def _bindable(port: int) -> bool:
    with socket.socket() as sock:  # no SO_REUSEADDR: a port in TIME_WAIT counts as taken too
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_port() -> int:
    """A 127.0.0.1 port no one listens on, that this process has not handed out recently (it
    walks its block in turn, so a port picked for a server not yet bound is not picked again)."""
    global _NEXT
    if _BLOCK is None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
            return port
    with _PORT_LOCK:
        for _ in range(len(_BLOCK)):
            candidate = _BLOCK[_NEXT % len(_BLOCK)]
            _NEXT += 1
            if _bindable(candidate):
                return candidate
    raise RuntimeError(f"no free port in {_BLOCK}")


class Server:
    def __init__(
        self,
        data_dir: str,
        roots: list[str],
        *,
        embedded_agent: bool = True,
        agent_timeout: float = 300.0,
        allow_empty_source: bool = False,
        buckets: dict[str, str] | None = None,
        metrics_token: str | None = None,
        registration_burst: float = 30.0,
        split_min: tuple[int, int] = (0, 0),
    ) -> None:
        # (files, bytes) below which a tree is not split into work items: tests split their
        # tiny trees (0, 0); a benchmark passes the server's defaults
        self.split_min = split_min
        self.metrics_token = metrics_token
        self.registration_burst = registration_burst
        self.data_dir = data_dir
        self.buckets = dict(buckets or {})
        self.allow_empty_source = allow_empty_source
        self.roots = roots
        self.embedded_agent = embedded_agent
        self.region = REGION
        self.agent_timeout = agent_timeout
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.served: Served | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> Server:
        self.served = build(
            ServeConfig(
                data_dir=self.data_dir,
                roots=self.roots,
                access_key_id=ACCESS_KEY,
                secret_access_key=SECRET_KEY,
                account_id=ACCOUNT,
                region=self.region,
                embedded_agent=self.embedded_agent,
                agent_timeout=self.agent_timeout,
                agent_poll_interval=0.1,
                allow_empty_source=self.allow_empty_source,
                buckets=self.buckets,
                metrics_token=self.metrics_token,
                registration_burst=self.registration_burst,
                split_min_files=self.split_min[0],
                split_min_bytes=self.split_min[1],
            )
        )
        config = uvicorn.Config(
            self.served.app, host="127.0.0.1", port=self.port, log_level="warning"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 60  # bounds a hung start; under parallel workers it is slow
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("server did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=40)
        if self.served is not None:
            self.served.close()
        self._server = self._thread = None

    def restart(self) -> Server:
        self.stop()
        return self.start()

    @property
    def agent_arn(self) -> str:
        assert self.served is not None and self.served.agent_arn is not None
        return self.served.agent_arn

    def client(self, service: str = "datasync", **overrides: Any) -> Any:
        kwargs: dict[str, Any] = {
            "endpoint_url": self.url,
            "region_name": self.region,  # the server refuses other regions (issue 10)
            "aws_access_key_id": ACCESS_KEY,
            "aws_secret_access_key": SECRET_KEY,
            "config": _CONFIG,
        }
        kwargs.update(overrides)
        make: Any = boto3.client  # service is a runtime string, not a typed literal
        return make(service, **kwargs)


def wait_for(predicate: Callable[[], Any], timeout: float = 20.0, interval: float = 0.05) -> Any:
    """Poll `predicate` until it returns something truthy (bounded in time)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s (last value {value!r})")
        time.sleep(interval)


def location_root(base: Path) -> Path:
    """base/root with empty src/ and dst/ directories, where the tests' locations point."""
    path = base / "root"
    (path / "src").mkdir(parents=True)
    (path / "dst").mkdir()
    return path


@contextmanager
def serving(base: Path, buckets: dict[str, Path] | None = None) -> Iterator[Server]:
    """A started server whose embedded agent has `location_root(base)` (as `server.root`) and
    serves each `arn:aws:s3:::<name>` of `buckets` from its directory (created)."""
    for directory in (buckets or {}).values():
        directory.mkdir(exist_ok=True)
    root = location_root(base)
    mapped = {name: str(directory) for name, directory in (buckets or {}).items()}
    server = Server(str(base / "data"), [str(root)], buckets=mapped)
    server.root = root  # type: ignore[attr-defined]
    server.start()
    try:
        yield server
    finally:
        server.stop()


def finished(ds: Any, arn: str, timeout: float = 30) -> dict[str, Any]:
    """The execution's DescribeTaskExecution once it is SUCCESS or ERROR."""

    def done() -> dict[str, Any] | None:
        doc: dict[str, Any] = ds.describe_task_execution(TaskExecutionArn=arn)
        return doc if doc["Status"] in ("SUCCESS", "ERROR") else None

    result: dict[str, Any] = wait_for(done, timeout)
    return result


def nfs_task(ds: Any, agent_arn: str, src: Path, dst: Path, **task: Any) -> tuple[str, str, str]:
    """NFS locations for `src` and `dst` on `agent_arn` and a task between them (`task` adds
    CreateTask parameters): (source location, destination location, task) ARNs."""
    source, destination = (
        ds.create_location_nfs(
            ServerHostname="localhost",
            Subdirectory=str(path),
            OnPremConfig={"AgentArns": [agent_arn]},
        )["LocationArn"]
        for path in (src, dst)
    )
    arn = ds.create_task(SourceLocationArn=source, DestinationLocationArn=destination, **task)
    return source, destination, arn["TaskArn"]


def make_tree(root: str, files: int, size: int, prefix: str = "f") -> None:
    os.makedirs(root, exist_ok=True)
    block = os.urandom(min(size, 1 << 16)) if size else b""
    for i in range(files):
        with open(os.path.join(root, f"{prefix}{i:04d}.bin"), "wb") as fh:
            remaining = size
            while remaining > 0:
                chunk = block[: min(remaining, len(block))]
                fh.write(chunk)
                remaining -= len(chunk)
