"""TRANSFERRING: carry out a `Plan`.

Order, and why:
1. The plan in walk order: directories are created before their contents. Small files are copied
   inline on this thread; only files of `large_file_size` or more go to a small thread pool — on a
   2-core machine a pool makes small files ~2.5× slower (GIL hand-offs) while it speeds large ones.
2. Hard links, once the files they point to are in place.
3. Deletes (PreserveDeletedFiles=REMOVE): only if every copy succeeded and the source was listed
   completely, so a failed or partial run never removes anything.
4. Directory metadata last: every write into a directory bumps its mtime.
"""

from __future__ import annotations

import os
import shutil
import stat
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from engine.copier import Copier, temporary_name
from engine.errors import TransferCancelled
from engine.metadata import MetadataPolicy
from engine.plan import Action, Op, Plan
from engine.progress import Progress
from engine.scan import BLK, DIR, LNK
from engine.spool import Spool

__all__ = ["Executor", "VerifyRecord"]

VerifyRecord = tuple[str, str, int, bytes | None]  # (rel, kind, size, digest)


class Executor:
    def __init__(
        self,
        source: str,
        destination: str,
        progress: Progress,
        copier: Copier,
        metadata: MetadataPolicy,
        cancelled: Callable[[], bool],
        verify_log: Spool | None,
        workers: int,
        large_file_size: int,
    ) -> None:
        self.source = source
        self.destination = destination
        self.progress = progress
        self.copier = copier
        self.metadata = metadata
        self.cancelled = cancelled
        self.verify_log = verify_log
        self.workers = workers
        self.large_file_size = large_file_size
        self._log_lock = threading.Lock()
        self._failed_copies: set[str] = set()

    def _dst(self, rel: str) -> str:
        return self.destination if rel == "/" else self.destination + rel

    def _src(self, rel: str) -> str:
        return self.source if rel == "/" else self.source + rel

    def _fail(self, rel: str, exc: OSError) -> None:
        self.progress.fail("Transfer", rel, exc.strerror or str(exc))

    def _done(self, action: Action, size: int = 0, digest: bytes | None = None) -> None:
        if action.counted:
            self.progress.add("FilesTransferred")
        if self.verify_log is not None and action.counted:
            with self._log_lock:
                self.verify_log.append((action.rel, action.kind, size, digest))

    # -- phase -----------------------------------------------------------------------------------
    def run(self, plan: Plan) -> None:
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
                        slots.acquire()
                        future: Future[None] = pool.submit(self._copy, action)
                        future.add_done_callback(lambda _f: slots.release())
                    else:
                        self._copy(action)
                elif op == Op.MKDIR:
                    self._mkdir(action, dir_meta)
                elif op == Op.DIRMETA:
                    dir_meta.append(action)
                elif op == Op.HARDLINK:
                    links.append(action)
                else:
                    self._place_other(action)
        finally:
            if pool is not None:
                pool.shutdown(wait=True)
        if self.cancelled():
            raise TransferCancelled()
        for action in links:
            self._hardlink(action)
        if plan.deletes.count:
            self._delete(plan)
        for action in reversed(dir_meta):
            self._apply_dir_meta(action)

    # -- items -----------------------------------------------------------------------------------
    def _copy(self, action: Action) -> None:
        if self.cancelled():
            return
        try:
            size, digest = self.copier.copy(
                self._src(action.rel), self._dst(action.rel), action.replace
            )
        except TransferCancelled:
            return
        except OSError as exc:
            self._failed_copies.add(action.rel)
            self._fail(action.rel, exc)
            return
        self._done(action, size, digest)

    def _mkdir(self, action: Action, dir_meta: list[Action]) -> None:
        path = self._dst(action.rel)
        try:
            if action.replace is not None:
                os.unlink(path)  # a non-directory where the source has a directory
            if action.rel == "/":
                os.makedirs(path, 0o700, exist_ok=True)
            else:
                os.mkdir(path, 0o700)
        except OSError as exc:
            self._fail(action.rel, exc)
            return
        dir_meta.append(action._replace(counted=False))
        self._done(action)

    def _place_other(self, action: Action) -> None:
        """Symlinks, devices and metadata-only updates."""
        path = self._dst(action.rel)
        try:
            if action.op == Op.META:
                self._apply_path(path, action)
            else:
                tmp = f"{os.path.dirname(path)}/{temporary_name()}"
                if action.op == Op.SYMLINK:
                    os.symlink(str(action.extra), tmp)
                else:  # Op.DEVICE
                    kind_bits = stat.S_IFBLK if action.kind == BLK else stat.S_IFCHR
                    os.mknod(tmp, 0o600 | kind_bits, int(action.extra or 0))
                try:
                    self._apply_path(tmp, action)
                    self._replace(tmp, path, action.replace)
                except BaseException:
                    os.unlink(tmp)
                    raise
        except OSError as exc:
            self._fail(action.rel, exc)
            return
        self._done(action)

    def _hardlink(self, action: Action) -> None:
        leader = str(action.extra)
        if leader in self._failed_copies:
            self.progress.fail("Transfer", action.rel, f"hard link target {leader} failed")
            return
        path = self._dst(action.rel)
        tmp = f"{os.path.dirname(path)}/{temporary_name()}"
        try:
            os.link(self._dst(leader), tmp, follow_symlinks=False)
            try:
                self._replace(tmp, path, action.replace)
            except BaseException:
                os.unlink(tmp)
                raise
        except OSError as exc:
            self._fail(action.rel, exc)
            return
        self._done(action)

    @staticmethod
    def _replace(tmp: str, path: str, replace: str | None) -> None:
        if replace == DIR:
            shutil.rmtree(path)
        os.rename(tmp, path)

    def _apply_path(self, path: str, action: Action) -> None:
        self.metadata.apply_path(
            path,
            action.kind == DIR,
            action.kind == LNK,
            action.mode,
            action.uid,
            action.gid,
            action.atime_ns,
            action.mtime_ns,
        )

    def _apply_dir_meta(self, action: Action) -> None:
        try:
            self._apply_path(self._dst(action.rel), action)
        except OSError as exc:
            self._fail(action.rel, exc)
            return
        self._done(action)

    def _delete(self, plan: Plan) -> None:
        if not plan.source_complete or self.progress.failed() > 0:
            return  # never delete after a failure or from an incomplete listing
        for action in plan.deletes:
            if self.cancelled():
                raise TransferCancelled()
            path = self._dst(action.rel)
            try:
                if action.kind == DIR:
                    os.rmdir(path)
                else:
                    os.unlink(path)
            except FileNotFoundError:
                pass
            except OSError as exc:
                self.progress.fail("Delete", action.rel, exc.strerror or str(exc))
                continue
            if action.counted:
                self.progress.add("FilesDeleted")
