"""Data sets: same seed → same names and sizes; --scale shrinks them; generation matches."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from benchmarks import datasets
from benchmarks.datasets import KIB, MIB, layout


@pytest.mark.parametrize("name", ["D1", "D2", "D3", "D4", "T"])
def test_same_seed_same_layout(name: str) -> None:
    a = list(layout(name, 0.01, seed=7))
    b = list(layout(name, 0.01, seed=7))
    assert a == b
    assert len({f.path for f in a}) == len(a)  # no duplicate names


@pytest.mark.parametrize("name", ["D2", "D3", "D4"])
def test_other_seed_other_names(name: str) -> None:
    a = [f.path for f in layout(name, 0.01, seed=1)]
    b = [f.path for f in layout(name, 0.01, seed=2)]
    assert a != b


def test_scale_shrinks_counts_and_sizes() -> None:
    assert len(list(layout("D2", 1.0))) == 50_000
    assert len(list(layout("D2", 0.1))) == 5_000
    assert len(list(layout("D3", 0.1))) == 500
    assert len(list(layout("D4", 0.001))) == 1_000
    d1_full = list(layout("D1", 1.0))
    assert [f.size for f in d1_full] == [512 * MIB] * 4
    assert [f.size for f in layout("D1", 0.5)] == [256 * MIB] * 4
    assert [f.size for f in layout("T", 1.0)] == [64 * MIB]
    assert [f.size for f in layout("T", 0.01)] == [32 * MIB]  # never too short to measure
    # a prefix of the full layout: scaling keeps the first files' names and sizes
    assert list(layout("D2", 0.01)) == list(layout("D2", 1.0))[:500]


def test_shapes_follow_benchmarks_md() -> None:
    d2 = list(layout("D2", 1.0))
    assert all(KIB <= f.size <= 16 * KIB for f in d2)
    leaves = {f.path.rsplit("/", 1)[0] for f in d2}
    assert len(leaves) == 500
    assert all(p.count("/") == 2 for p in leaves)  # depth 3
    d3 = list(layout("D3", 1.0))
    assert all(KIB <= f.size <= 8 * MIB for f in d3)
    assert len({f.path.split("/")[0] for f in d3}) == 50
    total = sum(f.size for f in d3)
    assert 3.5e9 < total < 5.5e9  # ≈ 4.5 GB
    assert {f.size for f in layout("D4", 0.01)} == {KIB}


def test_generate_writes_the_layout(tmp_path: Path) -> None:
    root = tmp_path / "d3"
    n = datasets.generate("D3", root, scale=0.004, seed=3)
    want = {f.path: f.size for f in layout("D3", 0.004, seed=3)}
    assert n == len(want) == 20
    got = {
        os.path.relpath(os.path.join(d, f), root): os.path.getsize(os.path.join(d, f))
        for d, _, files in os.walk(root)
        for f in files
    }
    assert got == want
    # incompressible-looking contents: not all one byte value
    biggest = max(want, key=lambda p: want[p])
    data = (root / biggest).read_bytes()[: 64 * KIB]
    assert len(set(data)) > 200


def test_check_free_space_refuses_politely(tmp_path: Path) -> None:
    datasets.check_free_space(tmp_path, 1)
    with pytest.raises(datasets.InsufficientDiskSpace, match="smaller --scale"):
        datasets.check_free_space(tmp_path, 10**18)


def test_disk_bytes_counts_blocks() -> None:
    assert datasets.disk_bytes("D4", 0.001) == 1000 * (4096 + 4096)
    assert datasets.total_bytes("D4", 0.001) == 1000 * KIB
