"""Listing one directory: sorted (name, lstat) pairs, symlinks never followed.

Listings are per directory and sorted by name, so the source and destination of a directory can be
merged in one pass (rclone's march) and memory stays proportional to the widest directory, not the
tree.
"""

from __future__ import annotations

import os
import stat
from typing import NamedTuple

__all__ = [
    "TEMP_PREFIX",
    "Entry",
    "is_temporary",
    "kind_of",
    "list_dir",
    "open_dir",
]

# Temporaries of the atomic placement are named TEMP_PREFIX + 16 hex digits, always short enough
# for any file system. They are never copied, counted or deleted as user files; a later run in
# the same destination removes the ones a crash left behind.
TEMP_PREFIX = ".~dsl."

REG, DIR, LNK, CHR, BLK, FIFO, SOCK = "file", "dir", "symlink", "chr", "blk", "fifo", "sock"
_KINDS = {
    stat.S_IFREG: REG,
    stat.S_IFDIR: DIR,
    stat.S_IFLNK: LNK,
    stat.S_IFCHR: CHR,
    stat.S_IFBLK: BLK,
    stat.S_IFIFO: FIFO,
    stat.S_IFSOCK: SOCK,
}


class Entry(NamedTuple):
    name: str
    st: os.stat_result


def kind_of(st: os.stat_result) -> str:
    return _KINDS.get(stat.S_IFMT(st.st_mode), "unknown")


def is_temporary(name: str) -> bool:
    return name.startswith(TEMP_PREFIX) and len(name) == len(TEMP_PREFIX) + 16


_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def open_dir(path: str, dir_fd: int | None = None) -> int:
    """Open a directory, never through a symlink, without bumping its atime where allowed."""
    try:
        return os.open(path, _DIR_FLAGS | os.O_NOATIME, dir_fd=dir_fd)
    except PermissionError:
        return os.open(path, _DIR_FLAGS, dir_fd=dir_fd)


def list_dir(path: str | int) -> list[Entry]:
    """Sorted entries of a directory (a path, or an open directory fd that stays open) with their
    lstat. Raises OSError if the directory can't be read.

    Listing through a directory fd makes each lstat an fstatat relative to it (no path walk per
    entry). Entries that vanish between readdir and lstat are dropped (they are gone).
    """
    entries: list[Entry] = []
    fd = open_dir(path) if isinstance(path, str) else path
    try:
        with os.scandir(fd) as it:  # scandir works on a duplicate and rewinds it when done
            for de in it:
                try:
                    entries.append(Entry(de.name, de.stat(follow_symlinks=False)))
                except FileNotFoundError:
                    continue
    finally:
        if isinstance(path, str):
            os.close(fd)
    entries.sort()
    return entries
