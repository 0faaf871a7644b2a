"""POSIX metadata: ownership, permissions and times, each gated by its DataSync option.

Order matters: chown first (it clears set-id bits), then chmod, then times (any write after
would bump mtime). Ownership needs root; run as another user, a chown to someone else fails with
EPERM, which is not an error of the transfer (rsync behaves the same): the item keeps the
writer's ownership and verification does not compare owners.
"""

from __future__ import annotations

import contextlib
import errno
import grp
import os
import pwd
import stat
from collections.abc import Callable
from functools import cache

from engine.scan import open_at
from engine.settings import ID_BOTH, ID_INT_VALUE, ID_NONE, IdMode, Settings
from engine.xattrs import Target, Xattrs

__all__ = ["MetadataPolicy"]

# Opening an item only to change its metadata: never through a final symlink, never blocking
# (a FIFO), never making it the controlling terminal (a tty), no atime bump.
_META_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC


@cache
def _uid_by_name(uid: int) -> int | None:
    try:
        return pwd.getpwnam(pwd.getpwuid(uid).pw_name).pw_uid
    except KeyError:
        return None


@cache
def _gid_by_name(gid: int) -> int | None:
    try:
        return grp.getgrnam(grp.getgrgid(gid).gr_name).gr_gid
    except KeyError:
        return None


class MetadataPolicy:
    """What to apply, derived once from the run's Settings."""

    def __init__(self, settings: Settings) -> None:
        self.uid_mode = settings.uid
        self.gid_mode = settings.gid
        self.permissions = settings.permissions
        self.mtime = settings.mtime
        self.atime = settings.atime
        umask = os.umask(0)
        os.umask(umask)
        self.default_file_mode = 0o666 & ~umask
        self.default_dir_mode = 0o777 & ~umask
        # Only root can give files away; as anyone else, ownership is kept where possible.
        self.is_root = os.geteuid() == 0
        self.compare_owner = self.is_root
        self._numeric_ids = self.uid_mode is self.gid_mode is ID_INT_VALUE  # the common case
        # Extended attributes and ACLs travel with the permissions (engine/xattrs.py).
        self.xattrs = Xattrs(self.is_root) if self.permissions else None

    def owner(self, uid: int, gid: int) -> tuple[int, int]:
        """Destination (uid, gid); -1 leaves that id unchanged."""
        return self._map(self.uid_mode, uid, _uid_by_name), self._map(
            self.gid_mode, gid, _gid_by_name
        )

    @staticmethod
    def _map(mode: IdMode, value: int, by_name: Callable[[int], int | None]) -> int:
        if mode is ID_NONE:
            return -1
        if mode is ID_INT_VALUE:
            return value
        mapped = by_name(value)
        if mapped is not None:
            return mapped
        return value if mode is ID_BOTH else -1

    def mode_for(self, mode: int, is_dir: bool) -> int:
        if self.permissions:
            return stat.S_IMODE(mode)
        return self.default_dir_mode if is_dir else self.default_file_mode

    def times(self, atime_ns: int, mtime_ns: int) -> tuple[int, int] | None:
        if not self.mtime:
            return None
        return (atime_ns if self.atime else mtime_ns, mtime_ns)

    # -- applying --------------------------------------------------------------------------------
    def apply_fd(
        self, fd: int, is_dir: bool, mode: int, uid: int, gid: int, atime_ns: int, mtime_ns: int
    ) -> None:
        """On an item we hold open (a fresh temporary, or a directory)."""
        if self._numeric_ids and self.is_root:
            os.fchown(fd, uid, gid)  # the common case, once per file: no mapping to do
        else:
            self._chown(lambda u, g: os.fchown(fd, u, g), uid, gid)
        os.fchmod(fd, self.mode_for(mode, is_dir))
        times = self.times(atime_ns, mtime_ns)
        if times is not None:
            os.utime(fd, ns=times)

    def apply_at(
        self,
        dir_fd: int,
        name: str,
        is_dir: bool,
        is_symlink: bool,
        mode: int,
        uid: int,
        gid: int,
        atime_ns: int,
        mtime_ns: int,
    ) -> None:
        """On `name` inside `dir_fd`, never following it if it is a symlink.

        A directory or regular file is opened (O_NOFOLLOW) and changed through its fd, so one
        swapped for a symlink since it was planned fails with ELOOP instead of changing what
        the link points to (or Python's ValueError); a device or a symlink is changed by name,
        never followed, and never opened."""
        if not is_symlink:
            fmt = stat.S_IFMT(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
            if fmt == stat.S_IFLNK:
                raise OSError(errno.ELOOP, "replaced by a symbolic link during the transfer")
            fd = -1  # devices are never opened: by name, never followed
            if fmt in (stat.S_IFDIR, stat.S_IFREG):
                flags = _META_FLAGS | (os.O_DIRECTORY if fmt == stat.S_IFDIR else 0)
                with contextlib.suppress(PermissionError):  # e.g. write-only, not root: by name
                    fd = open_at(dir_fd, name, flags)
            if fd >= 0:
                try:
                    self.apply_fd(fd, is_dir, mode, uid, gid, atime_ns, mtime_ns)
                finally:
                    os.close(fd)
                return
        self._chown(
            lambda u, g: os.chown(name, u, g, dir_fd=dir_fd, follow_symlinks=False), uid, gid
        )
        if not is_symlink:  # a symlink's own mode means nothing on Linux
            try:
                os.chmod(name, self.mode_for(mode, is_dir), dir_fd=dir_fd, follow_symlinks=False)
            except (ValueError, NotImplementedError) as exc:  # Python's word for "a symlink now"
                raise OSError(
                    errno.ELOOP, "replaced by a symbolic link during the transfer"
                ) from exc
        times = self.times(atime_ns, mtime_ns)
        if times is not None:
            os.utime(name, ns=times, dir_fd=dir_fd, follow_symlinks=False)

    def copy_xattrs(self, src: Target, dst: Target, after_chown: bool) -> None:
        """Called before and after the other metadata; copies in one of the two: as root after
        chown (which drops security.capability), as anyone else before chmod (user.* needs write
        permission, which the final mode may not give)."""
        if self.xattrs is not None and after_chown == self.is_root:
            self.xattrs.copy(src, dst)

    def _chown(self, chown: Callable[[int, int], None], uid: int, gid: int) -> None:
        u, g = self.owner(uid, gid)
        if u == -1 and g == -1:
            return
        try:
            chown(u, g)
        except PermissionError:
            if self.is_root:
                raise
