"""Copying one regular file: data to a temporary beside its final name, then rename into place.

* No reader ever sees half a file under its real name: data goes to ``.~dsl.<hex><check>`` in the
  destination directory and is renamed over the final name only when complete, metadata applied.
* Without hashing, data moves inside the kernel (`copy_file_range`, falling back to `sendfile`
  and then read/write); with hashing (ONLY_FILES_TRANSFERRED), one read feeds xxh3-128 and write.
* Limited bandwidth: every chunk moves through `Accounting.charge` (engine/accounting.py), which
  pays the shared `TokenBucket` *before* the chunk is written and counts it, in chunks of ~1/20 s
  of the current rate, so a rate change applies from the next chunk.
* The source is re-checked after the copy (size, mtime, ctime and inode of the open file): a file
  that changed while being copied is never renamed into place; it is copied again a bounded
  number of times, then fails, and the previous destination copy stays.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from functools import partial

import xxhash

from engine.accounting import Accounting
from engine.fileio import BUFFER_SIZE, buffer, create_temporary, open_for_reading, place, write_all
from engine.metadata import MetadataPolicy
from engine.sparse import copy_sparse, is_sparse, seeks_data

__all__ = ["Copier", "CopyResult", "SourceChanged"]

_UNLIMITED_CHUNK = 64 << 20  # bounds the time between two cancel checks (~20 ms here)
_NO_KERNEL_COPY = (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP)

CopyResult = tuple[int, bytes | None]  # (bytes copied, xxh3-128 digest of the data if hashed)


class SourceChanged(OSError):
    """The source file changed while it was being copied."""


ATTEMPTS = 3  # copies of a file that keeps changing under the copier before it fails


def _unchanged(before: os.stat_result, after: os.stat_result) -> bool:
    """Whether the open source is the same version after the copy as before it. mtime alone is
    not enough: `cp -p`, `tar x` and `rsync -t --inplace` rewrite a file in place and put its
    mtime back, but no one can put back ctime (any write or utime changes it)."""
    return (
        before.st_size == after.st_size
        and before.st_mtime_ns == after.st_mtime_ns
        and before.st_ctime_ns == after.st_ctime_ns
        and before.st_ino == after.st_ino
        and before.st_dev == after.st_dev
    )


class _NoKernelCopy(Exception):
    """copy_file_range cannot copy between these two files (before any byte moved)."""


class Copier:
    def __init__(
        self,
        account: Accounting,
        metadata: MetadataPolicy,
        hashing: bool,
        fsync: bool = False,
    ) -> None:
        """`account`: where every chunk is paid for and counted (and cancels are seen)."""
        self.account = account
        self.metadata = metadata
        self.hashing = hashing
        self.fsync = fsync  # data flushed before the rename, the directory entry after it
        self._kernel_copy = True

    def copy(self, src_dir: int, dst_dir: int, name: str, replace: str | None) -> CopyResult:
        """Copy `name` from the source directory fd to the destination directory fd atomically.

        A source that changed while it was copied (see `_unchanged`) is copied again, at most
        `ATTEMPTS` times in all; then SourceChanged. Raises OSError (incl. SourceChanged) or
        TransferCancelled; on any failure the temporary is removed and the destination's `name`
        is untouched."""
        for attempt in range(1, ATTEMPTS + 1):
            try:
                return self._copy_once(src_dir, dst_dir, name, replace)
            except SourceChanged:
                if attempt == ATTEMPTS:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _copy_once(self, src_dir: int, dst_dir: int, name: str, replace: str | None) -> CopyResult:
        src_fd = open_for_reading(name, src_dir)
        try:
            st = os.fstat(src_fd)
            if not stat.S_ISREG(st.st_mode):
                raise SourceChanged(errno.EINVAL, "source is no longer a regular file")
            tmp, dst_fd = create_temporary(dst_dir)
            try:
                try:
                    copied, digest = self._copy_data(src_fd, dst_fd, st.st_size, is_sparse(st))
                    if copied != st.st_size or not _unchanged(st, os.fstat(src_fd)):
                        raise SourceChanged(
                            errno.EAGAIN,
                            f"source changed while it was being copied ({ATTEMPTS} attempts)",
                        )
                    self.metadata.copy_xattrs(src_fd, dst_fd, after_chown=False)
                    self.metadata.apply_fd(
                        dst_fd, False, st.st_mode, st.st_uid, st.st_gid, st.st_atime_ns,
                        st.st_mtime_ns,
                    )  # fmt: skip
                    self.metadata.copy_xattrs(src_fd, dst_fd, after_chown=True)
                    if self.fsync:
                        os.fsync(dst_fd)
                finally:
                    os.close(dst_fd)
                place(dst_dir, tmp, name, replace)
                if self.fsync:
                    os.fsync(dst_dir)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp, dir_fd=dst_dir)
                raise
            return copied, digest
        finally:
            os.close(src_fd)

    # -- data ------------------------------------------------------------------------------------
    def _next_read(self, copied: int, size: int, room: int) -> tuple[int, int]:
        """(bytes to read, bytes to pay for) of the buffered copies' next step: a chunk, or, once
        `size` bytes are in, an unpaid 1-byte probe for growth past the size seen at open."""
        if copied >= size:
            return 1, 0
        want = min(self.account.chunk(BUFFER_SIZE), room)
        return want, min(want, size - copied)

    def _copy_data(self, src_fd: int, dst_fd: int, size: int, sparse: bool = False) -> CopyResult:
        if sparse and seeks_data(src_fd):  # holes stay holes (engine/sparse.py)
            return copy_sparse(src_fd, dst_fd, size, buffer(), self.account, self.hashing)
        if self.hashing and self._kernel_copy:
            return self._copy_hashing_in_kernel(src_fd, dst_fd, size)
        if self.hashing or not self._kernel_copy:
            return self._copy_through_buffer(src_fd, dst_fd, size)
        account = self.account
        copied = 0
        try:
            while copied < size:  # unlimited: one call per 64 MiB, a cancel check between them
                want = min(account.chunk(_UNLIMITED_CHUNK), size - copied)
                n = account.charge(want, partial(os.copy_file_range, src_fd, dst_fd, want))
                if n == 0:
                    break  # the source shrank; the caller reports it
                copied += n
        except OSError as exc:
            if copied == 0 and exc.errno in _NO_KERNEL_COPY:
                self._kernel_copy = False  # this file system pair can't: use the buffer path
                return self._copy_through_buffer(src_fd, dst_fd, size)
            raise
        return copied, None

    def _copy_hashing_in_kernel(self, src_fd: int, dst_fd: int, size: int) -> CopyResult:
        """Hash each chunk from a buffer, but move it with copy_file_range: one copy through user
        memory instead of two (read + write). Should the source change between the read and the
        kernel's copy, the digest no longer matches what was written and VERIFYING fails the file.
        """
        hasher = xxhash.xxh3_128()
        buf = buffer()

        def move(want: int, offset: int) -> int:
            n = os.preadv(src_fd, [buf[:want]], offset)
            if n == 0:
                return 0
            hasher.update(buf[:n])
            done = 0
            try:
                while done < n:
                    moved = os.copy_file_range(
                        src_fd, dst_fd, n - done, offset + done, offset + done
                    )
                    if moved == 0:
                        raise SourceChanged(
                            errno.EAGAIN, "source changed while it was being copied"
                        )
                    done += moved
            except OSError as exc:
                if offset or done or exc.errno not in _NO_KERNEL_COPY:
                    raise
                raise _NoKernelCopy() from exc
            return n

        copied = 0
        while True:
            want, pay = self._next_read(copied, size, len(buf))
            try:
                n = self.account.charge(pay, partial(move, want, copied))
            except _NoKernelCopy:
                self._kernel_copy = False  # this file system pair can't: use the buffer path
                return self._copy_through_buffer(src_fd, dst_fd, size)
            if n == 0:
                break
            copied += n
            if copied > size:
                break  # grew while being copied; the caller reports it
        return copied, hasher.digest()

    def _copy_through_buffer(self, src_fd: int, dst_fd: int, size: int) -> CopyResult:
        hasher = xxhash.xxh3_128() if self.hashing else None
        buf = buffer()

        def move(want: int) -> int:
            n = os.readv(src_fd, [buf[:want]])
            if n:
                data = buf[:n]
                if hasher is not None:
                    hasher.update(data)
                write_all(dst_fd, data)
            return n

        copied = 0
        while True:
            want, pay = self._next_read(copied, size, len(buf))
            n = self.account.charge(pay, partial(move, want))
            if n == 0:
                break
            copied += n
            if copied > size:
                break  # grew while being copied; the caller reports it
        return copied, hasher.digest() if hasher is not None else None
