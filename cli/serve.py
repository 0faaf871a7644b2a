"""`datasync-local serve`: the DataSync API server, its SQLite store and its embedded agent.

This module is the one composition root that wires an agent (`agents`) into the control plane
(`api`); the two never import each other. The embedded agent talks to the server through the
jobs protocol over an in-process ASGI transport, signed like any other agent, so it keeps
reporting while the server drains connections on shutdown.

Every flag can also come from the environment: ``DATASYNC_LOCAL_<FLAG>`` (``--root`` takes a
colon-separated list there).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

import httpx
from starlette.applications import Starlette

__all__ = [
    "HEADER_TIMEOUT_SECONDS",
    "LIMIT_CONCURRENCY",
    "MAX_HEADERS",
    "MAX_HEADER_BYTES",
    "ServeConfig",
    "Served",
    "add_arguments",
    "build",
    "config_from_args",
    "run",
    "uvicorn_config",
]

EXIT_OK, EXIT_USAGE = 0, 2
log = logging.getLogger("datasync_local.serve")

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


def _env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(f"DATASYNC_LOCAL_{name}", default)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = (
        "Every flag can also be set as DATASYNC_LOCAL_<FLAG> in the environment (e.g. "
        "DATASYNC_LOCAL_ACCESS_KEY_ID; DATASYNC_LOCAL_ROOT takes a colon-separated list). "
        "Without credentials, a pair is generated on the first start, stored in the data "
        "directory (mode 0600) and printed once."
    )
    roots = _env("ROOT")
    parser.add_argument(
        "--host", default=_env("HOST", "127.0.0.1"), help="bind address (127.0.0.1)"
    )
    parser.add_argument(
        "--port", type=int, default=int(_env("PORT", "8080") or 8080), help="port (8080)"
    )
    parser.add_argument(
        "--data-dir", default=_env("DATA_DIR", ".data"), help="state directory (.data)"
    )
    parser.add_argument(
        "--root",
        action="append",
        default=None,
        metavar="PATH",
        help="a directory the embedded agent may read and write (repeatable)",
    )
    parser.set_defaults(_env_roots=[r for r in (roots or "").split(":") if r])
    parser.add_argument(
        "--store",
        default=_env("STORE"),
        metavar="URL",
        help="the store: postgresql://user@host:port/db lets several serve processes act as one "
        "control plane (default: SQLite in --data-dir)",
    )
    parser.add_argument(
        "--access-key-id", default=_env("ACCESS_KEY_ID"), help="the operators' access key id"
    )
    parser.add_argument(
        "--secret-access-key", default=_env("SECRET_ACCESS_KEY"), help="and its secret"
    )
    parser.add_argument(
        "--region", default=_env("REGION", "us-east-1"), help="region in ARNs (us-east-1)"
    )
    parser.add_argument(
        "--account-id",
        default=_env("ACCOUNT_ID", "000000000000"),
        help="12-digit account id in ARNs (000000000000)",
    )
    parser.add_argument(
        "--no-embedded-agent",
        action="store_true",
        default=(_env("NO_EMBEDDED_AGENT", "") or "").lower() in ("1", "true", "yes"),
        help="serve the API only; remote agents do the work",
    )
    parser.add_argument(
        "--agent-timeout",
        type=float,
        default=float(_env("AGENT_TIMEOUT", "300") or 300),
        metavar="SECONDS",
        help="an agent silent this long is OFFLINE and loses its running job (300)",
    )
    parser.add_argument(
        "--header-timeout",
        type=float,
        default=float(
            _env("HEADER_TIMEOUT", str(HEADER_TIMEOUT_SECONDS)) or HEADER_TIMEOUT_SECONDS
        ),
        metavar="SECONDS",
        help="a client must send its request line and headers within this time (10)",
    )
    parser.add_argument(
        "--body-timeout",
        type=float,
        default=float(_env("BODY_TIMEOUT", "30") or 30),
        metavar="SECONDS",
        help="and its body (at most 1 MiB) within this time after the headers (30)",
    )


@dataclass
class ServeConfig:
    data_dir: str
    roots: list[str] = field(default_factory=list)
    host: str = "127.0.0.1"
    port: int = 8080
    access_key_id: str | None = None
    secret_access_key: str | None = None
    region: str = "us-east-1"
    account_id: str = "000000000000"
    embedded_agent: bool = True
    agent_timeout: float = 300.0
    agent_poll_interval: float = 0.5
    header_timeout: float = HEADER_TIMEOUT_SECONDS
    body_timeout: float = 30.0
    # None: env DATASYNC_LOCAL_STORE, else SQLite in data_dir (api.store.store_url)
    store: str | None = None


@dataclass
class Served:
    """What `build` made: the app plus what a caller (or a test) needs to talk to it."""

    app: Starlette
    access_key_id: str
    secret_access_key: str
    credentials_created: bool
    agent_arn: str | None
    recovered: int
    close: Callable[[], None]
    extras: dict[str, Any] = field(default_factory=dict)


def config_from_args(args: argparse.Namespace) -> ServeConfig:
    return ServeConfig(
        data_dir=args.data_dir,
        roots=list(args.root or args._env_roots),
        host=args.host,
        port=args.port,
        access_key_id=args.access_key_id,
        secret_access_key=args.secret_access_key,
        region=args.region,
        account_id=args.account_id,
        embedded_agent=not args.no_embedded_agent,
        agent_timeout=args.agent_timeout,
        header_timeout=args.header_timeout,
        body_timeout=args.body_timeout,
        store=args.store,
    )


def build(config: ServeConfig) -> Served:
    """Assemble store, backend, app and (optionally) the embedded agent."""
    from agents.agent import Agent
    from agents.client import JobsClient
    from api.app import create_app
    from api.auth import load_or_create_credentials
    from api.models import Backend, ServerConfig
    from api.store import Store

    if not (len(config.account_id) == 12 and config.account_id.isdigit()):
        raise ValueError(f"--account-id must be 12 digits, not {config.account_id!r}")
    os.makedirs(config.data_dir, exist_ok=True)
    credential, created = load_or_create_credentials(
        config.data_dir, config.access_key_id, config.secret_access_key
    )
    store = Store.in_directory(config.data_dir, config.store)
    backend = Backend(
        store,
        ServerConfig(
            region=config.region,
            account_id=config.account_id,
            agent_timeout=config.agent_timeout,
        ),
    )
    recovered = backend.recover()
    secrets = {credential.access_key_id: credential.secret_access_key}
    if not config.embedded_agent:
        app = create_app(backend, secrets, body_timeout=config.body_timeout)
        return Served(
            app,
            credential.access_key_id,
            credential.secret_access_key,
            created,
            None,
            recovered,
            store.close,
            {"backend": backend},
        )

    roots = [os.path.abspath(r) for r in config.roots]
    agent_arn = backend.register_agent("embedded", roots, meta_key="embedded_agent")
    holder: dict[str, Starlette] = {}

    async def asgi(scope: Any, receive: Any, send: Any) -> None:
        await holder["app"](scope, receive, send)

    client = JobsClient(
        "http://embedded-agent.local",
        credential.access_key_id,
        credential.secret_access_key,
        config.region,
        transport=httpx.ASGITransport(app=asgi),
    )
    agent = Agent(
        client,
        agent_arn.rsplit("/", 1)[1],
        roots,
        poll_interval=config.agent_poll_interval,
        transfer_niceness=EMBEDDED_TRANSFER_NICENESS,
    )

    def poke(arn: str) -> None:
        if arn == agent_arn:
            agent.poke()

    backend.work_listeners.append(poke)

    async def stop_agent() -> None:
        await agent.stop()
        await client.aclose()

    app = create_app(
        backend,
        secrets,
        background=[agent.run],
        on_shutdown=[stop_agent],
        body_timeout=config.body_timeout,
    )
    holder["app"] = app
    return Served(
        app,
        credential.access_key_id,
        credential.secret_access_key,
        created,
        agent_arn,
        recovered,
        store.close,
        {"agent": agent, "backend": backend},
    )


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


def run(args: argparse.Namespace) -> int:
    import uvicorn

    sys.setswitchinterval(SWITCH_INTERVAL_SECONDS)

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)  # the embedded agent's every poll
    config = config_from_args(args)
    try:
        served = build(config)
    except ValueError as exc:
        print(f"datasync-local serve: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if served.credentials_created:
        print(
            "Generated credentials (stored in "
            f"{os.path.join(os.path.abspath(config.data_dir), 'credentials.json')}, mode 0600;"
            " shown only this once):\n"
            f"  AWS_ACCESS_KEY_ID={served.access_key_id}\n"
            f"  AWS_SECRET_ACCESS_KEY={served.secret_access_key}",
            flush=True,
        )
    if served.recovered:
        log.warning(
            "%d execution(s) left unfinished by a previous run ended in ERROR", served.recovered
        )
    if served.agent_arn:
        log.info(
            "embedded agent %s serves %s", served.agent_arn, ", ".join(config.roots) or "no roots"
        )
        if not config.roots:
            log.warning("no --root given: every location will be refused")
    print(
        f"DataSync API on http://{config.host}:{config.port} "
        f"(region {config.region}, account {config.account_id})",
        flush=True,
    )

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            super().handle_exit(sig, frame)
            captured = getattr(self, "_captured_signals", None)
            if sig == signal.SIGTERM and captured and captured[-1] == sig:
                captured.pop()  # a SIGTERM stop is graceful and complete: exit 0, not -15

    server = Server(
        uvicorn_config(
            served.app,
            config.host,
            config.port,
            header_timeout=config.header_timeout,
            log_level="warning",
        )
    )
    try:
        server.run()
    finally:
        served.close()
    print("datasync-local serve: stopped", file=sys.stderr, flush=True)
    return EXIT_OK
