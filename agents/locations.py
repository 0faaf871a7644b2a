"""Resolve a job's location to a directory on this host, never outside the agent's roots.

A location names `ServerHostname` + `Subdirectory`; on a local engine the host must be this
machine and the subdirectory is a path here (DESIGN.md "Locations on a local engine"). The
control plane checks this at creation; the agent checks again before touching anything, with
symlinks and ``..`` resolved, because roots are the agent's promise, not the server's.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable, Mapping
from functools import cache
from typing import Any

from engine import LocationError

__all__ = ["resolve_location"]


@cache
def _local_names() -> frozenset[str]:
    names = {"localhost", "127.0.0.1", "::1", "localhost.localdomain"}
    for name in (socket.gethostname(), socket.getfqdn()):
        if name:
            names.add(name.lower())
    return frozenset(names)


def resolve_location(location: Mapping[str, Any], roots: Iterable[str]) -> str:
    """The real path of `location` (a job document's Source/Destination); LocationError if not
    on this host or outside every root."""
    hostname = str(location.get("ServerHostname", ""))
    subdirectory = str(location.get("Subdirectory", ""))
    if hostname.lower().strip("[]") not in _local_names():
        raise LocationError(
            f"{location.get('LocationUri', hostname)}: host {hostname!r} is not this agent's "
            "host, and mounts of remote servers are not configured",
            subdirectory,
        )
    if not subdirectory.startswith("/"):
        raise LocationError(f"Subdirectory {subdirectory!r} is not an absolute path", subdirectory)
    real = os.path.realpath(os.path.normpath(subdirectory))
    for root in roots:
        real_root = os.path.realpath(root)
        if real == real_root or real.startswith(real_root.rstrip(os.sep) + os.sep):
            return real
    raise LocationError(
        f"{subdirectory} resolves to {real}, outside this agent's roots", subdirectory
    )
