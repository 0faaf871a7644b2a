"""Sparse files stay sparse: copy only the data extents (SEEK_DATA / SEEK_HOLE), leave holes.

A file whose allocated blocks cover less than its size has holes. Copying it byte by byte
(`copy_file_range` on most file systems, or read/write) writes the zeros out and a 1 GiB image
with 12 KiB of data takes 1 GiB at the destination. Here each data extent is written at its own
offset into the fresh temporary and the size is set with `ftruncate`, so the holes stay holes.

Accounting (decided where DataSync is silent): the byte counters (`BytesWritten`,
`BytesTransferred`) count *logical* bytes, holes included, so they agree with
`EstimatedBytesToTransfer` and the file's size, as DataSync's do; the token bucket
(`BytesPerSecond`) is paid only for data bytes, because a hole moves no data and the throttle
exists to protect the disks and the network. When hashing (ONLY_FILES_TRANSFERRED), the holes are
hashed as the zeros a reader sees, so the digest is that of the file's contents.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from functools import partial

import xxhash

from engine.accounting import Accounting

__all__ = ["copy_sparse", "data_extents", "is_sparse", "seeks_data"]

_ZEROS = memoryview(bytes(1 << 20))


def is_sparse(st: os.stat_result) -> bool:
    """Fewer bytes allocated than the size says: the file has holes (or is compressed, in which
    case SEEK_DATA reports it all as data and the copy is simply a buffered one)."""
    return st.st_size > 0 and st.st_blocks * 512 < st.st_size


def seeks_data(fd: int) -> bool:
    """Whether the file system answers SEEK_DATA (every Linux one since 3.8 does, at least by
    calling the whole file data); leaves the file offset at 0."""
    try:
        os.lseek(fd, 0, os.SEEK_DATA)
    except OSError as exc:
        if exc.errno != errno.ENXIO:  # ENXIO: all hole, which is an answer
            return False
    os.lseek(fd, 0, os.SEEK_SET)
    return True


def data_extents(fd: int, size: int) -> Iterator[tuple[int, int]]:
    """(start, end) of every data region of an open file below `size`, in order.

    Check `seeks_data` first: where the file system has no SEEK_DATA this raises EINVAL."""
    offset = 0
    while offset < size:
        try:
            start = os.lseek(fd, offset, os.SEEK_DATA)
        except OSError as exc:
            if exc.errno == errno.ENXIO:
                return  # nothing but a hole up to the end
            raise
        if start >= size:
            return
        end = min(os.lseek(fd, start, os.SEEK_HOLE), size)
        yield start, end
        offset = end


def _hash_zeros(hasher: xxhash.xxh3_128, n: int) -> None:
    while n > 0:
        step = min(n, len(_ZEROS))
        hasher.update(_ZEROS[:step])
        n -= step


def copy_sparse(
    src_fd: int,
    dst_fd: int,
    size: int,
    buf: memoryview,
    account: Accounting,
    hashing: bool,
) -> tuple[int, bytes | None]:
    """Copy the data extents of `src_fd` into the empty `dst_fd` and give it `size`.

    Data bytes move through `account.charge` (paid for, counted; TransferCancelled when
    cancelled), holes are only counted (`account.count`), as logical bytes. Returns (logical
    bytes copied, digest or None); fewer bytes than `size` means the source shrank while being
    read."""
    hasher = xxhash.xxh3_128() if hashing else None

    def move(want: int, offset: int) -> int:
        n = os.preadv(src_fd, [buf[:want]], offset)
        data = buf[:n]
        if hasher is not None:
            hasher.update(data)
        done = 0
        while done < n:
            done += os.pwrite(dst_fd, data[done:], offset + done)
        return n

    position = 0  # logical bytes accounted for so far
    for start, end in data_extents(src_fd, size):
        if start > position:
            if hasher is not None:
                _hash_zeros(hasher, start - position)
            account.count(start - position)
            position = start
        while position < end:
            want = min(account.chunk(len(buf)), end - position)
            n = account.charge(want, partial(move, want, position))
            if n == 0:
                return position, None  # shrank under us; the caller reports it
            position += n
    if position < size:  # a trailing hole
        if hasher is not None:
            _hash_zeros(hasher, size - position)
        account.count(size - position)
        position = size
    os.ftruncate(dst_fd, size)
    return position, hasher.digest() if hasher is not None else None
