"""engine/split.py on real trees, and scoped runs (Transfer `scope`, `done`, `deletes_only`) whose
parts, run in any order, add up to exactly what one whole-tree run does."""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import pytest

from engine import Options
from engine.split import Part, Scope, plan
from engine.transfer import Transfer
from tests.engine.trees import state, temporaries, write

SUMMED = (
    "FilesTransferred",
    "BytesTransferred",
    "BytesWritten",
    "FilesVerified",
    "FilesSkipped",
    "EstimatedFilesToTransfer",
    "EstimatedBytesToTransfer",
    "FoldersTransferred",
    "FoldersVerified",
)


def tree(root: Path, seed: int = 7) -> dict[str, int]:
    """Top-level files, three top dirs (one big, split further), a symlink, nested dirs."""
    rng = random.Random(seed)
    sizes: dict[str, int] = {}

    def put(rel: str, size: int) -> None:
        write(root / rel, rng.randbytes(size))
        sizes[rel] = size

    put("top1.txt", 100)
    put("top2.bin", 3000)
    for i in range(3):
        put(f"small/f{i}", 10 + i)
    for sub in ("x", "y", "z"):
        for i in range(6):
            put(f"big/{sub}/deep/f{i}", 200)
        put(f"big/{sub}/g", 50)
    put("big/own.txt", 70)
    (root / "empty").mkdir()
    os.symlink("top1.txt", root / "link")
    for d in ("small", "big", "big/x", "empty"):
        os.chmod(root / d, 0o751)
        os.utime(root / d, ns=(1_600_000_000_000_000_000, 1_600_000_000_000_000_000))
    return sizes


def run(src: Path, dst: Path, **kw: Any) -> dict[str, Any]:
    options = Options.create(kw.pop("options", {"VerifyMode": "POINT_IN_TIME_CONSISTENT"}))
    snap = Transfer(src, dst, options, **kw).run_blocking()
    assert snap["Status"] == "SUCCESS", snap["Result"]
    return snap


def summed(snaps: list[dict[str, Any]]) -> dict[str, int]:
    return {k: sum(int(s.get(k, 0)) for s in snaps) for k in SUMMED if k in snaps[0]}


# -- the planner ------------------------------------------------------------------------------
def test_small_tree_is_one_whole_part(tmp_path: Path) -> None:
    (tmp_path / "only").mkdir()
    write(tmp_path / "only" / "a", b"abc")
    assert plan(tmp_path, 100, 1 << 30, min_items=8) == [Part("", True, 1, 3)]
    empty = tmp_path / "empty-root"
    empty.mkdir()
    assert plan(empty, 100, 1 << 30) == [Part("", True, 0, 0)]


def test_a_tree_below_the_split_minimum_is_one_whole_part(tmp_path: Path) -> None:
    tree(tmp_path)  # 28 files, ~7 KB, four top-level entries
    whole = [Part("", True, 28, 100 + 3000 + 3 * (6 * 200 + 50) + 70 + 33)]
    assert plan(tmp_path, 1000, 1 << 30, min_files=29, min_bytes=1 << 20) == whole
    # at the minimum of either (files or bytes) it is split as usual
    assert len(plan(tmp_path, 1000, 1 << 30, min_files=28, min_bytes=1 << 20)) == 4
    assert len(plan(tmp_path, 1000, 1 << 30, min_files=29, min_bytes=100)) == 4
    assert len(plan(tmp_path, 1000, 1 << 30, min_files=0, min_bytes=0)) == 4


def test_each_top_level_directory_and_the_root_files(tmp_path: Path) -> None:
    tree(tmp_path)
    parts = plan(tmp_path, 1000, 1 << 30)
    assert parts == [
        Part("", False, 3, 100 + 3000),  # a symlink is a file of its parent, 0 bytes of data
        Part("big", True, 22, 3 * (6 * 200 + 50) + 70),
        Part("empty", True, 0, 0),
        Part("small", True, 3, 33),
    ]


def test_a_big_directory_is_split_and_keeps_its_own_part(tmp_path: Path) -> None:
    tree(tmp_path)
    parts = plan(tmp_path, 10, 1 << 30)
    assert [(p.path, p.recursive) for p in parts] == [
        ("", False),
        ("big", False),  # big's own entry and its own file
        ("big/x", True),
        ("big/y", True),
        ("big/z", True),
        ("empty", True),
        ("small", True),
    ]
    assert next(p for p in parts if p.path == "big") == Part("big", False, 1, 70)
    by_bytes = plan(tmp_path, 1000, 2000)  # the byte budget splits too
    assert ("big/x", True) in [(p.path, p.recursive) for p in by_bytes]


def test_min_items_splits_the_biggest_first(tmp_path: Path) -> None:
    tree(tmp_path)
    parts = plan(tmp_path, 1000, 1 << 30, min_items=6)
    paths = [p.path for p in parts]
    assert "big/x" in paths and "small" in paths
    assert len(parts) >= 6
    capped = plan(tmp_path, 1000, 1 << 30, min_items=100, max_items=5)
    assert len(capped) <= 5


def test_symlinks_are_files_of_their_parent_and_never_followed(tmp_path: Path) -> None:
    src = tmp_path / "src"
    outside = tmp_path / "outside"
    for i in range(50):
        write(outside / f"o{i}", b"x" * 10)
    write(src / "a" / "f", b"1")
    os.symlink(outside, src / "a" / "escape")
    os.symlink(outside, src / "b")
    parts = plan(src, 1000, 1 << 30)
    assert parts == [
        Part("", False, 1, 0),
        Part("a", True, 2, 1),
    ]


def test_counting_stops_once_over_budget(tmp_path: Path) -> None:
    """A subtree over the budget is not counted to its end (it is split anyway)."""
    from engine.split import count

    for i in range(40):
        write(tmp_path / "d" / f"s{i:02d}" / "f", b"x")
    fd = os.open(tmp_path / "d", os.O_RDONLY | os.O_DIRECTORY)
    try:
        seen = count(fd, 5, 1 << 30)
    finally:
        os.close(fd)
    assert seen.over and seen.files == 6 and len(seen.subdirs) == 40


# -- scoped runs ------------------------------------------------------------------------------
@pytest.mark.parametrize("budget", [10, 1000])
@pytest.mark.parametrize("verify", ["POINT_IN_TIME_CONSISTENT", "ONLY_FILES_TRANSFERRED", "NONE"])
def test_parts_in_any_order_add_up_to_one_whole_run(
    tmp_path: Path, budget: int, verify: str
) -> None:
    src = tmp_path / "src"
    tree(src)
    options = {"VerifyMode": verify}
    whole = run(src, tmp_path / "whole", options=options)
    parts = plan(src, budget, 1 << 30)
    assert len(parts) > 1
    for order in (parts, list(reversed(parts))):
        dst = tmp_path / f"dst-{order is parts}"
        snaps = [run(src, dst, options=options, scope=Scope(p.path, p.recursive)) for p in order]
        assert state(dst) == state(tmp_path / "whole")
        assert summed(snaps) == summed([whole])
        assert temporaries(dst) == []


def test_a_scope_below_a_missing_ancestor_creates_it_bare(tmp_path: Path) -> None:
    src = tmp_path / "src"
    tree(src)
    dst = tmp_path / "dst"
    run(src, dst, scope=Scope("big/x", True))
    assert (dst / "big" / "x" / "deep" / "f0").is_file()
    assert not (dst / "big" / "own.txt").exists() and not (dst / "small").exists()
    owner = run(src, dst, scope=Scope("big", False))  # big's own part still counts big
    assert owner.get("FoldersTransferred", 1) == 1 and owner["FilesTransferred"] == 1
    assert os.stat(dst / "big").st_mode & 0o777 == 0o751


def test_journaled_files_are_counted_not_copied(tmp_path: Path) -> None:
    src = tmp_path / "src"
    tree(src)
    dst = tmp_path / "dst"
    scope = Scope("small", True)
    first = run(src, dst, scope=scope)
    inodes = {n: os.stat(dst / "small" / n).st_ino for n in ("f0", "f1", "f2")}
    # a re-run of the same part with TransferMode=ALL would copy all three again; two are
    # journaled as done by the first run, so only f2 is copied
    options = {"VerifyMode": "ONLY_FILES_TRANSFERRED", "TransferMode": "ALL"}
    again = run(src, dst, options=options, scope=scope, done={"/small/f0", "/small/f1"})
    after = {n: os.stat(dst / "small" / n).st_ino for n in ("f0", "f1", "f2")}
    assert after["f0"] == inodes["f0"] and after["f1"] == inodes["f1"]
    assert after["f2"] != inodes["f2"]
    assert again["FilesTransferred"] == first["FilesTransferred"]
    assert again["BytesTransferred"] == first["BytesTransferred"] == 33
    assert again["FilesVerified"] >= 3


def test_deletes_only_counts_only_deletions(tmp_path: Path) -> None:
    src = tmp_path / "src"
    tree(src)
    dst = tmp_path / "dst"
    options = {"VerifyMode": "POINT_IN_TIME_CONSISTENT", "PreserveDeletedFiles": "PRESERVE"}
    for p in plan(src, 10, 1 << 30):
        run(src, dst, options=options, scope=Scope(p.path, p.recursive))
    write(dst / "big" / "x" / "extra", b"gone soon")
    write(dst / "stray" / "a", b"1")
    removal = run(src, dst, options={"PreserveDeletedFiles": "REMOVE"}, deletes_only=True)
    assert removal["FilesDeleted"] == 2
    assert removal["FilesTransferred"] == 0 and removal["EstimatedBytesToTransfer"] == 0
    assert removal["FilesListed"]["AtSource"] == 0
    assert not (dst / "stray").exists() and not (dst / "big" / "x" / "extra").exists()
    assert (dst / "big" / "x" / "deep" / "f0").is_file()
