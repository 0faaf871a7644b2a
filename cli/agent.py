"""`datasync-local agent`: an on-prem agent that pulls work from a control plane.

    datasync-local agent --server http://cp:8080 --root /srv/data [--mount nas:/export=/mnt/nas]

The first start registers with the control plane and prints ``ActivationKey: XXXXX-…`` on a line
of its own; the operator approves it with ``aws datasync create-agent --activation-key …``. The
agent then receives its own credentials, keeps them in ``--state-dir`` (mode 0600) and runs jobs
for the locations bound to it; later starts reuse them. SIGTERM/SIGINT stop it cleanly (running
transfers are cancelled, temporaries removed, the executions reported).

Every flag can also come from the environment: ``DATASYNC_LOCAL_AGENT_<FLAG>`` (``ROOT`` takes a
colon-separated list, ``MOUNT`` a comma-separated one).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import sys

import anyio

from cli.engine_flags import add_engine_flags, engine_settings
from contract.buckets import parse_buckets, split_env

__all__ = ["add_arguments", "run"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
log = logging.getLogger("datasync_local.agent")


def _env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(f"DATASYNC_LOCAL_AGENT_{name}", default)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = (
        "Every flag can also be set as DATASYNC_LOCAL_AGENT_<FLAG> in the environment (e.g. "
        "DATASYNC_LOCAL_AGENT_SERVER; ROOT takes a colon-separated list, MOUNT a comma-separated "
        "one)."
    )
    server = _env("SERVER")
    parser.add_argument(
        "--server",
        default=server,
        required=server is None,
        metavar="URL",
        help="the control plane, e.g. http://127.0.0.1:8080; several URL1,URL2 of one control "
        "plane (sharing a store) to fail over between",
    )
    parser.add_argument(
        "--name", default=_env("NAME"), help="agent name shown by ListAgents (the host name)"
    )
    parser.add_argument(
        "--root",
        action="append",
        default=None,
        metavar="PATH",
        help="a directory this agent may read and write (repeatable); nothing outside is touched",
    )
    parser.add_argument(
        "--mount",
        action="append",
        default=None,
        metavar="HOST:/export=/local/path",
        help="reach locations on HOST under /export through /local/path (repeatable); the "
        "local path must lie inside a --root",
    )
    parser.add_argument(
        "--state-dir",
        default=_env("STATE_DIR", ".datasync-agent"),
        help="where the agent keeps its credentials (.datasync-agent)",
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=int(_env("CONCURRENCY", "1") or 1),
        metavar="N",
        help="executions run at once (1, DataSync's rule)",
    )
    parser.add_argument(
        "--poll-interval",
        type=float,
        default=float(_env("POLL_INTERVAL", "1.0") or 1.0),
        metavar="SECONDS",
        help="how often an idle agent asks for work (1.0)",
    )
    parser.add_argument(
        "--report-interval",
        type=float,
        default=float(_env("REPORT_INTERVAL", "1.0") or 1.0),
        metavar="SECONDS",
        help="how often a running execution reports progress (1.0)",
    )
    parser.add_argument(
        "--bucket",
        action="append",
        default=None,
        metavar="NAME=DIR",
        help="this agent's directory for arn:aws:s3:::NAME: where it reads manifests and writes "
        "task reports (repeatable; env DATASYNC_LOCAL_AGENT_BUCKET: comma- or space-separated)",
    )
    add_engine_flags(parser, _env)
    parser.set_defaults(
        _env_buckets=split_env(_env("BUCKET")),
        _env_roots=[r for r in (_env("ROOT") or "").split(":") if r],
        _env_mounts=[m.strip() for m in (_env("MOUNT") or "").split(",") if m.strip()],
    )


def run(args: argparse.Namespace) -> int:
    from agents.agent import Agent
    from agents.locations import parse_mount

    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)
    roots = [os.path.abspath(r) for r in (args.root or args._env_roots)]
    mount_specs = list(args.mount or args._env_mounts)
    try:
        mounts = [parse_mount(spec) for spec in mount_specs]
        buckets = parse_buckets(args.bucket or args._env_buckets)
    except ValueError as exc:
        print(f"datasync-local agent: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if not 1 <= args.concurrency <= 64:
        print("datasync-local agent: --concurrency must be from 1 to 64", file=sys.stderr)
        return EXIT_USAGE
    servers = [u.strip() for u in args.server.split(",") if u.strip()]
    if not servers or not all(u.startswith(("http://", "https://")) for u in servers):
        print(
            "datasync-local agent: --server must be an http(s):// URL, or several separated by "
            "commas (processes of one control plane)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    args.server = servers[0]  # activation and the stored identity name the first
    jobs_servers = ",".join(servers)
    if not roots:
        log.warning("no --root given: every location will be refused")
    name = args.name or socket.gethostname()

    async def main() -> int:
        from agents.activation import activate, load_identity, save_identity
        from agents.client import JobsClient

        stopping = False

        async with anyio.create_task_group() as tg:
            agent_box: list[Agent] = []

            async def on_signal() -> None:
                nonlocal stopping
                with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                    async for _ in signals:
                        stopping = True
                        log.info("stopping")
                        if agent_box:
                            await agent_box[0].stop()
                        tg.cancel_scope.cancel()
                        return

            tg.start_soon(on_signal)
            try:
                identity = load_identity(args.state_dir, args.server)
            except ValueError as exc:
                print(f"datasync-local agent: {exc}", file=sys.stderr)
                tg.cancel_scope.cancel()
                return EXIT_USAGE
            if identity is None:

                def show(key: str) -> None:
                    print(f"ActivationKey: {key}", flush=True)
                    print(
                        f"Approve it with: aws datasync create-agent --endpoint-url {args.server}"
                        f" --activation-key {key} --agent-name {name}",
                        file=sys.stderr,
                        flush=True,
                    )

                identity = await activate(
                    args.server,
                    name=name,
                    roots=roots,
                    mounts=[str(m) for m in mounts],
                    concurrency=args.concurrency,
                    show_key=show,
                    should_stop=lambda: stopping,
                )
                if identity is None:
                    tg.cancel_scope.cancel()
                    return EXIT_OK
                path = save_identity(args.state_dir, identity)
                print(f"Activated: {identity.agent_arn} (credentials in {path})", flush=True)
            else:
                print(f"Resuming as {identity.agent_arn}", flush=True)
            client = JobsClient(
                jobs_servers,
                identity.access_key_id,
                identity.secret_access_key,
                identity.region,
            )
            agent = Agent(
                client,
                identity.thing_name,
                roots,
                mounts=mounts,
                buckets=buckets,
                concurrency=args.concurrency,
                poll_interval=args.poll_interval,
                report_interval=args.report_interval,
                stopped_code="AgentStopped",
                engine=engine_settings(args, args.state_dir),
            )
            agent_box.append(agent)
            try:
                await agent.run()
            finally:
                await client.aclose()
            tg.cancel_scope.cancel()
            if agent.revoked is not None:
                print(
                    f"datasync-local agent: the control plane refused this agent's credentials "
                    f"({agent.revoked}); remove {args.state_dir} to activate it again",
                    file=sys.stderr,
                )
                return EXIT_FAILED
            return EXIT_OK
        return EXIT_OK  # stopped by a signal

    code: int = anyio.run(main)
    print("datasync-local agent: stopped", file=sys.stderr, flush=True)
    return code
