"""Manifests (`ManifestConfig`, `Format: CSV`): the exact list of files an execution considers.

DataSync's rules (user guide, "Transferring specific files or objects by using a manifest"):
one file per line, given by its full path relative to the source location; a directory cannot be
listed to mean its contents (use an include filter); an optional second column is an S3 object
version id (accepted and ignored for files); a path holding a comma, a quote or a line break is
quoted RFC 4180 style (`"a,b.txt"`, `"say ""hi"".txt"`, a quoted field spanning lines); UTF-8.

What this module adds where DataSync is silent, because here a path names a real file on disk:

- *The manifest itself is refused* (`ManifestError`, the execution fails before anything is
  copied) when it is not UTF-8, not well-formed CSV, has more than two columns, or lists a path
  that is empty, holds NUL, is absolute, climbs out with a `..` component, or exceeds DataSync's
  limits (4,096 bytes a path, 255 bytes a component). These are mistakes or attacks, not files.
  `count_entries` runs the reader once over the whole manifest, in constant memory, so the caller
  can refuse a bad manifest up front and learn `FilesListed.AtSource` at the same time.
- *An entry is refused on its own* (the caller counts it in `FilesFailed` and the task report, as
  DataSync reports items it could not transfer) when `resolve_entry` finds it missing at the
  source, a directory (or written with a trailing `/`), or reached through a symlinked parent.
  `resolve_entry` walks the path one component at a time below a directory fd with `O_NOFOLLOW`,
  so nothing outside the source location is ever looked at.

Entries are streamed: `read_manifest` is a generator over a binary file object, so a manifest of
millions of lines never sits in memory. Duplicated lines are yielded as they come.
"""

from __future__ import annotations

import csv
import enum
import io
import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

from engine.errors import DataSyncLocalError
from engine.filters import FilterRules
from engine.scan import open_at

__all__ = [
    "EntryKind",
    "ManifestEntry",
    "ManifestError",
    "ManifestFilter",
    "ResolvedEntry",
    "count_entries",
    "open_manifest",
    "read_manifest",
    "resolve_entry",
]

MAX_PATH_BYTES = 4096
MAX_COMPONENT_BYTES = 255


class ManifestError(DataSyncLocalError):
    """The manifest cannot be used at all; the message names the line and what is wrong."""


@dataclass(frozen=True)
class ManifestEntry:
    """One listed file: `path` is relative to the source location, `/`-separated, normalised
    (no `.` components, no repeated `/`); `directory` is True if it was written with a trailing
    `/`; `line` is where the record starts in the manifest (1-based)."""

    path: str
    line: int
    version_id: str | None = None
    directory: bool = False


class EntryKind(enum.Enum):
    FILE = "FILE"  # a regular file, symlink, device or other non-directory: transferable
    MISSING = "MISSING"
    DIRECTORY = "DIRECTORY"
    SYMLINKED_PARENT = "SYMLINKED_PARENT"  # a parent component is a symlink: never followed


@dataclass(frozen=True)
class ResolvedEntry:
    entry: ManifestEntry
    kind: EntryKind
    stat: os.stat_result | None = None

    @property
    def reason(self) -> str:
        """Why the entry is not transferred (empty for a FILE), as the log and report say it."""
        if self.kind is EntryKind.MISSING:
            return f"{self.entry.path}: listed in the manifest but not found at the source"
        if self.kind is EntryKind.DIRECTORY:
            return (
                f"{self.entry.path}: is a directory; a manifest lists files "
                "(use an include filter to transfer a directory's contents)"
            )
        if self.kind is EntryKind.SYMLINKED_PARENT:
            return (
                f"{self.entry.path}: a parent directory is a symbolic link, which is not followed"
            )
        return ""


def read_manifest(stream: BinaryIO, *, name: str = "manifest") -> Iterator[ManifestEntry]:
    """Yield the entries of a CSV manifest read from `stream` (binary), one at a time.

    Raises ManifestError (naming `name` and the line) at the first record that makes the whole
    manifest unusable. A UTF-8 byte-order mark at the start is accepted; blank lines are skipped.
    """
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", errors="strict", newline="")
    reader = csv.reader(text, strict=True)
    line = 1
    try:
        for row in reader:
            start, line = line, reader.line_num + 1
            if not row:
                continue
            yield _entry(row, start, name)
    except UnicodeDecodeError as exc:
        raise ManifestError(f"{name}: not UTF-8 near line {line}: {exc.reason}") from exc
    except csv.Error as exc:
        raise ManifestError(f"{name} line {line}: not valid CSV: {exc}") from exc
    finally:
        text.detach()  # leave the caller's stream open: it owns it


def _entry(row: list[str], line: int, name: str) -> ManifestEntry:
    where = f"{name} line {line}"
    if len(row) > 2:
        raise ManifestError(
            f"{where}: {len(row)} columns; a manifest line is a path and an optional version id "
            "(quote a path that holds a comma)"
        )
    raw = row[0]
    version = row[1] if len(row) == 2 and row[1] != "" else None
    if raw == "":
        raise ManifestError(f"{where}: the path is empty")
    if "\x00" in raw:
        raise ManifestError(f"{where}: the path holds a NUL character")
    if raw.startswith("/"):
        raise ManifestError(
            f"{where}: {raw!r} is absolute; paths are relative to the source location"
        )
    if len(raw.encode("utf-8")) > MAX_PATH_BYTES:
        raise ManifestError(f"{where}: the path is longer than {MAX_PATH_BYTES} bytes")
    parts = [p for p in raw.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise ManifestError(f"{where}: {raw!r} climbs out of the source location with '..'")
    if not parts:
        raise ManifestError(f"{where}: {raw!r} names the source location itself, not a file")
    for part in parts:
        if len(part.encode("utf-8")) > MAX_COMPONENT_BYTES:
            raise ManifestError(
                f"{where}: a path component is longer than {MAX_COMPONENT_BYTES} bytes"
            )
    return ManifestEntry(
        path="/".join(parts), line=line, version_id=version, directory=raw.endswith("/")
    )


def open_manifest(bucket_dir: str, object_path: str) -> BinaryIO:
    """Open `ManifestObjectPath` inside a mapped bucket's directory for reading.

    The key is walked one component at a time (`scan.open_at`: one plain name at a time with
    `O_NOFOLLOW`), so neither `..` nor a symlink can lead outside the bucket directory; a missing or unreadable object is a ManifestError
    naming it (the execution fails, as DataSync's does when it cannot read the manifest).
    """
    where = f"manifest {object_path!r}"
    parts = [p for p in object_path.split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        raise ManifestError(f"{where}: not an object key inside the bucket")
    fds: list[int] = []
    try:
        try:
            cur = os.open(bucket_dir, os.O_RDONLY | os.O_DIRECTORY)
        except OSError as exc:
            raise ManifestError(f"bucket directory {bucket_dir!r}: {exc.strerror}") from exc
        fds.append(cur)
        for part in parts[:-1]:
            try:
                cur = open_at(cur, part, os.O_RDONLY | os.O_DIRECTORY)
            except OSError as exc:
                raise ManifestError(f"{where}: cannot open {part!r}: {exc.strerror}") from exc
            fds.append(cur)
        try:
            fd = open_at(cur, parts[-1], os.O_RDONLY)
        except OSError as exc:
            raise ManifestError(f"{where}: {exc.strerror}") from exc
    finally:
        for opened in fds:
            os.close(opened)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise ManifestError(f"{where}: not a regular file")
    return os.fdopen(fd, "rb")


def count_entries(stream: BinaryIO, *, name: str = "manifest") -> int:
    """Read the whole manifest once (constant memory): its entry count, or ManifestError."""
    return sum(1 for _ in read_manifest(stream, name=name))


def resolve_entry(root_fd: int, entry: ManifestEntry) -> ResolvedEntry:
    """Look `entry` up below the directory `root_fd` without following any symlink."""
    *parents, leaf = entry.path.split("/")
    fds: list[int] = []
    try:
        cur = root_fd
        for part in parents:
            try:
                cur = open_at(cur, part, os.O_RDONLY | os.O_DIRECTORY)
            except OSError as exc:
                if _is_symlink(part, cur):
                    return ResolvedEntry(entry, EntryKind.SYMLINKED_PARENT)
                if isinstance(exc, FileNotFoundError | NotADirectoryError):
                    return ResolvedEntry(entry, EntryKind.MISSING)  # absent, or a file as parent
                raise
            fds.append(cur)
        try:
            st = os.stat(leaf, dir_fd=cur, follow_symlinks=False)
        except (FileNotFoundError, NotADirectoryError):
            return ResolvedEntry(entry, EntryKind.MISSING)
    finally:
        for fd in fds:
            os.close(fd)
    if stat.S_ISDIR(st.st_mode) or entry.directory:
        return ResolvedEntry(entry, EntryKind.DIRECTORY, st)
    return ResolvedEntry(entry, EntryKind.FILE, st)


def _is_symlink(name: str, dir_fd: int) -> bool:
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except OSError:
        return False


class ManifestFilter(FilterRules):
    """The task's filters narrowed to the files a manifest lists (what the planner, the verifier
    and the destination-only walk consult through `decide`).

    `load` runs once at the start of PREPARING: it streams the manifest, resolves every entry
    below the source root (`resolve_entry`), fails the entries that cannot be transferred
    (FilesFailed, phase Prepare, with `ResolvedEntry.reason`) and keeps the listed files and
    their ancestor directories in two sets, so the walk only descends where a listed file lies.
    Those sets are the one thing held per entry (a path string each): the tree walk needs to
    answer "is this listed?" for every item it meets. `entries` is FilesListed.AtSource.
    """

    def __init__(self, base: FilterRules, opener: Callable[[], BinaryIO], name: str) -> None:
        super().__init__()
        self.include, self.exclude = base.include, base.exclude
        self._base = base
        self._opener = opener
        self._name = name
        self._files: set[str] = set()
        self._dirs: set[str] = set()
        self.entries = 0

    @property
    def active(self) -> bool:
        return True

    def load(self, source_root: str, fail: Callable[[str, str], None]) -> None:
        """Read and resolve the manifest; `fail(path, reason)` for each untransferable entry.
        ManifestError if the manifest itself cannot be used."""
        root_fd = os.open(source_root, os.O_RDONLY | os.O_DIRECTORY)
        try:
            with self._opener() as stream:
                for entry in read_manifest(stream, name=self._name):
                    self.entries += 1
                    resolved = resolve_entry(root_fd, entry)
                    path = "/" + entry.path
                    if resolved.kind is not EntryKind.FILE:
                        fail(path, resolved.reason)
                        continue
                    self._files.add(path)
                    parts = entry.path.split("/")[:-1]
                    for i in range(1, len(parts) + 1):
                        self._dirs.add("/" + "/".join(parts[:i]))
        finally:
            os.close(root_fd)

    def decide(self, path: str, is_dir: bool, parent_included: bool) -> tuple[bool, bool]:
        if is_dir:
            return False, path in self._dirs and not self._base.excluded(path)
        # a listed file is still subject to the task's filters, judged on its whole path
        return path in self._files and self._base.selects(path), False

    def selects(self, path: str) -> bool:
        return path in self._files and self._base.selects(path)
