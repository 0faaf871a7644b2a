"""Real faults under the engine: a full file system, sources changing or vanishing mid-copy.

Each asserts the invariant it names: nothing torn under a real name, existing destination files
intact, temporaries gone, the failure counted and the file named.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from engine import Options
from engine.transfer import Transfer
from tests.engine.trees import state, temporaries, write


def run(t: Transfer) -> dict[str, Any]:
    result: dict[str, Any] = anyio.run(t.run)
    result["_failures"] = [str(f) for f in t.failures]
    return result


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A real 1 MiB tmpfs (needs root, as CI has)."""
    mount = tmp_path / "small"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")
def test_destination_full_fails_the_file_and_keeps_what_was_there(
    tmp_path: Path, small_fs: Path
) -> None:
    src, dst = tmp_path / "src", small_fs / "dst"
    write(src / "keep.txt", "new version", mtime_ns=1_700_000_000_000_000_000)
    write(src / "huge.bin", os.urandom(3 << 20))  # three times the file system
    write(dst / "keep.txt", "old version")
    write(dst / "huge.bin", "the old huge.bin, small")
    before = state(dst)
    r = run(Transfer(src, dst, Options.create({"VerifyMode": "ONLY_FILES_TRANSFERRED"})))
    assert r["Status"] == "ERROR"
    assert r["Result"]["ErrorCode"] == "TransferFailed"
    assert "/huge.bin: No space left on device" in r["Result"]["ErrorDetail"]
    assert state(dst)["/huge.bin"] == before["/huge.bin"]  # untouched, not torn
    assert (dst / "keep.txt").read_text() == "new version"  # the rest went on
    assert temporaries(dst) == []


def test_a_source_growing_during_its_copy_is_copied_again_whole(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    write(src / "log.bin", os.urandom(2 << 20))
    t = Transfer(src, dst, Options.create({"VerifyMode": "ONLY_FILES_TRANSFERRED",
                                           "BytesPerSecond": 2 << 20}))  # fmt: skip

    def append() -> None:
        with open(src / "log.bin", "ab") as fh:
            fh.write(b"appended while being copied")

    threading.Timer(0.4, append).start()
    r = run(t)
    assert r["Status"] == "SUCCESS", r
    assert (dst / "log.bin").read_bytes() == (src / "log.bin").read_bytes()  # all, not a mix
    assert temporaries(dst) == []


def test_a_source_that_keeps_growing_is_not_recorded_as_transferred(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    write(src / "log.bin", os.urandom(256 << 10))
    t = Transfer(src, dst, Options.create({"VerifyMode": "ONLY_FILES_TRANSFERRED",
                                           "BytesPerSecond": 512 << 10}))  # fmt: skip
    stop = threading.Event()

    def append() -> None:
        for _ in range(400):  # bounded: at most ~20 s
            if stop.wait(0.05):
                return
            with open(src / "log.bin", "ab") as fh:
                fh.write(b"appended while being copied")

    writer = threading.Thread(target=append)
    writer.start()
    try:
        r = run(t)
    finally:
        stop.set()
        writer.join()
    assert r["Status"] == "ERROR"
    assert any("/log.bin: source changed while it was being copied" in f for f in r["_failures"])
    assert r["FilesVerified"] == 0
    assert not (dst / "log.bin").exists()
    assert temporaries(dst) == []


def test_a_source_deleted_mid_run_is_a_counted_failure(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    for i in range(5):
        write(src / f"f{i}.bin", os.urandom(256 << 10))

    def vanish(status: str) -> None:
        if status == "TRANSFERRING":
            (src / "f3.bin").unlink()

    r = run(Transfer(src, dst, Options.create({"VerifyMode": "NONE"}), on_phase=vanish))
    assert r["Status"] == "ERROR"
    assert r["FilesFailed"]["Transfer"] == 1
    assert any("/f3.bin: No such file or directory" in f for f in r["_failures"])
    assert sorted(p.name for p in dst.iterdir()) == ["f0.bin", "f1.bin", "f2.bin", "f4.bin"]


def test_rerun_after_a_failure_converges(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    write(src / "a.bin", os.urandom(1 << 20))
    t = Transfer(src, dst, Options.create({"VerifyMode": "NONE", "BytesPerSecond": 1 << 20}))
    threading.Timer(0.3, t.cancel).start()
    started = time.monotonic()
    assert run(t)["Result"]["ErrorCode"] == "Cancelled"
    assert time.monotonic() - started < 2
    r = run(Transfer(src, dst, Options.create({"VerifyMode": "POINT_IN_TIME_CONSISTENT"})))
    assert r["Status"] == "SUCCESS"
    assert state(dst) == state(src)
