"""The API server process: HTTP hardening, uvicorn tuning, the singleton-duty lease and
`--workers N`.

`cli/serve.py` composes the parts (store, backend, app, embedded agent); this module is how the
app is served:

- `uvicorn_config` / `GracefulServer`: the limits below, on purpose, and a SIGTERM that ends
  gracefully with exit 0.
- `LeaderDuty`: the store lease `control-plane` (with a fencing epoch) that exactly one process
  of a control plane holds at a time; its holder recovers executions left by a dead process
  (when it takes the lease) and reaps lost agents' jobs. The others keep asking, so when the
  holder dies another takes over within the lease's TTL (at once if the holder was a process of
  this host that is gone, e.g. after kill -9 and a restart on the same data dir).
- `serve_workers`: N processes accepting on one listening socket (the kernel spreads the
  connections); they share the store, so they act as one control plane.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import signal
import socket
import sys
from collections.abc import Callable
from types import FrameType
from typing import Any

import anyio
import anyio.to_thread

from api.store import Store

__all__ = [
    "HEADER_TIMEOUT_SECONDS",
    "LIMIT_CONCURRENCY",
    "MAX_HEADERS",
    "MAX_HEADER_BYTES",
    "GracefulServer",
    "LeaderDuty",
    "listening_socket",
    "serve_workers",
    "uvicorn_config",
]

log = logging.getLogger("datasync_local.server")

# HTTP limits, on purpose (the body limit and the body timeout are the app's: api.app).
# A request line plus headers larger than this, or with more header lines, is refused (431);
# boto3 sends about ten headers and well under 2 KiB.
MAX_HEADER_BYTES = 32 * 1024
MAX_HEADERS = 100
# A client must finish its request line and headers this long after it connects (or after its
# previous response): a slowloris trickling bytes is cut off (408) instead of holding a socket.
HEADER_TIMEOUT_SECONDS = 10.0
# An idle keep-alive connection is closed after this long (uvicorn's default, made explicit).
KEEP_ALIVE_SECONDS = 5
# More simultaneous connections or requests than this are answered 503 by uvicorn (botocore
# retries 503); far above what a machine's operators and agents need, low enough to bound memory.
LIMIT_CONCURRENCY = 2048
# The embedded agent's transfers share this process (and its cores) with the API. Their threads
# run nicer, and a thread holding the GIL is asked to hand it over after 1 ms (default 5 ms), so
# DescribeTaskExecution stays prompt while a transfer takes every core. Measured with 50
# closed-loop pollers during full-speed D3 copies, and D2 through the API vs the engine alone:
#   niceness  0 (5 ms switch): p99 ~290 ms
#   niceness 10: p99 83-100 ms, D2 via the API 1.04x the engine alone
#   niceness 15: p99 89 ms, 1.18x;  niceness 19: p99 61-97 ms, 1.36x (transfers lose out to
#   every other busy thread, the kernel's writeback included)
EMBEDDED_TRANSFER_NICENESS = 10
SWITCH_INTERVAL_SECONDS = 0.001


def _http_protocol(header_timeout: float) -> type[Any]:
    """uvicorn's httptools protocol with a header size/count limit and a header-read timeout.

    uvicorn bounds neither with httptools (its `h11_max_incomplete_event_size` applies to h11
    only), and arms no timer before the first byte of a request. Refusals are written in the
    DataSync error shape and close the connection.
    """
    import asyncio
    import json

    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    def refusal(status: int, reason: str, code: str, message: str) -> bytes:
        body = json.dumps({"__type": code, "message": message, "errorCode": code}).encode()
        return (
            f"HTTP/1.1 {status} {reason}\r\n"
            "content-type: application/x-amz-json-1.1\r\n"
            f"content-length: {len(body)}\r\n"
            "connection: close\r\n\r\n"
        ).encode() + body

    class Refused(Exception):
        pass

    class GuardedHttpToolsProtocol(HttpToolsProtocol):
        _header_bytes = 0
        _header_count = 0
        _refused = False
        _header_timer: asyncio.TimerHandle | None = None

        def _arm(self) -> None:
            if self._header_timer is None:
                self._header_timer = self.loop.call_later(header_timeout, self._headers_too_slow)

        def _disarm(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _refuse(self, status: int, reason: str, code: str, message: str) -> None:
            self._disarm()
            if not self._refused and not self.transport.is_closing():
                self.transport.write(refusal(status, reason, code, message))
                self.transport.close()
            self._refused = True

        def _headers_too_slow(self) -> None:
            self._header_timer = None
            self._refuse(
                408,
                "Request Timeout",
                "RequestTimeoutException",
                f"The request line and headers did not arrive within {header_timeout:g} seconds.",
            )

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            if self._refused:
                return
            super().data_received(data)

        def send_400_response(self, msg: str) -> None:
            # uvicorn's answer to unparseable HTTP, in the DataSync error shape like the rest
            self._refuse(400, "Bad Request", "InvalidRequestException", f"{msg} (not valid HTTP)")

        def _count(self, size: int, lines: int) -> None:
            self._header_bytes += size
            self._header_count += lines
            if self._header_bytes > MAX_HEADER_BYTES or self._header_count > MAX_HEADERS:
                self._refuse(
                    431,
                    "Request Header Fields Too Large",
                    "RequestHeaderFieldsTooLargeException",
                    f"The request line and headers exceed {MAX_HEADER_BYTES} bytes or "
                    f"{MAX_HEADERS} header lines.",
                )
                raise Refused  # stops the parser; data_received ignores the rest

        def on_message_begin(self) -> None:
            self._header_bytes = self._header_count = 0
            self._arm()  # a keep-alive connection's next request is timed too
            super().on_message_begin()

        def on_url(self, url: bytes) -> None:
            self._count(len(url), 0)
            super().on_url(url)

        def on_header(self, name: bytes, value: bytes) -> None:
            self._count(len(name) + len(value) + 4, 1)
            super().on_header(name, value)

        def on_headers_complete(self) -> None:
            self._disarm()
            super().on_headers_complete()

    return GuardedHttpToolsProtocol


def uvicorn_config(
    app: Any, host: str, port: int, header_timeout: float = HEADER_TIMEOUT_SECONDS, **extra: Any
) -> Any:
    """The uvicorn configuration `serve` runs with: the limits above, on purpose."""
    import uvicorn

    try:
        protocol: Any = _http_protocol(header_timeout)
    except ImportError:  # pragma: no cover - httptools is a dependency (uvicorn[standard])
        protocol = "h11"
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        http=protocol,
        # asyncio, not uvloop: measured here with 200 keep-alive clients connecting at once,
        # uvloop left ~150 of their first requests unread for the whole run (their sockets'
        # receive queues full, the others served round and round); asyncio serves all of them
        # at about the same total throughput (tests/reliability/test_load.py).
        loop="asyncio",
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
        limit_concurrency=LIMIT_CONCURRENCY,
        h11_max_incomplete_event_size=MAX_HEADER_BYTES,
        **extra,
    )


def _graceful_server_class() -> type[Any]:
    import uvicorn

    class Graceful(uvicorn.Server):
        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            super().handle_exit(sig, frame)
            captured = getattr(self, "_captured_signals", None)
            if sig == signal.SIGTERM and captured and captured[-1] == sig:
                captured.pop()  # a SIGTERM stop is graceful and complete: exit 0, not -15

    return Graceful


def GracefulServer(config: Any) -> Any:
    """uvicorn's server whose SIGTERM stop exits 0."""
    return _graceful_server_class()(config)


LEADER_LEASE = "control-plane"
LEADER_TTL_SECONDS = 10.0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class LeaderDuty:
    """Holds (or keeps asking for) the singleton lease; `on_acquired` runs each time this process
    gets it under a new epoch (recovery), `held()` gates the periodic duties (the reaper)."""

    def __init__(
        self,
        store: Store,
        on_acquired: Callable[[], int],
        ttl_seconds: float = LEADER_TTL_SECONDS,
    ) -> None:
        self.store = store
        self.on_acquired = on_acquired
        self.ttl = ttl_seconds
        self.host = socket.gethostname()
        self.holder = f"{self.host}:{os.getpid()}:{secrets.token_hex(4)}"
        self.epoch: int | None = None

    def _dead_local_holder(self) -> int | None:
        """The epoch of a lease whose holder was a process of this host that no longer runs."""
        lease = self.store.lease(LEADER_LEASE)
        if lease is None:
            return None
        host, _, rest = lease.holder.partition(":")
        pid_text = rest.split(":", 1)[0]
        if host != self.host or not pid_text.isdigit() or int(pid_text) == os.getpid():
            return None
        return None if _alive(int(pid_text)) else lease.epoch

    def try_acquire(self) -> int:
        """Take or renew the lease; returns how many executions recovery ended (0 if none ran)."""
        epoch = self.store.acquire_lease(LEADER_LEASE, self.holder, self.ttl)
        if epoch is None:
            dead = self._dead_local_holder()
            if dead is not None:
                epoch = self.store.take_over_lease(LEADER_LEASE, self.holder, dead, self.ttl)
        if epoch is None:
            if self.epoch is not None:
                log.warning("lost the control-plane lease (epoch %d)", self.epoch)
            self.epoch = None
            return 0
        if epoch == self.epoch:
            return 0
        self.epoch = epoch
        log.info("holding the control-plane lease (epoch %d): recovery and reaping", epoch)
        return self.on_acquired()

    def held(self) -> bool:
        return self.epoch is not None

    async def run(self) -> None:
        """Renew or ask again every third of the TTL, for the app's lifetime."""
        while True:
            await anyio.sleep(self.ttl / 3)
            try:
                await anyio.to_thread.run_sync(self.try_acquire)
            except Exception:  # a store hiccup: ask again next round
                log.exception("control-plane lease: renewal failed")
                self.epoch = None

    def release(self) -> None:
        if self.epoch is not None:
            self.store.release_lease(LEADER_LEASE, self.holder, self.epoch)
            self.epoch = None


def listening_socket(host: str, port: int) -> socket.socket:
    """One listening socket the worker processes share (they inherit it over fork)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(LIMIT_CONCURRENCY)
    sock.set_inheritable(True)
    return sock


def serve_workers(count: int, sock: socket.socket, child: Callable[[int], int]) -> int:
    """Fork `count` processes that each run `child(index)` (serving on `sock`); forward SIGTERM
    and SIGINT to them and wait. A worker that dies does not take the others down; the exit
    code is the first non-zero one."""
    pids: list[int] = []
    for index in range(count):
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child's coverage is the served requests
            code = 1
            try:
                code = child(index)
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        pids.append(pid)
    sock.close()

    def forward(sig: int, _frame: FrameType | None) -> None:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    code = 0
    for pid in pids:
        while True:
            try:
                _, status = os.waitpid(pid, 0)
                break
            except InterruptedError:
                continue
        exit_code = os.waitstatus_to_exitcode(status)
        if exit_code != 0 and code == 0:
            code = exit_code if exit_code > 0 else 1
    return code
