"""Listing helpers (engine/lister.py + the helper side in engine/scan.py) on real trees and real
processes: the plan is the same whoever lists, names survive the pipe, failures fall back to
listing here, memory stays bounded, and no helper outlives its walk or its parent."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from engine import FilterRules, Options
from engine.fileio import temporary_name
from engine.lister import Lister, spare_core
from engine.plan import Planner
from engine.progress import Progress
from engine.run import RunContext
from engine.scan import list_dir, list_pair
from engine.settings import Settings
from tests.engine.trees import MTIME_NS, write

FAST = (True, True)


def _state(pid: int) -> tuple[int, str] | None:
    """(parent pid, state letter) of a process, None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[1]), fields[0]


def helpers_of(pid: int) -> list[int]:
    """Live (not zombie) listing helpers started by `pid`, found in /proc."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (st := _state(int(entry))) and st[0] == pid and st[1] != "Z":
            try:
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            except OSError:
                continue
            if b"dsl_scan" in cmdline:
                found.append(int(entry))
    return found


def alive(pid: int) -> bool:
    st = _state(pid)
    return st is not None and st[1] != "Z"


def rich_tree(root: Path, dirs: int = 6, files: int = 5) -> None:
    """Nested directories of files, plus every kind of item the planner treats specially."""
    for d in range(dirs):
        for f in range(files):
            write(root / f"d{d}" / f"sub{d % 2}" / f"f{f}.txt", f"{d}-{f}")
    write(root / "a.txt", "alpha", mode=0o640)
    os.symlink("a.txt", root / "link")
    os.link(root / "a.txt", root / "d0/hard.txt")
    os.mkfifo(root / "fifo")
    (root / "empty").mkdir()
    write(root / ".hidden", "dot")


def plan_of(src: Path, dst: Path, helper_after: int, **options: Any) -> dict[str, Any]:
    filters = options.pop("filters", FilterRules())
    progress = Progress()
    settings = Settings.from_options(Options.create(options))
    context = RunContext(str(src), str(dst), settings, filters, progress, lambda: False)
    planner = Planner(context, helper_after=helper_after)
    plan = planner.run()
    try:
        return {
            "actions": list(plan.actions),
            "deletes": list(plan.deletes),
            "counts": (
                plan.files,
                plan.bytes,
                plan.listed_source,
                plan.listed_destination,
                plan.delete_items,
                plan.source_complete,
                plan.folders,
                plan.listed_source_folders,
                plan.listed_destination_folders,
                plan.delete_folders,
            ),
            "failures": [str(f) for f in progress.failures],
            "skipped": progress.snapshot()["FilesSkipped"],
            "helped": plan.helped,
            "helpers_started": plan.helpers_started,
        }
    finally:
        plan.close()


def changed_destination(tmp_path: Path) -> tuple[Path, Path]:
    """A source and a destination that differ in every way a re-sync can see."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    rich_tree(src)
    rich_tree(dst)
    write(src / "d1/sub1/f0.txt", "changed data", mtime_ns=MTIME_NS + 1)
    os.chmod(src / "d2/sub0/f1.txt", 0o600)  # metadata only
    write(dst / "d3/only-here.txt", "extra")
    write(dst / "d4/gone/deep.txt", "extra dir")
    write(dst / f"d5/{temporary_name()}", "a crashed run's temporary")
    os.unlink(dst / "link")
    write(dst / "link", "a file where the source has a link")
    return src, dst


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"PreserveDeletedFiles": "REMOVE"},
        {"TransferMode": "ALL"},
        {"OverwriteMode": "NEVER"},
        {"Uid": "NONE", "Gid": "NONE"},
        {"filters": FilterRules("/d1|/d4|/a.txt", "*/sub0")},
    ],
    ids=["changed", "remove", "all", "never", "no-owner", "filters"],
)
def test_the_plan_is_the_same_whoever_lists(tmp_path: Path, options: dict[str, Any]) -> None:
    src, dst = changed_destination(tmp_path)
    # Planning reads the source's symlinks, which sets their atime once (relatime): warm up so
    # both plans see the same atime.
    plan_of(src, dst, -1, **dict(options))
    here = plan_of(src, dst, -1, **dict(options))
    helped = plan_of(src, dst, 0, **dict(options))
    assert (here.pop("helped"), here.pop("helpers_started")) == (0, 0)
    assert helped.pop("helped") > 0 and helped.pop("helpers_started") > 0
    assert helped == here
    assert here["actions"]  # the comparison is not between two empty plans


def test_a_new_destination_and_a_no_op_plan_the_same_with_helpers(tmp_path: Path) -> None:
    src = tmp_path / "src"
    rich_tree(src, dirs=20)
    plan_of(src, tmp_path / "new", -1)  # sets the symlink's atime once (see above)
    first = plan_of(src, tmp_path / "new", 0)
    alone = plan_of(src, tmp_path / "new", -1)
    assert first == {
        **alone,
        "helped": first["helped"],
        "helpers_started": first["helpers_started"],
    }
    assert first["counts"][0] > 100
    same = tmp_path / "same"
    subprocess.run(["cp", "-a", f"{src}/.", str(same)], check=True)
    noop = plan_of(src, same, 0)
    assert noop["actions"] == [] and noop["deletes"] == []
    assert noop["counts"][2] == plan_of(src, same, -1)["counts"][2]  # every item listed


def test_helpers_start_by_themselves_on_a_big_walk(tmp_path: Path) -> None:
    src = tmp_path / "src"
    for d in range(40):
        for f in range(100):
            write(src / f"d{d:02}" / f"f{f}", b"")
    dst = tmp_path / "dst"
    subprocess.run(["cp", "-a", f"{src}/.", str(dst)], check=True)
    result = plan_of(src, dst, 2048)  # the default threshold, given explicitly (any core count)
    assert result["actions"] == []
    assert result["counts"][2] == 4000 and result["counts"][7] == 40  # files, folders apart
    # started once 2048 entries were listed here; whether one greets before this walk ends is a
    # race with the walk (seen lost on an idle machine), so their help is checked with
    # helper_after=0 in test_the_plan_is_the_same_whoever_lists instead
    assert result["helpers_started"] > 0


def test_unchanged_files_are_passed_over_and_everything_else_kept(tmp_path: Path) -> None:
    src, dst = changed_destination(tmp_path)
    pair = list_pair(f"{src}/d1/sub1", f"{dst}/d1/sub1", FAST)
    assert pair.unchanged == 4
    assert [e.name for e in pair.source] == [e.name for e in pair.destination] == ["f0.txt"]
    everything = list_pair(f"{src}/d1/sub1", f"{dst}/d1/sub1", None)
    assert everything.unchanged == 0 and len(everything.source) == 5
    top = list_pair(str(src), str(dst), FAST)  # dot files, links, hard links, dirs: all kept
    kept = {e.name for e in top.source}
    assert {".hidden", "link", "fifo", "empty", "d0"} <= kept
    assert top.unchanged == 0  # a.txt has two links


def test_names_that_are_not_utf8_survive_the_helpers(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    for root in (src, dst):
        (root / "d").mkdir(parents=True)
        for raw in (b"caf\xe9.txt", b"\xff\xfe", "snow\u2603".encode()):
            write(root / "d" / os.fsdecode(raw), "x")
    write(src / "d/new", "n")
    with Lister(str(src), str(dst), FAST, helper_after=0) as lister:
        assert lister.want("/d", True)
        pair = lister.get("/d", True)
        assert lister.helped == 1
    assert [os.fsencode(e.name) for e in pair.source] == [b"new"]
    assert pair.unchanged == 3
    here = list_dir(str(dst / "d"))
    assert sorted(os.fsencode(e.name) for e in here) == sorted(
        [b"caf\xe9.txt", b"\xff\xfe", "snow\u2603".encode()]
    )


def test_a_side_that_cannot_be_listed_is_reported_not_raised(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    (src / "both").mkdir(parents=True)
    (dst / "both").mkdir(parents=True)
    (src / "only-src").mkdir()
    write(src / "file", "not a directory")
    with Lister(str(src), str(dst), FAST, helper_after=0) as lister:
        for rel in ("/missing", "/only-src", "/file", "/both"):
            assert lister.want(rel, True)
        assert lister.get("/missing", True)[3:] == ("source", "No such file or directory")
        assert lister.get("/only-src", True)[3:] == ("destination", "No such file or directory")
        assert lister.get("/file", True)[3:] == ("source", "Not a directory")
        assert lister.get("/both", True).failed_side is None
        assert lister.helped == 4


def test_stat_results_come_back_whole(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    write(src / "d/f", "data")
    (dst / "d").mkdir(parents=True)
    with Lister(str(src), str(dst), None, helper_after=0) as lister:
        lister.want("/d", True)
        (entry,) = lister.get("/d", True).source
    assert entry.st == os.lstat(src / "d/f")
    for field in ("st_mtime_ns", "st_atime_ns", "st_ctime_ns", "st_ino", "st_blocks", "st_rdev"):
        assert getattr(entry.st, field) == getattr(os.lstat(src / "d/f"), field)


def test_a_helper_that_dies_leaves_its_directories_to_be_listed_here(tmp_path: Path) -> None:
    src = tmp_path / "src"
    rich_tree(src, dirs=12)
    rels = [f"/d{d}" for d in range(12)]
    with Lister(str(src), str(tmp_path / "none"), None, helper_after=0, helpers=2) as lister:
        helpers = helpers_of(os.getpid())
        for pid in helpers:  # stopped before they see a request, killed before they answer
            os.kill(pid, signal.SIGSTOP)
        for rel in rels[:8]:
            assert lister.want(rel, False)
        for pid in helpers:
            os.kill(pid, signal.SIGKILL)
        got = [lister.get(rel, False) for rel in rels]
        assert lister.helpers_running == 0 and lister.helped == 0
        assert lister.room == 0 and not lister.want("/d0", False)  # no new work for the dead
    for rel, pair in zip(rels, got, strict=True):
        assert pair.failed_side is None
        assert [e.name for e in pair.source] == [e.name for e in list_dir(f"{src}{rel}")]


def test_wanted_listings_are_bounded_and_forgotten_ones_dropped(tmp_path: Path) -> None:
    src = tmp_path / "src"
    for d in range(50):
        write(src / f"d{d:02}/f", "x")
    with Lister(
        str(src), str(tmp_path / "none"), None, helper_after=0, helpers=2, ahead=3
    ) as lister:
        assert lister.room == 6
        asked = [
            f"/d{d:02}" for d in range(50) if lister.room > 0 and lister.want(f"/d{d:02}", False)
        ]
        assert len(asked) == 6 and lister.room == 0
        lister.forget(asked[0])
        assert lister.room == 1
        for rel in asked[1:]:
            assert lister.get(rel, False).source[0].name == "f"
        assert lister.room == 6
        assert lister.get(asked[0], False).source[0].name == "f"  # listed here, after all


def test_helpers_end_with_the_walk(tmp_path: Path) -> None:
    src = tmp_path / "src"
    rich_tree(src)
    with Lister(str(src), str(tmp_path / "none"), None, helper_after=0, helpers=3) as lister:
        assert len(helpers_of(os.getpid())) == 3
        lister.want("/d1", False)
    assert helpers_of(os.getpid()) == []


def test_helpers_leave_when_the_planner_process_is_killed(tmp_path: Path) -> None:
    src = tmp_path / "src"
    rich_tree(src)
    script = textwrap.dedent(
        f"""
        import sys, time
        from engine.lister import Lister
        lister = Lister({str(src)!r}, {str(tmp_path / "none")!r}, None, helper_after=0, helpers=2)
        print("ready", flush=True)
        time.sleep(60)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        helpers = helpers_of(proc.pid)
        assert len(helpers) == 2
        proc.kill()
        proc.wait()
        deadline = time.monotonic() + 10
        while any(alive(pid) for pid in helpers):
            assert time.monotonic() < deadline, "helpers outlived their parent"
            time.sleep(0.05)
    finally:
        proc.kill()
        proc.wait()


def test_helpers_are_started_only_beside_an_idle_core() -> None:
    # one core: never; two: while the 1-minute load leaves one of them idle
    assert not spare_core(1, 0.0)
    assert spare_core(2, 0.0) and spare_core(2, 1.4)
    assert not spare_core(2, 1.5) and not spare_core(2, 12.0)
    assert spare_core(8, 6.0) and not spare_core(8, 7.5)


def test_an_explicit_threshold_starts_helpers_whatever_the_load(tmp_path: Path) -> None:
    src = tmp_path / "src"
    for f in range(30):
        write(src / "d" / f"f{f}", b"")
    with Lister(str(src), str(tmp_path / "none"), None, helper_after=1) as lister:
        lister.get("", False)
        assert lister.helpers_started > 0  # the default (None) would ask spare_core first
