"""Splitting a source tree into parts that several runs (work items) can share.

`plan()` looks at the source tree only (nothing of the destination) and returns `Part`s that
cover every entry exactly once:

* each top-level directory is at least its own part (recursive: it and all beneath it);
* the non-directory entries directly under the root form one non-recursive part (only when
  there are some: the root itself is counted as no item, so nothing else needs it);
* a directory holding more than `max_files` non-directory entries or `max_bytes` bytes (all
  depths) is split: one recursive part per subdirectory, plus one non-recursive part for the
  directory itself and the files directly in it. That part always exists for a split
  directory other than the root, because it is the part that *owns* the directory's own entry
  (creates it, counts it, restores its metadata; see engine/plan.py `scope`);
* while there are fewer than `min_items` parts, the biggest part that has subdirectories is
  split the same way (a few parts per agent, so the fast ones take more: DistCp's dynamic
  strategy), never beyond `max_items`.

A plan of a single part, a root with at most one entry whose subtree fits the budget, or a tree
holding fewer than `min_files` files *and* fewer than `min_bytes` bytes (0: no such minimum) is
one recursive part "" (the whole tree): a small tree costs nothing extra. Why a minimum: every
part costs its run a fixed ~30–60 ms of CPU (a claim, reports, an engine start, a verification
pass); a tree of fifty directories of five files (D3 × 0.05) copied as fifty parts took 5× the
time of one run, for nothing an operator needs from a copy that lasts a second.

Counting is cheap: a subtree's count stops as soon as it is known to exceed the budget (it is
split anyway); directories are read with `os.scandir` on directory fds opened beneath the root
(engine/scan.py `open_dir`), symlinks are never followed, and symlinks, devices and other
non-directories count as files of their parent. Temporaries of the engine are ignored. A
directory that cannot be read counts as empty: the run that copies it reports the failure.
"""

from __future__ import annotations

import contextlib
import os
import stat
from typing import NamedTuple

from engine.scan import is_temporary, open_at, open_dir

__all__ = ["Part", "Scope", "count", "plan"]

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW


class Part(NamedTuple):
    """One part of a tree: `path` is relative to the root, "/"-separated, "" for the root."""

    path: str
    recursive: bool
    files: int
    bytes: int


class Scope(NamedTuple):
    """The part of a tree one run covers (engine.Transfer's `scope`): `path` as in `Part`.

    Recursive: the directory `path` and everything beneath it. Not recursive: the directory
    `path` itself and the non-directory entries directly in it. Either way the run owns the
    directory's own entry (unless it is the root, which is counted as no item): it creates it,
    counts it and restores its metadata, as the walk of its parent would have.
    """

    path: str
    recursive: bool

    @property
    def rel(self) -> str:
        """The path as the engine writes paths: "/a/b", "" for the root."""
        return f"/{self.path}" if self.path else ""

    @property
    def whole(self) -> bool:
        return self.path == "" and self.recursive


class Count(NamedTuple):
    """What `count` saw below a directory; `over`: it stopped early, the budget is exceeded."""

    files: int
    bytes: int
    over: bool
    subdirs: tuple[str, ...]  # names of the directory's own subdirectories (sorted)
    direct_files: int  # non-directory entries directly in it
    direct_bytes: int


def _entries(fd: int) -> tuple[list[str], int, int]:
    """(subdirectory names, non-directory entries, their bytes) of one open directory."""
    subdirs: list[str] = []
    files = size = 0
    try:
        with os.scandir(fd) as it:
            for entry in it:
                if is_temporary(entry.name):
                    continue
                try:
                    if entry.is_dir(follow_symlinks=False):
                        subdirs.append(entry.name)
                        continue
                    files += 1
                    if entry.is_file(follow_symlinks=False):
                        size += entry.stat(follow_symlinks=False).st_size
                except FileNotFoundError:
                    continue  # vanished between readdir and stat
    except OSError:
        return [], 0, 0
    subdirs.sort()
    return subdirs, files, size


def _open_child(parent: int, name: str) -> int | None:
    try:
        return open_at(parent, name, _DIR_FLAGS)
    except OSError:
        return None


def count(dir_fd: int, max_files: int, max_bytes: int) -> Count:
    """Count the tree below the open directory `dir_fd` (not closed), stopping once it holds
    more than `max_files` non-directory entries or `max_bytes` bytes."""
    subdirs, files, size = _entries(dir_fd)
    direct = (files, size)
    over = files > max_files or size > max_bytes
    stack: list[int] = []
    try:
        for name in reversed(subdirs):
            if over:
                break
            child = _open_child(dir_fd, name)
            if child is None:
                continue
            stack.append(child)
            while stack and not over:
                fd = stack.pop()
                try:
                    names, n, b = _entries(fd)
                    files, size = files + n, size + b
                    over = files > max_files or size > max_bytes
                    for sub in names:
                        if over:
                            break
                        opened = _open_child(fd, sub)
                        if opened is not None:
                            stack.append(opened)
                finally:
                    os.close(fd)
    finally:
        for fd in stack:
            os.close(fd)
    return Count(files, size, over, tuple(subdirs), *direct)


def _join(parent: str, name: str) -> str:
    return f"{parent}/{name}" if parent else name


class _Planner:
    def __init__(
        self,
        root_fd: int,
        max_files: int,
        max_bytes: int,
        max_items: int,
        min_files: int = 0,
        min_bytes: int = 0,
    ) -> None:
        self.root_fd = root_fd
        self.min_files, self.min_bytes = min_files, min_bytes
        self.max_files = max(1, max_files)
        self.max_bytes = max(1, max_bytes)
        self.max_items = max(1, max_items)

    def count(self, path: str) -> Count:
        parts = [p for p in path.split("/") if p]
        fd = os.dup(self.root_fd)
        try:
            for name in parts:
                child = _open_child(fd, name)
                os.close(fd)
                if child is None:
                    return Count(0, 0, False, (), 0, 0)
                fd = child
            return count(fd, self.max_files, self.max_bytes)
        finally:
            with contextlib.suppress(OSError):
                os.close(fd)

    def split(self, path: str, seen: Count) -> list[tuple[Part, Count]]:
        """`path` as its own non-recursive part (for the root, only if it holds files) and one
        recursive part per subdirectory, each counted within the budget."""
        out: list[tuple[Part, Count]] = []
        if path or seen.direct_files:
            own = Count(seen.direct_files, seen.direct_bytes, False, (), 0, 0)
            out.append((Part(path, False, seen.direct_files, seen.direct_bytes), own))
        for name in seen.subdirs:
            sub = _join(path, name)
            got = self.count(sub)
            out.append((Part(sub, True, got.files, got.bytes), got))
        return out

    def run(self, min_items: int) -> list[Part]:
        top = count(self.root_fd, self.max_files, self.max_bytes)
        entries = len(top.subdirs) + top.direct_files
        small = top.files < self.min_files and top.bytes < self.min_bytes
        if (entries <= 1 or small) and not top.over:
            return [Part("", True, top.files, top.bytes)]
        parts = self.split("", top)
        # split what is over the budget, in order, as long as the plan has room
        i = 0
        while i < len(parts):
            part, seen = parts[i]
            if part.recursive and seen.over and seen.subdirs:
                more = self.split(part.path, seen)
                if len(parts) - 1 + len(more) <= self.max_items:
                    parts[i : i + 1] = more
                    continue  # look at the first of its replacements next
            i += 1
        # a few parts per agent: split the biggest splittable part while there are too few
        while len(parts) < min_items:
            candidates = [
                (seen.bytes, seen.files, -i)
                for i, (part, seen) in enumerate(parts)
                if part.recursive and seen.subdirs
            ]
            if not candidates:
                break
            index = -max(candidates)[2]
            part, seen = parts[index]
            more = self.split(part.path, seen)
            if len(parts) - 1 + len(more) > self.max_items:
                break
            parts[index : index + 1] = more
        if len(parts) <= 1:  # one part covers everything: the whole tree, as without a plan
            return [Part("", True, top.files, top.bytes)]
        return sorted((part for part, _ in parts), key=lambda p: (p.path, p.recursive))


def plan(
    root: str | os.PathLike[str] | int,
    max_files: int,
    max_bytes: int,
    min_items: int = 1,
    *,
    max_items: int = 10_000,
    min_files: int = 0,
    min_bytes: int = 0,
) -> list[Part]:
    """The parts of the tree at `root` (a path, or an open directory fd, which stays open);
    a tree smaller than both `min_files` and `min_bytes` is not split."""
    fd = os.dup(root) if isinstance(root, int) else open_dir(os.fspath(root))
    try:
        if not stat.S_ISDIR(os.fstat(fd).st_mode):
            raise NotADirectoryError(f"{root!r} is not a directory")
        planner = _Planner(fd, max_files, max_bytes, max_items, min_files, min_bytes)
        return planner.run(min_items)
    finally:
        os.close(fd)
