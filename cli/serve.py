"""`datasync-local serve`: the DataSync API server, its store and its embedded agent.

This module is the one composition root that wires an agent (`agents`) into the control plane
(`api`); the two never import each other. The embedded agent talks to the server through the
jobs protocol over an in-process ASGI transport, signed like any other agent, so it keeps
reporting while the server drains connections on shutdown.

How the app is served (HTTP limits, uvicorn tuning, the singleton lease, `--workers`) lives in
`api.server`. Several processes share one store and act as one control plane; the embedded agent
lives in one of them only (the first worker; `--no-embedded-agent` on the others of a
multi-host control plane).

Every flag can also come from the environment: ``DATASYNC_LOCAL_<FLAG>`` (``--root`` takes a
colon-separated list there).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import anyio
import anyio.to_thread
import httpx
from starlette.applications import Starlette

from api.server import (
    EMBEDDED_TRANSFER_NICENESS,
    HEADER_TIMEOUT_SECONDS,
    LIMIT_CONCURRENCY,
    MAX_HEADER_BYTES,
    MAX_HEADERS,
    SWITCH_INTERVAL_SECONDS,
    GracefulServer,
    LeaderDuty,
    listening_socket,
    serve_workers,
    uvicorn_config,
)
from cli.engine_flags import add_engine_flags
from contract.buckets import parse_buckets, split_env
from contract.workitems import DEFAULT_SPLIT_MIN_BYTES, DEFAULT_SPLIT_MIN_FILES

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


def _env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(f"DATASYNC_LOCAL_{name}", default)


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0: {text!r}")
    return value


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
        "--bucket",
        action="append",
        default=None,
        metavar="NAME=DIR",
        help="serve arn:aws:s3:::NAME from DIR for task reports and manifests (repeatable; env "
        "DATASYNC_LOCAL_BUCKET: comma- or space-separated)",
    )
    parser.set_defaults(_env_buckets=split_env(_env("BUCKET")))
    parser.add_argument(
        "--min-schedule-interval",
        type=float,
        default=float(_env("MIN_SCHEDULE_INTERVAL", "60") or 60),
        metavar="SECONDS",
        help="refuse task schedules that can run more often than this (60; at least 60)",
    )
    parser.add_argument(
        "--split-min-files",
        type=int,
        default=int(_env("SPLIT_MIN_FILES", str(DEFAULT_SPLIT_MIN_FILES)) or 0),
        metavar="N",
        help="an execution's tree is split into work items only when it holds at least this "
        f"many files or --split-min-bytes bytes ({DEFAULT_SPLIT_MIN_FILES}; 0: split any tree)",
    )
    parser.add_argument(
        "--split-min-bytes",
        type=int,
        default=int(_env("SPLIT_MIN_BYTES", str(DEFAULT_SPLIT_MIN_BYTES)) or 0),
        metavar="BYTES",
        help=f"see --split-min-files ({DEFAULT_SPLIT_MIN_BYTES}; 0: split any tree)",
    )
    parser.add_argument(
        "--log-retention-days",
        type=float,
        default=float(_env("LOG_RETENTION_DAYS", "30") or 30),
        metavar="DAYS",
        help="execution log events older than this are deleted from the store (30)",
    )
    parser.add_argument(
        "--registration-rate",
        type=_positive,
        default=_positive(_env("REGISTRATION_RATE", "0.5") or "0.5"),
        metavar="PER_SECOND",
        help="unauthenticated agent registrations accepted per second, sustained (0.5); raise it "
        "for a fleet rollout",
    )
    parser.add_argument(
        "--registration-burst",
        type=_positive,
        default=_positive(_env("REGISTRATION_BURST", "30") or "30"),
        metavar="N",
        help="agent registrations accepted at once before the rate applies (30)",
    )
    parser.add_argument(
        "--store",
        default=_env("STORE"),
        metavar="URL",
        help="the store: postgresql://user@host:port/db lets several serve processes act as one "
        "control plane (default: SQLite in --data-dir)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=int(_env("WORKERS", "1") or 1),
        metavar="N",
        help="serve from N processes on one port, sharing the store (1); the embedded agent "
        "lives in the first",
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
    add_engine_flags(parser, _env)
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
    parser.add_argument(
        "--metrics-token",
        default=_env("METRICS_TOKEN"),
        metavar="TOKEN",
        help="GET /metrics requires `Authorization: Bearer TOKEN` (default: unauthenticated)",
    )
    parser.add_argument(
        "--access-log",
        action="store_true",
        default=_env("ACCESS_LOG", "") not in ("", "0", "false", "no"),
        help="log one JSON line per API request to stderr: protocol, operation, error code, "
        "status, milliseconds, access key id (env DATASYNC_LOCAL_ACCESS_LOG=1; default off)",
    )


POKE_POLL_SECONDS = 0.05  # how soon news from another process reaches the embedded agent


@dataclass
class ServeConfig:
    data_dir: str
    roots: list[str] = field(default_factory=list)
    buckets: dict[str, str] = field(default_factory=dict)  # bucket name → directory
    log_retention_days: float = 30.0
    min_schedule_interval: float = 60.0
    # the smallest tree split into work items (contract/workitems.py)
    split_min_files: int = DEFAULT_SPLIT_MIN_FILES
    split_min_bytes: int = DEFAULT_SPLIT_MIN_BYTES
    registration_rate: float = 0.5  # agent registrations per second, sustained
    registration_burst: float = 30.0
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
    workers: int = 1
    allow_empty_source: bool = False
    fsync: bool = False
    hash_cache: bool = True  # in data_dir/hash-cache
    metrics_token: str | None = None  # GET /metrics then wants `Authorization: Bearer <token>`
    access_log: bool = False  # one JSON line per API request (api/access_log.py)


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
        buckets=parse_buckets(args.bucket or args._env_buckets),
        log_retention_days=args.log_retention_days,
        min_schedule_interval=max(60.0, args.min_schedule_interval),
        split_min_files=max(0, args.split_min_files),
        split_min_bytes=max(0, args.split_min_bytes),
        registration_rate=args.registration_rate,
        registration_burst=args.registration_burst,
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
        workers=args.workers,
        allow_empty_source=args.allow_empty_source,
        fsync=args.fsync,
        hash_cache=not args.no_hash_cache,
        metrics_token=args.metrics_token or None,
        access_log=args.access_log,
    )


def build(config: ServeConfig) -> Served:
    """Assemble store, backend, app and (optionally) the embedded agent."""
    from agents.agent import Agent, EngineSettings
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
            buckets=dict(config.buckets),
            log_retention_days=config.log_retention_days,
            min_schedule_interval=config.min_schedule_interval,
            split_min_files=config.split_min_files,
            split_min_bytes=config.split_min_bytes,
            registration_rate=config.registration_rate,
            registration_burst=config.registration_burst,
        ),
    )
    leader = LeaderDuty(store, backend.recover)
    recovered = leader.try_acquire()  # the first process of a control plane recovers at once
    # news for an agent reaches the process its embedded agent lives in through the store
    backend.work_listeners.append(lambda arn: store.notify(f"agent:{arn}"))
    secrets = {credential.access_key_id: credential.secret_access_key}

    def close() -> None:
        try:
            leader.release()
        finally:
            store.close()

    if not config.embedded_agent:
        app = create_app(
            backend,
            secrets,
            background=[leader.run],
            body_timeout=config.body_timeout,
            leader=leader.held,
            metrics_token=config.metrics_token,
            access_log=config.access_log,
        )
        return Served(
            app,
            credential.access_key_id,
            credential.secret_access_key,
            created,
            None,
            recovered,
            close,
            {"backend": backend, "leader": leader},
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
        buckets=config.buckets,
        poll_interval=config.agent_poll_interval,
        transfer_niceness=EMBEDDED_TRANSFER_NICENESS,
        engine=EngineSettings(
            allow_empty_source=config.allow_empty_source,
            fsync=config.fsync,
            hash_cache_dir=os.path.join(config.data_dir, "hash-cache")
            if config.hash_cache
            else None,
        ),
    )

    # API handlers run on worker threads (api/app.py), the agent on the event loop: a poke is
    # handed to the loop, never run on the caller's thread (anyio events are not thread-safe)
    loop: list[asyncio.AbstractEventLoop] = []

    def poke(arn: str) -> None:
        if arn == agent_arn and loop:
            loop[0].call_soon_threadsafe(agent.poke)

    backend.work_listeners.append(poke)

    async def run_agent() -> None:
        loop.append(asyncio.get_running_loop())
        await agent.run()

    async def pokes_from_other_processes() -> None:
        channel = f"agent:{agent_arn}"
        # Polled from the event loop rather than blocking in Store.wait on a worker thread: a
        # shutdown cancels the sleep at once instead of waiting out a thread's wait (which cost
        # every server stop a second).
        seen = await anyio.to_thread.run_sync(store.change_count, channel)
        while True:
            await anyio.sleep(POKE_POLL_SECONDS)
            now = await anyio.to_thread.run_sync(store.change_count, channel)
            if now != seen:
                seen = now
                agent.poke()

    async def stop_agent() -> None:
        await agent.stop()
        await client.aclose()

    app = create_app(
        backend,
        secrets,
        background=[run_agent, leader.run, pokes_from_other_processes],
        on_shutdown=[stop_agent],
        body_timeout=config.body_timeout,
        leader=leader.held,
        embedded_agent_arn=agent_arn,
        metrics_token=config.metrics_token,
        access_log=config.access_log,
    )
    holder["app"] = app
    return Served(
        app,
        credential.access_key_id,
        credential.secret_access_key,
        created,
        agent_arn,
        recovered,
        close,
        {"agent": agent, "backend": backend, "leader": leader},
    )


def _announce_credentials(served: Served, data_dir: str) -> None:
    """A generated secret goes to a terminal only; a log file gets where to find it."""
    path = os.path.join(os.path.abspath(data_dir), "credentials.json")
    if sys.stdout.isatty():
        print(
            f"Generated credentials (stored in {path}, mode 0600; shown only this once):\n"
            f"  AWS_ACCESS_KEY_ID={served.access_key_id}\n"
            f"  AWS_SECRET_ACCESS_KEY={served.secret_access_key}",
            flush=True,
        )
    else:
        print(
            f"Generated credentials for access key id {served.access_key_id}: the secret is in "
            f"{path} (mode 0600), not printed because stdout is not a terminal",
            flush=True,
        )


def _serve_one(config: ServeConfig, sock: Any = None) -> int:
    try:
        served = build(config)
    except ValueError as exc:
        print(f"datasync-local serve: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if served.credentials_created:
        _announce_credentials(served, config.data_dir)
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
    server = GracefulServer(
        uvicorn_config(
            served.app,
            config.host,
            config.port,
            header_timeout=config.header_timeout,
            log_level="warning",
        )
    )
    try:
        server.run(sockets=None if sock is None else [sock])
    finally:
        served.close()
    return EXIT_OK


def run(args: argparse.Namespace) -> int:
    sys.setswitchinterval(SWITCH_INTERVAL_SECONDS)

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)  # the embedded agent's every poll
    # alembic names each of its plugins at start-up; the migrations it runs stay visible
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    try:
        config = config_from_args(args)
    except ValueError as exc:  # a malformed --bucket
        print(f"datasync-local serve: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if config.workers < 1:
        print("datasync-local serve: --workers must be at least 1", file=sys.stderr)
        return EXIT_USAGE
    print(
        f"DataSync API on http://{config.host}:{config.port} "
        f"(region {config.region}, account {config.account_id}"
        + (f", {config.workers} workers)" if config.workers > 1 else ")"),
        flush=True,
    )
    if config.workers == 1:
        code = _serve_one(config)
    else:
        from api.auth import load_or_create_credentials
        from api.store import Store

        # once, before the fork: the credentials file and the schema migration
        os.makedirs(config.data_dir, exist_ok=True)
        credential, created = load_or_create_credentials(
            config.data_dir, config.access_key_id, config.secret_access_key
        )
        Store.in_directory(config.data_dir, config.store).close()
        if created:
            print(
                f"Generated credentials for access key id {credential.access_key_id}: the "
                f"secret is in {os.path.join(os.path.abspath(config.data_dir), 'credentials.json')}"
                " (mode 0600)",
                flush=True,
            )
        sock = listening_socket(config.host, config.port)
        code = serve_workers(
            config.workers,
            sock,
            lambda index: _serve_one(
                replace(config, embedded_agent=config.embedded_agent and index == 0), sock
            ),
        )
    print("datasync-local serve: stopped", file=sys.stderr, flush=True)
    return code
