"""Paths longer than PATH_MAX (4096): everything is done relative to directory fds, as cp -a does."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import anyio
import pytest

from engine import Options
from engine.transfer import Transfer

pytestmark = pytest.mark.usefixtures("resolution")  # openat2 and the O_NOFOLLOW walk

LEVELS, NAME = 24, "d" * 200  # 24 x 201 = 4,824 characters below the root


def _deep(root: Path, files: dict[str, bytes], link: str | None = None) -> None:
    """Create root/NAME/NAME/... with `files` (and a symlink) at the bottom, through dir fds."""
    root.mkdir(parents=True, exist_ok=True)
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _ in range(LEVELS):
            with contextlib.suppress(FileExistsError):
                os.mkdir(NAME, dir_fd=fd)
            nxt = os.open(NAME, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = nxt
        for name, data in files.items():
            out = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644, dir_fd=fd)
            os.write(out, data)
            os.close(out)
        if link is not None:
            os.symlink(link, "link", dir_fd=fd)
    finally:
        os.close(fd)


def _read_deep(root: Path, name: str) -> bytes | None:
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _ in range(LEVELS):
            nxt = os.open(NAME, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = nxt
        try:
            f = os.open(name, os.O_RDONLY, dir_fd=fd)
        except FileNotFoundError:
            return None
        data = os.read(f, 1 << 20)
        os.close(f)
        return data
    finally:
        os.close(fd)


@pytest.mark.parametrize("helpers", [-1, 0], ids=["listed-here", "listing-helpers"])
def test_a_tree_deeper_than_path_max_is_copied_verified_and_pruned(
    tmp_path: Path, helpers: int
) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    _deep(src, {"f": b"deep data"}, link="f")
    _deep(dst, {"stale": b"old"})
    assert len(str(src)) + LEVELS * (len(NAME) + 1) > 4096
    t = Transfer(src, dst, Options.create({"PreserveDeletedFiles": "REMOVE"}), helper_after=helpers)
    r = anyio.run(t.run)
    assert r["Status"] == "SUCCESS", (r, [str(f) for f in t.failures])
    assert _read_deep(dst, "f") == b"deep data"
    assert _read_deep(dst, "stale") is None
    assert r["FilesTransferred"] == 2  # folders: only those whose mtime differs (coarse clocks)
    assert r["FilesDeleted"] == 1
    assert r["FilesVerified"] == 2 and r["FoldersVerified"] == LEVELS
