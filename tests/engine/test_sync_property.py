"""Property: after a sync, the destination holds exactly the filtered source; a rerun is a no-op;
after the source changes, a REMOVE sync converges again and leaves excluded items alone. Each
example lists on the planner's thread or through the listing helper processes."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import anyio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine import FilterRules, Options
from engine.transfer import Transfer
from tests.engine.trees import state, temporaries, write

names = st.sampled_from(["a", "b", "c.tmp", "d.py", "e"])
rel_paths = st.lists(names, min_size=1, max_size=3).map(lambda p: "/" + "/".join(p))
contents = st.binary(min_size=0, max_size=64)
patterns = st.lists(
    st.one_of(rel_paths, names.map(lambda n: "*" + n[-2:]), rel_paths.map(lambda p: p + "*")),
    min_size=1,
    max_size=2,
).map("|".join)


def files_only(tree: dict[str, bytes]) -> dict[str, bytes]:
    """Drop paths that are also directories of other paths (a name can't be both)."""
    return {p: c for p, c in tree.items() if not any(q.startswith(p + "/") for q in tree)}


def build(root: Path, tree: dict[str, bytes], mode_seed: int) -> None:
    for i, (rel, data) in enumerate(sorted(tree.items())):
        write(root / rel.lstrip("/"), data, mode=0o600 + ((mode_seed + i) % 3) * 0o40)


def sync(
    src: Path, dst: Path, rules: FilterRules, helpers: bool, **options: str
) -> dict[str, object]:
    t = Transfer(
        src,
        dst,
        Options.create({"VerifyMode": "POINT_IN_TIME_CONSISTENT", **options}),
        rules,
        helper_after=0 if helpers else -1,  # listing helper processes from the first directory
        allow_empty_source=True,  # a tree changed to nothing is a case to converge on here
    )
    result: dict[str, object] = anyio.run(t.run)
    return result


def expected_files(src: Path, rules: FilterRules) -> dict[str, tuple[object, ...]]:
    return {
        rel: v
        for rel, v in state(src).items()
        if os.path.isfile(src / rel.lstrip("/")) and rules.selects(rel)
    }


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    tree=st.dictionaries(rel_paths, contents, max_size=12).map(files_only),
    changes=st.dictionaries(rel_paths, st.one_of(st.none(), contents), max_size=6),
    include=st.one_of(st.none(), patterns),
    exclude=st.one_of(st.none(), patterns),
    mode_seed=st.integers(0, 5),
    helpers=st.booleans(),
)
def test_destination_converges_to_the_filtered_source(
    tree: dict[str, bytes],
    changes: dict[str, bytes | None],
    include: str | None,
    exclude: str | None,
    mode_seed: int,
    helpers: bool,
) -> None:
    rules = FilterRules(include, exclude)
    base = Path(tempfile.mkdtemp(prefix="dsl-prop-"))
    try:
        src, dst = base / "src", base / "dst"
        src.mkdir()
        build(src, tree, mode_seed)

        first = sync(src, dst, rules, helpers)
        assert first["Status"] == "SUCCESS", first
        got = {k: v for k, v in state(dst).items() if os.path.isfile(dst / k.lstrip("/"))}
        assert got == expected_files(src, rules)
        for rel in state(dst):  # every directory created is selected or on the way to one
            assert rules.selects(rel) or os.path.isdir(dst / rel.lstrip("/"))
        assert temporaries(dst) == []

        again = sync(src, dst, rules, helpers)
        assert again["FilesTransferred"] == again["BytesWritten"] == 0

        # Change the source (add, modify, delete), plant an excluded item at the destination.
        for rel, data in changes.items():
            target = src / rel.lstrip("/")
            if data is None:
                if target.is_file():
                    target.unlink()
            elif not target.is_dir() and not any(
                parent.is_file() for parent in target.parents
            ):  # a name can't be a file and a directory at once
                write(target, data, mtime_ns=1_700_000_000_000_000_000)
        planted = "/zz-excluded.tmp"
        if exclude is not None and rules.excluded(planted):
            write(dst / planted.lstrip("/"), b"keep")
        third = sync(src, dst, rules, helpers, PreserveDeletedFiles="REMOVE")
        assert third["Status"] == "SUCCESS", third
        got = {k: v for k, v in state(dst).items() if os.path.isfile(dst / k.lstrip("/"))}
        want = expected_files(src, rules)
        if (dst / planted.lstrip("/")).exists():
            assert got.pop(planted)[-1] is not None  # excluded at the destination: left alone
        assert got == want
    finally:
        shutil.rmtree(base)
