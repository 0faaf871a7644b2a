"""The engine's module boundaries a review asked for, checked from the source so they stay.

Verification reads files through engine/fileio.py, not through the copier; every copy loop
pays and counts through engine/accounting.py (its behaviour: test_accounting.py)."""

from __future__ import annotations

import ast
from pathlib import Path

ENGINE = Path(__file__).resolve().parents[2] / "engine"


def _imports(module: str) -> set[str]:
    tree = ast.parse((ENGINE / f"{module}.py").read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_verification_does_not_import_the_copier() -> None:
    assert "engine.copier" not in _imports("verify")
    assert "engine.fileio" in _imports("verify")


def test_file_io_helpers_import_no_phase() -> None:
    phases = {"engine.copier", "engine.execute", "engine.verify", "engine.transfer"}
    assert not (_imports("fileio") & phases)


def test_only_accounting_pays_the_bucket_and_counts_bytes() -> None:
    """No copy loop pays (`.consume(`) or counts (`.add_bytes(`) on its own any more."""
    for path in sorted(ENGINE.glob("*.py")):
        if path.stem in {"accounting", "throttle"}:
            continue
        source = path.read_text()
        assert ".consume(" not in source, path.name
        assert ".add_bytes(" not in source, path.name
