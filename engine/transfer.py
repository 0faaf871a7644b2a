"""One execution: PREPARING → TRANSFERRING → VERIFYING over a source and a destination tree.

Blocking file work runs in one worker thread (plus the copier pool for large files and, for
plans of many files, copy helper processes for small ones: engine/copyhelpers.py); the async
face (`await run()`) lets the agent and the API await it without blocking their event loop.
`snapshot()`, `set_bytes_per_second()` and `cancel()` are safe from any thread at any moment.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Callable, Collection
from typing import TYPE_CHECKING, Any

from engine.accounting import Accounting
from engine.copier import Copier
from engine.copyhelpers import CopyHelpers, auto_count
from engine.dirs import DirTree, split
from engine.errors import InvalidOptionsError, LocationError, TransferCancelled, TransferError
from engine.events import EventSink
from engine.execute import Executor
from engine.fileio import hash_file
from engine.filters import FilterRules
from engine.lister import spare_core, usable_cores
from engine.manifest import ManifestError, ManifestFilter
from engine.metadata import MetadataPolicy
from engine.options import Options
from engine.plan import Plan, Planner
from engine.progress import FileFailure, Progress
from engine.run import LARGE_FILE_SIZE, RunContext
from engine.scan import REG, is_temporary
from engine.settings import ONLY_FILES_TRANSFERRED, VERIFY_NONE, Settings
from engine.split import Scope
from engine.spool import Spool
from engine.throttle import UNLIMITED, Clock, TokenBucket

if TYPE_CHECKING:
    from engine.hashcache import HashCache

# Imported where used, not here: anyio (only `await run()` needs it), verification with its
# cache (sqlite3) and the dry run's itemizer. A one-off `sync` that needs none of them starts
# without paying for them (python -X importtime: ~12 ms of a 50k-file no-op's ~100 ms start).

__all__ = ["Transfer"]

log = logging.getLogger(__name__)

_DETAIL_ITEMS = 5
# Result.ErrorDetail travels in a 1024-character statusDetails value beside the phase durations
# and statuses (~200 characters), so the engine keeps its details well inside that.
DETAIL_LIMIT = 768


def result_detail(
    what: str, failures: list[FileFailure], phase: str, total: int, limit: int = DETAIL_LIMIT
) -> str:
    """ "N items <what>: first; second (and M more)", the count and as many of the first failures
    as fit in `limit` characters (the first one shortened if even it alone does not fit)."""
    head = f"{total} {'item' if total == 1 else 'items'} {what}: "
    named = [str(f) for f in failures if f.phase == phase][:_DETAIL_ITEMS]
    for keep in range(len(named), 0, -1):
        more = total - keep
        tail = f" (and {more} more)" if more > 0 else ""
        text = head + "; ".join(named[:keep]) + tail
        if len(text) <= limit:
            return text
    tail = f" (and {total - 1} more)" if total > 1 else ""
    room = max(0, limit - len(head) - len(tail) - 3)
    first = named[0] if named else ""
    if len(first) > room:  # keep the end: the reason follows the (long) path
        first = "..." + first[len(first) - room :] if room else ""
    return (head + first + tail)[:limit]


class Transfer:
    def __init__(
        self,
        source: str | os.PathLike[str],
        destination: str | os.PathLike[str],
        options: Options | None = None,
        filters: FilterRules | None = None,
        *,
        clock: Clock | None = None,
        workers: int | None = None,
        large_file_size: int = LARGE_FILE_SIZE,
        helper_after: int | None = None,
        niceness: int = 0,
        on_phase: Callable[[str], None] | None = None,
        allow_empty_source: bool = False,
        max_delete: int | None = None,
        fsync: bool = False,
        dry_run: bool = False,
        on_item: Callable[[str], None] | None = None,
        hash_cache_dir: str | None = None,
        on_event: EventSink | None = None,
        scope: Scope | None = None,
        done: Collection[str] = (),
        deletes_only: bool = False,
        copy_helpers: int | None = None,
    ) -> None:
        """Safety rails: with PreserveDeletedFiles=REMOVE, an empty source root while the
        destination has items ends in ERROR (SourceLocationEmpty) deleting nothing, unless
        `allow_empty_source`; `max_delete` (rsync/rclone --max-delete) deletes at most that many
        items, then ends in ERROR (MaxDeleteExceeded); `fsync` flushes each file's data before
        its rename and each directory entry after it; `dry_run` plans only, writes nothing and
        hands each planned change to `on_item` as an `rsync -i` line (engine/itemize.py), then
        the totals. `on_event` hears of every counted item as it is counted
        (engine/events.py), from worker threads; a dry run sends it nothing. `copy_helpers`:
        processes that copy small files beside the transfer thread (engine/copyhelpers.py);
        None: one per further core once a plan has enough files to repay their start and a core
        is idle (engine/lister.spare_core: on a busy machine they cost CPU and gain no time), 0: none,
        N: N helpers, waited for before the first file (deterministic: tests).

        Work items (engine/split.py): `scope` limits the run to one part of the tree (listing,
        copying and POINT_IN_TIME_CONSISTENT verification alike); `done` names files ("/a/b")
        an earlier run of the same part finished (its journal): where the destination still
        matches they are counted as transferred (and verified) here, once, without being
        copied or read again, so a resumed part's counters are the part's, not the rest's;
        `deletes_only` is the REMOVE pass run once after every part: the whole trees are
        compared and only deletions are planned, made and counted."""
        self.options = options or Options.create()  # as given: what copy helpers are handed
        settings = Settings.from_options(self.options)  # what the stages read
        rate = settings.bytes_per_second
        self._cancel = threading.Event()
        self._done = threading.Event()
        # what every stage of this run shares (engine/run.py)
        self.context = RunContext(
            source=os.path.abspath(os.fspath(source)),
            destination=os.path.abspath(os.fspath(destination)),
            settings=settings,
            filters=filters or FilterRules(),
            progress=Progress(sink=None if dry_run else on_event),
            cancelled=self._cancel.is_set,
            bucket=TokenBucket(UNLIMITED if rate is None else rate, clock),
            workers=workers if workers is not None else min(4, 2 * (os.cpu_count() or 1)),
            large_file_size=large_file_size,
            fsync=fsync,
            max_delete=max_delete,
            allow_empty_source=allow_empty_source,
            scope=scope,
            deletes_only=deletes_only,
        )
        self._helper_after = helper_after  # see engine/lister.Lister (-1: no listing helpers)
        self._verify_log: Spool | None = None
        self._on_phase = on_phase
        # POINT_IN_TIME_CONSISTENT's digests of unchanged inodes are kept here (hashcache.py)
        self._hash_cache_dir = hash_cache_dir
        # Added to the nice value of the threads `run()` starts (and so of the copier pools and
        # listing helpers they start): a server running transfers beside its API lowers them,
        # so requests are still answered promptly while a transfer takes every core.
        self._niceness = niceness
        self._dry_run = dry_run
        self._on_item = on_item
        self._journaled = frozenset(done)
        self._copy_helpers = copy_helpers
        self.helpers_started = 0  # copy helper processes this run started
        self.files_by_helpers = 0  # files they placed

    @property
    def source(self) -> str:
        return self.context.source

    @property
    def destination(self) -> str:
        return self.context.destination

    @property
    def settings(self) -> Settings:
        return self.context.settings

    @property
    def filters(self) -> FilterRules:
        return self.context.filters

    @property
    def progress(self) -> Progress:
        return self.context.progress

    # -- control (any thread) --------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        return self.progress.snapshot()

    def in_flight(self) -> list[tuple[str, int]]:
        """(path, size) of the files being copied or verified now (engine/progress.py)."""
        return self.progress.in_flight()

    @property
    def failures(self) -> list[FileFailure]:
        return list(self.progress.failures)

    @property
    def bytes_per_second(self) -> int:
        return self.context.bucket.bytes_per_second

    def set_bytes_per_second(self, bytes_per_second: int) -> None:
        if (
            isinstance(bytes_per_second, bool)
            or not isinstance(bytes_per_second, int)
            or (bytes_per_second != UNLIMITED and bytes_per_second <= 0)
        ):
            raise InvalidOptionsError(
                "BytesPerSecond must be -1 (unlimited) or a positive integer.",
                "Options.BytesPerSecond",
            )
        self.context.bucket.set_rate(bytes_per_second)

    def cancel(self) -> None:
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    # -- running ---------------------------------------------------------------------------------
    async def run(self) -> dict[str, Any]:
        """Run to the end on a thread of its own; cancelling the awaiting task cancels the
        transfer. (Its own thread, not one of anyio's shared workers, because `niceness` sticks
        to the thread.)"""
        import anyio
        import anyio.to_thread

        thread = threading.Thread(target=self._run_niced, name="dsl-transfer", daemon=True)
        thread.start()
        # the wait holds a limiter of its own, not one of the loop's shared worker tokens for
        # the whole run (an agent running more transfers than tokens would starve its reports)
        waiting = anyio.CapacityLimiter(1)
        try:
            await anyio.to_thread.run_sync(self._done.wait, abandon_on_cancel=True, limiter=waiting)
        except anyio.get_cancelled_exc_class():
            self.cancel()
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(self._done.wait, limiter=waiting)
            raise
        return self.progress.snapshot()

    def _run_niced(self) -> None:
        if self._niceness:
            tid = threading.get_native_id()  # on Linux, a thread's own priority
            try:
                os.setpriority(
                    os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + self._niceness
                )
            except OSError as exc:  # e.g. lowering the nice value needs privileges
                log.warning("transfer runs at the default priority: %s", exc)
        self.run_blocking()

    def run_blocking(self) -> dict[str, Any]:
        plan: Plan | None = None
        try:
            self.check_locations()
            plan = self._prepare()
            if self._dry_run:
                self._itemize(plan)
                self.progress.skip("Transfer")
                self.progress.skip("Verify")
            elif self._transfer(plan):
                self._verify(plan)
            self._finish()
        except TransferError as exc:  # incl. TransferCancelled
            self.progress.finish(exc.error_code, exc.error_detail)
        except LocationError as exc:
            self.progress.finish("LocationUnavailable", str(exc))
        except Exception as exc:  # a bug: report it as an error of the execution, log the trace
            log.exception("transfer %s -> %s failed unexpectedly", self.source, self.destination)
            self.progress.finish("InternalError", f"{type(exc).__name__}: {exc}")
        finally:
            if plan is not None:
                plan.close()
            self._done.set()
        return self.progress.snapshot()

    def check_locations(self) -> None:
        """Raise LocationError if the source or destination cannot be used at all."""
        if not os.path.isdir(self.source):
            what = "does not exist" if not os.path.lexists(self.source) else "is not a directory"
            raise LocationError(f"source {self.source} {what}", self.source)
        if not os.access(self.source, os.R_OK | os.X_OK):
            raise LocationError(f"source {self.source} is not readable", self.source)
        dst = self.destination
        if os.path.lexists(dst):
            if not os.path.isdir(dst) or os.path.islink(dst):
                raise LocationError(f"destination {dst} is not a directory", dst)
            if not os.access(dst, os.W_OK | os.X_OK):
                raise LocationError(f"destination {dst} is not writable", dst)
        elif not os.path.isdir(os.path.dirname(dst)):
            raise LocationError(f"the parent of destination {dst} does not exist", dst)
        if _inside(dst, self.source) or _inside(self.source, dst):
            raise LocationError("source and destination must not contain each other", dst)

    def _begin(self, phase: str) -> None:
        """Enter a phase; `on_phase` (e.g. the agent's immediate report) hears of it first."""
        self.progress.begin(phase)
        if self._on_phase is not None:
            self._on_phase(self.progress.status)

    def _prepare(self) -> Plan:
        self._begin("Prepare")
        manifest = self.filters if isinstance(self.filters, ManifestFilter) else None
        if manifest is not None:  # only the listed files are considered (engine/manifest.py)
            try:
                manifest.load(self.source, lambda p, why: self.progress.fail("Prepare", p, why))
            except ManifestError as exc:
                raise TransferError("ManifestError", str(exc)) from exc
        plan = Planner(self.context, helper_after=self._helper_after, done=self._journaled).run()
        if self.cancelled:
            raise TransferCancelled()
        self.progress.set_estimates(
            files=plan.files + plan.delete_items,
            nbytes=plan.bytes,
            deletes=plan.delete_items,
            listed={
                "AtSource": plan.listed_source if manifest is None else manifest.entries,
                "AtDestinationForDelete": plan.listed_destination,
            },
            folders=plan.folders + plan.delete_folders,
            folder_deletes=plan.delete_folders,
            folders_listed={
                "AtSource": plan.listed_source_folders,
                "AtDestinationForDelete": plan.listed_destination_folders,
            },
        )
        self.progress.end("Prepare", ok=self.progress.failed("Prepare") == 0)
        if plan.delete_items + plan.delete_folders and not self.context.allow_empty_source:
            self._refuse_empty_source()
        return plan

    def _refuse_empty_source(self) -> None:
        """An unmounted NAS looks exactly like an empty source: never mirror it."""
        fd = os.open(self.source, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            empty = not any(not is_temporary(name) for name in os.listdir(fd))
        finally:
            os.close(fd)
        if empty:
            raise TransferError(
                "SourceLocationEmpty",
                f"the source location {self.source} is empty while the destination is not; "
                "nothing was deleted (an unmounted file system looks like this). Allow it with "
                "--allow-empty-source.",
            )

    def _itemize(self, plan: Plan) -> None:
        from engine.itemize import Totals, itemize

        totals = Totals()
        emit = self._on_item or (lambda _line: None)
        for line in itemize(plan.actions, plan.deletes, totals):
            emit(line)
        emit(f"dry run: {totals}")

    def _transfer(self, plan: Plan) -> bool:
        self._begin("Transfer")
        context = self.context
        metadata = MetadataPolicy(context.settings)
        # ONLY_FILES_TRANSFERRED: the copier hashes what it writes, VERIFYING re-reads only that
        hashing = context.settings.verify is ONLY_FILES_TRANSFERRED
        self._verify_log = Spool() if hashing else None
        account = Accounting(context.bucket, context.progress, context.cancelled)
        copier = Copier(account, metadata, hashing=hashing, fsync=context.fsync)
        helpers = self._start_copy_helpers(plan, hashing=hashing)
        executor = Executor(context, copier, metadata, self._verify_log, helpers=helpers)
        self._count_journaled(plan, account)
        try:
            executor.run(plan)
        finally:
            self.files_by_helpers = executor.files_by_helpers
        if executor.deletes_stopped:
            raise TransferError(
                "MaxDeleteExceeded",
                f"more than {context.max_delete} items to delete "
                f"({plan.delete_items + plan.delete_folders} planned): deletes stopped after "
                f"{context.max_delete}",
            )
        ok = self.progress.failed("Transfer") == 0 and self.progress.failed("Delete") == 0
        self.progress.end("Transfer", ok)
        return ok and self.progress.failed("Prepare") == 0

    def _count_journaled(self, plan: Plan, account: Accounting) -> None:
        """Files an earlier run of this part placed (its journal, still matching here): counted
        as transferred once more, since a part's counters are those of its last run; with
        ONLY_FILES_TRANSFERRED their source is hashed now so that this run verifies them as if
        it had copied them (the earlier run may have stopped before its verification)."""
        if not plan.journaled:
            return
        verify_log = self._verify_log
        tree = DirTree(self.source) if verify_log is not None else None
        try:
            for rel, kind, size in plan.journaled:
                if self.cancelled:
                    raise TransferCancelled()
                digest: bytes | None = None
                if tree is not None and verify_log is not None:
                    parent, name = split(rel)
                    if kind == REG:
                        try:
                            size, digest = hash_file(name, tree.fd(parent))
                        except OSError as exc:
                            self.progress.fail("Transfer", rel, exc.strerror or str(exc))
                            continue
                    verify_log.append((rel, kind, size, digest))
                self.progress.transferred(rel, False, size if kind == REG else None, digest)
                account.count(size)  # placed by an earlier run: no data moves, nothing to pay
        finally:
            if tree is not None:
                tree.close()

    def _start_copy_helpers(self, plan: Plan, hashing: bool) -> CopyHelpers | None:
        count = self._copy_helpers
        if count is None:  # as the listing helpers: only beside an idle core (lister.spare_core)
            cores = usable_cores()
            idle = self.context.workers > 0 and spare_core(cores)
            count = auto_count(plan.files, cores) if idle else 0
        if count <= 0 or not sys.executable or self.context.bucket.limited:
            return None
        helpers = CopyHelpers(count, self.context, self.options, hashing=hashing)
        self.helpers_started = helpers.started
        if self._copy_helpers is not None:
            helpers.wait_ready()
        return helpers if helpers.started else None

    def _verify(self, plan: Plan) -> None:
        mode = self.settings.verify
        # the REMOVE pass (deletes_only) verifies nothing: the parts verified theirs
        if mode is VERIFY_NONE or self.context.deletes_only:
            self.progress.skip("Verify")
            return
        self._begin("Verify")
        from engine.verify import WholeTreeVerifier, verify_transferred

        if mode is ONLY_FILES_TRANSFERRED:
            assert self._verify_log is not None
            with self._verify_log:
                verify_transferred(self.context, self._verify_log)
        else:
            cache = self._open_hash_cache()
            try:
                metadata = MetadataPolicy(self.settings)
                WholeTreeVerifier(self.context, metadata, plan.never_skipped, cache).run()
            finally:
                if cache is not None:
                    cache.close()
        self.progress.end("Verify", ok=self.progress.failed("Verify") == 0)

    def _open_hash_cache(self) -> HashCache | None:
        if not self._hash_cache_dir:
            return None
        from engine.hashcache import HashCache

        return HashCache(self._hash_cache_dir)

    def _finish(self) -> None:
        p = self.progress
        failures = p.failures
        for phase, code, what in (
            ("Prepare", "PrepareFailed", "could not be listed or prepared"),
            ("Transfer", "TransferFailed", "could not be transferred"),
            ("Delete", "DeleteFailed", "could not be deleted"),
            ("Verify", "VerificationFailed", "failed verification"),
        ):
            count = p.failed(phase)
            if count:
                p.finish(code, result_detail(what, failures, phase, count))
                return
        p.finish()


def _inside(path: str, parent: str) -> bool:
    return path == parent or path.startswith(parent.rstrip("/") + "/")
