"""Extended attributes and POSIX ACLs move like `rsync -X -A` when permissions are preserved."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from engine import Options
from engine.transfer import Transfer
from tests.engine.trees import MTIME_NS, write

IS_ROOT = os.geteuid() == 0


def sync(src: Path, dst: Path, **options: Any) -> dict[str, Any]:
    t = Transfer(src, dst, Options.create(options))
    result: dict[str, Any] = anyio.run(t.run)
    result["_failures"] = [str(f) for f in t.failures]
    return result


def xattrs(path: Path) -> dict[str, bytes]:
    return {
        n: os.getxattr(path, n, follow_symlinks=False)
        for n in os.listxattr(path, follow_symlinks=False)
        if not n.startswith("security.")  # labels the system may add by itself
    }


@pytest.fixture
def src(tmp_path: Path) -> Path:
    root = tmp_path / "src"
    f = write(root / "dir/file.txt", "data")
    try:
        os.setxattr(f, "user.comment", b"kept")
    except OSError as exc:
        if exc.errno in (errno.ENOTSUP, errno.EOPNOTSUPP):
            pytest.skip("this file system holds no user xattrs")
        raise
    os.setxattr(f, "user.empty", b"")
    os.setxattr(root / "dir", "user.dir-tag", b"\x00\x01binary")
    if IS_ROOT:
        os.setxattr(f, "trusted.origin", b"root-only")
    for d in (root / "dir", root):
        os.utime(d, ns=(MTIME_NS, MTIME_NS))
    return root


def test_user_and_trusted_xattrs_of_files_and_directories_are_copied(
    src: Path, tmp_path: Path
) -> None:
    dst = tmp_path / "dst"
    result = sync(src, dst)
    assert result["Status"] == "SUCCESS", result["_failures"]
    expected = {"user.comment": b"kept", "user.empty": b""}
    if IS_ROOT:
        expected["trusted.origin"] = b"root-only"
    assert xattrs(dst / "dir/file.txt") == expected
    assert xattrs(dst / "dir") == {"user.dir-tag": b"\x00\x01binary"}


def test_nothing_is_copied_without_posix_permissions(src: Path, tmp_path: Path) -> None:
    dst = tmp_path / "dst"
    result = sync(src, dst, PosixPermissions="NONE")
    assert result["Status"] == "SUCCESS", result["_failures"]
    assert xattrs(dst / "dir/file.txt") == {}
    assert xattrs(dst / "dir") == {}


def test_point_in_time_verification_compares_xattrs(src: Path, tmp_path: Path) -> None:
    dst = tmp_path / "dst"
    assert sync(src, dst)["Status"] == "SUCCESS"
    os.setxattr(dst / "dir/file.txt", "user.comment", b"changed")  # mtime and size unchanged
    result = sync(src, dst)
    assert result["Status"] == "ERROR"
    assert any(
        "/dir/file.txt" in f and "extended attributes differ: user.comment" in f
        for f in result["_failures"]
    ), result["_failures"]


def test_a_recopied_file_and_an_updated_directory_lose_extra_xattrs(
    src: Path, tmp_path: Path
) -> None:
    dst = tmp_path / "dst"
    assert sync(src, dst)["Status"] == "SUCCESS"
    os.setxattr(dst / "dir", "user.stray", b"x")
    write(src / "dir/file.txt", "new data", mtime_ns=MTIME_NS + 10)  # recopied: a fresh file
    os.setxattr(src / "dir/file.txt", "user.comment", b"v2")
    os.utime(src / "dir", ns=(MTIME_NS, MTIME_NS + 5))  # the directory's metadata changed
    result = sync(src, dst)
    assert result["Status"] == "SUCCESS", result["_failures"]
    assert xattrs(dst / "dir/file.txt")["user.comment"] == b"v2"
    assert "user.stray" not in xattrs(dst / "dir")


def _acl(path: Path, option: str = "") -> str:
    args = [
        "getfacl",
        "--omit-header",
        "--absolute-names",
        "--numeric",
        *([option] if option else []),
        path,
    ]
    return subprocess.run(args, check=True, capture_output=True, text=True).stdout


@pytest.mark.skipif(shutil.which("setfacl") is None, reason="setfacl (Debian acl) missing")
def test_access_and_default_acls_are_copied_and_compared(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    f = write(src / "shared/report.txt", "numbers", mode=0o640)
    try:
        subprocess.run(["setfacl", "-m", "u:65534:rw,g:65534:r", f], check=True)
        subprocess.run(["setfacl", "-d", "-m", "u:65534:rwx", src / "shared"], check=True)
    except subprocess.CalledProcessError:
        pytest.skip("this file system holds no POSIX ACLs")
    os.utime(f, ns=(MTIME_NS, MTIME_NS))
    result = sync(src, dst)
    assert result["Status"] == "SUCCESS", result["_failures"]
    assert "user:65534:rw-" in _acl(dst / "shared/report.txt")
    assert _acl(dst / "shared/report.txt") == _acl(f)
    assert _acl(dst / "shared", "--default") == _acl(src / "shared", "--default")
    assert "user:65534:rwx" in _acl(dst / "shared", "--default")
    # an ACL changed at the destination is found by POINT_IN_TIME_CONSISTENT
    subprocess.run(["setfacl", "-x", "g:65534", dst / "shared/report.txt"], check=True)
    os.utime(dst / "shared/report.txt", ns=(MTIME_NS, MTIME_NS))
    os.chmod(dst / "shared/report.txt", os.stat(f).st_mode)
    result = sync(src, dst)
    assert result["Status"] == "ERROR"
    assert any("ACLs differ: system.posix_acl_access" in x for x in result["_failures"])


@contextlib.contextmanager
def ramfs(path: Path) -> Iterator[Path]:
    """A file system with no extended attributes at all (needs root to mount)."""
    path.mkdir()
    if subprocess.run(["mount", "-t", "ramfs", "none", path], capture_output=True).returncode:
        pytest.skip("cannot mount a ramfs here")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", path], check=False)


@pytest.mark.skipif(not IS_ROOT, reason="mounting a ramfs needs root")
def test_a_destination_without_xattrs_is_noted_not_failed(src: Path, tmp_path: Path) -> None:
    with ramfs(tmp_path / "ram") as ram:
        dst = ram / "dst"
        t = Transfer(src, dst, Options.create())
        result: dict[str, Any] = anyio.run(t.run)
        assert result["Status"] == "SUCCESS", [str(f) for f in t.failures]
        assert (dst / "dir/file.txt").read_text() == "data"
        # a second run copies nothing, so only verification meets the refusal: still no error
        again = sync(src, dst)
        assert again["Status"] == "SUCCESS", again["_failures"]
