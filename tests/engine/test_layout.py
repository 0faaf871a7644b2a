"""The engine's module boundaries a review asked for, checked from the source so they stay.

Verification reads files through engine/fileio.py, not through the copier; every copy loop
pays and counts through engine/accounting.py (its behaviour: test_accounting.py)."""

from __future__ import annotations

import ast
from pathlib import Path

from engine.model import structure_members

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


def _option_strings() -> tuple[set[str], set[str]]:
    """(the Options' member names, every value of their enums), from the model."""
    members = structure_members("Options")
    return set(members), {value for m in members.values() for value in m.get("enum", ())}


def _strings(node: ast.expr) -> set[str]:
    """The string constants of a comparison's operand (`x == "A"`, `x in ("A", "B")`)."""
    elements = node.elts if isinstance(node, ast.Tuple | ast.List | ast.Set) else [node]
    return {e.value for e in elements if isinstance(e, ast.Constant) and isinstance(e.value, str)}


def _option_reads(source: str) -> list[str]:
    """Where `source` reads an option by its name (`options["Mtime"]`, `.get("Mtime")`,
    `.enum("Mtime")`) or compares anything with an option's value (`== "REMOVE"`)."""
    names, values = _option_strings()
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Compare):
            for operand in (node.left, *node.comparators):
                found.extend(f"{node.lineno}: == {s!r}" for s in _strings(operand) & values)
        elif isinstance(node, ast.Subscript) and _strings(node.slice) & names:
            found.append(f"{node.lineno}: [{ast.unparse(node.slice)}]")
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in {"get", "enum"}
            and node.args
            and _strings(node.args[0]) & names
        ):
            found.append(f"{node.lineno}: .{node.func.attr}({ast.unparse(node.args[0])})")
    return found


def test_only_settings_reads_option_strings() -> None:
    """Stages read engine/settings.Settings, made once from the Options: no other module reads
    an option by its name or compares with an option's value (engine/options.py is the Options
    model itself: its defaults and cross-field rules are in DataSync's strings)."""
    assert _option_reads((ENGINE / "settings.py").read_text())  # the check sees what it seeks
    for path in sorted(ENGINE.glob("*.py")):
        if path.stem in {"options", "settings"}:
            continue
        assert _option_reads(path.read_text()) == [], path.name
