"""NFS / SMB locations on a local engine: which directory a location names, and whether it may.

`CreateLocationNfs(ServerHostname="localhost", Subdirectory="/srv/data/photos")` names the
directory `/srv/data/photos` on the serving agent's host (DESIGN.md "Locations on a local
engine"); SMB resolves the same way. For the embedded agent (this process) the host must be
this machine (``localhost``, ``127.0.0.1``, ``::1`` or its own name) and the directory, after
resolving ``..`` and symlinks, must lie inside one of the agent's roots — checked here, at
creation. An on-prem agent (`datasync-local agent`) resolves hosts, its ``--mount`` maps and its
roots on its own machine (`agents.locations`) and fails the execution naming the path.
"""

from __future__ import annotations

import os

from api.errors import InvalidRequestException
from contract.paths import is_local_host

__all__ = ["local_path", "location_uri"]


def local_path(hostname: str, subdirectory: str) -> str:
    """The local directory named by a location's host and subdirectory (not yet root-checked)."""
    if not is_local_host(hostname):
        raise InvalidRequestException(
            f"ServerHostname {hostname!r} is not this agent's host: this server reaches only "
            "directories on its agent's machine (use localhost, 127.0.0.1 or the host's name).",
            "UnsupportedServerHostname",
        )
    if not subdirectory.startswith("/"):
        raise InvalidRequestException(
            f"Subdirectory {subdirectory!r} must be an absolute path on the agent's host.",
            "InvalidSubdirectory",
        )
    return os.path.normpath(subdirectory)


def location_uri(kind: str, hostname: str, subdirectory: str) -> str:
    """`nfs://host/path/` or `smb://host/path/`, as DataSync shows them."""
    sub = subdirectory.strip("/")
    return f"{kind.lower()}://{hostname}/{sub + '/' if sub else ''}"
