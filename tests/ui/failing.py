"""Real file failures for the page's tests: destination files made immutable (`chattr +i`), so
even root's transfer cannot replace them (EPERM on the rename), while the rest go through."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.api.harness import make_tree


@contextmanager
def failing_files(root: Path, names: list[str]) -> Iterator[list[str]]:
    """`root/src` with 3 good files and `names`, whose `root/dst` copies cannot be replaced;
    yields the failing paths as the log names them (`/name`). Undoes the attribute after."""
    make_tree(str(root / "src"), 3, 1000)
    (root / "dst").mkdir(exist_ok=True)
    locked = []
    for name in names:
        (root / "src" / name).write_text("new content\n")
        (root / "dst" / name).write_text("old\n")
        locked.append(str(root / "dst" / name))
    done = subprocess.run(["chattr", "+i", *locked], capture_output=True, text=True)
    if done.returncode != 0:
        subprocess.run(["chattr", "-i", *locked], capture_output=True)
        pytest.skip(f"chattr +i is not supported here: {done.stderr.strip()}")
    try:
        yield [f"/{name}" for name in names]
    finally:
        subprocess.run(["chattr", "-i", *locked], check=True)
