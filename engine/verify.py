"""VERIFYING.

* ONLY_FILES_TRANSFERRED: re-read every file this run wrote and compare its xxh3-128 with the
  digest taken from the source while copying; check that every other item written is there.
* POINT_IN_TIME_CONSISTENT: walk both (filtered) trees again and compare everything: presence,
  kind, size, content (both sides hashed), link targets, devices, and the metadata the options
  preserve. Items this run deliberately left alone (OverwriteMode=NEVER) are not held against it;
  extra destination items only count when PreserveDeletedFiles=REMOVE should have removed them.
"""

from __future__ import annotations

import os
import stat
import threading
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor

from engine.dirs import DirTree, split
from engine.errors import TransferCancelled
from engine.events import FileFacts
from engine.fileio import hash_file
from engine.hashcache import HashCache, key_of
from engine.metadata import MetadataPolicy
from engine.progress import Progress
from engine.run import RunContext
from engine.scan import DIR, LNK, REG, Entry, is_temporary, kind_of, list_dir
from engine.xattrs import at

__all__ = ["WholeTreeVerifier", "verify_transferred"]


def verify_transferred(
    context: RunContext, records: Iterable[tuple[str, str, int, bytes | None]]
) -> None:
    """Check every item this run wrote. Files of the run's `large_file_size` or more are hashed
    on a pool of its `workers` threads (xxh3 releases the GIL), small ones inline, as the copier
    does."""
    progress, cancelled = context.progress, context.cancelled
    workers, large_file_size = context.workers, context.large_file_size
    pool = ThreadPoolExecutor(workers, "dsl-verify") if workers > 0 else None
    slots = threading.BoundedSemaphore(max(1, workers) * 2)
    try:
        with DirTree(context.destination) as tree:
            for record in records:
                if cancelled():
                    raise TransferCancelled()
                rel, kind, size, _ = record
                parent, name = split(rel) if rel != "/" else ("", ".")
                try:
                    dir_fd = tree.fd(parent)
                except OSError as exc:
                    progress.fail(
                        "Verify", rel, f"cannot read destination: {exc.strerror}", kind == DIR
                    )
                    continue
                if pool is not None and kind == REG and size >= large_file_size:
                    own_fd = os.dup(dir_fd)  # the tree's fd moves on; the job keeps this one
                    slots.acquire()
                    future = pool.submit(_verify_one, own_fd, name, record, progress, True)
                    future.add_done_callback(lambda _f: slots.release())
                else:
                    _verify_one(dir_fd, name, record, progress, False)
    finally:
        if pool is not None:
            pool.shutdown(wait=True)


def _verify_one(
    dir_fd: int,
    name: str,
    record: tuple[str, str, int, bytes | None],
    progress: Progress,
    close_dir: bool,
) -> None:
    rel, kind, size, digest = record
    try:
        if kind == REG and digest is not None:
            progress.working(rel, size)
            try:
                got_size, got_digest = hash_file(name, dir_fd)
            finally:
                progress.worked(rel)
            if got_size != size:
                progress.fail("Verify", rel, f"size mismatch: wrote {size}, found {got_size}")
                return
            if got_digest != digest:
                progress.fail("Verify", rel, "checksum mismatch between source and destination")
                return
        elif kind_of(os.stat(name, dir_fd=dir_fd, follow_symlinks=False)) != kind:
            progress.fail("Verify", rel, f"expected a {kind} at the destination", kind == DIR)
            return
    except OSError as exc:
        progress.fail("Verify", rel, f"cannot read destination: {exc.strerror}", kind == DIR)
        return
    finally:
        if close_dir:
            os.close(dir_fd)
    if rel != "/":  # the root is the location, not an item of it
        progress.verified(rel, kind == DIR, size if kind == REG else None, digest)


class WholeTreeVerifier:
    """POINT_IN_TIME_CONSISTENT: both trees walked again and compared item by item."""

    def __init__(
        self,
        context: RunContext,
        metadata: MetadataPolicy,
        excused: set[str],
        cache: HashCache | None = None,
    ) -> None:
        """`excused`: items the run left alone on purpose (OverwriteMode=NEVER); `cache`: the
        digests of unchanged inodes (engine/hashcache.py)."""
        settings = context.settings
        self.source = context.source
        self.destination = context.destination
        self.filters = context.filters
        self.metadata = metadata
        self.progress = context.progress
        self.cancelled = context.cancelled
        self.excused = excused
        # extra destination items only count when REMOVE should have removed them
        self.extras_are_errors = settings.remove_deleted
        self.cache = cache
        # a work item's part (engine/split.py): the entry of its directory and what it covers
        scope = context.scope
        self.scope = None if scope is None or scope.whole else scope
        # what is never transferred by design: FIFOs, sockets, and devices unless preserved
        devices = settings.preserve_devices
        self.left_out = {"fifo", "sock", "unknown"} | (set() if devices else {"chr", "blk"})
        self.src_tree = DirTree(context.source)
        self.dst_tree = DirTree(context.destination)

    def mismatch(
        self,
        rel: str,
        reason: str,
        folder: bool = False,
        sides: tuple[FileFacts, FileFacts] | None = None,
    ) -> None:
        """A verification failure; `sides` (source, destination) go to the event sink."""
        source, destination = sides if sides is not None else (None, None)
        self.progress.fail("Verify", rel, reason, folder, source, destination)

    def run(self) -> None:
        try:
            self._run()
        finally:
            self.src_tree.close()
            self.dst_tree.close()

    def _run(self) -> None:
        try:
            src_root, dst_root = os.lstat(self.source), os.lstat(self.destination)
        except OSError as exc:
            self.mismatch("/", f"cannot stat location root: {exc.strerror}")
            return
        stack: list[tuple[str, bool]] = [("", False)]
        scope = self.scope
        if scope is None or scope.path == "":
            self.compare_items("/", Entry("", src_root), Entry("", dst_root))  # counted as no item
        else:
            included = self.filters.above(scope.rel)
            if included is None:
                return
            parent, _, name = scope.rel.rpartition("/")
            stack = self.compare_dir(parent, included, only=name)
        if scope is not None and not scope.recursive:
            for rel_dir, included in stack:
                self.compare_dir(rel_dir, included, shallow=True)
            return
        while stack:
            if self.cancelled():
                raise TransferCancelled()
            rel_dir, included = stack.pop()
            stack.extend(reversed(self.compare_dir(rel_dir, included)))

    def compare_dir(
        self, rel_dir: str, included: bool, *, only: str | None = None, shallow: bool = False
    ) -> list[tuple[str, bool]]:
        """Compare one directory's entries: `only` that one (a scope's own entry), `shallow`
        its non-directories only (a non-recursive scope). Returns the subdirectories to walk."""
        try:
            src_list = list_dir(self.src_tree.fd(rel_dir))
            dst_list = list_dir(self.dst_tree.fd(rel_dir))
        except OSError as exc:
            self.mismatch(rel_dir or "/", f"cannot list directory: {exc.strerror}", True)
            return []
        src = {e.name: e for e in src_list if not is_temporary(e.name)}
        dst = {e.name: e for e in dst_list if not is_temporary(e.name)}
        if only is not None:
            src = {k: v for k, v in src.items() if k == only}
            dst = {k: v for k, v in dst.items() if k == only}
        if self.cache is not None:  # this directory's digests in one query per side
            self.cache.prefetch(
                [e.st for e in (*src.values(), *dst.values()) if stat.S_ISREG(e.st.st_mode)]
            )
        subdirs: list[tuple[str, bool]] = []
        for name in sorted(src.keys() | dst.keys()):
            rel = f"{rel_dir}/{name}"
            s, d = src.get(name), dst.get(name)
            probe = s or d
            assert probe is not None
            is_dir = kind_of(probe.st) == DIR
            if shallow and is_dir:
                continue  # its own part's
            selected, walk = self.filters.decide(rel, is_dir, included)
            if (not selected and not walk) or rel in self.excused:
                continue
            if s is None:
                if self.extras_are_errors and selected:
                    self.mismatch(rel, "present at the destination but not at the source", is_dir)
                continue
            if selected and kind_of(s.st) in self.left_out:
                continue  # never transferred by design (counted as skipped)
            if d is None:
                if selected:
                    self.mismatch(rel, "missing at the destination", is_dir)
                continue
            if selected:
                ok, digest = self.compare_items(rel, s, d)
                if ok:
                    regular = stat.S_ISREG(s.st.st_mode)
                    self.progress.verified(rel, is_dir, s.st.st_size if regular else None, digest)
            if is_dir and kind_of(d.st) == DIR:
                subdirs.append((rel, included or (selected and self.filters.active)))
        return subdirs

    def compare_items(self, rel: str, s: Entry, d: Entry) -> tuple[bool, bytes | None]:
        """(matches, the file's xxh3-128 when one was computed)."""
        skind, dkind = kind_of(s.st), kind_of(d.st)
        sides = (FileFacts.of(s.st), FileFacts.of(d.st))
        if skind != dkind:
            self.mismatch(
                rel,
                f"kind differs: {skind} at the source, {dkind} at the destination",
                skind == DIR,
                sides,
            )
            return False, None
        if skind in ("chr", "blk") and s.st.st_rdev != d.st.st_rdev:
            self.mismatch(rel, "device numbers differ", sides=sides)
            return False, None
        reason = self.metadata_difference(s.st, d.st, skind)
        if reason is None and self.metadata.xattrs is not None and skind in (DIR, REG):
            reason = self.xattr_difference(rel)
        if reason:
            self.mismatch(rel, reason, skind == DIR, sides)
            return False, None
        if skind not in (LNK, REG):
            return True, None
        parent, name = split(rel)
        try:
            src_dir, dst_dir = self.src_tree.fd(parent), self.dst_tree.fd(parent)
            if skind == LNK:
                if os.readlink(name, dir_fd=src_dir) != os.readlink(name, dir_fd=dst_dir):
                    self.mismatch(rel, "symbolic link targets differ", sides=sides)
                    return False, None
                return True, None
            if s.st.st_size != d.st.st_size:
                self.mismatch(rel, f"size differs: {s.st.st_size} != {d.st.st_size}", sides=sides)
                return False, None
            self.progress.working(rel, s.st.st_size)
            try:
                _, src_digest = self.digest(name, src_dir, s.st)
                _, dst_digest = self.digest(name, dst_dir, d.st)
            finally:
                self.progress.worked(rel)
            if src_digest != dst_digest:
                self.mismatch(
                    rel,
                    "checksum mismatch between source and destination",
                    sides=(FileFacts.of(s.st, src_digest), FileFacts.of(d.st, dst_digest)),
                )
                return False, None
            return True, src_digest
        except OSError as exc:
            self.mismatch(rel, f"cannot read: {exc.strerror}", sides=sides)
            return False, None

    def digest(self, name: str, dir_fd: int, st: os.stat_result) -> tuple[int, bytes]:
        """(size, xxh3-128) of a listed file: from the verification cache (engine/hashcache.py)
        when this inode is in the state it was hashed in, else read, and stored if the file
        stayed in its listed state while it was read (a rename or write moves the ctime)."""
        cache = self.cache
        if cache is None:
            return hash_file(name, dir_fd)
        digest = cache.get(st)
        if digest is not None:
            return st.st_size, digest
        before = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        result = hash_file(name, dir_fd)
        after = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        if key_of(before) == key_of(after) == key_of(st) and result[0] == st.st_size:
            cache.put(st, result[1])
        return result

    def xattr_difference(self, rel: str) -> str | None:
        """Extended attributes and ACLs (engine/xattrs.py), when permissions are preserved."""
        assert self.metadata.xattrs is not None
        parent, name = split(rel) if rel != "/" else ("", "")
        try:
            return self.metadata.xattrs.difference(
                at(self.src_tree.fd(parent), name), at(self.dst_tree.fd(parent), name)
            )
        except OSError as exc:
            return f"cannot read extended attributes: {exc.strerror}"

    def metadata_difference(self, s: os.stat_result, d: os.stat_result, kind: str) -> str | None:
        m = self.metadata
        if m.compare_owner:
            uid, gid = m.owner(s.st_uid, s.st_gid)
            if uid != -1 and uid != d.st_uid:
                return f"owner differs: uid {uid} expected, {d.st_uid} found"
            if gid != -1 and gid != d.st_gid:
                return f"group differs: gid {gid} expected, {d.st_gid} found"
        if kind != LNK and m.permissions and stat.S_IMODE(s.st_mode) != stat.S_IMODE(d.st_mode):
            return (
                f"permissions differ: {stat.S_IMODE(s.st_mode):o} at the source, "
                f"{stat.S_IMODE(d.st_mode):o} at the destination"
            )
        if m.mtime and s.st_mtime_ns != d.st_mtime_ns:
            return "modification times differ"
        return None
