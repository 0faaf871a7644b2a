"""Sparse files stay sparse at the destination, with holes where the source has them."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import anyio
import pytest
import xxhash

from engine import Options
from engine.sparse import data_extents, is_sparse
from engine.transfer import Transfer
from tests.engine.trees import MTIME_NS

GIB = 1 << 30
BLOCK = 4096


def sync(src: Path, dst: Path, **options: Any) -> dict[str, Any]:
    t = Transfer(src, dst, Options.create(options))
    result: dict[str, Any] = anyio.run(t.run)
    result["_failures"] = [str(f) for f in t.failures]
    return result


def sparse_file(path: Path) -> list[tuple[int, bytes]]:
    """A 1 GiB file with three 4 KiB data blocks (start, middle, end): 12 KiB allocated."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pieces = [(0, b"A" * BLOCK), (GIB // 2, b"B" * BLOCK), (GIB - BLOCK, b"C" * BLOCK)]
    with open(path, "wb") as f:
        f.truncate(GIB)
        for offset, data in pieces:
            f.seek(offset)
            f.write(data)
    os.utime(path, ns=(MTIME_NS, MTIME_NS))
    if os.stat(path).st_blocks * 512 > 1 << 20:
        pytest.skip("this file system does not keep holes")
    return pieces


def allocated(path: Path) -> int:
    return os.stat(path).st_blocks * 512


def digest(path: Path) -> bytes:
    h = xxhash.xxh3_128()
    with open(path, "rb") as f:
        while chunk := f.read(8 << 20):
            h.update(chunk)
    return h.digest()


@pytest.mark.parametrize("verify", ["POINT_IN_TIME_CONSISTENT", "ONLY_FILES_TRANSFERRED"])
def test_a_1_gib_file_with_12_kib_of_data_stays_12_kib(tmp_path: Path, verify: str) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    pieces = sparse_file(src / "disk.img")
    result = sync(src, dst, VerifyMode=verify)
    assert result["Status"] == "SUCCESS", result["_failures"]
    out = dst / "disk.img"
    assert os.stat(out).st_size == GIB
    assert allocated(out) <= 64 << 10, allocated(out)  # ~12 KiB, not 1 GiB
    # the holes are where the source's are, and the data reads back the same
    with open(out, "rb") as f:
        fd = f.fileno()
        assert [(s, e - s) for s, e in data_extents(fd, GIB)] == [
            (offset, BLOCK) for offset, _ in pieces
        ]
        for offset, data in pieces:
            assert os.pread(fd, len(data), offset) == data
    assert digest(out) == digest(src / "disk.img")
    # byte counters count the logical size (holes included), as the estimate does
    assert result["BytesWritten"] == result["EstimatedBytesToTransfer"] == GIB


def test_verification_still_catches_a_changed_sparse_file(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    sparse_file(src / "disk.img")
    assert sync(src, dst)["Status"] == "SUCCESS"
    with open(dst / "disk.img", "r+b") as f:  # a byte written into a hole
        f.seek(GIB // 4)
        f.write(b"x")
    os.utime(dst / "disk.img", ns=(MTIME_NS, MTIME_NS))  # size and mtime as before
    result = sync(src, dst)  # nothing to copy by size/mtime: PITC compares the contents
    assert result["Status"] == "ERROR"
    assert any("checksum mismatch" in f for f in result["_failures"])


def test_a_file_that_is_all_hole_and_a_dense_file(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    with open(src / "hole", "wb") as f:
        f.truncate(8 << 20)
    (src / "dense").write_bytes(os.urandom(1 << 20))
    assert is_sparse(os.stat(src / "hole")) and not is_sparse(os.stat(src / "dense"))
    result = sync(src, dst, VerifyMode="ONLY_FILES_TRANSFERRED")
    assert result["Status"] == "SUCCESS", result["_failures"]
    assert os.stat(dst / "hole").st_size == 8 << 20 and allocated(dst / "hole") == 0
    assert (dst / "dense").read_bytes() == (src / "dense").read_bytes()


@pytest.mark.timeout(120)
def test_throttle_pays_only_for_data_bytes(tmp_path: Path) -> None:
    """At 1 MiB/s a 1 GiB file would take ~17 minutes if holes were paid for; 12 KiB of data is
    paid for almost at once (the test's timeout is the bound)."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    sparse_file(src / "disk.img")
    result = sync(src, dst, BytesPerSecond=1 << 20, VerifyMode="NONE")
    assert result["Status"] == "SUCCESS", result["_failures"]
    assert result["BytesWritten"] == GIB
