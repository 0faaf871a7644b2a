"""PREPARING: walk source and destination together and decide what each item needs.

The walk is rclone's march: one directory at a time, both sides listed and sorted, merged by
name. Each decision is an `Action` streamed to a `Spool`; deletions go to a second spool that is
only executed after every copy succeeded and only if the source was listed completely. On big
trees the listings come from helper processes reading ahead of the walk (engine/lister.py).
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import NamedTuple

from engine.lister import Lister
from engine.run import RunContext
from engine.scan import (
    BLK,
    CHR,
    DIR,
    FIFO,
    LNK,
    REG,
    SOCK,
    Entry,
    FastCompare,
    Roots,
    is_temporary,
    kind_of,
    list_dir,
    open_beneath,
    open_dir,
)
from engine.settings import ID_NONE
from engine.spool import Spool

__all__ = ["Action", "Op", "Plan", "Planner"]


class Op:
    MKDIR = "mkdir"  # create a directory (its metadata is applied after its contents)
    COPY = "copy"  # copy a regular file's data and metadata
    SYMLINK = "symlink"  # create a symbolic link (never followed)
    HARDLINK = "hardlink"  # link to the file already placed for the same source inode
    DEVICE = "device"  # mknod a character or block device
    META = "meta"  # update metadata of an existing item in place, no data rewritten
    DIRMETA = "dirmeta"  # restore a directory's metadata after its contents changed
    DELETE = "delete"  # remove a destination item absent from the source


# Action.extra of a MKDIR for a missing ancestor of a run's scope: created bare (its metadata is
# left for the run that owns it, which then counts it), see Planner `scope`
ANCESTOR = "ancestor"


class Action(NamedTuple):
    op: str
    rel: str  # path relative to the location root, leading "/"; "/" is the root itself
    kind: str
    mode: int
    uid: int
    gid: int
    size: int
    atime_ns: int
    mtime_ns: int
    extra: str | int | None = None  # symlink target, hard-link leader path, or device number
    replace: str | None = None  # kind of the destination item that must go first, if any
    counted: bool = True  # counts as a transferred item (False for DIRMETA restores)


def _action(op: str, rel: str, kind: str, st: os.stat_result, **kw: object) -> Action:
    return Action(
        op, rel, kind, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, st.st_size,
        st.st_atime_ns, st.st_mtime_ns, **kw,  # type: ignore[arg-type]
    )  # fmt: skip


@dataclass
class Plan:
    actions: Spool = field(default_factory=lambda: Spool(Action._make))
    deletes: Spool = field(default_factory=lambda: Spool(Action._make))
    files: int = 0  # files to transfer (any non-directory item)
    folders: int = 0  # folders to transfer (the root directory is counted in neither)
    bytes: int = 0
    listed_source: int = 0
    listed_destination: int = 0
    listed_source_folders: int = 0
    listed_destination_folders: int = 0
    delete_items: int = 0  # counted file deletes (temporaries excluded)
    delete_folders: int = 0
    source_complete: bool = True
    helped: int = 0  # directories listed by helper processes (engine/lister.py)
    helpers_started: int = 0  # helper processes started (whether they got to help or not)
    never_skipped: set[str] = field(default_factory=set)
    # files found finished at the destination that an earlier run of the same work item had
    # journaled (Planner `done`): (rel, kind, size), counted as transferred without a copy
    journaled: list[tuple[str, str, int]] = field(default_factory=list)

    def close(self) -> None:
        self.actions.close()
        self.deletes.close()


def _count_listed_destination(plan: Plan, st: os.stat_result) -> None:
    if stat.S_ISDIR(st.st_mode):
        plan.listed_destination_folders += 1
    else:
        plan.listed_destination += 1


_Dir = tuple[str, os.stat_result, bool, bool]  # a directory still to walk, see Planner.run


class Planner:
    def __init__(
        self,
        context: RunContext,
        *,
        helper_after: int | None = None,
        done: Collection[str] = (),
    ) -> None:
        """The run's `scope`: walk only that part of the tree (engine/split.py), creating its
        missing ancestors bare; its `deletes_only`: the REMOVE pass of a split execution, which
        walks the whole trees but plans and counts only the deletions (the parts copied and
        counted the rest). `done`: files ("/a/b") an earlier run of the same part finished,
        which are counted as transferred (not copied again) when the destination still matches;
        `helper_after`: see engine/lister.Lister (-1: no listing helpers)."""
        settings = context.settings
        self.source = context.source
        self.destination = context.destination
        self.filters = filters = context.filters
        self.progress = context.progress
        self.cancelled = context.cancelled
        self.changed_only = settings.changed_only
        self.never = not settings.overwrite
        self.remove = settings.remove_deleted
        self.devices = settings.preserve_devices
        self.check_mode = settings.permissions
        self.check_uid = settings.uid is not ID_NONE
        self.check_gid = settings.gid is not ID_NONE
        self.check_mtime = settings.mtime
        # Unchanged files can be passed over without a closer look (see scan.list_pair).
        self._fast: FastCompare = (
            (self.check_uid, self.check_gid)
            if self.changed_only and not self.never and not filters.active and self.check_mtime
            else None
        )
        self._helper_after = helper_after
        scope = context.scope
        self.scope = None if scope is None or scope.whole else scope
        self.done = frozenset(done)
        self.deletes_only = context.deletes_only
        if self.done or self.deletes_only:
            self._fast = None  # journaled files must reach the merge; so must nothing else
        self._roots = Roots(self.source, self.destination)  # replaced by the lister's in run()
        # (st_dev, st_ino) of a multiply-linked source file -> (leader rel, leader's dst inode)
        self._links: dict[tuple[int, int], tuple[str, int | None]] = {}

    # -- the walk --------------------------------------------------------------------------------
    def run(self) -> Plan:
        plan = Plan()
        src_root_st = os.lstat(self.source)
        try:
            dst_root_st: os.stat_result | None = os.lstat(self.destination)
        except FileNotFoundError:
            dst_root_st = None
        # The root is the location itself: created or updated, but counted as no item.
        if dst_root_st is None:
            plan.actions.append(_action(Op.MKDIR, "/", DIR, src_root_st, counted=False))
        elif (
            self._meta_differs(src_root_st, dst_root_st)
            and not self.deletes_only
            and (self.scope is None or self.scope.path == "")
        ):
            plan.actions.append(_action(Op.DIRMETA, "/", DIR, src_root_st, counted=False))
        # stack of (rel dir, its source lstat, dst exists, included by an ancestor's include)
        stack: list[_Dir] = [("", src_root_st, dst_root_st is not None, False)]
        shallow = self.scope is not None and not self.scope.recursive
        # Listing helpers pay off by passing over unchanged files themselves; into a destination
        # that does not exist yet there is nothing to pass over, and decoding their answers costs
        # this thread about what listing the source itself does (D2: 0.31 s either way), so a
        # fresh copy lists here and leaves the other cores to the copy helpers.
        helper_after = -1 if dst_root_st is None else self._helper_after
        with Lister(self.source, self.destination, self._fast, helper_after=helper_after) as lister:
            self._roots = lister.roots
            if self.scope is not None and self.scope.path:
                stack = self._enter(plan, lister, self.scope.rel, dst_root_st is not None)
            while stack:
                if self.cancelled():
                    break
                subdirs = self._merge_dir(plan, lister, *stack.pop(), shallow=shallow)
                stack.extend(reversed(subdirs))
                if lister.room > 0:
                    self._read_ahead(stack, lister)
            plan.helped = lister.helped
            plan.helpers_started = lister.helpers_started
        return plan

    def _enter(self, plan: Plan, lister: Lister, rel: str, dst_root: bool) -> list[_Dir]:
        """The walk of a scope `rel` ("/a/b") other than the root: its missing ancestors are
        created bare at the destination, then its parent is merged for its one entry `rel` (so
        this run, as the parent's walk would have, counts it and creates or updates it). Returns
        the stack to walk: [rel], or [] if `rel` is gone or filtered out."""
        included = self.filters.above(rel)
        if included is None:
            return []
        parts = [p for p in rel.split("/") if p]
        parent = ""
        src_fd = os.dup(self._roots.fd(0))
        dst_fd = os.dup(self._roots.fd(1)) if dst_root else None
        try:
            for name in parts[:-1]:
                parent = f"{parent}/{name}"
                try:
                    child = open_dir(name, src_fd)
                except OSError:
                    return []  # gone since the split: nothing of it to copy
                os.close(src_fd)
                src_fd = child
                dst_st = None
                if dst_fd is not None:
                    with contextlib.suppress(FileNotFoundError):
                        dst_st = os.stat(name, dir_fd=dst_fd, follow_symlinks=False)
                if dst_fd is not None and dst_st is not None and stat.S_ISDIR(dst_st.st_mode):
                    child = open_dir(name, dst_fd)
                    os.close(dst_fd)
                    dst_fd = child
                    continue
                replace = None if dst_st is None else kind_of(dst_st)
                if not self.deletes_only:
                    bare = _action(Op.MKDIR, parent, DIR, os.fstat(src_fd), extra=ANCESTOR,
                                   replace=replace, counted=False)  # fmt: skip
                    plan.actions.append(bare)
                if dst_fd is not None:
                    os.close(dst_fd)
                    dst_fd = None
            parent_st = os.fstat(src_fd)
            parent_dst_st = os.fstat(dst_fd) if dst_fd is not None else None
        except OSError as exc:
            self.progress.fail("List", parent or "/", f"cannot open: {exc.strerror}", folder=True)
            return []
        finally:
            os.close(src_fd)
            if dst_fd is not None:
                os.close(dst_fd)
        # Writing the entry into its parent changes the parent's mtime. Put the source's back
        # only where the parent already had it (its own part ran): else that part is still to
        # come and must find the parent different, to update and count it as one walk would.
        restore = parent == "" or (
            parent_dst_st is not None and not self._meta_differs(parent_st, parent_dst_st)
        )
        return self._merge_dir(
            plan, lister, parent, parent_st, parent_dst_st is not None, included,
            only=parts[-1], restore=restore,
        )  # fmt: skip

    @staticmethod
    def _read_ahead(stack: list[_Dir], lister: Lister) -> None:
        """Ask the listing helpers for the next directories the walk will pop."""
        room = lister.room
        for i in range(len(stack) - 1, max(-1, len(stack) - 1 - 4 * lister.ahead), -1):
            rel, _st, dst_exists, _included = stack[i]
            if lister.want(rel, dst_exists):
                room -= 1
                if room <= 0:
                    return

    def _merge_dir(
        self,
        plan: Plan,
        lister: Lister,
        rel_dir: str,
        dir_st: os.stat_result,
        dst_exists: bool,
        included: bool,
        *,
        shallow: bool = False,
        only: str | None = None,
        restore: bool = True,
    ) -> list[_Dir]:
        """Merge one directory. `shallow`: its non-directory entries only (a non-recursive
        scope); `only`: that one entry of it, nothing else on either side (the entry of a
        scope); `restore`: put the directory's metadata back if the merge wrote into it."""
        pair = lister.get(rel_dir, dst_exists)
        if pair.failed_side is not None:
            if pair.failed_side == "source":
                plan.source_complete = False
            self.progress.fail(
                "List", rel_dir or "/", f"cannot list {pair.failed_side}: {pair.error}", folder=True
            )
            return []
        src_entries, dst_entries = pair.source, pair.destination
        if only is not None:
            src_entries = [e for e in src_entries if e.name == only]
            dst_entries = [e for e in dst_entries if e.name == only]
        if not self.deletes_only:
            plan.listed_source += pair.unchanged  # passed over: equal on both sides
        if self.remove:
            plan.listed_destination += pair.unchanged
        sources = not self.deletes_only  # plan and count the source's items

        subdirs: list[_Dir] = []
        touched = False
        i = j = 0
        n_src, n_dst = len(src_entries), len(dst_entries)
        while i < n_src or j < n_dst:
            s = src_entries[i] if i < n_src else None
            d = dst_entries[j] if j < n_dst else None
            if d is not None and (s is None or d.name < s.name):
                j += 1
                if not shallow or kind_of(d.st) != DIR:
                    touched |= self._destination_only(plan, rel_dir, d, included)
                continue
            assert s is not None
            i += 1
            if d is not None and d.name == s.name:
                j += 1
            else:
                d = None
            if is_temporary(s.name):
                continue  # a temporary in the source tree is never copied or counted
            rel = f"{rel_dir}/{s.name}"
            kind = kind_of(s.st)
            if shallow and kind == DIR:
                continue  # its own part's
            selected, walk = self.filters.decide(rel, kind == DIR, included)
            if not selected and not walk:
                continue
            if d is not None and is_temporary(d.name):
                d = None
            if not sources:  # the REMOVE pass: only the destination's side is counted
                if self.remove and selected and d is not None:
                    if kind == DIR:
                        plan.listed_destination_folders += 1
                    else:
                        plan.listed_destination += 1
                if kind == DIR and d is not None and kind_of(d.st) == DIR:
                    subdirs.append(
                        (rel, s.st, True, included or (selected and self.filters.active))
                    )
                continue
            if selected:
                if kind == DIR:
                    plan.listed_source_folders += 1
                    if self.remove and d is not None:
                        plan.listed_destination_folders += 1
                else:
                    plan.listed_source += 1
                    if self.remove and d is not None:
                        plan.listed_destination += 1
            if kind == DIR:
                dst_is_dir = d is not None and kind_of(d.st) == DIR
                if d is not None and not dst_is_dir and self.never:
                    self._skip(plan, rel, folder=True)
                    continue
                if not dst_is_dir:
                    plan.actions.append(
                        _action(Op.MKDIR, rel, DIR, s.st, replace=kind_of(d.st) if d else None)
                    )
                    plan.folders += 1
                    touched = True
                elif not self.never and (
                    not self.changed_only or self._meta_differs(s.st, d.st)  # type: ignore[union-attr]
                ):
                    plan.actions.append(_action(Op.DIRMETA, rel, DIR, s.st))
                    plan.folders += 1
                subdirs.append(
                    (rel, s.st, dst_is_dir, included or (selected and self.filters.active))
                )
                continue
            if not selected:
                continue
            touched |= self._plan_item(plan, rel, kind, s, d)

        if touched and not self.never and restore:
            # Writing into an existing directory changes its mtime: put the source's back.
            plan.actions.append(_action(Op.DIRMETA, rel_dir or "/", DIR, dir_st, counted=False))
        return subdirs

    # -- one source item -------------------------------------------------------------------------
    def _plan_item(self, plan: Plan, rel: str, kind: str, s: Entry, d: Entry | None) -> bool:
        """Decide for a non-directory source item; True if the destination directory changes."""
        st = s.st
        if kind in (FIFO, SOCK) or (kind in (CHR, BLK) and not self.devices) or kind == "unknown":
            self.progress.skipped(rel, False, f"a {kind} is not transferred")
            return False
        dkind = kind_of(d.st) if d is not None else None
        if (
            rel in self.done
            and d is not None
            and dkind == kind
            and (kind != REG or not self._data_differs(st, d.st))
        ):
            # finished by an earlier run of this part (its journal): counted, not copied again
            size = st.st_size if kind == REG else 0
            plan.journaled.append((rel, kind, size))
            plan.files += 1
            plan.bytes += size
            return False
        if d is not None and self.never:
            self._skip(plan, rel)
            return False
        replace = dkind if d is not None else None

        if kind == REG and st.st_nlink > 1:
            key = (st.st_dev, st.st_ino)
            leader = self._links.get(key)
            if leader is not None:
                leader_rel, leader_dst_ino = leader
                if (
                    d is not None
                    and dkind == REG
                    and leader_dst_ino is not None
                    and d.st.st_ino == leader_dst_ino
                ):
                    return False  # already the same hard link at the destination
                plan.actions.append(
                    _action(Op.HARDLINK, rel, REG, st, extra=leader_rel, replace=replace)
                )
                plan.files += 1
                return True
            unchanged = d is not None and dkind == REG and not self._data_differs(st, d.st)
            self._links[key] = (rel, d.st.st_ino if unchanged and d is not None else None)

        if d is None or dkind != kind or not self.changed_only:
            return self._create(plan, rel, kind, st, replace)
        # Same kind on both sides, TransferMode=CHANGED: compare.
        if kind == REG:
            if self._data_differs(st, d.st):
                return self._create(plan, rel, kind, st, replace)
        elif kind == LNK:
            if self._readlink(0, rel) != self._readlink(1, rel):
                return self._create(plan, rel, kind, st, replace)
        elif st.st_rdev != d.st.st_rdev:
            return self._create(plan, rel, kind, st, replace)
        if self._meta_differs(st, d.st, symlink=kind == LNK):
            plan.actions.append(_action(Op.META, rel, kind, st))
            plan.files += 1
        return False

    def _create(
        self, plan: Plan, rel: str, kind: str, st: os.stat_result, replace: str | None
    ) -> bool:
        if kind == REG:
            plan.actions.append(_action(Op.COPY, rel, kind, st, replace=replace))
            plan.bytes += st.st_size
        elif kind == LNK:
            target = self._readlink(0, rel)
            if target is None:
                self.progress.fail("Prepare", rel, "cannot read symbolic link")
                return False
            plan.actions.append(_action(Op.SYMLINK, rel, kind, st, extra=target, replace=replace))
        else:
            plan.actions.append(
                _action(Op.DEVICE, rel, kind, st, extra=st.st_rdev, replace=replace)
            )
        plan.files += 1
        return True

    def _skip(self, plan: Plan, rel: str, folder: bool = False) -> None:
        self.progress.skipped(rel, folder, "exists at the destination (OverwriteMode=NEVER)")
        plan.never_skipped.add(rel)

    # -- destination-only items ------------------------------------------------------------------
    def _destination_only(self, plan: Plan, rel_dir: str, d: Entry, included: bool) -> bool:
        if is_temporary(d.name):
            # Left behind by an interrupted run: removed (through a directory fd), never counted.
            rel = f"{rel_dir}/{d.name}"
            plan.actions.append(_action(Op.DELETE, rel, kind_of(d.st), d.st, counted=False))
            return True
        if not self.remove:
            return False
        rel = f"{rel_dir}/{d.name}"
        selected, walk = self.filters.decide(rel, kind_of(d.st) == DIR, included)
        if not selected and not walk:
            return False  # excluded items at the destination are left alone
        _count_listed_destination(plan, d.st)
        return self._plan_delete(plan, rel, d.st, selected, included)

    def _plan_delete(
        self, plan: Plan, rel: str, st: os.stat_result, selected: bool, included: bool
    ) -> bool:
        """Emit deletes for `rel` (children first). True if `rel` itself will be removed."""
        kind = kind_of(st)
        if kind != DIR:
            if selected:
                plan.deletes.append(_action(Op.DELETE, rel, kind, st))
                plan.delete_items += 1
            return selected
        try:
            fd = open_beneath(self._roots.fd(1), rel)
            try:
                children = list_dir(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            self.progress.fail("List", rel, f"cannot list destination: {exc.strerror}", folder=True)
            return False
        all_removed = True
        sub_included = included or (selected and self.filters.active)
        for child in children:
            child_rel = f"{rel}/{child.name}"
            if is_temporary(child.name):
                plan.deletes.append(_action(Op.DELETE, child_rel, kind_of(child.st), child.st,
                                            counted=False))  # fmt: skip
                continue
            c_sel, c_walk = self.filters.decide(child_rel, kind_of(child.st) == DIR, sub_included)
            if not c_sel and not c_walk:
                all_removed = False
                continue
            _count_listed_destination(plan, child.st)
            all_removed &= self._plan_delete(plan, child_rel, child.st, c_sel, sub_included)
        if selected and all_removed:
            plan.deletes.append(_action(Op.DELETE, rel, DIR, st))
            plan.delete_folders += 1
            return True
        return False

    # -- comparisons -----------------------------------------------------------------------------
    def _data_differs(self, s: os.stat_result, d: os.stat_result) -> bool:
        return s.st_size != d.st_size or s.st_mtime_ns != d.st_mtime_ns

    def _meta_differs(self, s: os.stat_result, d: os.stat_result, symlink: bool = False) -> bool:
        if self.check_uid and s.st_uid != d.st_uid:
            return True
        if self.check_gid and s.st_gid != d.st_gid:
            return True
        if not symlink and self.check_mode and stat.S_IMODE(s.st_mode) != stat.S_IMODE(d.st_mode):
            return True
        return self.check_mtime and s.st_mtime_ns != d.st_mtime_ns

    def _readlink(self, side: int, rel: str) -> str | None:
        """The target of the symlink `rel` of the source (0) or destination (1), read through
        its parent directory's fd."""
        parent, _, name = rel.rpartition("/")
        try:
            fd = open_beneath(self._roots.fd(side), parent)
            try:
                return os.readlink(name, dir_fd=fd)
            finally:
                os.close(fd)
        except OSError:
            return None
