"""Opening beneath a root (engine/scan.py): openat2 with RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS where
the kernel has it, else a per-component O_NOFOLLOW walk; both refuse every way out of the root."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from engine import scan
from engine.scan import open_at, open_beneath

pytestmark = pytest.mark.usefixtures("resolution")

_LOOPS = (errno.ELOOP, errno.ENOTDIR, errno.EXDEV)


def _tree(tmp_path: Path) -> tuple[Path, Path]:
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "a/b").mkdir(parents=True)
    (root / "a/b/file").write_text("inside")
    outside.mkdir()
    (outside / "file").write_text("SECRET")
    os.symlink(outside, root / "a/out")  # leads outside
    os.symlink("b", root / "a/in")  # leads to a directory inside the root: refused all the same
    os.symlink("b/file", root / "a/file-link")
    return root, outside


def _ino(fd: int) -> int:
    try:
        return os.fstat(fd).st_ino
    finally:
        os.close(fd)


def test_open_beneath_reaches_directories_inside(tmp_path: Path) -> None:
    root, _ = _tree(tmp_path)
    rfd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        assert _ino(open_beneath(rfd, "/a/b")) == os.lstat(root / "a/b").st_ino
        assert _ino(open_beneath(rfd, "")) == os.lstat(root).st_ino
        fd = open_at(open_beneath(rfd, "/a/b"), "file", os.O_RDONLY)
        assert os.read(fd, 100) == b"inside"
        os.close(fd)
    finally:
        os.close(rfd)


@pytest.mark.parametrize("rel", ["/a/out", "/a/out/x", "/a/in", "/a/in/b", "/a/../a", "/.."])
def test_open_beneath_never_follows_a_symlink_or_dotdot(tmp_path: Path, rel: str) -> None:
    root, _ = _tree(tmp_path)
    rfd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with pytest.raises(OSError) as caught:
            os.close(open_beneath(rfd, rel))
        assert caught.value.errno in _LOOPS
    finally:
        os.close(rfd)


@pytest.mark.parametrize("name", ["file-link", "out", "..", ".", "", "b/file", "/etc"])
def test_open_at_opens_one_plain_entry_only(tmp_path: Path, name: str) -> None:
    root, _ = _tree(tmp_path)
    dfd = os.open(root / "a", os.O_RDONLY | os.O_DIRECTORY)
    try:
        with pytest.raises(OSError) as caught:
            os.close(open_at(dfd, name, os.O_RDONLY))
        assert caught.value.errno in _LOOPS
    finally:
        os.close(dfd)


def test_open_at_creates_exclusively_with_the_mode_given(tmp_path: Path) -> None:
    tmp_path.joinpath("d").mkdir()
    dfd = os.open(tmp_path / "d", os.O_RDONLY | os.O_DIRECTORY)
    try:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
        os.close(open_at(dfd, "new", flags, 0o600))
        assert os.lstat(tmp_path / "d/new").st_mode & 0o777 == 0o600
        with pytest.raises(FileExistsError):
            open_at(dfd, "new", flags, 0o600)
    finally:
        os.close(dfd)


def test_a_path_longer_than_path_max_is_opened_beneath(tmp_path: Path) -> None:
    """Built with directory fds, as no path string this long can be handed to the kernel."""
    part = "d" * 200
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    root = os.dup(fd)
    for _ in range(30):  # 6,030 bytes of path
        os.mkdir(part, dir_fd=fd)
        child = os.open(part, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
        os.close(fd)
        fd = child
    try:
        deepest = os.fstat(fd).st_ino
        assert _ino(open_beneath(root, "/" + "/".join([part] * 30))) == deepest
    finally:
        os.close(fd)
        os.close(root)


def test_the_kernel_refuses_what_openat2_is_asked_to(tmp_path: Path, resolution: str) -> None:
    """The syscall itself, with several components at once: no symlink anywhere, no way up."""
    call = scan.openat2()
    if resolution == "walk":
        assert call is None  # DATASYNC_LOCAL_NO_OPENAT2 turns it off
        return
    assert call is not None
    root, _ = _tree(tmp_path)
    rfd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.close(call(rfd, "a/b/file", os.O_RDONLY))
        for path, err in [
            ("a/in/file", errno.ELOOP),
            ("a/out/file", errno.ELOOP),
            ("a/file-link", errno.ELOOP),
            ("a/../../outside/file", errno.EXDEV),
            (str(root / "a/b/file"), errno.EXDEV),
        ]:
            with pytest.raises(OSError) as caught:
                call(rfd, path, os.O_RDONLY)
            assert caught.value.errno == err, path
    finally:
        os.close(rfd)
