"""`sync` keeps its verification cache under the user's cache directory unless told not to."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.engine.trees import write


def run(env_cache: Path, *args: str | Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "XDG_CACHE_HOME": str(env_cache)}
    return subprocess.run(
        [sys.executable, "-m", "cli.main", "sync", *map(str, args)],
        capture_output=True, text=True, timeout=60, cwd=Path(__file__).parents[2], env=env,
    )  # fmt: skip


def test_default_cache_under_xdg_cache_home_and_no_hash_cache(tmp_path: Path) -> None:
    write(tmp_path / "src/a.txt", "hello")
    xdg = tmp_path / "xdg"
    p = run(xdg, tmp_path / "src", tmp_path / "dst")
    assert p.returncode == 0, p.stderr
    assert (xdg / "datasync-local/hashes.sqlite3").is_file()

    other = tmp_path / "xdg2"
    p = run(other, tmp_path / "src", tmp_path / "dst2", "--no-hash-cache")
    assert p.returncode == 0, p.stderr
    assert not other.exists()

    p = run(other, tmp_path / "src", tmp_path / "dst3", "--hash-cache-dir", tmp_path / "mine")
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "mine/hashes.sqlite3").is_file() and not other.exists()


def test_tests_never_write_the_real_cache_home(tmp_path: Path) -> None:
    """tests/conftest.py gives every test its own XDG_CACHE_HOME, which `sync` children inherit."""
    xdg = Path(os.environ["XDG_CACHE_HOME"])
    assert not xdg.is_relative_to(Path.home() / ".cache")
    write(tmp_path / "src/a.txt", "hello")
    p = subprocess.run(
        [sys.executable, "-m", "cli.main", "sync", str(tmp_path / "src"), str(tmp_path / "dst")],
        capture_output=True, text=True, timeout=60, cwd=Path(__file__).parents[2],
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    assert (xdg / "datasync-local/hashes.sqlite3").is_file()
