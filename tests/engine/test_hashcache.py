"""The verification cache: unchanged inodes verify from their stored digest, changed ones never."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any

import anyio
import xxhash

from engine import Options
from engine.hashcache import HashCache
from engine.transfer import Transfer
from tests.engine.trees import MTIME_NS, write

WRONG = b"\xee" * 16


def sync(src: Path, dst: Path, cache: Path | None, **options: Any) -> dict[str, Any]:
    t = Transfer(src, dst, Options.create(options), hash_cache_dir=str(cache) if cache else None)
    result: dict[str, Any] = anyio.run(t.run)
    result["_failures"] = [str(f) for f in t.failures]
    return result


def rows(cache: Path) -> dict[tuple[int, int], bytes]:
    with sqlite3.connect(cache / "hashes.sqlite3") as db:
        return {(d, i): g for d, i, g in db.execute("SELECT dev, ino, digest FROM hashes")}


def plant(cache: Path, path: Path, digest: bytes) -> None:
    st = os.stat(path)
    with sqlite3.connect(cache / "hashes.sqlite3") as db:
        db.execute(
            "UPDATE hashes SET digest=? WHERE dev=? AND ino=?", (digest, st.st_dev, st.st_ino)
        )


def tree(root: Path) -> None:
    for i in range(5):
        write(root / f"d{i % 2}/f{i}.bin", os.urandom(10_000 + i))


def test_a_verification_stores_both_sides_digests(tmp_path: Path) -> None:
    src, dst, cache = tmp_path / "src", tmp_path / "dst", tmp_path / "cache"
    tree(src)
    assert sync(src, dst, cache)["Status"] == "SUCCESS"
    stored = rows(cache)
    assert len(stored) == 10  # five files, each side
    for side in (src, dst):
        for f in side.rglob("*.bin"):
            st = os.stat(f)
            assert stored[(st.st_dev, st.st_ino)] == xxhash.xxh3_128(f.read_bytes()).digest()


def test_an_unchanged_inode_is_not_read_again(tmp_path: Path) -> None:
    """A digest planted for an unchanged destination inode is believed: proof that the file was
    not read. (Only a cache entry can say so; the file's contents are correct.)"""
    src, dst, cache = tmp_path / "src", tmp_path / "dst", tmp_path / "cache"
    tree(src)
    assert sync(src, dst, cache)["Status"] == "SUCCESS"
    plant(cache, dst / "d0/f0.bin", WRONG)
    result = sync(src, dst, cache)
    assert result["Status"] == "ERROR"
    assert result["_failures"] == ["/d0/f0.bin: checksum mismatch between source and destination"]
    # without the cache, the same tree verifies by reading
    assert sync(src, dst, None)["Status"] == "SUCCESS"


def test_any_write_moves_the_ctime_and_the_entry_is_ignored(tmp_path: Path) -> None:
    src, dst, cache = tmp_path / "src", tmp_path / "dst", tmp_path / "cache"
    tree(src)
    assert sync(src, dst, cache)["Status"] == "SUCCESS"
    # the destination corrupted in place, size and mtime restored: only the ctime tells
    target = dst / "d1/f1.bin"
    data = bytearray(target.read_bytes())
    data[0] ^= 0xFF
    with open(target, "r+b") as f:
        f.write(data)
    os.utime(target, ns=(MTIME_NS, MTIME_NS))
    result = sync(src, dst, cache)
    assert result["Status"] == "ERROR"
    assert result["_failures"] == ["/d1/f1.bin: checksum mismatch between source and destination"]
    # a planted digest on a file whose metadata changed since (chmod moves the ctime) is ignored
    plant(cache, src / "d0/f2.bin", WRONG)
    os.chmod(src / "d0/f2.bin", 0o644)
    target.unlink()  # so that this run recopies the corrupted file
    assert sync(src, dst, cache)["Status"] == "SUCCESS"


def test_an_unusable_cache_is_no_error(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    tree(src)
    blocked = tmp_path / "not-a-dir"
    blocked.write_text("a file where the cache directory should be")
    result = sync(src, dst, blocked)
    assert result["Status"] == "SUCCESS", result["_failures"]
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "hashes.sqlite3").write_bytes(b"this is not a database" * 100)
    result = sync(src, dst, corrupt)
    assert result["Status"] == "SUCCESS", result["_failures"]


def test_the_cache_is_bounded_least_recently_used_first(tmp_path: Path) -> None:
    files = [write(tmp_path / f"f{i}", str(i)) for i in range(6)]
    cache = HashCache(str(tmp_path / "cache"), max_entries=4)
    for i, f in enumerate(files):
        cache._now = i  # one "run" per file: f0 is the least recently used
        cache.put(os.stat(f), bytes([i]) * 16)
    cache.close()
    again = HashCache(str(tmp_path / "cache"), max_entries=4)
    try:
        assert [again.get(os.stat(f)) is not None for f in files] == [False] * 2 + [True] * 4
    finally:
        again.close()
