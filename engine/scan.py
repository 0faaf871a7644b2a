"""Listing directories: sorted (name, lstat) pairs, symlinks never followed.

Listings are per directory and sorted by name, so the source and destination of a directory can be
merged in one pass (rclone's march) and memory stays proportional to the widest directory, not the
tree. `list_pair` lists both sides of one directory and passes over the regular files that are
equal on both, which is most of a re-sync.

Loaded on its own by a bare interpreter (see `main`), this module is the listing helper that
`engine.lister` starts in other processes, so big trees are listed on several cores. It therefore
imports only the standard library, and starts in ~25 ms; see `serve` for its protocol.
"""

from __future__ import annotations

import contextlib
import errno
import marshal
import os
import signal
import stat
import struct
import sys
import zlib
from typing import Any, BinaryIO, NamedTuple

__all__ = [
    "TEMP_PREFIX",
    "Entry",
    "Pair",
    "Roots",
    "is_temporary",
    "kind_of",
    "list_dir",
    "list_pair",
    "list_pair_beneath",
    "open_at",
    "open_beneath",
    "open_dir",
    "openat2",
    "reset_openat2",
    "serve",
    "temp_check",
]

# Temporaries of the atomic placement are named TEMP_PREFIX + 16 hex digits (pid, counter) + 8
# hex digits of a check over those 16 and TEMP_MARK, always short enough for any file system.
# They are never copied, counted or deleted as user files; a later run in the same destination
# removes the ones a crash left behind. The check is what makes a name the engine's: a user's
# file that merely starts with the prefix (1 in 4 billion names of the right shape pass it) is an
# ordinary file, copied and kept like any other.
TEMP_PREFIX = ".~dsl."
TEMP_MARK = b"datasync-local temporary v2"
_TEMP_LEN = len(TEMP_PREFIX) + 24


def temp_check(body: str) -> str:
    """The 8 hex digits that follow the 16 of a temporary's `body`."""
    return f"{zlib.crc32(TEMP_MARK + body.encode('ascii')):08x}"


REG, DIR, LNK, CHR, BLK, FIFO, SOCK = "file", "dir", "symlink", "chr", "blk", "fifo", "sock"
_KINDS = {
    stat.S_IFREG: REG,
    stat.S_IFDIR: DIR,
    stat.S_IFLNK: LNK,
    stat.S_IFCHR: CHR,
    stat.S_IFBLK: BLK,
    stat.S_IFIFO: FIFO,
    stat.S_IFSOCK: SOCK,
}


class Entry(NamedTuple):
    name: str
    st: os.stat_result


def kind_of(st: os.stat_result) -> str:
    return _KINDS.get(stat.S_IFMT(st.st_mode), "unknown")


def is_temporary(name: str) -> bool:
    """Whether the engine made `name` (see TEMP_PREFIX): prefix, length, lower hex and check."""
    if len(name) != _TEMP_LEN or not name.startswith(TEMP_PREFIX):
        return False
    body, check = name[len(TEMP_PREFIX) : -8], name[-8:]
    if not all(c in _HEX for c in body):
        return False
    return temp_check(body) == check


_HEX = frozenset("0123456789abcdef")


_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC

# -- kernel-enforced containment: openat2(2) -------------------------------------------------------
# Linux >= 5.6 resolves a relative path beneath a directory fd with RESOLVE_BENEATH (no "..", no
# absolute path, no magic link leads out) and RESOLVE_NO_SYMLINKS (no symlink in *any* component,
# not just the last as O_NOFOLLOW): the kernel, not our walk, guarantees that an open stays inside
# the root, as rsync's 2026 fixes do. Where the syscall is missing (ENOSYS) or filtered (EPERM
# from a seccomp profile), opens fall back to a walk one component at a time with O_NOFOLLOW,
# which gives the same answer without the kernel's word. DATASYNC_LOCAL_NO_OPENAT2=1 forces the
# walk (tests run both). The syscall is reached through ctypes, imported on first use only.
RESOLVE_NO_MAGICLINKS, RESOLVE_NO_SYMLINKS, RESOLVE_BENEATH = 0x02, 0x04, 0x08
_RESOLVE = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS
_SYS_OPENAT2 = 437  # the same number on every Linux architecture but alpha (unified table)
_OPEN_HOW_SIZE = 24  # struct open_how {u64 flags; u64 mode; u64 resolve}, version 0
_CHUNK = 3800  # bytes of path per openat2 call, below PATH_MAX (4096) with room for one name


class _Openat2:
    """The openat2 syscall through ctypes, with one prepared `struct open_how` per (flags, mode)."""

    def __init__(self) -> None:
        import ctypes

        class OpenHow(ctypes.Structure):
            _fields_ = (
                ("flags", ctypes.c_uint64),
                ("mode", ctypes.c_uint64),
                ("resolve", ctypes.c_uint64),
            )

        syscall = ctypes.CDLL(None, use_errno=True).syscall
        syscall.restype = ctypes.c_long
        syscall.argtypes = (
            ctypes.c_long, ctypes.c_int, ctypes.c_char_p, ctypes.POINTER(OpenHow), ctypes.c_size_t
        )  # fmt: skip
        self._syscall = syscall
        self._how_type = OpenHow
        self._get_errno = ctypes.get_errno
        self._hows: dict[tuple[int, int], Any] = {}

    def __call__(self, dir_fd: int, path: str, flags: int, mode: int = 0) -> int:
        how = self._hows.get((flags, mode))
        if how is None:
            how = self._hows[(flags, mode)] = self._how_type(flags, mode, _RESOLVE)
        encoded = os.fsencode(path)
        for _ in range(8):  # EAGAIN: a concurrent rename raced the resolution; retry a few times
            fd: int = self._syscall(_SYS_OPENAT2, dir_fd, encoded, how, _OPEN_HOW_SIZE)
            if fd >= 0:
                return fd
            err = self._get_errno()
            if err != errno.EAGAIN:
                break
        raise OSError(err, os.strerror(err), path)


_openat2_state: list[_Openat2 | None] = []  # [] until probed; [None] when unusable


def openat2() -> _Openat2 | None:
    """The openat2 syscall if this kernel has it and lets us use it (probed once), else None."""
    if _openat2_state:
        return _openat2_state[0]
    call: _Openat2 | None = None
    if sys.platform == "linux" and os.environ.get("DATASYNC_LOCAL_NO_OPENAT2", "") in ("", "0"):
        try:
            call = _Openat2()
            root = os.open("/", _DIR_FLAGS)
            try:
                os.close(call(root, ".", _DIR_FLAGS))
            finally:
                os.close(root)
        except (ImportError, OSError, AttributeError):
            call = None  # ENOSYS (kernel < 5.6), EPERM (seccomp), no ctypes: the walk
    _openat2_state[:] = [call]
    return call


def reset_openat2() -> None:
    """Probe again on the next open (after DATASYNC_LOCAL_NO_OPENAT2 changed: tests)."""
    _openat2_state.clear()


def open_at(dir_fd: int, name: str, flags: int, mode: int = 0) -> int:
    """Open one entry `name` of the directory `dir_fd`, never through a symlink. A name that is
    not one plain component ("", ".", "..", or with a "/") is refused with EXDEV, as
    RESOLVE_BENEATH would.

    Why plain openat with O_NOFOLLOW and not openat2: for one plain component the kernel's
    resolution is a single lookup in `dir_fd`, so RESOLVE_BENEATH has nothing to refuse (no
    "..", no absolute path, no intermediate component) and RESOLVE_NO_SYMLINKS /
    RESOLVE_NO_MAGICLINKS refuse exactly what O_NOFOLLOW refuses: the entry itself being a
    (magic) link (ELOOP; EEXIST with O_CREAT|O_EXCL). The containment comes from `dir_fd`,
    which `open_beneath` opened beneath its root with openat2. The answers are the same and the
    open is ~1.2 µs cheaper (no ctypes call, no open_how), paid twice per copied file."""
    if not name or name in (".", "..") or "/" in name:
        raise OSError(errno.EXDEV, "not a name inside the directory", name)
    return os.open(name, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=dir_fd)


def open_dir(path: str, dir_fd: int | None = None) -> int:
    """Open a directory, never through a symlink, without bumping its atime where allowed: a root
    by its path (`dir_fd` None: the operator's path, symlinks above its last component allowed),
    or one entry of the directory `dir_fd` (see `open_at`)."""
    if dir_fd is None:
        try:
            return os.open(path, _DIR_FLAGS | os.O_NOATIME)
        except PermissionError:
            return os.open(path, _DIR_FLAGS)
    try:
        return open_at(dir_fd, path, _DIR_FLAGS | os.O_NOATIME)
    except PermissionError:  # O_NOATIME on a directory we do not own (not root)
        return open_at(dir_fd, path, _DIR_FLAGS)


class Roots:
    """The source and destination roots, opened once (lazily: the destination may not exist
    yet), that every directory is opened beneath (see `open_beneath`)."""

    def __init__(self, source: str, destination: str) -> None:
        self.paths = (source, destination)
        self.fds: list[int | None] = [None, None]

    def fd(self, side: int) -> int:
        """0: the source root, 1: the destination root."""
        fd = self.fds[side]
        if fd is None:
            fd = self.fds[side] = open_dir(self.paths[side])
        return fd

    def close(self) -> None:
        for i, fd in enumerate(self.fds):
            if fd is not None:
                os.close(fd)
                self.fds[i] = None


def _chunks(parts: list[str]) -> list[str]:
    """`parts` joined with "/" into as few paths as fit below PATH_MAX each."""
    chunks: list[str] = []
    current: list[str] = []
    size = 0
    for part in parts:
        if current and size + len(part) + 1 > _CHUNK:
            chunks.append("/".join(current))
            current, size = [], 0
        current.append(part)
        size += len(part) + 1
    if current:
        chunks.append("/".join(current))
    return chunks


def open_beneath(root: int, rel: str) -> int:
    """A new fd of the directory `rel` ("/a/b"; "" is the root) below the directory fd `root`,
    never through a symlink in any component and never outside `root`: one openat2 call per
    PATH_MAX worth of path where the kernel has it (a path of any length), else one O_NOFOLLOW
    open per component. A directory swapped for a symlink fails (ELOOP/ENOTDIR/EXDEV) instead of
    leading outside the root. The caller closes it."""
    parts = [p for p in rel.split("/") if p]
    if any(p in (".", "..") for p in parts):
        raise OSError(errno.EXDEV, "a path leading outside the root", rel)
    call = openat2()
    steps = _chunks(parts) if call is not None else parts
    fd = os.dup(root)
    for step in steps:
        try:
            if call is not None:
                try:
                    child = call(fd, step, _DIR_FLAGS | os.O_NOATIME)
                except PermissionError:
                    child = call(fd, step, _DIR_FLAGS)
            else:
                child = open_dir(step, fd)
        finally:
            os.close(fd)
        fd = child
    return fd


def list_pair_beneath(roots: Roots, rel: str, dst_exists: bool, fast: FastCompare) -> Pair:
    """`list_pair` of the directory `rel` of both roots, opened beneath them."""
    try:
        src_fd = open_beneath(roots.fd(0), rel)
    except OSError as exc:
        return Pair([], [], 0, "source", exc.strerror or str(exc))
    try:
        if not dst_exists:
            return list_pair(src_fd, None, fast)
        try:
            dst_fd = open_beneath(roots.fd(1), rel)
        except OSError as exc:
            try:
                return Pair(list_dir(src_fd), [], 0, "destination", exc.strerror or str(exc))
            except OSError as src_exc:
                return Pair([], [], 0, "source", src_exc.strerror or str(src_exc))
        try:
            return list_pair(src_fd, dst_fd, fast)
        finally:
            os.close(dst_fd)
    finally:
        os.close(src_fd)


def _lstat_all(path: str | int) -> dict[str, os.stat_result]:
    """name -> lstat of every entry of a directory (a path, or an open directory fd that stays
    open). Raises OSError if the directory can't be read.

    Listing through a directory fd makes each lstat an fstatat relative to it (no path walk per
    entry). Entries that vanish between readdir and lstat are dropped (they are gone).
    """
    stats: dict[str, os.stat_result] = {}
    fd = open_dir(path) if isinstance(path, str) else path
    try:
        with os.scandir(fd) as it:  # scandir works on a duplicate and rewinds it when done
            for de in it:
                try:
                    stats[de.name] = de.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue
    finally:
        if isinstance(path, str):
            os.close(fd)
    return stats


def _sorted(stats: dict[str, os.stat_result]) -> list[Entry]:
    return [Entry(name, stats[name]) for name in sorted(stats)]


def list_dir(path: str | int) -> list[Entry]:
    """Sorted entries of a directory (a path, or an open directory fd) with their lstat."""
    return _sorted(_lstat_all(path))


# -- both sides of one directory ------------------------------------------------------------------
class Pair(NamedTuple):
    """The two listings of one directory, less the unchanged files `list_pair` passed over."""

    source: list[Entry]
    destination: list[Entry]
    unchanged: int  # regular files equal on both sides, left out of both lists
    failed_side: str | None = None  # "source" or "destination" if that side could not be listed
    error: str = ""  # why (its strerror)


# (check uid, check gid) when unchanged files may be passed over, None when every entry counts
FastCompare = tuple[bool, bool] | None


def list_pair(source: str | int, destination: str | int | None, fast: FastCompare) -> Pair:
    """List `source` and (unless None) `destination`. With `fast`, pass over the files that need
    nothing: single-link regular files equal in mode, size, mtime and (if checked) owner on both
    sides. Names starting with "." are never passed over (temporaries need the planner).

    Most entries of a re-sync end here, so the comparison is written out inline."""
    try:
        src = _lstat_all(source)
    except OSError as exc:
        return Pair([], [], 0, "source", exc.strerror or str(exc))
    if destination is None:
        return Pair(_sorted(src), [], 0)
    try:
        dst = _lstat_all(destination)
    except OSError as exc:
        return Pair(_sorted(src), [], 0, "destination", exc.strerror or str(exc))
    if fast is None or not dst:
        return Pair(_sorted(src), _sorted(dst), 0)
    check_uid, check_gid = fast
    kept: list[str] = []
    unchanged = 0
    for name, s in src.items():
        d = dst.get(name)
        if (
            d is not None
            and s.st_mode == d.st_mode
            and s.st_mode & 0o170000 == stat.S_IFREG
            and s.st_nlink == 1
            and s.st_size == d.st_size
            and s.st_mtime_ns == d.st_mtime_ns
            and (s.st_uid == d.st_uid or not check_uid)
            and (s.st_gid == d.st_gid or not check_gid)
            and name[0] != "."
        ):
            del dst[name]
            unchanged += 1
        else:
            kept.append(name)
    kept.sort()
    return Pair([Entry(name, src[name]) for name in kept], _sorted(dst), unchanged)


# -- the helper process's side of the protocol (engine/lister.py has the other side) --------------
# argv:     SCAN_PY SRC DST FAST, FAST being "-" (no passing over) or "<check uid 0|1><check gid 0|1>".
# Request:  REQUEST (path length, destination exists 0|1) + the directory's path relative to both
#           roots, os.fsencode()d ("" is the root itself).
# Response: RESPONSE (length) + marshal of (source, destination, unchanged, failed side, error),
#           each side a list of (name, stat_fields(st)).
# The helper's first frame is marshal of its (file system encoding, errors), so the parent can
# refuse a helper that would decode names differently from itself.
REQUEST = struct.Struct("<IB")
RESPONSE = struct.Struct("<Q")


def stat_fields(st: os.stat_result) -> tuple[int | float, ...]:
    """All of a stat_result's fields, in the order `os.stat_result(fields)` takes them back."""
    return (
        st.st_mode, st.st_ino, st.st_dev, st.st_nlink, st.st_uid, st.st_gid, st.st_size,
        int(st.st_atime), int(st.st_mtime), int(st.st_ctime), st.st_atime, st.st_mtime,
        st.st_ctime, st.st_atime_ns, st.st_mtime_ns, st.st_ctime_ns, st.st_blksize,
        st.st_blocks, st.st_rdev,
    )  # fmt: skip


def encode_fast(fast: FastCompare) -> str:
    return "-" if fast is None else f"{int(fast[0])}{int(fast[1])}"


def _decode_fast(text: str) -> FastCompare:
    return None if text == "-" else (text[0] == "1", text[1] == "1")


def _write_frame(out: BinaryIO, payload: Any) -> None:
    blob = marshal.dumps(payload)
    out.write(RESPONSE.pack(len(blob)) + blob)
    out.flush()


def serve(source: str, destination: str, fast: FastCompare, inp: BinaryIO, out: BinaryIO) -> None:
    """Answer listing requests, in the order they come, until the requests end."""
    _write_frame(out, (sys.getfilesystemencoding(), sys.getfilesystemencodeerrors()))
    roots = Roots(source, destination)
    while True:
        header = inp.read(REQUEST.size)
        if len(header) < REQUEST.size:
            return  # the parent is done (or gone)
        size, dst_exists = REQUEST.unpack(header)
        rel = os.fsdecode(inp.read(size))
        pair = list_pair_beneath(roots, rel, bool(dst_exists), fast)
        _write_frame(
            out,
            (
                [(e.name, stat_fields(e.st)) for e in pair.source],
                [(e.name, stat_fields(e.st)) for e in pair.destination],
                pair.unchanged,
                pair.failed_side,
                pair.error,
            ),
        )


def main() -> None:
    """The helper's entry point: `python -c BOOT scan.py SRC DST FAST` (see engine/lister.py)."""
    # The parent alone decides when a helper ends (it closes the pipes or kills it), so a terminal's
    # ^C, which reaches the whole process group, is the parent's to handle; a closed pipe means
    # the parent is gone, and nobody is waiting for answers.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with contextlib.suppress(BrokenPipeError):
        serve(
            sys.argv[2], sys.argv[3], _decode_fast(sys.argv[4]), sys.stdin.buffer, sys.stdout.buffer
        )
