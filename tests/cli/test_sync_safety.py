"""`sync --dry-run / --max-delete / --allow-empty-source / --fsync` through the real command."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.engine.trees import state, write


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli.main", "sync", "--no-progress", *map(str, args)],
        capture_output=True, text=True, timeout=60, cwd=Path(__file__).parents[2],
    )  # fmt: skip


def test_dry_run_prints_the_plan_and_writes_nothing(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    write(src / "new.txt", "n")
    write(dst / "gone.txt", "g")
    before = state(dst)
    p = run(src, dst, "-n", "--preserve-deleted-files", "REMOVE")
    assert p.returncode == 0, p.stderr
    assert ">f+++++++++ new.txt" in p.stdout
    assert "*deleting   gone.txt" in p.stdout
    assert "dry run: 1 to create" in p.stdout and "1 to delete" in p.stdout
    assert state(dst) == before


def test_an_empty_source_and_max_delete_fail_unless_allowed(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    for i in range(3):
        write(dst / f"f{i}", "x")
    p = run(src, dst, "--preserve-deleted-files", "REMOVE")
    assert p.returncode == 1 and "SourceLocationEmpty" in p.stdout, p.stdout
    assert len(list(dst.iterdir())) == 3
    p = run(
        src, dst, "--preserve-deleted-files", "REMOVE", "--allow-empty-source", "--max-delete", "1"
    )
    assert p.returncode == 1 and "MaxDeleteExceeded" in p.stdout, p.stdout
    assert len(list(dst.iterdir())) == 2
    p = run(src, dst, "--preserve-deleted-files", "REMOVE", "--allow-empty-source", "--fsync")
    assert p.returncode == 0, p.stdout + p.stderr
    assert list(dst.iterdir()) == []
