"""Containment under races: directories swapped for symlinks (to outside the roots) between check
and use, in a bounded loop, while transfers run. Nothing outside the roots is read or written."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from pathlib import Path

import anyio
import pytest

from engine import Options
from engine.transfer import Transfer
from tests.engine.trees import MTIME_NS, write

pytestmark = pytest.mark.usefixtures("resolution")  # openat2 and the O_NOFOLLOW walk

# per test and per way of opening (openat2, walk): transfers for RACE_SECONDS, at least
# MIN_RUNS of them however slow the machine is (a copy helper's start can take seconds when
# parallel test workers load it), at most MAX_RUNS
RACE_SECONDS, MIN_RUNS, MAX_RUNS = 2.0, 2, 200


def _swapper(link: Path, real: Path, target: Path, stop: threading.Event) -> threading.Thread:
    """Swap `link` between the real directory and a symlink to `target`, until `stop`."""

    def loop() -> None:
        for _ in range(100_000):  # bounded; `stop` ends it long before
            if stop.is_set():
                break
            with contextlib.suppress(OSError):
                os.rename(link, real)
                os.symlink(target, link)
                time.sleep(0.0005)
                os.unlink(link)
                os.rename(real, link)
            time.sleep(0.0005)
        with contextlib.suppress(OSError):  # leave the real directory in place
            if link.is_symlink():
                os.unlink(link)
            if real.exists():
                os.rename(real, link)

    thread = threading.Thread(target=loop)
    thread.start()
    return thread


def _snapshot(root: Path) -> dict[str, tuple[int, int, int]]:
    out = {}
    for p in [root, *root.rglob("*")]:
        st = os.lstat(p)
        out[str(p)] = (st.st_mode, st.st_mtime_ns, st.st_size)
    return out


def _race(
    src: Path,
    dst: Path,
    swap_root: Path,
    outside: Path,
    fresh_dst: bool = False,
    copy_helpers: int = 0,
) -> int:
    """Transfers while `swap_root/d` is swapped; each run writes: into a new destination with
    `fresh_dst`, else f0's source mtime changes (utime on the source side, which is not swapped)."""
    stop = threading.Event()
    thread = _swapper(swap_root / "d", swap_root / "d.real", outside, stop)
    runs = 0
    deadline = time.monotonic() + RACE_SECONDS
    try:
        while runs < MIN_RUNS or (time.monotonic() < deadline and runs < MAX_RUNS):
            runs += 1
            target = dst / str(runs) if fresh_dst else dst
            if not fresh_dst:  # new destination data every run, so every run writes there
                os.utime(src / "d" / "f0", ns=(MTIME_NS, MTIME_NS + runs))
            anyio.run(
                Transfer(
                    src,
                    target,
                    Options.create({"PreserveDeletedFiles": "REMOVE"}),
                    helper_after=-1,
                    copy_helpers=copy_helpers,
                ).run
            )
    finally:
        stop.set()
        thread.join()
    return runs


@pytest.mark.parametrize("copy_helpers", [0, 1], ids=["here", "copy-helper"])
def test_a_destination_directory_swapped_for_a_symlink_never_leads_outside(
    tmp_path: Path, copy_helpers: int
) -> None:
    src, dst, outside = tmp_path / "src", tmp_path / "dst", tmp_path / "outside"
    for i in range(20):
        write(src / "d" / f"f{i}", f"file {i}")
    write(outside / "victim", "must stay", mode=0o600)
    os.chmod(outside, 0o711)  # unlike the source directory: a chmod through the link shows
    anyio.run(Transfer(src, dst, Options.create({})).run)
    before = _snapshot(outside)
    _race(src, dst, dst, outside, copy_helpers=copy_helpers)
    assert _snapshot(outside) == before  # no write, chmod, utime, unlink or rename outside
    assert (outside / "victim").read_text() == "must stay"


@pytest.mark.parametrize("copy_helpers", [0, 1], ids=["here", "copy-helper"])
def test_a_source_directory_swapped_for_a_symlink_is_never_read_through(
    tmp_path: Path, copy_helpers: int
) -> None:
    src, dst, outside = tmp_path / "src", tmp_path / "dst", tmp_path / "outside"
    for i in range(20):
        write(src / "d" / f"f{i}", f"file {i}")
        write(outside / f"f{i}", "SECRET")
    dst.mkdir()
    _race(src, dst, src, outside, fresh_dst=True, copy_helpers=copy_helpers)
    leaked = [p for p in dst.rglob("*") if p.is_file() and "SECRET" in p.read_text()]
    assert leaked == []
