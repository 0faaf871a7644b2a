"""The per-file event hook: every counted item is heard by the sink from the same call."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import xxhash

from engine.events import FileEvent, FileEventKind
from engine.options import Options
from engine.progress import Progress
from engine.transfer import Transfer
from tests.engine.trees import write


class Sink:
    """Thread-safe, as the engine calls it from its worker threads."""

    def __init__(self) -> None:
        self.events: list[FileEvent] = []
        self._lock = threading.Lock()

    def __call__(self, event: FileEvent) -> None:
        with self._lock:
            self.events.append(event)

    def of(self, kind: FileEventKind) -> dict[str, FileEvent]:
        return {e.path: e for e in self.events if e.kind == kind}


def run(src: Path, dst: Path, options: dict[str, object], **kw: object) -> tuple[dict, Sink]:  # type: ignore[type-arg]
    sink = Sink()
    t = Transfer(
        src, dst, Options.create(options), on_event=sink, workers=2, large_file_size=1024, **kw
    )  # type: ignore[arg-type]
    return t.run_blocking(), sink


def test_transferred_verified_and_deleted_items_match_the_counters(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    write(src / "a.txt", "alpha")
    write(src / "big.bin", os.urandom(4096))  # on the copier pool
    write(src / "sub" / "b.txt", "beta")
    write(dst / "gone.txt", "old")
    final, sink = run(
        src, dst, {"VerifyMode": "ONLY_FILES_TRANSFERRED", "PreserveDeletedFiles": "REMOVE"}
    )
    assert final["Status"] == "SUCCESS", final
    transferred = sink.of(FileEventKind.TRANSFERRED)
    assert set(transferred) == {"/a.txt", "/big.bin", "/sub", "/sub/b.txt"}
    assert len([e for e in transferred.values() if not e.folder]) == final["FilesTransferred"]
    assert transferred["/sub"].folder and transferred["/sub"].size is None
    big = (src / "big.bin").read_bytes()
    assert transferred["/big.bin"].size == 4096
    assert transferred["/big.bin"].checksum == xxhash.xxh3_128(big).hexdigest()
    verified = sink.of(FileEventKind.VERIFIED)
    assert set(verified) == set(transferred)
    assert verified["/a.txt"].checksum == xxhash.xxh3_128(b"alpha").hexdigest()
    deleted = sink.of(FileEventKind.DELETED)
    assert set(deleted) == {"/gone.txt"} and deleted["/gone.txt"].size == 3
    assert final["FilesDeleted"] == 1


def test_point_in_time_verification_failure_carries_both_sides(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    write(src / "same-size.txt", "aaaa")
    write(dst / "same-size.txt", "bbbb")  # same size and mtime: planned as unchanged
    final, sink = run(src, dst, {"VerifyMode": "POINT_IN_TIME_CONSISTENT"})
    assert final["Status"] == "ERROR"
    failed = sink.of(FileEventKind.FAILED)["/same-size.txt"]
    assert failed.phase == "Verify" and "checksum" in (failed.reason or "")
    assert failed.source is not None and failed.destination is not None
    assert failed.source.checksum == xxhash.xxh3_128(b"aaaa").hexdigest()
    assert failed.destination.checksum == xxhash.xxh3_128(b"bbbb").hexdigest()
    assert failed.source.size == failed.destination.size == 4


def test_skipped_items_are_heard_with_a_reason(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    write(src / "keep.txt", "new", mtime_ns=2_000_000_000_000_000_000)
    write(dst / "keep.txt", "old")
    os.mkfifo(src / "pipe")
    final, sink = run(src, dst, {"VerifyMode": "NONE", "OverwriteMode": "NEVER"})
    skipped = sink.of(FileEventKind.SKIPPED)
    assert set(skipped) == {"/keep.txt", "/pipe"}
    assert all(e.reason for e in skipped.values())
    assert final["FilesSkipped"] == 2
    assert (dst / "keep.txt").read_text() == "old"


def test_a_dry_run_sends_nothing(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    write(src / "a.txt", "alpha")
    _, sink = run(src, dst, {"VerifyMode": "NONE"}, dry_run=True)
    assert sink.events == []


def test_failures_are_heard_with_their_phase() -> None:
    sink = Sink()
    progress = Progress(sink=sink)
    progress.fail("List", "/dir", "cannot list", folder=True)
    progress.fail("Transfer", "/f", "No space left on device")
    (listed, written) = sink.events
    assert (listed.kind, listed.phase, listed.folder) == (FileEventKind.FAILED, "Prepare", True)
    assert (written.phase, written.reason) == ("Transfer", "No space left on device")
    assert progress.failed() == 2
