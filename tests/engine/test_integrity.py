"""Integrity regressions: torn files, user files that look like temporaries, long error details,
directories swapped mid-run, devices left out, and the Folders* counters."""

from __future__ import annotations

import os
import stat
import threading
import time
from pathlib import Path
from typing import Any

import anyio
import pytest

from engine import Options
from engine.fileio import temporary_name
from engine.progress import Progress
from engine.scan import TEMP_PREFIX, is_temporary
from engine.transfer import Transfer
from tests.engine.trees import MTIME_NS, state, temporaries, write

IS_ROOT = os.geteuid() == 0


def _start(src: Path, dst: Path, **options: Any) -> tuple[Transfer, threading.Thread, list[Any]]:
    t = Transfer(src, dst, Options.create(options))
    out: list[Any] = []
    thread = threading.Thread(target=lambda: out.append(t.run_blocking()))
    thread.start()
    return t, thread, out


def _rewrite_in_place(path: Path, data: bytes) -> None:
    """What `cp -p` / `tar x` / `rsync -t --inplace` do: same inode, new bytes, old mtime back."""
    st = os.lstat(path)
    with open(path, "r+b") as fh:
        fh.write(data)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def _wait_for_bytes(t: Transfer, at_least: int) -> None:
    deadline = time.monotonic() + 10
    while t.snapshot()["BytesWritten"] < at_least and time.monotonic() < deadline:
        time.sleep(0.01)


# -- 1. a source rewritten during its copy ---------------------------------------------------------
@pytest.mark.parametrize("verify", ["ONLY_FILES_TRANSFERRED", "POINT_IN_TIME_CONSISTENT"])
def test_a_file_rewritten_once_while_copied_is_copied_again_whole(
    tmp_path: Path, verify: str
) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    old, new = b"o" * (256 << 10), b"n" * (256 << 10)
    write(src / "f", old)
    t, thread, out = _start(src, dst, VerifyMode=verify, BytesPerSecond=512 << 10)
    _wait_for_bytes(t, 64 << 10)
    _rewrite_in_place(src / "f", new)
    thread.join(30)
    assert out and out[0]["Status"] == "SUCCESS", out
    assert (dst / "f").read_bytes() == new  # never a mix of both versions
    assert temporaries(dst) == []


@pytest.mark.parametrize("verify", ["ONLY_FILES_TRANSFERRED", "POINT_IN_TIME_CONSISTENT"])
def test_a_file_that_keeps_changing_fails_and_keeps_the_old_copy(
    tmp_path: Path, verify: str
) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    write(src / "f", b"g" * (128 << 10))
    write(dst / "f", b"the previous good copy", mtime_ns=MTIME_NS - 10**9)
    good = state(dst)["/f"]
    _t, thread, out = _start(src, dst, VerifyMode=verify, BytesPerSecond=256 << 10)
    stop = time.monotonic() + 20
    i = 0
    while thread.is_alive() and time.monotonic() < stop:
        i += 1
        _rewrite_in_place(src / "f", bytes([i % 256]) * (128 << 10))
        time.sleep(0.05)
    thread.join(30)
    r = out[0]
    assert r["Status"] == "ERROR", r
    assert r["FilesFailed"]["Transfer"] == 1
    assert "changed while it was being copied" in r["Result"]["ErrorDetail"]
    assert state(dst)["/f"] == good  # the old copy survives
    assert temporaries(dst) == []


# -- 2. user files named like temporaries ----------------------------------------------------------
def test_user_files_named_like_temporaries_are_copied_and_never_deleted(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    lookalike = f"{TEMP_PREFIX}0123456789abcdef"  # the engine's old format, and plausible user name
    write(src / lookalike, "a user's file")
    write(src / "d" / lookalike, "another one")
    write(dst / f"{TEMP_PREFIX}fedcba9876543210", "a user's file at the destination")
    r = anyio.run(Transfer(src, dst, Options.create({})).run)
    assert r["Status"] == "SUCCESS", r
    assert (dst / lookalike).read_text() == "a user's file"
    assert (dst / "d" / lookalike).read_text() == "another one"
    assert (dst / f"{TEMP_PREFIX}fedcba9876543210").exists()  # PRESERVE keeps it
    assert r["FilesTransferred"] == 2  # two files; the folder is counted apart
    assert r["FoldersTransferred"] == 1


def test_only_names_the_engine_made_are_temporaries() -> None:
    made = temporary_name()
    assert is_temporary(made)
    assert not is_temporary(f"{TEMP_PREFIX}0123456789abcdef")
    forged = made[:-1] + ("0" if made[-1] != "0" else "1")
    assert not is_temporary(forged)


def test_a_real_leftover_temporary_is_still_removed(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    write(src / "f", "x")
    write(dst / temporary_name(), "half a file from a crashed run")
    r = anyio.run(Transfer(src, dst, Options.create({})).run)
    assert r["Status"] == "SUCCESS", r
    assert temporaries(dst) == []
    assert sorted(p.name for p in dst.iterdir()) == ["f"]


# -- 3. long error details -------------------------------------------------------------------------
def test_a_long_error_detail_keeps_the_first_failures_and_the_count() -> None:
    from engine.transfer import result_detail

    p = Progress()
    for i in range(40):
        p.fail("Transfer", "/" + "n" * 200 + str(i), "No space left on device")
    detail = result_detail("could not be transferred", p.failures, "Transfer", 40, limit=1024)
    assert len(detail) <= 1024
    assert detail.startswith("40 items could not be transferred: /nnn")
    assert "No space left on device" in detail
    assert "more)" in detail


def test_the_agent_keeps_long_details_readable() -> None:
    from agents.agent import encode_details

    detail = "3000 items could not be transferred: " + "/x: No space left on device; " * 200
    encoded = encode_details(
        {"Status": "ERROR", "Result": {"ErrorCode": "E", "ErrorDetail": detail}}
    )
    assert len(encoded["result"]) <= 1024
    assert "No space left on device" in encoded["result"]
    assert "3000 items" in encoded["result"]


# -- 4. a destination directory swapped for a symlink mid-run --------------------------------------
def test_a_destination_directory_swapped_mid_copy_fails_that_item_cleanly(tmp_path: Path) -> None:
    src, dst, outside = tmp_path / "src", tmp_path / "dst", tmp_path / "outside"
    write(src / "dir/big", os.urandom(256 << 10))
    os.chmod(src / "dir", 0o700)
    outside.mkdir()
    os.chmod(outside, 0o755)
    os.utime(outside, ns=(MTIME_NS, MTIME_NS))
    before = os.lstat(outside)
    t, thread, out = _start(src, dst, VerifyMode="NONE", BytesPerSecond=256 << 10)
    _wait_for_bytes(t, 32 << 10)
    os.rename(dst / "dir", tmp_path / "moved")
    os.symlink(outside, dst / "dir")
    thread.join(30)
    r = out[0]
    assert r["Status"] == "ERROR", r
    assert r["Result"]["ErrorCode"] != "InternalError", r
    assert "/dir" in r["Result"]["ErrorDetail"]
    after = os.lstat(outside)
    assert (after.st_mode, after.st_mtime_ns) == (before.st_mode, before.st_mtime_ns)
    assert list(outside.iterdir()) == []


# -- 6. devices left out by PreserveDevices=NONE ---------------------------------------------------
@pytest.mark.skipif(not IS_ROOT, reason="creating device nodes needs root")
def test_devices_left_out_are_skipped_not_missing(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    write(src / "f", "x")
    os.mknod(src / "null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    r = anyio.run(Transfer(src, dst, Options.create({"PreserveDevices": "NONE"})).run)
    assert r["Status"] == "SUCCESS", r
    assert r["FilesSkipped"] == 1
    assert not (dst / "null").exists()


# -- 7. counters -----------------------------------------------------------------------------------
def test_one_big_file_counts_one_file_and_the_root_as_no_transferred_file(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    write(src / "big", os.urandom(64 << 20))
    r = anyio.run(Transfer(src, dst, Options.create({})).run)
    assert r["Status"] == "SUCCESS", r
    assert r["FilesTransferred"] == 1
    assert r["FilesListed"]["AtSource"] == 1
    assert r["EstimatedFilesToTransfer"] == 1
    assert r["FilesVerified"] == 1


def test_files_and_folders_are_counted_apart(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    write(src / "a/1", "1")
    write(src / "a/b/2", "2")
    write(src / "3", "3")
    (src / "c").mkdir()
    write(dst / "gone/old", "old")
    r = anyio.run(Transfer(src, dst, Options.create({"PreserveDeletedFiles": "REMOVE"})).run)
    assert r["Status"] == "SUCCESS", r
    folders = {k: v for k, v in r.items() if "Folders" in k}
    assert folders["FoldersListed"] == {"AtSource": 3, "AtDestinationForDelete": 1}
    assert folders["EstimatedFoldersToTransfer"] == 3 + 1  # BASIC mode: deletes included
    assert folders["FoldersTransferred"] == 3
    assert folders["FoldersVerified"] == 3
    assert folders["EstimatedFoldersToDelete"] == 1
    assert folders["FoldersDeleted"] == 1
    assert folders["FoldersFailed"] == {
        "List": 0,
        "Prepare": 0,
        "Transfer": 0,
        "Verify": 0,
        "Delete": 0,
    }
    assert r["FilesTransferred"] == 3
    assert r["FilesListed"]["AtSource"] == 3
    assert r["FilesDeleted"] == 1
    assert r["FilesVerified"] == 3
    r = anyio.run(Transfer(src, dst, Options.create({})).run)
    assert r["FilesTransferred"] == 0 and r["FoldersTransferred"] == 0, r
