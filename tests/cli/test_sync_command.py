"""`datasync-local sync` as a user runs it: a real subprocess, real directories."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.engine.trees import temporaries, write


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli.main", "sync", *map(str, args)],
        capture_output=True, text=True, timeout=60, cwd=Path(__file__).parents[2],
    )  # fmt: skip


def test_success_prints_datasync_counters_and_exits_0(tmp_path: Path) -> None:
    write(tmp_path / "src/a.txt", "hello")
    write(tmp_path / "src/sub/b.txt", "world")
    p = run(tmp_path / "src", tmp_path / "dst", "--verify-mode", "ONLY_FILES_TRANSFERRED")
    assert p.returncode == 0, p.stderr
    assert "Status: SUCCESS" in p.stdout
    assert (
        "FilesTransferred: 2" in p.stdout
    )  # two files (the directory is a folder, the root no item)
    assert (tmp_path / "dst/sub/b.txt").read_text() == "world"


def test_json_summary_and_filters(tmp_path: Path) -> None:
    write(tmp_path / "src/keep.txt", "k")
    write(tmp_path / "src/skip.tmp", "s")
    p = run(
        tmp_path / "src", tmp_path / "dst", "--json", "--exclude", "*.tmp", "--verify-mode", "NONE"
    )
    assert p.returncode == 0, p.stderr
    summary = json.loads(p.stdout)
    assert summary["Status"] == "SUCCESS"
    assert summary["BytesWritten"] == 1
    assert summary["Failures"] == []
    assert not (tmp_path / "dst/skip.tmp").exists()


def test_bad_usage_exits_2_with_one_line(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    cases = [
        (tmp_path / "missing", tmp_path / "dst", "--verify-mode", "NONE"),
        (tmp_path / "src", tmp_path / "dst", "--atime", "NONE"),
        (
            tmp_path / "src",
            tmp_path / "dst",
            "--transfer-mode",
            "ALL",
            "--preserve-deleted-files",
            "REMOVE",
        ),
        (tmp_path / "src", tmp_path / "no/parent"),
        (tmp_path / "src", tmp_path / "dst", "--verify-mode", "SOMETIMES"),
        (tmp_path / "src", tmp_path / "dst", "--bytes-per-second", "0"),
    ]
    for args in cases:
        p = run(*args)
        assert p.returncode == 2, (args, p.stderr)
        assert "Traceback" not in p.stderr
        assert p.stderr.strip().splitlines()[-1].startswith("datasync-local sync: error:")


def test_failed_transfer_exits_1_and_names_the_file(tmp_path: Path) -> None:
    write(tmp_path / "src/ok.txt", "fine")
    write(tmp_path / "src/sub/a.txt", "a")
    (tmp_path / "dst/sub").mkdir(parents=True)
    # An immutable directory refuses new entries even to root (mode bits would not).
    subprocess.run(["chattr", "+i", tmp_path / "dst/sub"], check=True)
    try:
        p = run(tmp_path / "src", tmp_path / "dst", "--verify-mode", "NONE")
    finally:
        subprocess.run(["chattr", "-i", tmp_path / "dst/sub"], check=True)
    assert p.returncode == 1, p.stdout + p.stderr
    assert "Status: ERROR" in p.stdout
    assert "ErrorCode: TransferFailed" in p.stdout
    assert "/sub/a.txt: Operation not permitted" in p.stdout
    assert "Traceback" not in p.stderr
    assert (tmp_path / "dst/ok.txt").read_text() == "fine"  # the rest went on
    assert list((tmp_path / "dst/sub").iterdir()) == []


def test_sigint_cancels_cleanly_and_exits_130(tmp_path: Path) -> None:
    write(tmp_path / "src/big.bin", os.urandom(4 << 20))
    write(tmp_path / "dst/big.bin", "previous version")
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "sync", str(tmp_path / "src"), str(tmp_path / "dst"),
         "--verify-mode", "NONE", "--bytes-per-second", str(512 << 10)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=Path(__file__).parents[2],
    )  # fmt: skip
    assert proc.stderr is not None
    deadline = time.monotonic() + 30  # wait for the copy to be under way (plain progress lines)
    while "transferring" not in proc.stderr.readline():
        assert proc.poll() is None and time.monotonic() < deadline
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=10)
    assert proc.returncode == 130, out + err  # interrupted, not failed
    assert "ErrorCode: Cancelled" in out
    assert "Traceback" not in err
    assert (tmp_path / "dst/big.bin").read_text() == "previous version"
    assert temporaries(tmp_path / "dst") == []
