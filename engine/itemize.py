"""A dry run's report: each action of a `Plan` as one line in the style of `rsync -i`.

    >f+++++++++ a/new.txt         a file the destination lacks, copied
    >f.st...... a/changed.txt     a file whose size or mtime differs, copied again
    >f+++++++++ a/x (replaces a dir)
    cd+++++++++ a/dir/            a directory created
    cL+++++++++ a/link -> target  a symbolic link created
    cD+++++++++ a/dev             a device created
    hf+++++++++ a/b => a/leader   a hard link to a file placed in this run
    .f..po..... a/f               metadata only (permissions, owner or times), no data
    .d..po..... a/dir/            a directory's metadata
    *deleting   a/gone            removed (PreserveDeletedFiles=REMOVE)

The flags are coarser than rsync's (the plan says what changes, not which of size or mtime
did): `st` means "size or mtime", `po` "permissions, owner or times". Temporaries left by a
crashed run are cleaned up silently, as in a real run, and are not listed.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from engine.plan import Action, Op
from engine.scan import DIR

__all__ = ["Totals", "itemize"]


@dataclass
class Totals:
    copied: int = 0  # new files, links and devices
    updated: int = 0  # existing files whose data is rewritten
    metadata: int = 0  # metadata-only updates
    folders: int = 0  # directories created
    deleted: int = 0
    bytes: int = 0

    def __str__(self) -> str:
        return (
            f"{self.copied} to create, {self.updated} to update, {self.metadata} metadata only, "
            f"{self.folders} folders to create, {self.deleted} to delete, "
            f"{self.bytes:,} bytes to copy"
        )


def _line(a: Action, totals: Totals) -> str | None:
    name = a.rel.lstrip("/") or "."
    suffix = "/" if a.kind == DIR else ""
    if a.op == Op.COPY:
        totals.bytes += a.size
        if a.replace == "file":
            totals.updated += 1
            return f">f.st...... {name}"
        totals.copied += 1
        return f">f+++++++++ {name}" + (f" (replaces a {a.replace})" if a.replace else "")
    if a.op == Op.MKDIR:
        totals.folders += 1
        return f"cd+++++++++ {name}/" + (f" (replaces a {a.replace})" if a.replace else "")
    if a.op == Op.SYMLINK:
        totals.copied += 1
        return f"cL+++++++++ {name} -> {a.extra}"
    if a.op == Op.DEVICE:
        totals.copied += 1
        return f"cD+++++++++ {name}"
    if a.op == Op.HARDLINK:
        totals.copied += 1
        return f"hf+++++++++ {name} => {str(a.extra).lstrip('/')}"
    if a.op in (Op.META, Op.DIRMETA) and a.counted:
        totals.metadata += 1
        return f".{'d' if a.kind == DIR else 'f'}..po..... {name}{suffix}"
    if a.op == Op.DELETE and a.counted:
        totals.deleted += 1
        return f"*deleting   {name}{suffix}"
    return None  # a restore of a directory's times after writing into it, a stale temporary


def itemize(actions: Iterable[Action], deletes: Iterable[Action], totals: Totals) -> Iterator[str]:
    """The plan's lines, in the order a run would carry them out (deletes after copies)."""
    for source in (actions, deletes):
        for action in source:
            line = _line(action, totals)
            if line is not None:
                yield line
