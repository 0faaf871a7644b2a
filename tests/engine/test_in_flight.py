"""`Transfer.in_flight()`: the files being copied or verified now (what `sync`'s progress names)."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from engine.options import Options
from engine.progress import Progress
from engine.transfer import Transfer
from tests.engine.trees import write


def test_a_file_is_in_flight_while_copied_and_verified_and_gone_after(tmp_path: Path) -> None:
    write(tmp_path / "src/big.bin", os.urandom(2 << 20))
    write(tmp_path / "src/small.txt", "x")
    transfer = Transfer(
        tmp_path / "src", tmp_path / "dst",
        Options.create({"BytesPerSecond": 1 << 20, "VerifyMode": "ONLY_FILES_TRANSFERRED"}),
        copy_helpers=0,
    )  # fmt: skip
    seen: dict[str, set[str]] = {}
    done = threading.Event()

    def watch() -> None:
        while not done.wait(0.02):
            phase = transfer.snapshot()["Status"]
            for path, size in transfer.in_flight():
                seen.setdefault(phase, set()).add(path)
                assert size == (2 << 20 if path == "/big.bin" else 1)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        result = transfer.run_blocking()  # 2 MiB at 1 MiB/s: copying it takes about 2 s
    finally:
        done.set()
        watcher.join()
    assert result["Status"] == "SUCCESS"
    assert "/big.bin" in seen["TRANSFERRING"]
    assert transfer.in_flight() == []  # nothing is left "in flight" once it ended


def test_in_flight_keeps_the_oldest_first_and_forgets_what_ended() -> None:
    progress = Progress()
    for i in range(10):
        progress.working(f"/f{i}", i)
    progress.worked("/f0")
    progress.worked("/never-started")  # harmless
    assert progress.in_flight(limit=3) == [("/f1", 1), ("/f2", 2), ("/f3", 3)]
    assert len(progress.in_flight()) == 8
