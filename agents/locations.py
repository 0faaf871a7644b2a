"""Resolve a job's location to a directory on this host, never outside the agent's roots.

A location names `ServerHostname` + `Subdirectory` (DESIGN.md "Locations on a local engine"):

* ``localhost``, ``127.0.0.1``, ``::1`` or this host's own name → the subdirectory is a path here;
* another host → through a mount the agent was given (``--mount HOST:/export=/local/path``): the
  subdirectory must be the export or lie under it, and maps to the same place under the local
  path (SMB's ``/share/sub`` works the same way, with ``HOST:/share=/mnt/share``);
* the result, with ``..`` and symlinks resolved, must lie inside one of the agent's roots (a
  mount's local path is not a root by itself).

The control plane may check some of this too, but roots are the agent's promise, not the
server's: the agent checks before touching anything. Every refusal names the path.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from contract.paths import inside_roots, is_local_host
from engine import LocationError

__all__ = ["Mount", "parse_mount", "resolve_location"]


@dataclass(frozen=True)
class Mount:
    host: str
    export: str
    local: str

    def __str__(self) -> str:
        return f"{self.host}:{self.export}={self.local}"


def parse_mount(spec: str) -> Mount:
    """``HOST:/export=/local/path`` → Mount; ValueError with the reason if malformed."""
    remote, sep, local = spec.partition("=")
    host, colon, export = remote.partition(":")
    if not sep or not colon or not host or not export.startswith("/") or not local:
        raise ValueError(f"--mount {spec!r}: expected HOST:/export=/local/path")
    if not os.path.isabs(local):
        raise ValueError(f"--mount {spec!r}: the local path must be absolute")
    export = posixpath.normpath(export)
    return Mount(host.lower().strip("[]"), export, os.path.normpath(local))


def resolve_location(
    location: Mapping[str, Any], roots: Iterable[str], mounts: Iterable[Mount] = ()
) -> str:
    """The real path of `location` (a job document's Source/Destination); LocationError naming
    the path if its host is not reachable from here or it resolves outside every root."""
    hostname = str(location.get("ServerHostname", ""))
    subdirectory = str(location.get("Subdirectory", ""))
    uri = location.get("LocationUri", f"{hostname}:{subdirectory}")
    host = hostname.lower().strip("[]")
    if not subdirectory.startswith("/"):
        raise LocationError(
            f"{uri}: Subdirectory {subdirectory!r} is not an absolute path", subdirectory
        )
    if is_local_host(host):
        path = os.path.normpath(subdirectory)
    else:
        wanted = posixpath.normpath(subdirectory)
        path = ""
        for mount in mounts:
            if mount.host != host:
                continue
            if wanted == mount.export:
                path = mount.local
                break
            prefix = mount.export.rstrip("/") + "/"
            if wanted.startswith(prefix):
                path = os.path.join(mount.local, wanted[len(prefix) :])
                break
        if not path:
            known = [str(m) for m in mounts if m.host == host]
            raise LocationError(
                f"{uri}: {hostname}:{subdirectory} is not reachable from this agent: host "
                f"{hostname!r} is not this machine and "
                + (
                    f"the path is under none of its mounts ({', '.join(known)})"
                    if known
                    else "no --mount maps it"
                ),
                subdirectory,
            )
    real = inside_roots(path, roots)
    if real is None:
        raise LocationError(
            f"{uri}: {path} resolves to {os.path.realpath(path)}, outside this agent's roots "
            f"({', '.join(str(r) for r in roots) or 'none given'})",
            path,
        )
    return real
