"""`datasync-local sync` in a real pseudo-terminal of a given size, as a user sees it."""

from __future__ import annotations

import fcntl
import os
import re
import select
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

from cli.progress import ProgressView, fit_files, fit_line
from cli.sizes import format_size, parse_size
from tests.engine.trees import temporaries, write

REPO = Path(__file__).parents[2]
_ANSI = re.compile(r"\x1b(\[[0-9;?]*[A-Za-z]|\][^\x07]*\x07|[()][A-Z0-9])")


class Terminal:
    """A child process whose stdin, stdout and stderr are one pty of `cols` x `rows`, with that
    pty as its controlling terminal (so a ^C typed there is a real SIGINT)."""

    def __init__(self, args: list[str], cols: int, rows: int = 24) -> None:
        self.master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "NO_COLOR")}
        env["TERM"] = "xterm-256color"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cli.main", *args],
            stdin=slave, stdout=slave, stderr=slave, cwd=REPO, env=env,
            start_new_session=True,
            preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0),
        )  # fmt: skip
        os.close(slave)
        self.output = b""

    def read_until(self, needle: bytes | None, timeout: float) -> bool:
        """Collect output until `needle` shows up (or, with None, until the child closes it)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if needle is not None and needle in self.output:
                return True
            ready, _, _ = select.select([self.master], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(self.master, 65536)
                except OSError:  # EIO: every copy of the slave side is closed
                    return needle is None
                if not chunk:
                    return needle is None
                self.output += chunk
        return False

    def type(self, data: bytes) -> None:
        os.write(self.master, data)

    def finish(self, timeout: float = 30) -> int:
        self.read_until(None, timeout)
        code = self.proc.wait(timeout=timeout)
        os.close(self.master)
        return code

    def screen_lines(self) -> list[str]:
        """Every stretch of text between two carriage returns or newlines, escapes removed."""
        text = _ANSI.sub("", self.output.decode("utf-8", "replace"))
        return [part for part in re.split(r"\r\n|\r|\n", text) if part]


@pytest.mark.parametrize("cols", [60, 200])
def test_progress_fits_the_terminal_width(tmp_path: Path, cols: int) -> None:
    write(tmp_path / "src/big.bin", os.urandom(3 << 20))
    write(tmp_path / "src/small.txt", "hello")
    term = Terminal(
        ["sync", str(tmp_path / "src"), str(tmp_path / "dst"), "--bytes-per-second", "1M",
         "--verify-mode", "only_files_transferred"],
        cols,
    )  # fmt: skip
    assert term.finish() == 0, term.output.decode()
    lines = term.screen_lines()
    live = lines[: lines.index("Status: SUCCESS")]  # the summary after it is ordinary text
    too_long = [line for line in live if len(line) > cols]
    assert too_long == []
    drawn = [line for line in live if line.startswith("transferring")]
    assert drawn, lines
    assert any("%" in line for line in drawn)
    if cols == 200:  # room for everything: percentage, bytes, rate, elapsed, ETA, items
        full = drawn[-1]
        assert re.search(r"\d+% \S+/3\.0 MiB .*/s \d:\d\d:\d\d ETA \d:\d\d:\d\d \d+/2 items", full)
    # the file in flight, on its own line under the counters (3 s at 1 MiB/s: seen at every width)
    assert any(line.startswith("↳ /big.bin (3.0 MiB)") for line in live), live
    assert lines[-1].startswith("SUCCESS: 2 items, 3.0 MiB in ")
    assert (tmp_path / "dst/big.bin").read_bytes() == (tmp_path / "src/big.bin").read_bytes()


def test_the_file_in_flight_is_cut_from_the_left_to_fit() -> None:
    path = "/photos/2024/summer/holiday-in-the-mountains/IMG_0001.jpg"
    assert fit_files([], 60) == ""
    assert fit_files([(path, 3 << 20)], 200) == f"↳ {path} (3.0 MiB)"
    assert fit_files([(path, 3 << 20), ("/b", 1)], 200) == f"↳ {path} (3.0 MiB) +1 more"
    narrow = fit_files([(path, 3 << 20), ("/b", 1)], 40)
    assert len(narrow) == 40 and narrow.startswith("↳ …") and narrow.endswith("(3.0 MiB) +1 more")
    assert fit_files([(path, 5)], 12) == "↳ …_0001.jpg"  # too narrow for the size: the name only


def test_ctrl_c_in_a_terminal_exits_130_and_keeps_the_destination(tmp_path: Path) -> None:
    write(tmp_path / "src/big.bin", os.urandom(8 << 20))
    write(tmp_path / "dst/big.bin", "previous version")
    term = Terminal(
        ["sync", str(tmp_path / "src"), str(tmp_path / "dst"), "--bytes-per-second", "1MiB",
         "--verify-mode", "NONE"],
        100,
    )  # fmt: skip
    assert term.read_until(b"transferring", timeout=20), term.output.decode()
    term.type(b"\x03")  # ^C through the terminal's line discipline: SIGINT to the job
    assert term.finish() == 130, term.output.decode()
    assert "ErrorCode: Cancelled" in term.output.decode()
    assert (tmp_path / "dst/big.bin").read_text() == "previous version"
    assert temporaries(tmp_path / "dst") == []


def test_plain_lines_when_not_a_terminal(tmp_path: Path) -> None:
    write(tmp_path / "src/big.bin", os.urandom(2 << 20))
    p = subprocess.run(
        [sys.executable, "-m", "cli.main", "sync", str(tmp_path / "src"), str(tmp_path / "dst"),
         "--bytes-per-second", "1M", "--verify-mode", "none"],
        capture_output=True, text=True, timeout=60, cwd=REPO,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    assert "\x1b" not in p.stderr and "\r" not in p.stderr
    assert any(line.startswith("transferring ") for line in p.stderr.splitlines()), p.stderr
    quiet = subprocess.run(
        [sys.executable, "-m", "cli.main", "sync", str(tmp_path / "src"), str(tmp_path / "dst2"),
         "--no-progress", "--verify-mode", "NONE"],
        capture_output=True, text=True, timeout=60, cwd=REPO,
    )  # fmt: skip
    assert quiet.returncode == 0 and quiet.stderr == ""


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1048576", 1 << 20),
        ("512K", 512 << 10),
        ("512k", 512 << 10),
        ("4M", 4 << 20),
        ("4MiB", 4 << 20),
        ("4mib", 4 << 20),
        ("1.5GiB", 3 << 29),
        ("1.5G", 3 << 29),
        ("10MB", 10_000_000),
        ("2KB", 2000),
        ("-1", -1),
        ("off", -1),
        ("unlimited", -1),
    ],
)
def test_human_sizes(text: str, expected: int) -> None:
    assert parse_size(text, allow_unlimited=True) == expected


@pytest.mark.parametrize("text", ["", "M", "4X", "1.5", "4 MiBs", "-2", "iB", "5iB"])
def test_bad_sizes_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="not a"):
        parse_size(text, allow_unlimited=True)
    assert parse_size("4M") == 4 << 20
    with pytest.raises(ValueError):
        parse_size("-1")  # unlimited only where the caller allows it


def test_format_size() -> None:
    assert [format_size(n) for n in (0, 1023, 1024, 4 << 20, 3 << 29)] == [
        "0 B", "1023 B", "1.0 KiB", "4.0 MiB", "1.5 GiB",
    ]  # fmt: skip


def test_sizes_and_case_insensitive_enums_on_the_command_line(tmp_path: Path) -> None:
    write(tmp_path / "src/a.txt", "a")
    p = subprocess.run(
        [sys.executable, "-m", "cli.main", "sync", str(tmp_path / "src"), str(tmp_path / "dst"),
         "--verify-mode", "none", "--transfer-mode", "Changed", "--bytes-per-second", "4M",
         "--json"],
        capture_output=True, text=True, timeout=60, cwd=REPO,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    bad = subprocess.run(
        [sys.executable, "-m", "cli.main", "sync", "a", "b", "--bytes-per-second", "4X"],
        capture_output=True, text=True, timeout=60, cwd=REPO,
    )  # fmt: skip
    assert bad.returncode == 2
    assert "not a size: '4X'" in bad.stderr


def test_fit_line_never_exceeds_the_width() -> None:
    views = [
        ProgressView("TRANSFERRING", 0.42, 3 << 30, 7 << 30, 12, 123_456, 0, 4e6, 3723.0, 99999.0),
        ProgressView("VERIFYING", 0.9, 7 << 30, 7 << 30, 123_456, 123_456, 111_111, 0.0, 10, 1),
        ProgressView("PREPARING", None, 0, 0, 0, 0, 0, 0.0, 1.0, None),
    ]
    for view in views:
        for width in range(1, 220):
            line = fit_line(view, width, listed=1_234_567)
            assert line.cell_len <= width, (view, width, line.plain)
        assert fit_line(view, 200).plain.startswith(view.phase.lower())


def test_version_on_every_command() -> None:
    for command in ([], ["serve"], ["agent"], ["sync"]):
        p = subprocess.run(
            [sys.executable, "-m", "cli.main", *command, "--version"],
            capture_output=True, text=True, timeout=60, cwd=REPO,
        )  # fmt: skip
        assert p.returncode == 0, (command, p.stderr)
        assert re.fullmatch(r"datasync-local \d+\.\d+\.\d+\S*\n", p.stdout), p.stdout


def test_help_shows_defaults_and_examples_and_hides_what_a_local_sync_ignores(
    tmp_path: Path,
) -> None:
    p = subprocess.run(
        [sys.executable, "-m", "cli.main", "sync", "--help"],
        capture_output=True, text=True, timeout=60, cwd=REPO,
        env={**os.environ, "COLUMNS": "100"},
    )  # fmt: skip
    assert p.returncode == 0
    text = " ".join(p.stdout.split())  # argparse wraps help text
    assert "NONE (default POINT_IN_TIME_CONSISTENT)" in text
    assert "examples:" in text and "--bytes-per-second 4M" in text
    assert "--task-queueing" not in text and "--log-level" not in text
    write(tmp_path / "src/a.txt", "a")
    accepted = subprocess.run(
        [sys.executable, "-m", "cli.main", "sync", str(tmp_path / "src"), str(tmp_path / "dst"),
         "--log-level", "off", "--task-queueing", "ENABLED", "--verify-mode", "NONE"],
        capture_output=True, text=True, timeout=60, cwd=REPO,
    )  # fmt: skip
    assert accepted.returncode == 0, accepted.stderr


def test_verifying_has_a_percentage_and_an_eta_from_the_items_verified() -> None:
    snap = {
        "Status": "VERIFYING", "BytesWritten": 8 << 20, "EstimatedBytesToTransfer": 8 << 20,
        "FilesTransferred": 200, "EstimatedFilesToTransfer": 200, "FilesVerified": 50,
        "FilesListed": {"AtSource": 200}, "Result": {"TotalDuration": 12_000},
    }  # fmt: skip
    # ONLY_FILES_TRANSFERRED re-reads what was written: 50 of 200 in 3 s, so 9 s to go
    view = ProgressView.of(snap, 0.0, "ONLY_FILES_TRANSFERRED", phase_elapsed=3.0)
    assert view.fraction == 0.25 and view.eta == 9.0
    line = fit_line(view, 60).plain
    assert line.startswith("verifying") and " 25%" in line and "ETA 0:00:09" in line
    assert len(line) <= 60
