"""Small files copied by helper processes, so a fresh copy of many small files uses every core.

Why processes: copying a small file is ~14 system calls (open, create, copy_file_range, fstat,
metadata, rename) and almost all of its time is kernel time, which two processes do in
parallel (D2 in two processes: ~0.55× the time of one). Threads do not help: each of those
calls hands the GIL to the other thread and back, which made small files ~2.5× slower on two
cores (BENCHMARKS.md).

What a helper does is exactly what the transfer thread does for a file (`Copier.copy`: a
temporary beside the final name, the torn-source check, metadata through the open fd, the
rename), on directories it opens itself beneath the two roots (`scan.open_beneath`: openat2
with RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS), so containment, atomic placement and torn-file
detection are the same code. The transfer thread keeps everything else: the plan, the counters
and events (it counts a helper's files when their answer comes), the failures, directories,
links, deletes and the token bucket: helpers only get files while the transfer is not
throttled, and only small ones in small batches (`BATCH_FILES`, `BATCH_BYTES`), so a rate set
mid-run applies to everything but those few in-flight batches.

A helper that cannot start, dies or answers garbage costs nothing but time: the files it was
given are copied by the transfer thread (copying again is safe: temporary + rename).

Protocol (marshal frames, each a little-endian u64 length + payload, over the helper's pipes):
the helper's first frame is READY; then per request `(rel_dir, [(name, replace), ...])` one
answer `[(size, digest, None) | (0, None, reason), ...]` in the same order. Requests end when
the pipe closes; the helper finishes the batch in hand and exits.
"""

from __future__ import annotations

import contextlib
import json
import logging
import marshal
import os
import select
import signal
import struct
import subprocess
import sys
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any, BinaryIO

if TYPE_CHECKING:  # a helper process starts on this module alone: it imports what it uses late
    from engine.options import Options
    from engine.run import RunContext

__all__ = ["AUTO_AFTER", "BATCH_BYTES", "BATCH_FILES", "CopyHelpers", "HelperAnswer", "auto_count"]

log = logging.getLogger(__name__)

BATCH_FILES = 64  # files per request: large enough to amortise a frame, small for a quick stop
BATCH_BYTES = 1 << 20  # ... and at most this much data, so a new rate limit is soon in force
IN_FLIGHT = 2  # requests per helper sent and not yet answered
# Files in a plan before helpers are worth their start (~0.1 s of another core, while this
# thread copies). A re-sync's few hundred changed files, one or two per directory, are not:
# D2 with 1% changed took 1.12x the time (and 1.17x the CPU) with a helper as without.
AUTO_AFTER = 2000
MAX_HELPERS = 3
READY = "ready"
_FRAME = struct.Struct("<Q")

# A helper is this interpreter in isolated mode (no environment, no user site) running main()
# below, with the directory this `engine` package was loaded from first on its path: the same
# code as the parent's, whatever the helper's default path holds.
_BOOT = "import sys; sys.path.insert(0, sys.argv[1]); from engine.copyhelpers import main; main()"

Request = tuple[str, list[tuple[str, str | None]]]  # (rel_dir, [(name, replace)])
Result = tuple[int, bytes | None, str | None]  # (size, digest, None) or (0, None, reason)


def auto_count(small_files: int, cores: int) -> int:
    """How many helpers a plan with `small_files` small copies gets when nobody said: one per
    core beside the transfer thread's, none for a small plan or on one core."""
    if small_files < AUTO_AFTER or not sys.executable:
        return 0
    return max(0, min(MAX_HELPERS, cores - 1))


def _write_frame(out: BinaryIO, payload: Any) -> None:
    blob = marshal.dumps(payload)
    out.write(_FRAME.pack(len(blob)) + blob)
    out.flush()


def _read_exactly(inp: IO[bytes], size: int) -> bytes:
    """`size` bytes, from a buffered stream or from an unbuffered pipe (which returns what is
    there); fewer only at the end of the stream."""
    data = inp.read(size)
    if data is None or len(data) >= size:
        return data or b""
    parts = [data]
    got = len(data)
    while got < size:
        more = inp.read(size - got)
        if not more:
            break
        parts.append(more)
        got += len(more)
    return b"".join(parts)


def _read_frame(inp: IO[bytes]) -> Any:
    """The next frame's payload; EOFError when the stream ends (cleanly or not)."""
    header = _read_exactly(inp, _FRAME.size)
    if len(header) < _FRAME.size:
        raise EOFError("the stream ended")
    (size,) = _FRAME.unpack(header)
    blob = _read_exactly(inp, size)
    if len(blob) < size:
        raise EOFError("the stream ended inside a frame")
    return marshal.loads(blob)


class HelperFailed(Exception):
    pass


@dataclass
class HelperAnswer:
    """A request answered: what it carried (the caller's) and one `Result` per file."""

    tag: Any
    results: list[Result]


@dataclass
class _Helper:
    proc: subprocess.Popen[bytes]
    ready: bool = False
    asked: deque[tuple[Any, int]] = field(default_factory=deque)  # (tag, files) in order

    @property
    def stdout(self) -> IO[bytes]:
        assert self.proc.stdout is not None
        return self.proc.stdout

    def fileno(self) -> int:
        return self.stdout.fileno()


class CopyHelpers:
    """The parent's side: start helpers, hand them batches, collect their answers."""

    def __init__(self, count: int, context: RunContext, options: Options, hashing: bool) -> None:
        """`count` helpers for the run of `context`; each gets the run's `options` (it makes
        its own Settings from them: Options is what crosses the process boundary)."""
        settings = json.dumps(
            {
                "options": options.to_dict(),
                "task_mode": options.task_mode,
                "hashing": hashing,
                "fsync": context.fsync,
            }
        )
        package_parent = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        source, destination = context.source, context.destination
        argv = [sys.executable, "-I", "-c", _BOOT, package_parent, source, destination, settings]
        self._helpers: list[_Helper] = []
        self.started = 0
        self.failed: list[tuple[Any, int]] = []  # (tag, files) of requests a dead helper held
        for _ in range(count):
            try:
                # Unbuffered: the answers are waited for with select(), which cannot see what a
                # buffered reader has already read ahead from the pipe.
                proc = subprocess.Popen(
                    argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0
                )
            except OSError as exc:
                log.warning("copying here: cannot start a copy helper: %s", exc)
                break
            self._helpers.append(_Helper(proc))
            self.started += 1

    @property
    def running(self) -> int:
        return len(self._helpers)

    @property
    def pending(self) -> int:
        """Requests sent and not yet answered."""
        return sum(len(h.asked) for h in self._helpers)

    def wait_ready(self) -> None:
        """Wait until every helper has greeted (or failed): deterministic hand-outs, for tests
        and an explicitly asked-for count."""
        for _ in range(len(self._helpers)):
            self._greet(wait=True)

    def _greet(self, wait: bool = False) -> None:
        waiting = [h for h in self._helpers if not h.ready]
        if not waiting:
            return
        for helper in select.select(waiting, [], [], None if wait else 0)[0]:
            try:
                if _read_frame(helper.stdout) != READY:
                    raise HelperFailed("it greeted with something else")
            except (EOFError, ValueError, HelperFailed) as exc:
                self._abandon(helper, f"it did not start: {exc}")
                continue
            helper.ready = True

    def send(self, tag: Any, rel_dir: str, items: Sequence[tuple[str, str | None]]) -> bool:
        """Give a batch of files of one directory to the least busy ready helper with room;
        False if none has room (the caller copies them itself)."""
        self._greet()
        ready = [h for h in self._helpers if h.ready and len(h.asked) < IN_FLIGHT]
        if not ready:
            return False
        helper = min(ready, key=lambda h: len(h.asked))
        request: Request = (rel_dir, list(items))
        blob = marshal.dumps(request)
        assert helper.proc.stdin is not None
        try:
            helper.proc.stdin.write(_FRAME.pack(len(blob)) + blob)
            helper.proc.stdin.flush()
        except (OSError, ValueError) as exc:
            self._abandon(helper, f"cannot send it a request: {exc}")
            return False
        helper.asked.append((tag, len(items)))
        return True

    def answers(self, wait: bool) -> list[HelperAnswer]:
        """The answers that are there (with `wait`, at least one if any request is pending)."""
        busy = [h for h in self._helpers if h.asked]
        if not busy:
            return []
        readable = select.select(busy, [], [], None if wait else 0)[0]
        out: list[HelperAnswer] = []
        for helper in readable:
            tag, files = helper.asked[0]
            try:
                results = _read_frame(helper.stdout)
                if not isinstance(results, list) or len(results) != files:
                    raise ValueError("an answer of the wrong shape")
            except (EOFError, ValueError, TypeError) as exc:
                self._abandon(helper, f"unreadable answer: {exc}")
                continue
            helper.asked.popleft()
            out.append(HelperAnswer(tag, results))
        return out

    def _abandon(self, helper: _Helper, why: str) -> None:
        """Stop using a helper; what it was asked and did not answer goes to `failed`, for the
        caller to copy itself."""
        log.warning("copying here what a copy helper was given: %s", why)
        self.failed.extend(helper.asked)
        helper.asked.clear()
        self._helpers.remove(helper)
        _stop(helper, kill=True)

    def close(self, wait: float = 5.0) -> None:
        """End every helper: close its requests so it finishes the batch in hand and exits (a
        cancelled transfer leaves no temporary behind), killing it after `wait` seconds."""
        helpers, self._helpers = self._helpers, []
        for helper in helpers:
            with contextlib.suppress(OSError):
                if helper.proc.stdin is not None:
                    helper.proc.stdin.close()
        for helper in helpers:
            try:
                helper.proc.wait(wait)
            except subprocess.TimeoutExpired:
                helper.proc.kill()
            _stop(helper, kill=False)


def _stop(helper: _Helper, kill: bool) -> None:
    if kill:
        with contextlib.suppress(OSError):
            helper.proc.kill()
    for pipe in (helper.proc.stdin, helper.proc.stdout):
        with contextlib.suppress(OSError):
            if pipe is not None:
                pipe.close()
    helper.proc.wait()


# -- the helper process ---------------------------------------------------------------------------
class _Bytes:
    """Stands in for Progress in a helper's Copier: the parent counts bytes from the answers."""

    def add_bytes(self, n: int) -> None:
        pass


def serve(source: str, destination: str, settings: dict[str, Any], inp: BinaryIO,
          out: BinaryIO) -> None:  # fmt: skip
    """Answer copy requests, in the order they come, until the requests end."""
    from engine.accounting import Accounting
    from engine.copier import Copier
    from engine.metadata import MetadataPolicy
    from engine.options import Options
    from engine.scan import Roots, open_beneath
    from engine.settings import Settings
    from engine.throttle import UNLIMITED, TokenBucket

    options = Options.create(settings["options"], settings["task_mode"])
    copier = Copier(
        Accounting(TokenBucket(UNLIMITED), _Bytes(), cancelled=lambda: False),
        MetadataPolicy(Settings.from_options(options)),
        hashing=bool(settings["hashing"]),
        fsync=bool(settings["fsync"]),
    )
    roots = Roots(source, destination)
    _write_frame(out, READY)
    while True:
        try:
            rel_dir, items = _read_frame(inp)
        except EOFError:
            return  # the parent is done (or gone)
        results: list[Result] = []
        try:
            src_dir = open_beneath(roots.fd(0), rel_dir)
        except OSError as exc:
            _write_frame(out, [(0, None, exc.strerror or str(exc))] * len(items))
            continue
        try:
            dst_dir = open_beneath(roots.fd(1), rel_dir)
        except OSError as exc:
            os.close(src_dir)
            _write_frame(out, [(0, None, exc.strerror or str(exc))] * len(items))
            continue
        try:
            for name, replace in items:
                try:
                    size, digest = copier.copy(src_dir, dst_dir, name, replace)
                except OSError as exc:
                    results.append((0, None, exc.strerror or str(exc)))
                else:
                    results.append((size, digest, None))
        finally:
            os.close(src_dir)
            os.close(dst_dir)
        _write_frame(out, results)


def main() -> None:
    """The helper's entry point (see `_BOOT`): argv is package dir, SRC, DST, settings JSON."""
    # The parent alone decides when a helper ends (it closes the requests or kills it): a
    # terminal's ^C reaches the whole process group and is the parent's to handle.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    source, destination, settings = sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
    with contextlib.suppress(BrokenPipeError):
        serve(source, destination, settings, sys.stdin.buffer, sys.stdout.buffer)
