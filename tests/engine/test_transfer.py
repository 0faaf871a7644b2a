"""The engine on real directory trees: kinds, metadata, diff, deletes, placement, cancel, verify."""

from __future__ import annotations

import os
import shutil
import stat
import threading
import time
from pathlib import Path
from typing import Any

import anyio
import pytest

from engine import FilterRules, Options
from engine.fileio import temporary_name
from engine.transfer import Transfer
from tests.engine.trees import (
    ATIME_NS,
    MTIME_NS,
    run_as_nobody,
    shared_tmpdir,
    state,
    temporaries,
    write,
)

IS_ROOT = os.geteuid() == 0


def sync(
    src: Path, dst: Path, transfer_kw: dict[str, Any] | None = None, **options: Any
) -> dict[str, Any]:
    filters = options.pop("filters", None)
    t = Transfer(src, dst, Options.create(options), filters, **(transfer_kw or {}))
    result: dict[str, Any] = anyio.run(t.run)
    result["_failures"] = [str(f) for f in t.failures]
    return result


@pytest.fixture
def src(tmp_path: Path) -> Path:
    root = tmp_path / "src"
    write(root / "a.txt", "alpha", mode=0o640)
    write(root / "dir/b.bin", os.urandom(3 << 20))
    write(root / "dir/sub/c.txt", "gamma", mode=0o600)
    (root / "empty").mkdir()
    os.symlink("dir/sub/c.txt", root / "link")
    os.symlink("/nonexistent/target", root / "dangling")
    os.link(root / "a.txt", root / "dir/a-hard.txt")
    os.mkfifo(root / "fifo")
    os.chmod(root / "dir", 0o750)
    for d in ("dir/sub", "dir", "empty", ""):
        os.utime(root / d, ns=(ATIME_NS, MTIME_NS + 7))
    return root


def test_initial_copy_preserves_kinds_metadata_and_counts(src: Path, tmp_path: Path) -> None:
    dst = tmp_path / "dst"
    r = sync(src, dst, VerifyMode="POINT_IN_TIME_CONSISTENT")
    assert r["Status"] == "SUCCESS", r
    # atime as set at the source, untouched by the engine's reads and by verification
    assert os.lstat(dst / "dir/sub/c.txt").st_atime_ns == ATIME_NS
    assert os.lstat(dst / "empty").st_atime_ns == ATIME_NS
    expected = {k: v for k, v in state(src).items() if k != "/fifo"}
    assert state(dst) == expected  # kinds, modes, owners, contents, mtimes to the nanosecond
    assert os.lstat(dst / "a.txt").st_ino == os.lstat(dst / "dir/a-hard.txt").st_ino
    assert os.lstat(dst).st_mtime_ns == MTIME_NS + 7  # root directory metadata too
    assert r["FilesSkipped"] == 1  # the FIFO
    # 3 files + hard link + 2 symlinks; the 3 directories apart; the root is counted as no item
    assert r["EstimatedFilesToTransfer"] == r["FilesTransferred"] == 6
    assert r["EstimatedFoldersToTransfer"] == r["FoldersTransferred"] == 3
    assert r["BytesWritten"] == r["EstimatedBytesToTransfer"] == 5 + (3 << 20) + 5
    assert r["FilesVerified"] == 6 and r["FoldersVerified"] == 3
    assert r["Result"]["PrepareStatus"] == r["Result"]["VerifyStatus"] == "SUCCESS"
    assert temporaries(dst) == []


def test_second_run_changes_nothing(src: Path, tmp_path: Path) -> None:
    dst = tmp_path / "dst"
    sync(src, dst, VerifyMode="NONE")
    inodes = {p: os.lstat(p).st_ino for p in dst.rglob("*")}
    before = state(dst)
    r = sync(src, dst, VerifyMode="POINT_IN_TIME_CONSISTENT")
    assert r["Status"] == "SUCCESS"
    assert r["FilesTransferred"] == r["EstimatedFilesToTransfer"] == r["BytesWritten"] == 0
    assert state(dst) == before
    assert {p: os.lstat(p).st_ino for p in dst.rglob("*")} == inodes


def test_changed_data_is_recopied_and_metadata_only_changes_keep_the_data(
    src: Path, tmp_path: Path
) -> None:
    dst = tmp_path / "dst"
    sync(src, dst, VerifyMode="NONE")
    ino_b = os.lstat(dst / "dir/b.bin").st_ino
    ino_c = os.lstat(dst / "dir/sub/c.txt").st_ino
    write(src / "dir/sub/c.txt", "GAMMA", mode=0o600, mtime_ns=MTIME_NS + 1)  # same size
    os.chmod(src / "dir/b.bin", 0o600)  # metadata only
    r = sync(src, dst, VerifyMode="ONLY_FILES_TRANSFERRED")
    assert r["Status"] == "SUCCESS", r
    assert (dst / "dir/sub/c.txt").read_text() == "GAMMA"
    assert os.lstat(dst / "dir/sub/c.txt").st_ino != ino_c  # new data: placed by rename
    assert os.lstat(dst / "dir/b.bin").st_ino == ino_b  # metadata only: no data rewritten
    assert stat.S_IMODE(os.lstat(dst / "dir/b.bin").st_mode) == 0o600
    assert r["BytesWritten"] == 5
    assert r["FilesTransferred"] == 2
    assert state(dst) == {k: v for k, v in state(src).items() if k != "/fifo"}


def test_transfer_mode_all_rewrites_everything(src: Path, tmp_path: Path) -> None:
    dst = tmp_path / "dst"
    sync(src, dst, VerifyMode="NONE")
    ino = os.lstat(dst / "a.txt").st_ino
    r = sync(src, dst, VerifyMode="NONE", TransferMode="ALL")
    assert r["Status"] == "SUCCESS"
    assert r["BytesWritten"] == 5 + (3 << 20) + 5
    assert os.lstat(dst / "a.txt").st_ino != ino


def test_overwrite_never_leaves_existing_items_alone(src: Path, tmp_path: Path) -> None:
    dst = tmp_path / "dst"
    write(dst / "a.txt", "mine, keep me", mode=0o600)
    write(dst / "dir", "a file where the source has a directory")
    r = sync(src, dst, VerifyMode="POINT_IN_TIME_CONSISTENT", OverwriteMode="NEVER")
    assert r["Status"] == "SUCCESS", r
    assert (dst / "a.txt").read_text() == "mine, keep me"
    assert (dst / "dir").read_text() == "a file where the source has a directory"
    assert (dst / "empty").is_dir()  # new items are still created
    assert r["FilesSkipped"] == 2 and r["FoldersSkipped"] == 1  # a.txt, the FIFO; dir


def test_type_changes_replace_the_destination_item(src: Path, tmp_path: Path) -> None:
    dst = tmp_path / "dst"
    write(dst / "a.txt/inner", "a directory where the source has a file")
    write(dst / "empty", "a file where the source has a directory")
    (src / "newdir").mkdir()
    os.symlink(str(tmp_path / "outside"), dst / "newdir")  # a symlink where the source has a dir
    (tmp_path / "outside").mkdir()
    write(src / "newdir/f", "inside")
    r = sync(src, dst, VerifyMode="POINT_IN_TIME_CONSISTENT")
    assert r["Status"] == "SUCCESS", r
    assert (dst / "a.txt").read_text() == "alpha"
    assert (dst / "empty").is_dir() and not (dst / "empty").is_symlink()
    assert (dst / "newdir").is_dir() and not (dst / "newdir").is_symlink()
    assert list((tmp_path / "outside").iterdir()) == []  # never written through the symlink


def test_remove_deletes_what_the_filtered_source_lacks(src: Path, tmp_path: Path) -> None:
    dst = tmp_path / "dst"
    sync(src, dst, VerifyMode="NONE")
    write(dst / "extra.txt", "x")
    write(dst / "old/deep/file", "y")
    write(dst / "keep.tmp", "excluded at the destination: left alone")
    r = sync(
        src, dst, VerifyMode="POINT_IN_TIME_CONSISTENT", PreserveDeletedFiles="REMOVE",
        filters=FilterRules(excludes="*.tmp"),
    )  # fmt: skip
    assert r["Status"] == "SUCCESS", r
    assert not (dst / "extra.txt").exists() and not (dst / "old").exists()
    assert (dst / "keep.tmp").exists()
    assert r["FilesDeleted"] == r["EstimatedFilesToDelete"] == 2  # extra.txt, file
    assert r["FoldersDeleted"] == r["EstimatedFoldersToDelete"] == 2  # old, deep
    assert r["FilesListed"]["AtDestinationForDelete"] >= 2
    assert r["FoldersListed"]["AtDestinationForDelete"] >= 2


def test_filters_select_what_moves(src: Path, tmp_path: Path) -> None:
    dst = tmp_path / "dst"
    r = sync(src, dst, VerifyMode="POINT_IN_TIME_CONSISTENT",
             filters=FilterRules(includes="/dir", excludes="*/sub"))  # fmt: skip
    assert r["Status"] == "SUCCESS", r
    assert sorted(state(dst)) == ["/dir", "/dir/a-hard.txt", "/dir/b.bin"]


def test_stale_temporaries_are_removed_and_source_ones_ignored(src: Path, tmp_path: Path) -> None:
    dst = tmp_path / "dst"
    write(dst / f"dir/{temporary_name()}", "half a file from a crashed run")
    write(src / temporary_name(), "never copied")
    r = sync(src, dst, VerifyMode="POINT_IN_TIME_CONSISTENT", PreserveDeletedFiles="REMOVE")
    assert r["Status"] == "SUCCESS", r
    assert temporaries(dst) == []
    assert r["FilesDeleted"] == 0


@pytest.mark.skipif(not IS_ROOT, reason="creating device nodes needs root")
def test_devices_only_with_preserve_devices(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    os.mknod(src / "null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    r = sync(src, dst, VerifyMode="NONE")
    assert not (dst / "null").exists() and r["FilesSkipped"] == 1
    r = sync(src, dst, VerifyMode="POINT_IN_TIME_CONSISTENT", PreserveDevices="PRESERVE")
    assert r["Status"] == "SUCCESS", r
    assert os.lstat(dst / "null").st_rdev == os.makedev(1, 3)


@pytest.mark.skipif(not IS_ROOT, reason="changing ownership needs root")
def test_ownership_is_preserved_or_not_by_option(tmp_path: Path) -> None:
    src = tmp_path / "src"
    write(src / "f", "x")
    os.chown(src / "f", 1234, 5678)
    sync(src, tmp_path / "d1", VerifyMode="POINT_IN_TIME_CONSISTENT")
    st = os.lstat(tmp_path / "d1/f")
    assert (st.st_uid, st.st_gid) == (1234, 5678)
    sync(src, tmp_path / "d2", VerifyMode="NONE", Uid="NONE", Gid="NONE")
    st = os.lstat(tmp_path / "d2/f")
    assert (st.st_uid, st.st_gid) == (0, 0)


def test_verify_detects_corruption_at_the_destination(src: Path, tmp_path: Path) -> None:
    dst = tmp_path / "dst"

    def corrupt(status: str) -> None:
        if status == "VERIFYING":
            for victim in ("dir/sub/c.txt", "dir/b.bin"):  # a small file and a pooled large one
                with open(dst / victim, "r+b") as fh:
                    fh.write(b"G")  # same size, other content

    for mode in ("ONLY_FILES_TRANSFERRED", "POINT_IN_TIME_CONSISTENT"):
        shutil.rmtree(dst, ignore_errors=True)
        r = sync(src, dst, {"on_phase": corrupt}, VerifyMode=mode)
        assert r["Status"] == "ERROR"
        assert r["Result"]["VerifyStatus"] == "ERROR"
        assert r["Result"]["ErrorCode"] == "VerificationFailed"
        assert "/dir/sub/c.txt" in r["Result"]["ErrorDetail"]
        assert "/dir/b.bin" in r["Result"]["ErrorDetail"]
        assert r["FilesFailed"]["Verify"] >= 2


def test_point_in_time_verify_finds_missing_items(src: Path, tmp_path: Path) -> None:
    dst = tmp_path / "dst"

    def remove(status: str) -> None:
        if status == "VERIFYING":
            (dst / "a.txt").unlink()

    r = sync(src, dst, {"on_phase": remove}, VerifyMode="POINT_IN_TIME_CONSISTENT")
    assert r["Status"] == "ERROR"
    assert "/a.txt: missing at the destination" in r["Result"]["ErrorDetail"]


def test_a_source_swapped_for_a_symlink_fails_that_file_only(src: Path, tmp_path: Path) -> None:
    dst = tmp_path / "dst"
    secret = write(tmp_path / "secret", "outside the location")

    def swap(status: str) -> None:
        if status == "TRANSFERRING":
            (src / "a.txt").unlink()
            os.symlink(secret, src / "a.txt")

    r = sync(src, dst, {"on_phase": swap}, VerifyMode="NONE")
    assert r["Status"] == "ERROR"
    assert r["FilesFailed"]["Transfer"] >= 1
    assert "/a.txt" in r["Result"]["ErrorDetail"]
    assert not (dst / "a.txt").exists()
    assert (dst / "dir/b.bin").exists()  # the rest went on
    assert temporaries(dst) == []


def test_throttle_and_live_rate_change(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    write(src / "big", os.urandom(1 << 20))
    t = Transfer(src, dst, Options.create({"VerifyMode": "NONE", "BytesPerSecond": 512 << 10}))
    started = time.monotonic()
    result = anyio.run(t.run)
    elapsed = time.monotonic() - started
    assert result["Status"] == "SUCCESS"
    assert elapsed >= 1.9  # 1 MiB at 512 KiB/s can never take less than 2 s

    shutil.rmtree(dst)
    write(src / "big", os.urandom(8 << 20))
    t = Transfer(src, dst, Options.create({"VerifyMode": "NONE", "BytesPerSecond": 256 << 10}))
    threading.Timer(0.5, t.set_bytes_per_second, args=(-1,)).start()
    started = time.monotonic()
    result = anyio.run(t.run)
    assert result["Status"] == "SUCCESS"
    assert time.monotonic() - started < 10  # 32 s at the first rate: the change took effect


def test_niceness_lowers_the_transfer_threads_and_only_them(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    write(src / "big", os.urandom(256 << 10))
    t = Transfer(
        src, dst, Options.create({"VerifyMode": "NONE", "BytesPerSecond": 256 << 10}), niceness=5
    )
    seen: list[int] = []

    def look() -> None:  # while the throttled copy runs (about a second)
        time.sleep(0.3)
        for thread in threading.enumerate():
            if thread.name == "dsl-transfer" and thread.native_id is not None:
                seen.append(os.getpriority(os.PRIO_PROCESS, thread.native_id))

    mine = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    watcher = threading.Thread(target=look)
    watcher.start()
    result = anyio.run(t.run)
    watcher.join()
    assert result["Status"] == "SUCCESS"
    assert seen == [mine + 5]
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == mine


def test_cancel_stops_quickly_and_keeps_the_destination(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    write(src / "big", os.urandom(4 << 20))
    write(src / "small", "new")
    write(dst / "big", "the old version stays until a complete new one replaces it")
    before = state(dst)
    t = Transfer(src, dst, Options.create({"VerifyMode": "NONE", "BytesPerSecond": 256 << 10}))
    cancelled_at: list[float] = []

    def cancel() -> None:
        cancelled_at.append(time.monotonic())
        t.cancel()

    threading.Timer(0.5, cancel).start()
    result = anyio.run(t.run)
    assert time.monotonic() - cancelled_at[0] < 1.0
    assert result["Status"] == "ERROR"
    assert result["Result"]["ErrorCode"] == "Cancelled"
    assert state(dst)["/big"] == before["/big"]
    assert temporaries(dst) == []


def test_cancelling_the_awaiting_task_cancels_the_transfer(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    write(src / "big", os.urandom(2 << 20))
    t = Transfer(src, dst, Options.create({"VerifyMode": "NONE", "BytesPerSecond": 128 << 10}))

    async def main() -> None:
        with anyio.move_on_after(0.3):
            await t.run()

    anyio.run(main)
    assert t.cancelled
    assert t.snapshot()["Status"] == "ERROR"
    assert temporaries(dst) == []


def test_snapshot_is_consistent_while_running(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    for i in range(20):
        write(src / f"f{i}", os.urandom(64 << 10))
    t = Transfer(src, dst, Options.create({"VerifyMode": "NONE", "BytesPerSecond": 2 << 20}))
    seen: list[dict[str, Any]] = []

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(t.run)
            for _ in range(100):
                await anyio.sleep(0.02)
                seen.append(t.snapshot())
                if seen[-1]["Status"] in ("SUCCESS", "ERROR"):
                    break

    anyio.run(main)
    statuses = [s["Status"] for s in seen]
    assert "TRANSFERRING" in statuses
    for s in seen:
        assert s["BytesWritten"] <= s["EstimatedBytesToTransfer"] or s["Status"] == "PREPARING"
        assert s["BytesWritten"] == s["BytesTransferred"]
    done = [s["BytesWritten"] for s in seen]
    assert done == sorted(done)  # monotonic


def test_location_problems_end_in_error(tmp_path: Path) -> None:
    r = sync(tmp_path / "missing", tmp_path / "dst")
    assert r["Status"] == "ERROR"
    assert r["Result"]["ErrorCode"] == "LocationUnavailable"
    assert "does not exist" in r["Result"]["ErrorDetail"]
    (tmp_path / "s").mkdir()
    r = sync(tmp_path / "s", tmp_path / "no/such/parent")
    assert r["Result"]["ErrorCode"] == "LocationUnavailable"
    r = sync(tmp_path / "s", tmp_path / "s/inside")
    assert "contain each other" in r["Result"]["ErrorDetail"]


@pytest.mark.skipif(not IS_ROOT, reason="needs root to switch to an unprivileged user")
def test_unreadable_items_fail_alone_and_block_deletes() -> None:
    base = shared_tmpdir()
    try:
        src, dst = base / "src", base / "dst"
        write(src / "ok.txt", "fine")
        write(src / "secret.txt", "no", mode=0o000)
        write(src / "locked/inner", "x")
        os.chmod(src / "locked", 0o000)
        dst.mkdir()
        write(dst / "stale.txt", "would be removed by a complete run")
        os.chown(dst, 65534, 65534)
        os.chown(dst / "stale.txt", 65534, 65534)

        def run() -> dict[str, Any]:
            return sync(
                src, dst, VerifyMode="ONLY_FILES_TRANSFERRED", PreserveDeletedFiles="REMOVE"
            )

        r = run_as_nobody(run)
        assert r["Status"] == "ERROR"
        assert (dst / "ok.txt").read_text() == "fine"
        assert not (dst / "secret.txt").exists()
        assert r["FilesFailed"]["Transfer"] == 1 and r["FoldersFailed"]["List"] == 1
        assert any("/secret.txt" in f and "Permission denied" in f for f in r["_failures"])
        assert any(f.startswith("/locked") for f in r["_failures"])
        assert (dst / "stale.txt").exists()  # the source was not listed completely: no deletes
        assert r["FilesDeleted"] == 0
        assert temporaries(dst) == []
    finally:
        os.chmod(base / "src/locked", 0o755)
        shutil.rmtree(base)


def test_a_source_directory_swapped_for_a_symlink_is_never_followed(tmp_path: Path) -> None:
    src, dst, outside = tmp_path / "src", tmp_path / "dst", tmp_path / "outside"
    write(src / "dir/data.txt", "inside the location")
    write(src / "top.txt", "top")
    write(outside / "data.txt", "SECRET outside the location")

    def swap(status: str) -> None:
        if status == "TRANSFERRING":
            shutil.rmtree(src / "dir")
            os.symlink(outside, src / "dir")

    r = sync(src, dst, {"on_phase": swap}, VerifyMode="NONE")
    assert r["Status"] == "ERROR"
    assert any(f.startswith("/dir/data.txt") for f in r["_failures"])
    assert not (dst / "dir/data.txt").exists()
    assert all("SECRET" not in p.read_text() for p in dst.rglob("*") if p.is_file())
    assert (dst / "top.txt").read_text() == "top"


def test_a_destination_directory_swapped_for_a_symlink_is_never_written_through(
    tmp_path: Path,
) -> None:
    src, dst, outside = tmp_path / "src", tmp_path / "dst", tmp_path / "outside"
    write(src / "dir/new.txt", "new")
    (dst / "dir").mkdir(parents=True)
    outside.mkdir()

    def swap(status: str) -> None:
        if status == "TRANSFERRING":
            (dst / "dir").rmdir()
            os.symlink(outside, dst / "dir")

    r = sync(src, dst, {"on_phase": swap}, VerifyMode="NONE")
    assert r["Status"] == "ERROR"
    assert list(outside.iterdir()) == []  # nothing was written outside the destination
    assert any(f.startswith("/dir/new.txt") for f in r["_failures"])


@pytest.mark.parametrize("side", ["source", "destination"])
def test_an_attribute_only_change_is_a_metadata_update_not_a_copy(
    src: Path, tmp_path: Path, side: str
) -> None:
    """Same size and mtime, other mode (and owner, as root): re-planned as a metadata update in
    place (the data and the inode stay), as DataSync and rsync do, and verified by PITC."""
    dst = tmp_path / "dst"
    sync(src, dst, VerifyMode="NONE")
    changed = (src if side == "source" else dst) / "dir/b.bin"
    ino, before = os.lstat(dst / "dir/b.bin").st_ino, os.lstat(changed)
    os.chmod(changed, 0o604)
    if IS_ROOT:
        os.chown(changed, 4321, 4321)
    os.utime(changed, ns=(before.st_atime_ns, before.st_mtime_ns))  # same size and mtime
    r = sync(src, dst, VerifyMode="POINT_IN_TIME_CONSISTENT")
    assert r["Status"] == "SUCCESS", r
    assert r["FilesTransferred"] == 1 and r["EstimatedFilesToTransfer"] == 1
    assert r["BytesWritten"] == 0 and r["BytesTransferred"] == 0
    after = os.lstat(dst / "dir/b.bin")
    assert after.st_ino == ino  # no data rewritten, no temporary renamed over it
    want = os.lstat(src / "dir/b.bin")
    assert stat.S_IMODE(after.st_mode) == stat.S_IMODE(want.st_mode)
    assert (after.st_uid, after.st_gid) == (want.st_uid, want.st_gid)
    assert state(dst) == {k: v for k, v in state(src).items() if k != "/fifo"}


def test_running_transfers_hold_none_of_the_loops_worker_tokens(tmp_path: Path) -> None:
    """Awaiting a transfer does not take one of the event loop's shared thread tokens for the
    whole run: an agent running more transfers than tokens still gets its other thread work
    (its reports) done while they run."""
    trees = []
    for i in range(2):
        src = tmp_path / f"src{i}"
        write(src / "big.bin", os.urandom(256 * 1024))
        trees.append((src, tmp_path / f"dst{i}"))

    async def main() -> tuple[bool, list[dict[str, Any]]]:
        import anyio.to_thread

        anyio.to_thread.current_default_thread_limiter().total_tokens = 1
        options = Options.create({"BytesPerSecond": 256 * 1024, "VerifyMode": "NONE"})
        transfers = [Transfer(src, dst, options) for src, dst in trees]
        results: list[dict[str, Any]] = []
        served = False
        async with anyio.create_task_group() as tg:
            for t in transfers:

                async def run(t: Transfer = t) -> None:
                    results.append(await t.run())

                tg.start_soon(run)
            await anyio.sleep(0.2)  # both run (about a second each at this rate)
            with anyio.move_on_after(0.5):
                served = await anyio.to_thread.run_sync(lambda: True)
        return served, results

    served, results = anyio.run(main)
    assert served, "the transfers held the loop's only worker token"
    assert [r["Status"] for r in results] == ["SUCCESS", "SUCCESS"], results
