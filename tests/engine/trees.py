"""Helpers to build real directory trees and read them back for comparison."""

from __future__ import annotations

import json
import os
import stat
import tempfile
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio._backends._asyncio  # noqa: F401 - imported before a fork drops privileges
import xxhash

from engine.scan import is_temporary

MTIME_NS = 1_600_000_000_123_456_789
ATIME_NS = 1_600_000_100_987_654_321


def write(path: Path, data: bytes | str, mode: int = 0o644, mtime_ns: int = MTIME_NS) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    os.chmod(path, mode)
    os.utime(path, ns=(ATIME_NS, mtime_ns))
    return path


def state(root: Path) -> dict[str, tuple[Any, ...]]:
    """rel path -> (kind, mode, uid, gid, mtime_ns, content digest | link target | rdev).

    Temporaries are included on purpose: tests assert none are left.
    """
    result: dict[str, tuple[Any, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            rel = "/" + os.path.relpath(path, root)
            if stat.S_ISREG(st.st_mode):
                payload: Any = xxhash.xxh3_128_hexdigest(Path(path).read_bytes())
            elif stat.S_ISLNK(st.st_mode):
                payload = os.readlink(path)
            elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                payload = st.st_rdev
            else:
                payload = None
            result[rel] = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_uid,
                           st.st_gid, st.st_mtime_ns, payload)  # fmt: skip
    return result


def temporaries(root: Path) -> list[str]:
    return [os.path.join(d, n) for d, ds, fs in os.walk(root) for n in ds + fs if is_temporary(n)]


def run_as_nobody(fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run `fn` in a forked child with uid/gid 65534 (real permission checks); return its result."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        code = 1
        try:
            os.close(read_fd)
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            with os.fdopen(write_fd, "w") as out:
                json.dump(fn(), out)
            code = 0
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(code)
    os.close(write_fd)
    with os.fdopen(read_fd) as inp:
        data = inp.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "child failed"
    result: dict[str, Any] = json.loads(data)
    return result


def shared_tmpdir() -> Path:
    """A directory every user can enter (pytest's tmp_path is private to root)."""
    path = Path(tempfile.mkdtemp(prefix="dsl-shared-"))
    path.chmod(0o755)
    return path
