"""Small files copied by helper processes (engine/copyhelpers.py): the same result, counters,
events and failures as copying them on the transfer thread, and nothing left behind when a
helper cannot start or the transfer is cancelled."""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

import anyio
import pytest

from engine import Options
from engine.events import FileEvent, FileEventKind
from engine.transfer import Transfer
from tests.engine.trees import state, temporaries, write


def _tree(root: Path, dirs: int = 6, files: int = 150) -> None:
    for d in range(dirs):
        for f in range(files // dirs):
            write(root / f"d{d}" / f"f{f:03d}", os.urandom(100 + 37 * f), mode=0o640 + (f % 8))


def _run(src: Path, dst: Path, options: dict[str, object] | None = None, **kw: object) -> Transfer:
    t = Transfer(src, dst, Options.create(options or {}), helper_after=-1, **kw)  # type: ignore[arg-type]
    anyio.run(t.run)
    return t


@pytest.mark.parametrize("verify", ["POINT_IN_TIME_CONSISTENT", "ONLY_FILES_TRANSFERRED", "NONE"])
def test_helpers_copy_a_tree_exactly_and_count_every_file(tmp_path: Path, verify: str) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    _tree(src)
    events: list[FileEvent] = []
    lock = threading.Lock()

    def sink(event: FileEvent) -> None:
        with lock:
            events.append(event)

    t = _run(src, dst, {"VerifyMode": verify}, copy_helpers=2, on_event=sink)
    snap = t.snapshot()
    assert t.helpers_started == 2
    assert t.files_by_helpers > 0
    assert snap["Status"] == "SUCCESS", snap["Result"]
    assert state(dst) == state(src)
    assert temporaries(dst) == []
    assert snap["FilesTransferred"] == 150
    assert snap["BytesWritten"] == sum(p.stat().st_size for p in src.rglob("f*"))
    transferred = [e for e in events if e.kind == FileEventKind.TRANSFERRED and not e.folder]
    assert len(transferred) == 150 == len({e.path for e in transferred})
    if verify == "ONLY_FILES_TRANSFERRED":  # the helpers' digests reached the verification
        assert all(e.checksum for e in transferred)
        assert snap["FilesVerified"] == 150


def test_a_file_a_helper_cannot_copy_fails_alone(tmp_path: Path) -> None:
    """Files gone from the source between PREPARING and TRANSFERRING: each fails by name with
    its reason, the others are placed, the old destination copies stay."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    _tree(src, dirs=1)  # one directory: its first batches go to the helper
    _run(src, dst, copy_helpers=0)
    for f in ("f001", "f002"):
        write(src / "d0" / f, b"new version")
    gone = [src / "d0" / "f001", src / "d0" / "f002"]

    def on_phase(status: str) -> None:
        if status == "TRANSFERRING":
            for p in gone:
                p.unlink()

    t = Transfer(src, dst, Options.create({"TransferMode": "ALL"}), helper_after=-1,
                 copy_helpers=1, on_phase=on_phase)  # fmt: skip
    anyio.run(t.run)
    snap = t.snapshot()
    assert t.helpers_started == 1
    assert t.files_by_helpers > 0
    assert snap["Status"] == "ERROR"
    assert snap["FilesFailed"]["Transfer"] == 2
    assert sorted(f.path for f in t.failures) == ["/d0/f001", "/d0/f002"]
    assert all("No such file" in f.reason for f in t.failures)
    assert snap["FilesTransferred"] == 148
    assert (dst / "d0" / "f001").read_bytes() != b"new version"  # the previous copy stays
    assert temporaries(dst) == []


def test_a_helper_that_cannot_start_leaves_the_work_to_the_transfer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A helper interpreter that exits at once: every file is still copied, here."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    _tree(src)
    monkeypatch.setattr(sys, "executable", "/bin/false")
    t = _run(src, dst, copy_helpers=1)
    snap = t.snapshot()
    assert snap["Status"] == "SUCCESS", snap["Result"]
    assert state(dst) == state(src)
    assert snap["FilesTransferred"] == 150
    assert t.files_by_helpers == 0


def test_cancel_with_helpers_leaves_no_temporary(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    _tree(src, dirs=20, files=2000)
    t: Transfer | None = None
    seen = [0]

    def sink(event: FileEvent) -> None:
        seen[0] += 1
        if seen[0] == 300 and t is not None:
            t.cancel()

    t = Transfer(src, dst, Options.create({}), helper_after=-1, copy_helpers=1, on_event=sink)
    snap = t.run_blocking()
    assert snap["Status"] == "ERROR"
    assert snap["Result"]["ErrorCode"] == "Cancelled"
    assert temporaries(dst) == []
    assert 0 < snap["FilesTransferred"] < 2000


def test_a_throttled_transfer_copies_every_byte_through_the_bucket(tmp_path: Path) -> None:
    """Helpers do not pay the token bucket, so a limited transfer starts none."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    _tree(src, dirs=2, files=20)
    t = _run(src, dst, {"BytesPerSecond": 50 << 20}, copy_helpers=1)
    assert t.snapshot()["Status"] == "SUCCESS"
    assert (t.helpers_started, t.files_by_helpers) == (0, 0)
    assert state(dst) == state(src)
