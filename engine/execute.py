"""TRANSFERRING: carry out a `Plan`.

Order, and why:
1. The plan in walk order: directories are created before their contents. Files of
   `large_file_size` or more go to a small thread pool (it speeds large files, while on a 2-core
   machine it makes small files ~2.5× slower: GIL hand-offs). Small files go, in batches of one
   directory, to the copy helper processes when there are some (engine/copyhelpers.py) and the
   transfer is not throttled, and are copied inline on this thread otherwise, or when every
   helper is busy: this thread is one more copier.
2. Hard links, once the files they point to are in place.
3. Deletes (PreserveDeletedFiles=REMOVE): only if every copy succeeded and the source was listed
   completely, so a failed or partial run never removes anything.
4. Directory metadata last: every write into a directory bumps its mtime.

Every file operation is relative to a directory fd from a `DirTree` (opened without following
symlinks), never a path string walked by the kernel.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import threading
from concurrent.futures import Future, ThreadPoolExecutor

from engine.copier import Copier
from engine.copyhelpers import BATCH_BYTES, BATCH_FILES, CopyHelpers, HelperAnswer
from engine.dirs import DirTree, split
from engine.errors import TransferCancelled
from engine.fileio import place, temporary_name
from engine.metadata import MetadataPolicy
from engine.plan import ANCESTOR, Action, Op, Plan
from engine.run import RunContext
from engine.scan import BLK, DIR, LNK, REG
from engine.spool import Spool
from engine.xattrs import at

__all__ = ["Executor", "VerifyRecord"]

VerifyRecord = tuple[str, str, int, bytes | None]  # (rel, kind, size, digest)

# A copy that ran out of space is tried once more after every other copy has ended: the space
# may have been held by another file's temporary (a big file failing on a full disk while small
# ones were copied beside it), which is removed when that copy fails.
_OUT_OF_SPACE = (errno.ENOSPC, errno.EDQUOT)


class Executor:
    def __init__(
        self,
        context: RunContext,
        copier: Copier,
        metadata: MetadataPolicy,
        verify_log: Spool | None,
        helpers: CopyHelpers | None = None,
    ) -> None:
        """`verify_log`: where each item written is recorded for ONLY_FILES_TRANSFERRED (None:
        not recorded); `helpers`: copy helper processes for small files, owned (and closed)
        from here on. The run's `max_delete` is rsync/rclone's --max-delete: at most this many
        deletes, then `deletes_stopped`."""
        self.destination = context.destination
        self.progress = context.progress
        self.copier = copier
        self.metadata = metadata
        self.cancelled = context.cancelled
        self.verify_log = verify_log
        self.workers = context.workers
        self.large_file_size = context.large_file_size
        self.max_delete = context.max_delete
        self.fsync = context.fsync
        self.deletes_stopped = False
        self._log_lock = threading.Lock()
        self._failed_copies: set[str] = set()
        self._out_of_space: list[Action] = []  # to try again once the other copies have ended
        self._src = DirTree(context.source)
        self._dst = DirTree(context.destination)
        self._helpers = helpers
        self._batch: list[Action] = []  # small files of one directory, not yet handed out
        self._batch_dir = ""
        self._batch_bytes = 0
        self.files_by_helpers = 0

    def _fail(self, rel: str, exc: OSError, phase: str = "Transfer", folder: bool = False) -> None:
        self.progress.fail(phase, rel, exc.strerror or str(exc), folder=folder)

    def _done(self, action: Action, size: int = 0, digest: bytes | None = None) -> None:
        if not action.counted:
            return
        is_file = action.kind == REG
        self.progress.transferred(
            action.rel, action.kind == DIR, size if is_file else None, digest if is_file else None
        )
        if self.verify_log is not None:
            with self._log_lock:
                self.verify_log.append((action.rel, action.kind, size, digest))

    # -- phase -----------------------------------------------------------------------------------
    def run(self, plan: Plan) -> None:
        try:
            self._run(plan)
        finally:
            if self._helpers is not None:
                self._helpers.close()
            self._src.close()
            self._dst.close()

    def _run(self, plan: Plan) -> None:
        dir_meta: list[Action] = []
        links: list[Action] = []
        pool = ThreadPoolExecutor(self.workers, "dsl-copy") if self.workers > 0 else None
        slots = threading.BoundedSemaphore(max(1, self.workers) * 2)
        try:
            for action in plan.actions:
                if self.cancelled():
                    raise TransferCancelled()
                op = action.op
                if op == Op.COPY:
                    if pool is not None and action.size >= self.large_file_size:
                        self._submit(pool, slots, action)
                    elif self._helpers is not None and not self.copier.account.limited:
                        self._add_to_batch(action)
                    else:
                        self._copy(action)
                elif op == Op.MKDIR:
                    self._mkdir(action, dir_meta)
                elif op == Op.DIRMETA:
                    dir_meta.append(action)
                elif op == Op.HARDLINK:
                    links.append(action)
                elif op == Op.DELETE:  # a stale temporary: cleanup, not a user-visible delete
                    self._remove(action)
                else:
                    self._place_other(action)
            self._flush_batch()
            self._drain_helpers()
        finally:
            if pool is not None:
                pool.shutdown(wait=True)
        if self.cancelled():
            raise TransferCancelled()
        self._copy_out_of_space_again()
        for action in links:
            self._hardlink(action)
        if plan.deletes.count and plan.source_complete and self.progress.failed() == 0:
            # never delete after a failure or from an incomplete listing
            deleted = 0
            for action in plan.deletes:
                if self.cancelled():
                    raise TransferCancelled()
                if action.counted and self.max_delete is not None and deleted >= self.max_delete:
                    self.deletes_stopped = True
                    break
                if self._remove(action) and action.counted:
                    deleted += 1
                    self.progress.deleted(
                        action.rel, action.kind == DIR, action.size if action.kind == REG else None
                    )
        for action in reversed(dir_meta):
            self._apply_dir_meta(action)

    # -- small files through the copy helpers ----------------------------------------------------
    def _add_to_batch(self, action: Action) -> None:
        parent, _ = split(action.rel)
        if self._batch and (
            parent != self._batch_dir
            or len(self._batch) >= BATCH_FILES
            or self._batch_bytes + action.size > BATCH_BYTES
        ):
            self._flush_batch()
        if not self._batch:
            self._batch_dir = parent
        self._batch.append(action)
        self._batch_bytes += action.size

    def _flush_batch(self) -> None:
        """Hand the batch to a helper with room, or copy it here; then take in what the
        helpers have finished meanwhile (so the counters move while they work)."""
        batch, self._batch, self._batch_bytes = self._batch, [], 0
        helpers = self._helpers
        if batch:
            items = [(split(a.rel)[1], a.replace) for a in batch]
            if (
                helpers is None
                or self.copier.account.limited
                or not helpers.send(batch, self._batch_dir, items)
            ):
                for action in batch:
                    if self.cancelled():
                        raise TransferCancelled()
                    self._copy(action)
        if helpers is not None:
            for answer in helpers.answers(wait=False):
                self._take(answer)
            self._copy_abandoned()

    def _drain_helpers(self) -> None:
        """Wait for every batch handed out (hard links and deletes need them all placed)."""
        helpers = self._helpers
        if helpers is None:
            return
        for _ in range(1 << 30):  # bounded by the batches pending, each answer takes one
            self._copy_abandoned()
            if not helpers.pending:
                break
            if self.cancelled():
                raise TransferCancelled()
            for answer in helpers.answers(wait=True):
                self._take(answer)
        self._copy_abandoned()

    def _take(self, answer: HelperAnswer) -> None:
        """Count what a helper placed (and fail what it could not), as `_copy_at` does."""
        batch: list[Action] = answer.tag
        # unpaid by design: helpers only run while the transfer is not throttled
        self.copier.account.count(sum(size for size, _digest, reason in answer.results
                                      if reason is None))  # fmt: skip
        for action, (size, digest, reason) in zip(batch, answer.results, strict=True):
            if reason is not None:
                self._failed_copies.add(action.rel)
                self.progress.fail("Transfer", action.rel, reason)
            else:
                self.files_by_helpers += 1
                self._done(action, size, digest)

    def _copy_abandoned(self) -> None:
        """Copy here the batches of a helper that died before answering (again: temporary and
        rename make a second copy of a file harmless)."""
        helpers = self._helpers
        while helpers is not None and helpers.failed:
            batch, _files = helpers.failed.pop(0)
            for action in batch:
                if self.cancelled():
                    raise TransferCancelled()
                self._copy(action)

    # -- files -----------------------------------------------------------------------------------
    def _dirs(self, rel: str) -> tuple[int, int, str]:
        parent, name = split(rel)
        return self._src.fd(parent), self._dst.fd(parent), name

    def _submit(
        self, pool: ThreadPoolExecutor, slots: threading.BoundedSemaphore, action: Action
    ) -> None:
        try:
            src_dir, dst_dir, name = self._dirs(action.rel)
            fds = (os.dup(src_dir), os.dup(dst_dir))  # the tree's fds move on; the job keeps these
        except OSError as exc:
            self._fail(action.rel, exc)
            return
        slots.acquire()

        def job() -> None:
            try:
                self._copy_at(action, *fds, name)
            finally:
                os.close(fds[0])
                os.close(fds[1])

        future: Future[None] = pool.submit(job)
        future.add_done_callback(lambda _f: slots.release())

    def _copy(self, action: Action, last_try: bool = False) -> None:
        try:
            src_dir, dst_dir, name = self._dirs(action.rel)
        except OSError as exc:
            self._failed_copies.add(action.rel)
            self._fail(action.rel, exc)
            return
        self._copy_at(action, src_dir, dst_dir, name, last_try)

    def _copy_out_of_space_again(self) -> None:
        again, self._out_of_space = self._out_of_space, []
        for action in again:
            if self.cancelled():
                raise TransferCancelled()
            self._copy(action, last_try=True)

    def _copy_at(
        self, action: Action, src_dir: int, dst_dir: int, name: str, last_try: bool = False
    ) -> None:
        if self.cancelled():
            return
        self.progress.working(action.rel, action.size)
        try:
            size, digest = self.copier.copy(src_dir, dst_dir, name, action.replace)
        except TransferCancelled:
            return
        except OSError as exc:
            if exc.errno in _OUT_OF_SPACE and not last_try:
                with self._log_lock:
                    self._out_of_space.append(action)
                return
            self._failed_copies.add(action.rel)
            self._fail(action.rel, exc)
            return
        finally:
            self.progress.worked(action.rel)
        self._done(action, size, digest)

    # -- other items -----------------------------------------------------------------------------
    def _mkdir(self, action: Action, dir_meta: list[Action]) -> None:
        try:
            if action.rel == "/":
                os.makedirs(self.destination, 0o700, exist_ok=True)
            else:
                parent, name = split(action.rel)
                dst_dir = self._dst.fd(parent)
                if action.replace is not None:  # a non-directory where the source has one
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(name, dir_fd=dst_dir)
                try:
                    os.mkdir(name, 0o700, dir_fd=dst_dir)
                except FileExistsError:
                    # another run sharing the tree (a work item) made it meanwhile: a directory
                    # there is what this action wanted
                    st = os.stat(name, dir_fd=dst_dir, follow_symlinks=False)
                    if not stat.S_ISDIR(st.st_mode):
                        raise
                if self.fsync:
                    os.fsync(dst_dir)
        except OSError as exc:
            self._fail(action.rel, exc, folder=True)
            return
        if action.extra == ANCESTOR:
            return  # made bare for a scope below it; the run owning it gives it its metadata
        dir_meta.append(action._replace(counted=False))
        self._done(action)

    def _place_other(self, action: Action) -> None:
        """Symlinks, devices and metadata-only updates."""
        try:
            if action.op == Op.META:
                self._apply(action)
            else:
                parent, name = split(action.rel)
                dst_dir = self._dst.fd(parent)
                tmp = temporary_name()
                if action.op == Op.SYMLINK:
                    os.symlink(str(action.extra), tmp, dir_fd=dst_dir)
                else:  # Op.DEVICE
                    kind_bits = stat.S_IFBLK if action.kind == BLK else stat.S_IFCHR
                    os.mknod(tmp, 0o600 | kind_bits, int(action.extra or 0), dir_fd=dst_dir)
                self._commit(dst_dir, tmp, name, action, with_metadata=True)
        except OSError as exc:
            self._fail(action.rel, exc)
            return
        self._done(action)

    def _hardlink(self, action: Action) -> None:
        leader = str(action.extra)
        if leader in self._failed_copies:
            self.progress.fail("Transfer", action.rel, f"hard link target {leader} failed")
            return
        try:
            leader_parent, leader_name = split(leader)
            leader_dir = os.dup(self._dst.fd(leader_parent))
            try:
                parent, name = split(action.rel)
                dst_dir = self._dst.fd(parent)
                tmp = temporary_name()
                os.link(leader_name, tmp, src_dir_fd=leader_dir, dst_dir_fd=dst_dir,
                        follow_symlinks=False)  # fmt: skip
            finally:
                os.close(leader_dir)
            self._commit(dst_dir, tmp, name, action, with_metadata=False)
        except OSError as exc:
            self._fail(action.rel, exc)
            return
        self._done(action)

    def _commit(
        self, dst_dir: int, tmp: str, name: str, action: Action, with_metadata: bool
    ) -> None:
        """Give a finished temporary its metadata and rename it over `name`; on any failure the
        temporary goes and `name` is untouched."""
        try:
            if with_metadata:
                self._apply_to(dst_dir, tmp, action)
            place(dst_dir, tmp, name, action.replace)
            if self.fsync:
                os.fsync(dst_dir)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=dst_dir)
            raise

    def _remove(self, action: Action) -> bool:
        parent, name = split(action.rel)
        try:
            dst_dir = self._dst.fd(parent)
            if action.kind == DIR:
                os.rmdir(name, dir_fd=dst_dir)
            else:
                os.unlink(name, dir_fd=dst_dir)
        except FileNotFoundError:
            return False
        except OSError as exc:
            if action.counted:
                self._fail(action.rel, exc, "Delete", folder=action.kind == DIR)
            return False
        return True

    # -- metadata --------------------------------------------------------------------------------
    def _apply(self, action: Action) -> None:
        parent, name = split(action.rel) if action.rel != "/" else ("", "")
        dst_dir = self._dst.fd(parent)
        # engine/xattrs.py: extended attributes and ACLs of files and directories
        xattrs = self.metadata.xattrs is not None and action.kind in (DIR, REG)
        if xattrs:
            src, dst = at(self._src.fd(parent), name), at(dst_dir, name)
            self.metadata.copy_xattrs(src, dst, after_chown=False)
        if action.rel == "/":
            self.metadata.apply_fd(dst_dir, True, action.mode, action.uid, action.gid,
                                   action.atime_ns, action.mtime_ns)  # fmt: skip
        else:
            self._apply_to(dst_dir, name, action)
        if xattrs:
            self.metadata.copy_xattrs(src, dst, after_chown=True)

    def _apply_to(self, dir_fd: int, name: str, action: Action) -> None:
        self.metadata.apply_at(
            dir_fd, name, action.kind == DIR, action.kind == LNK, action.mode, action.uid,
            action.gid, action.atime_ns, action.mtime_ns,
        )  # fmt: skip

    def _apply_dir_meta(self, action: Action) -> None:
        try:
            self._apply(action)
        except OSError as exc:
            self._fail(action.rel, exc, folder=True)
            return
        self._done(action)
