"""Extended attributes and POSIX ACLs, copied and compared like `rsync -X -A`.

What moves: `user.*` always; `security.*` and `trusted.*` only as root (nobody else may read
trusted.* or write security.*); POSIX ACLs, which Linux keeps as the `system.posix_acl_access`
and `system.posix_acl_default` attributes, so copying them as attributes is `rsync -A`. Other
`system.*` names are file-system internals (e.g. `system.data` of ext4) and never move.

When (decided where DataSync is silent): only with `PosixPermissions=PRESERVE`. DataSync has no
option for extended attributes; ACLs are permissions, and on NFS/SMB targets DataSync carries
them with the permissions, so all of it follows PosixPermissions; `NONE` copies none.

Which items: regular files and directories. Linux refuses `user.*` on symlinks and devices, and
their `security.*` labels belong to the destination's policy, so they keep what they get.

A destination that cannot hold a namespace (ENOTSUP / EOPNOTSUPP, e.g. tmpfs without user
xattrs, vfat, some NFS mounts) is not an error of the transfer: the namespace is noted once
(logged, and in `notes`) and left out of both the copy and POINT_IN_TIME_CONSISTENT's comparison.
Items are reached by an open fd or, relative to a directory fd, through /proc/self/fd/N/NAME
with follow_symlinks=False, since the xattr calls take no dir_fd; a symlink is never followed
(an fd is the item itself, for which Python insists on follow_symlinks=True).
"""

from __future__ import annotations

import errno
import logging
import os
import threading

__all__ = ["Target", "Xattrs", "at"]

log = logging.getLogger(__name__)

Target = int | str  # an open fd, or a path from `at()`
_UNSUPPORTED = (errno.ENOTSUP, errno.EOPNOTSUPP)
_ACLS = ("system.posix_acl_access", "system.posix_acl_default")


def at(dir_fd: int, name: str) -> Target:
    """The item `name` inside `dir_fd` (the directory itself for "" or ".")."""
    if name in ("", "."):
        return dir_fd
    return f"/proc/self/fd/{dir_fd}/{name}"


def _namespace(name: str) -> str:
    return "system.posix_acl" if name in _ACLS else name.partition(".")[0]


class Xattrs:
    """Per transfer: which attributes move, and which namespaces the destination refused."""

    def __init__(self, is_root: bool) -> None:
        self._prefixes = ("user.", "security.", "trusted.") if is_root else ("user.",)
        self._lock = threading.Lock()
        self.unsupported: set[str] = set()  # namespaces the destination cannot hold
        self.notes: list[str] = []

    def wanted(self, name: str) -> bool:
        return (name.startswith(self._prefixes) or name in _ACLS) and (
            _namespace(name) not in self.unsupported
        )

    def read(self, target: Target) -> dict[str, bytes]:
        """The wanted attributes of an item (an empty dict where it can hold none)."""
        try:
            names = os.listxattr(target, follow_symlinks=isinstance(target, int))
        except OSError as exc:
            if exc.errno in _UNSUPPORTED:
                return {}
            raise
        values: dict[str, bytes] = {}
        for name in names:
            if self.wanted(name):
                try:
                    values[name] = os.getxattr(
                        target, name, follow_symlinks=isinstance(target, int)
                    )
                except OSError as exc:
                    if exc.errno != errno.ENODATA:  # removed between list and get
                        raise
        return values

    def copy(self, src: Target, dst: Target) -> None:
        """Make the wanted attributes of `dst` those of `src` (extras at `dst` removed)."""
        want = self.read(src)
        have = self.read(dst)
        for name in have.keys() - want.keys():
            self._set(dst, name, None)
        for name, value in want.items():
            if have.get(name) != value:
                self._set(dst, name, value)

    def difference(self, src: Target, dst: Target) -> str | None:
        """Why the two items' attributes differ, or None (POINT_IN_TIME_CONSISTENT)."""
        s, d = self.read(src), self.read(dst)
        for name in s.keys() - d.keys():
            self._probe(dst, name)  # a run that copied nothing may not have met a refusal yet
        s = {k: v for k, v in s.items() if self.wanted(k)}
        d = {k: v for k, v in d.items() if self.wanted(k)}
        if s == d:
            return None
        names = sorted(k for k in s.keys() | d.keys() if s.get(k) != d.get(k))
        what = "ACLs differ" if all(n in _ACLS for n in names) else "extended attributes differ"
        return f"{what}: {', '.join(names[:5])}"

    def _set(self, dst: Target, name: str, value: bytes | None) -> None:
        """Set (or, with None, remove) one attribute; a namespace the destination refuses is
        noted once and left out from then on."""
        try:
            if value is None:
                os.removexattr(dst, name, follow_symlinks=isinstance(dst, int))
            else:
                os.setxattr(dst, name, value, follow_symlinks=isinstance(dst, int))
        except OSError as exc:
            if exc.errno not in _UNSUPPORTED:
                raise
            self._refused(name, exc)

    def _probe(self, dst: Target, name: str) -> None:
        """Read-only check whether `dst` can hold `name` at all: the kernel answers a name it
        has no handler for with EOPNOTSUPP, a missing one with ENODATA."""
        try:
            os.getxattr(dst, name, follow_symlinks=isinstance(dst, int))
        except OSError as exc:
            if exc.errno in _UNSUPPORTED:
                self._refused(name, exc)

    def _refused(self, name: str, exc: OSError) -> None:
        namespace = _namespace(name)
        with self._lock:
            if namespace in self.unsupported:
                return
            self.unsupported.add(namespace)
            note = (
                f"the destination cannot hold {namespace}.* extended attributes "
                f"({exc.strerror}); they are not copied or verified"
            )
            self.notes.append(note)
        log.warning("%s", note)
