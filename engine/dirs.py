"""Directories opened one component at a time, never through a symlink.

Every read of a source file and every write at the destination happens relative to a directory
fd obtained here: each component of the path is opened with O_NOFOLLOW | O_DIRECTORY from its
parent's fd, starting at the location root. A directory swapped for a symlink between the scan
and the copy makes the open fail (ELOOP / ENOTDIR) instead of leading the transfer outside the
location. The chain of the current directory is cached, so a walk in tree order opens each
directory once.
"""

from __future__ import annotations

import os

from engine.scan import open_dir

__all__ = ["DirTree", "split"]


class DirTree:
    def __init__(self, root: str) -> None:
        self.root = root
        self._root_fd: int | None = None
        self._chain: list[tuple[str, int]] = []  # (component, fd) from the root down
        self._last: tuple[str, int] | None = None  # the last (rel_dir, fd) asked for

    def _root(self) -> int:
        if self._root_fd is None:
            self._root_fd = open_dir(self.root)
        return self._root_fd

    def fd(self, rel_dir: str) -> int:
        """The fd of `rel_dir` ("" or "/" for the root, else "/a/b"). Owned by this tree: do not
        close it; `os.dup` it to keep it beyond the next call."""
        last = self._last
        if last is not None and last[0] == rel_dir:
            return last[1]  # most calls: the next file in the same directory
        parts = [p for p in rel_dir.split("/") if p]
        chain = self._chain
        keep = 0
        while keep < len(chain) and keep < len(parts) and chain[keep][0] == parts[keep]:
            keep += 1
        while len(chain) > keep:
            os.close(chain.pop()[1])
        parent = chain[-1][1] if chain else self._root()
        for part in parts[keep:]:
            fd = open_dir(part, parent)
            chain.append((part, fd))
            parent = fd
        self._last = (rel_dir, parent)
        return parent

    def forget(self) -> None:
        """Drop the cached chain (after the tree's shape changed under it)."""
        self._last = None
        while self._chain:
            os.close(self._chain.pop()[1])

    def close(self) -> None:
        self.forget()
        if self._root_fd is not None:
            os.close(self._root_fd)
            self._root_fd = None

    def __enter__(self) -> DirTree:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def split(rel: str) -> tuple[str, str]:
    """'/a/b/c' -> ('/a/b', 'c'); '/c' -> ('', 'c')."""
    parent, _, name = rel.rpartition("/")
    return parent, name
