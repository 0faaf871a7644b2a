"""The benchmark data sets of BENCHMARKS.md, generated deterministically.

Names, directory layout and sizes come from a seeded PRNG, so the same (name, scale, seed) always
gives the same tree. Contents are random bytes (incompressible); they are not part of the
deterministic contract, only the layout is.
"""

from __future__ import annotations

import math
import os
import random
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "DATASETS",
    "KIB",
    "MIB",
    "DatasetSpec",
    "FileSpec",
    "InsufficientDiskSpace",
    "check_free_space",
    "disk_bytes",
    "generate",
    "get",
    "layout",
    "total_bytes",
]

KIB = 1024
MIB = 1024 * KIB
DEFAULT_SEED = 20261123
_BLOCK_POOL = 8 * MIB  # random bytes generated once, sliced at seeded offsets


@dataclass(frozen=True)
class FileSpec:
    path: str  # relative, "/"-separated
    size: int


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    title: str
    description: str
    files_full: int
    # bytes per second for throttle sets, else 0
    rate: int = 0

    def file_count(self, scale: float) -> int:
        return max(1, round(self.files_full * scale))


DATASETS: dict[str, DatasetSpec] = {
    "D1": DatasetSpec("D1", "D1 large", "4 files × 512 MiB", 4),
    "D2": DatasetSpec("D2", "D2 small", "50,000 files of 1–16 KiB in 5×10×10 leaf dirs", 50_000),
    "D3": DatasetSpec("D3", "D3 mixed", "5,000 files, log-uniform 1 KiB–8 MiB, ~50 dirs", 5_000),
    "D4": DatasetSpec("D4", "D4 huge tree", "1,000,000 files of 1 KiB", 1_000_000),
    "T": DatasetSpec("T", "T throttle", "one 64 MiB file, throttled at 8 MiB/s", 1, 8 * MIB),
}


def get(name: str) -> DatasetSpec:
    try:
        return DATASETS[name]
    except KeyError:
        raise ValueError(f"unknown data set {name!r}; known: {', '.join(DATASETS)}") from None


def _name(rng: random.Random, prefix: str) -> str:
    return f"{prefix}{rng.getrandbits(40):010x}.bin"


def layout(name: str, scale: float = 1.0, seed: int = DEFAULT_SEED) -> Iterator[FileSpec]:
    """Yield the files of data set `name` at `scale`, in a deterministic order.

    D1 and T keep their file count and shrink file sizes (T never below 32 MiB, so a throttled
    copy lasts long enough to measure); D2, D3 and D4 keep file sizes and shrink file counts.
    """
    if scale <= 0:
        raise ValueError("scale must be > 0")
    spec = get(name)
    rng = random.Random(f"{seed}:{name}")
    if name == "D1":
        size = max(64 * KIB, round(512 * MIB * scale))
        for i in range(spec.files_full):
            yield FileSpec(f"large-{i}-{_name(rng, '')}", size)
    elif name == "T":
        size = max(32 * MIB, round(64 * MIB * scale))
        yield FileSpec(_name(rng, "throttle-"), size)
    elif name == "D2":
        # 5 × 10 × 10 = 500 leaf directories at depth 3; files round-robin over the leaves.
        leaves = [f"a{i}/b{j}/c{k}" for i in range(5) for j in range(10) for k in range(10)]
        for n in range(spec.file_count(scale)):
            yield FileSpec(
                f"{leaves[n % len(leaves)]}/{_name(rng, 's')}", rng.randint(KIB, 16 * KIB)
            )
    elif name == "D3":
        lo, hi = math.log(KIB), math.log(8 * MIB)
        for n in range(spec.file_count(scale)):
            size = round(math.exp(rng.uniform(lo, hi)))
            yield FileSpec(f"m{n % 50:02d}/{_name(rng, 'x')}", size)
    elif name == "D4":
        # 1,000 files per directory, 1,000 directories in 10 groups.
        for n in range(spec.file_count(scale)):
            d = n // 1000
            yield FileSpec(f"g{d % 10}/d{d:04d}/{_name(rng, 'h')}", KIB)
    else:  # pragma: no cover - DATASETS and this function must agree
        raise AssertionError(name)


def total_bytes(name: str, scale: float = 1.0, seed: int = DEFAULT_SEED) -> int:
    return sum(f.size for f in layout(name, scale, seed))


class InsufficientDiskSpace(RuntimeError):
    pass


def check_free_space(directory: Path, needed: int, margin: float = 1.1) -> None:
    """Refuse politely when `directory`'s file system has less than needed × margin free."""
    directory.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(directory).free
    if free < needed * margin:
        raise InsufficientDiskSpace(
            f"the benchmark needs about {needed * margin / 1e9:.1f} GB free in {directory}, "
            f"but only {free / 1e9:.1f} GB is free: use a smaller --scale, fewer scenarios "
            "(--only), or --workdir on a larger file system"
        )


class _Filler:
    """Writes incompressible bytes fast: one random pool, sliced at varying offsets."""

    def __init__(self) -> None:
        self._pool = memoryview(os.urandom(_BLOCK_POOL))
        self._pos = 0

    def write(self, fd: int, size: int) -> None:
        left = size
        while left > 0:
            if self._pos >= _BLOCK_POOL - 1:
                self._pos = 0
            n = min(left, _BLOCK_POOL - self._pos, 4 * MIB)
            os.write(fd, self._pool[self._pos : self._pos + n])
            left -= n
            # advance by an odd, non-block-aligned step so no two files share aligned blocks
            self._pos = (self._pos + n + 4099) % _BLOCK_POOL


def generate(name: str, root: Path, scale: float = 1.0, seed: int = DEFAULT_SEED) -> int:
    """Create data set `name` under `root` (which must not exist yet); return its file count."""
    root.mkdir(parents=True)
    filler = _Filler()
    made: set[str] = set()
    count = 0
    for f in layout(name, scale, seed):
        parent = f.path.rpartition("/")[0]
        if parent and parent not in made:
            (root / parent).mkdir(parents=True, exist_ok=True)
            made.add(parent)
        fd = os.open(root / f.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            filler.write(fd, f.size)
        finally:
            os.close(fd)
        count += 1
    return count


def disk_bytes(name: str, scale: float = 1.0, seed: int = DEFAULT_SEED) -> int:
    """What one copy of the data set takes on disk (4 KiB blocks, plus an inode's worth)."""
    return sum(-(-f.size // 4096) * 4096 + 4096 for f in layout(name, scale, seed))
