"""Safety rails: an empty source never empties the destination, --max-delete, dry runs, fsync."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio

from engine import Options
from engine.transfer import Transfer
from tests.engine.trees import MTIME_NS, state, write


def run(src: Path, dst: Path, options: dict[str, Any], **kw: Any) -> dict[str, Any]:
    result: dict[str, Any] = anyio.run(Transfer(src, dst, Options.create(options), **kw).run)
    return result


REMOVE = {"PreserveDeletedFiles": "REMOVE"}


def test_an_empty_source_never_empties_the_destination(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()  # an unmounted NAS looks exactly like this
    write(dst / "a", "keep")
    write(dst / "d/b", "keep")
    before = state(dst)
    r = run(src, dst, REMOVE)
    assert r["Status"] == "ERROR", r
    assert r["Result"]["ErrorCode"] == "SourceLocationEmpty"
    assert "source" in r["Result"]["ErrorDetail"] and "empty" in r["Result"]["ErrorDetail"]
    assert state(dst) == before
    assert r["FilesDeleted"] == 0


def test_an_empty_source_empties_the_destination_when_allowed(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    write(dst / "a", "goes")
    r = run(src, dst, REMOVE, allow_empty_source=True)
    assert r["Status"] == "SUCCESS", r
    assert list(dst.iterdir()) == []


def test_max_delete_stops_deletes_and_fails(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    write(src / "keep", "k")
    for i in range(5):
        write(dst / f"old{i}", "x")
    r = run(src, dst, REMOVE, max_delete=2)
    assert r["Status"] == "ERROR", r
    assert r["Result"]["ErrorCode"] == "MaxDeleteExceeded"
    assert "2" in r["Result"]["ErrorDetail"]
    assert r["FilesDeleted"] == 2
    assert len([p for p in dst.iterdir() if p.name.startswith("old")]) == 3
    r = run(src, dst, REMOVE, max_delete=3)
    assert r["Status"] == "SUCCESS", r
    assert sorted(p.name for p in dst.iterdir()) == ["keep"]


def test_dry_run_itemizes_the_plan_and_writes_nothing(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    write(src / "new", "n")
    write(src / "changed", "new data", mtime_ns=MTIME_NS + 1)
    write(src / "same", "s")
    write(src / "d/inner", "i")
    write(dst / "changed", "old data")
    write(dst / "same", "s")
    write(dst / "gone", "g")
    before = state(dst)
    items: list[str] = []
    r = run(src, dst, REMOVE, dry_run=True, on_item=items.append)
    assert r["Status"] == "SUCCESS", r
    assert state(dst) == before
    assert ">f+++++++++ new" in items
    assert ">f.st...... changed" in items
    assert "cd+++++++++ d/" in items
    assert ">f+++++++++ d/inner" in items
    assert "*deleting   gone" in items
    assert not any(i.endswith(" same") for i in items)
    assert r["BytesWritten"] == 0 and r["FilesTransferred"] == 0
    assert r["EstimatedFilesToTransfer"] == 4  # new, changed, d/inner, and the delete


def test_fsync_copies_the_same_tree(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    write(src / "a", "a")
    write(src / "d/b", "b" * 100_000)
    r = run(src, dst, {}, fsync=True)
    assert r["Status"] == "SUCCESS", r
    assert state(dst) == state(src)
