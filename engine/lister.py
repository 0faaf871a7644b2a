"""Both sides of the directories PREPARING walks, listed ahead by helper processes.

A re-sync that finds nothing to do is nothing but listing two trees, and lstat-ing an entry costs
~5 µs of a core in Python. Helper *threads* do not help (every lstat hands the GIL back and
forth); rsync splits the work across processes, and so do we. Once a walk proves big enough to
be worth it (`helper_after` entries), helper processes (a bare interpreter running
engine/scan.py, standard library only) list the directories the planner says it will walk next,
both sides, and pass over the unchanged files themselves; the planner only decodes what is left
(~1.5 µs an entry) and merges it. Small trees never start a helper. Anything that goes wrong
with one (it cannot start, dies, or would decode names differently) only means its directories
are listed here, as before.

Memory stays bounded: at most `ahead` directories per helper are requested and not yet taken.
"""

from __future__ import annotations

import logging
import marshal
import os
import select
import subprocess
import sys
from collections import deque
from types import TracebackType
from typing import Any

from engine import scan
from engine.scan import (
    REQUEST,
    RESPONSE,
    Entry,
    FastCompare,
    Pair,
    Roots,
    encode_fast,
    list_pair_beneath,
)

__all__ = ["HELPER_AFTER", "Lister", "spare_core", "usable_cores"]

log = logging.getLogger(__name__)

HELPER_AFTER = 2048  # entries listed here before helpers are worth starting (~25 ms, meanwhile
# the planner goes on listing by itself)
AHEAD = 8  # directories per helper requested and not yet taken
MAX_HELPERS = 4


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def spare_core(cores: int, load: float | None = None) -> bool:
    """Whether a core is left idle for a helper: the 1-minute load average (`load`, else the
    kernel's) is below `cores` less half of one.

    Why: helpers cost CPU of their own (their start, and each answer framed and decoded; D2's
    no-op: 0.88 s of CPU with two against 0.63 s alone) that buys wall time only from a core
    nobody else wants. On a machine already busy (load 12 on 2 cores) they made the no-op slower
    as well as dearer (wall 2.9 s against 2.4 s alone), so there the planner lists alone."""
    if load is None:
        try:
            load = os.getloadavg()[0]
        except OSError:  # no load average (some containers): assume the cores are ours
            return cores > 1
    return cores > 1 and load < cores - 0.5


class HelperFailed(Exception):
    pass


def _entries(fields: list[tuple[str, tuple[int | float, ...]]]) -> list[Entry]:
    return [Entry(name, os.stat_result(st)) for name, st in fields]


# A bare interpreter (no site, no environment) loads scan.py by its path, from its cached bytecode,
# without importing the engine package (and the rest of the dependencies) around it.
_BOOT = (
    "import importlib.util as u, sys; s = u.spec_from_file_location('dsl_scan', sys.argv[1]); "
    "m = u.module_from_spec(s); s.loader.exec_module(m); m.main()"
)


class _Helper:
    """One helper process; it answers in the order it was asked."""

    def __init__(self, source: str, destination: str, fast: FastCompare) -> None:
        argv = [
            sys.executable, "-I", "-S", "-X", f"utf8={sys.flags.utf8_mode}", "-c", _BOOT,
            scan.__file__, source, destination, encode_fast(fast),
        ]  # fmt: skip
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
        )
        self.asked: deque[str] = deque()
        self.greeted = False

    def greet(self, wait: bool) -> None:
        """Read its first frame, once it is there (or at once with `wait`): until then it is still
        starting and the planner keeps listing by itself."""
        if self.greeted:
            return
        assert self.proc.stdout is not None
        if not wait and not select.select([self.proc.stdout], [], [], 0)[0]:
            return
        theirs = self._frame()
        mine = (sys.getfilesystemencoding(), sys.getfilesystemencodeerrors())
        if theirs != mine:
            raise HelperFailed(f"it decodes names as {theirs}, this process as {mine}")
        self.greeted = True

    def ask(self, rel: str, dst_exists: bool) -> None:
        path = os.fsencode(rel)
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(REQUEST.pack(len(path), dst_exists) + path)
            self.proc.stdin.flush()
        except (OSError, ValueError) as exc:
            raise HelperFailed(f"cannot send it a request: {exc}") from exc
        self.asked.append(rel)

    def _frame(self) -> object:
        out = self.proc.stdout
        assert out is not None
        header = out.read(RESPONSE.size)
        if len(header) == RESPONSE.size:
            (size,) = RESPONSE.unpack(header)
            blob = out.read(size)
            if len(blob) == size:
                return marshal.loads(blob)
        raise HelperFailed(f"it ended (exit status {self.proc.poll()})")

    def answer(self) -> tuple[str, Pair]:
        """The next answer (blocking until it is there)."""
        try:
            self.greet(wait=True)
            answer: Any = self._frame()
            src, dst, unchanged, failed_side, error = answer
            pair = Pair(_entries(src), _entries(dst), unchanged, failed_side, error)
        except (OSError, EOFError, ValueError, TypeError) as exc:
            raise HelperFailed(f"unreadable answer: {exc}") from exc
        return self.asked.popleft(), pair

    def stop(self) -> None:
        """Kill it: it only ever reads, so there is nothing to finish or clean up."""
        self.proc.kill()
        for pipe in (self.proc.stdin, self.proc.stdout):
            try:
                if pipe is not None:
                    pipe.close()
            except OSError:
                pass  # a broken pipe: it is gone already
        self.proc.wait()


class Lister:
    """`get(rel, dst_exists)` lists both sides of one directory (see `scan.list_pair`);
    `want(rel, dst_exists)` says it will be asked for soon, so a helper can list it meanwhile."""

    def __init__(
        self,
        source: str,
        destination: str,
        fast: FastCompare,
        *,
        helper_after: int | None = None,
        helpers: int | None = None,
        ahead: int = AHEAD,
    ) -> None:
        """`helper_after`: entries to list here before starting helpers; 0 starts them at once
        (and waits for them), -1 never; None: HELPER_AFTER with two cores or more, else never
        (on one core the planner is better off listing alone), and then only if a core is
        idle when the threshold is reached (`spare_core`)."""
        self.source = source
        self.destination = destination
        self.roots = Roots(source, destination)  # what every directory is opened beneath
        self.fast = fast
        self.ahead = ahead
        cores = usable_cores()
        self._n_helpers = max(1, min(MAX_HELPERS, cores)) if helpers is None else helpers
        self._cores = cores
        self._check_load = helper_after is None
        if helper_after is None:
            helper_after = HELPER_AFTER if cores > 1 else -1
        if not sys.executable:
            helper_after = -1  # embedded without an interpreter to start
        self._helper_after = helper_after
        self._listed_here = 0
        self.helped = 0  # directories a helper listed
        self.helpers_started = 0
        self._helpers: list[_Helper] = []
        self._ready_helpers: list[_Helper] = []  # the ones that have greeted
        self._wanted: dict[str, _Helper] = {}  # asked for and not taken yet
        self._ready: dict[str, Pair] = {}  # answered and not taken yet
        if helper_after == 0:  # from the very first directory: wait for them to be ready
            self._start_helpers()
            self._greet(wait=True)

    @property
    def helpers_running(self) -> int:
        return len(self._helpers)

    @property
    def room(self) -> int:
        """How many more directories may be wanted now (0 until a helper is ready)."""
        if len(self._ready_helpers) < len(self._helpers):
            self._greet(wait=False)
        return self.ahead * len(self._ready_helpers) - len(self._wanted)

    def want(self, rel: str, dst_exists: bool) -> bool:
        """True if a helper was asked for it now."""
        if not self._ready_helpers or rel in self._wanted:
            return False
        helper = min(self._ready_helpers, key=lambda h: len(h.asked))
        try:
            helper.ask(rel, dst_exists)
        except HelperFailed as exc:
            self._abandon(helper, str(exc))
            return False
        self._wanted[rel] = helper
        return True

    def forget(self, rel: str) -> None:
        """A wanted directory will not be asked for after all: do not hold on to its listing."""
        self._wanted.pop(rel, None)
        self._ready.pop(rel, None)  # an answer still on its way is dropped when it comes

    def get(self, rel: str, dst_exists: bool) -> Pair:
        helper = self._wanted.get(rel)
        while helper is not None and rel not in self._ready and helper in self._helpers:
            try:
                answered, pair = helper.answer()
            except HelperFailed as exc:
                self._abandon(helper, str(exc))
                break
            self.helped += 1
            if answered in self._wanted:
                self._ready[answered] = pair
        self._wanted.pop(rel, None)
        ready = self._ready.pop(rel, None)
        if ready is not None:
            return ready
        pair = list_pair_beneath(self.roots, rel, dst_exists, self.fast)
        self._listed_here += len(pair.source) + len(pair.destination) + 2 * pair.unchanged
        if 0 <= self._helper_after <= self._listed_here:
            self._start_helpers()
        return pair

    def _greet(self, wait: bool) -> None:
        for helper in list(self._helpers):
            try:
                helper.greet(wait)
            except HelperFailed as exc:
                self._abandon(helper, str(exc))
        self._ready_helpers = [h for h in self._helpers if h.greeted]

    def _start_helpers(self) -> None:
        self._helper_after = -1  # once, whatever happens
        if self._check_load and not spare_core(self._cores):
            return
        for _ in range(self._n_helpers):
            try:
                self._helpers.append(_Helper(self.source, self.destination, self.fast))
                self.helpers_started += 1
            except OSError as exc:
                log.warning("listing here: cannot start a listing helper: %s", exc)
                return

    def _abandon(self, helper: _Helper, why: str) -> None:
        log.warning("listing here what a listing helper was asked for: %s", why)
        helper.stop()
        self._helpers.remove(helper)
        if helper in self._ready_helpers:
            self._ready_helpers.remove(helper)
        for rel in helper.asked:
            if self._wanted.get(rel) is helper:
                del self._wanted[rel]  # get() lists it here

    def close(self) -> None:
        self.roots.close()
        helpers, self._helpers, self._ready_helpers = self._helpers, [], []
        for helper in helpers:
            helper.stop()

    def __enter__(self) -> Lister:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
