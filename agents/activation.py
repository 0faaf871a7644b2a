"""Activation of an on-prem agent, and its state directory.

    first start:  POST /agent-activation {Name, Hostname, Roots, Mounts, Concurrency}
                  → show "ActivationKey: XXXXX-XXXXX-XXXXX-XXXXX-XXXXX"
                  poll POST /agent-activation/{key} {PollToken} every second
                  ← ACTIVATED {AgentArn, ThingName, AccessKeyId, SecretAccessKey, Region}
                  → <state-dir>/agent.json (mode 0600)
    later starts: read <state-dir>/agent.json, no new activation

A key left unapproved past its expiry is replaced by a new one (shown the same way), so an agent
started long before the operator gets to it still becomes activatable.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import anyio

from agents.client import ActivationClient, JobsError

__all__ = ["STATE_FILE", "AgentIdentity", "activate", "load_identity", "save_identity"]

log = logging.getLogger("datasync_local.agent")
STATE_FILE = "agent.json"


@dataclass(frozen=True)
class AgentIdentity:
    server: str
    agent_arn: str
    thing_name: str
    access_key_id: str
    secret_access_key: str
    region: str


def load_identity(state_dir: str, server: str) -> AgentIdentity | None:
    """The identity stored by an earlier activation against `server`, if any."""
    path = os.path.join(state_dir, STATE_FILE)
    try:
        with open(path, encoding="utf-8") as fh:
            stored: dict[str, Any] = json.load(fh)
        identity = AgentIdentity(**stored)
    except FileNotFoundError:
        return None
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{path} is not a valid agent state file: {exc}") from None
    if identity.server.rstrip("/") != server.rstrip("/"):
        raise ValueError(
            f"{path} holds the activation for {identity.server}, not {server}; use another "
            "--state-dir (or remove it to activate again)"
        )
    return identity


def save_identity(state_dir: str, identity: AgentIdentity) -> str:
    os.makedirs(state_dir, mode=0o700, exist_ok=True)
    path = os.path.join(state_dir, STATE_FILE)
    tmp = f"{path}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(asdict(identity), fh, indent=2)
        fh.flush()
        os.fsync(fh.fileno())
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
    return path


async def activate(
    server: str,
    *,
    name: str,
    roots: Sequence[str],
    mounts: Sequence[str],
    concurrency: int,
    show_key: Callable[[str], None],
    poll_interval: float = 1.0,
    should_stop: Callable[[], bool] = lambda: False,
) -> AgentIdentity | None:
    """Register, show the key, wait for the operator's CreateAgent; None if stopped first."""
    client = ActivationClient(server)
    info = {
        "Name": name,
        "Hostname": socket.gethostname(),
        "Roots": list(roots),
        "Mounts": list(mounts),
        "Concurrency": concurrency,
    }
    failures = 0
    try:
        while not should_stop():
            try:
                pending = await client.register(info)
                failures = 0
            except Exception as exc:  # unreachable or throttled: back off, bounded per round
                failures += 1
                if failures in (1, 10) or failures % 60 == 0:
                    log.warning("cannot register with %s: %s", server, exc)
                await anyio.sleep(min(30.0, poll_interval * 2 ** min(failures, 5)))
                continue
            key, token = pending["ActivationKey"], pending["PollToken"]
            show_key(key)
            expires = time.time() + max(1.0, float(pending["ExpiresAt"]) - time.time())
            while not should_stop() and time.time() < expires + 5:
                try:
                    answer = await client.poll(key, token)
                except JobsError as exc:
                    if exc.status == 404:
                        log.warning("activation key %s: %s; registering again", key, exc)
                        break
                    answer = {}
                except Exception as exc:  # the server may be restarting
                    log.warning("cannot poll activation: %s", exc)
                    answer = {}
                if answer.get("Status") == "ACTIVATED":
                    return AgentIdentity(
                        server=server,
                        agent_arn=str(answer["AgentArn"]),
                        thing_name=str(answer["ThingName"]),
                        access_key_id=str(answer["AccessKeyId"]),
                        secret_access_key=str(answer["SecretAccessKey"]),
                        region=str(answer.get("Region", "us-east-1")),
                    )
                await anyio.sleep(poll_interval)
        return None
    finally:
        await client.aclose()
