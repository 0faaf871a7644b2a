"""File I/O helpers shared by the phases that touch file data: opening a source (or a
destination to verify) without following symlinks or touching atime, hashing a file, naming
and creating temporaries, and placing a finished temporary under its real name.

Why a module of their own: copying (engine/copier.py), verification (engine/verify.py) and the
transfer's bookkeeping (engine/transfer.py, engine/execute.py) all need them, and verification
has no business importing the copier to read a file.
"""

from __future__ import annotations

import itertools
import os
import shutil
import threading

import xxhash

from engine.scan import DIR, TEMP_PREFIX, open_at, temp_check

__all__ = [
    "BUFFER_SIZE",
    "buffer",
    "create_temporary",
    "hash_file",
    "open_for_reading",
    "place",
    "temporary_name",
    "write_all",
]

BUFFER_SIZE = 1 << 20
_counter = itertools.count()
_local = threading.local()

_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def _name_prefix() -> str:
    return f"{os.getpid() & 0xFFFFFFFF:08x}"


_prefix_body = _name_prefix()
os.register_at_fork(after_in_child=lambda: globals().update(_prefix_body=_name_prefix()))


def temporary_name() -> str:
    """A unique short name (pid + counter + check, see scan.TEMP_PREFIX); O_EXCL creation guards
    against a stale twin."""
    body = f"{_prefix_body}{next(_counter) & 0xFFFFFFFF:08x}"
    return f"{TEMP_PREFIX}{body}{temp_check(body)}"


def create_temporary(dst_dir: int) -> tuple[str, int]:
    """Create a fresh temporary (O_EXCL, O_NOFOLLOW, mode 0600) in `dst_dir`: (name, fd)."""
    while True:
        name = temporary_name()
        try:
            fd = open_at(dst_dir, name, _CREATE_FLAGS, 0o600)
        except FileExistsError:
            continue  # a stale temporary with the same name: take the next one
        return name, fd


def buffer() -> memoryview:
    """This thread's copy/hash buffer (one per thread, allocated once)."""
    buf: memoryview | None = getattr(_local, "buf", None)
    if buf is None:
        buf = _local.buf = memoryview(bytearray(BUFFER_SIZE))
    return buf


def open_for_reading(name: str, dir_fd: int) -> int:
    """Open the entry `name` of `dir_fd` (scan.open_at: one plain name, O_NOFOLLOW), never
    through a symlink, and, where allowed (owner or root), without touching atime:
    reading a source or verifying a destination must not change the very atimes the transfer
    preserves."""
    try:
        return open_at(dir_fd, name, _READ_FLAGS | os.O_NOATIME)
    except PermissionError:
        return open_at(dir_fd, name, _READ_FLAGS)


def place(dir_fd: int, tmp: str, name: str, replace: str | None) -> None:
    """Rename a finished temporary over `name` (a directory in the way is removed first)."""
    if replace == DIR:
        shutil.rmtree(name, dir_fd=dir_fd)
    os.rename(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)


def hash_file(name: str, dir_fd: int) -> tuple[int, bytes]:
    """(size, xxh3-128 digest) of a regular file, read without following a final symlink."""
    fd = open_for_reading(name, dir_fd)
    try:
        hasher = xxhash.xxh3_128()
        buf = buffer()
        size = 0
        while n := os.readv(fd, [buf]):
            hasher.update(buf[:n])
            size += n
        return size, hasher.digest()
    finally:
        os.close(fd)


def write_all(fd: int, data: memoryview) -> None:
    """Write every byte of `data` (os.write may write fewer)."""
    while data:
        written = os.write(fd, data)
        data = data[written:]
