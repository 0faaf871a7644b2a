"""Where a location may point: which host names mean "this machine", and whether a path lies
inside the allowed roots once ``..`` and symlinks are resolved.

Shared by the control plane (checking a location at creation for an agent in its own process)
and by agents (checking it again on their own machine before touching anything).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable
from functools import cache

__all__ = ["inside_roots", "is_local_host", "local_host_names"]


@cache
def local_host_names() -> frozenset[str]:
    names = {"localhost", "127.0.0.1", "::1", "localhost.localdomain"}
    for name in (socket.gethostname(), socket.getfqdn()):
        if name:
            names.add(name.lower())
    return frozenset(names)


def is_local_host(hostname: str) -> bool:
    return hostname.lower().strip("[]") in local_host_names()


def inside_roots(path: str, roots: Iterable[str]) -> str | None:
    """`path` with symlinks and ``..`` resolved, if that lies inside one of `roots`; else None."""
    real = os.path.realpath(path)
    for root in roots:
        real_root = os.path.realpath(root)
        if real == real_root or real.startswith(real_root.rstrip(os.sep) + os.sep):
            return real
    return None
