from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine import FilterRules, InvalidOptionsError
from engine.filters import parse_patterns


def rules(include: str | None = None, exclude: str | None = None) -> FilterRules:
    return FilterRules(include, exclude)


@pytest.mark.parametrize(
    ("exclude", "path", "excluded"),
    [
        ("*.tmp", "/a/b/c.tmp", True),
        ("*.tmp", "/a/b/c.tmpx", False),
        ("/photos", "/photos", True),
        ("/photos", "/photos/2024/a.jpg", True),  # a folder pattern covers its subtree
        ("/photos/", "/photos/2024/a.jpg", True),  # "/dir/" is "/dir"
        ("/photos", "/photos2/a.jpg", False),
        ("/photos", "/x/photos", False),  # anchored at the root
        ("*/temp", "/a/b/temp/x", True),
        ("/Photos", "/photos", False),  # case-sensitive
        (".snapshot", "/vol/.snapshot/x", True),  # unanchored name: any depth
        ("a|b", "/b", True),
        ("a\\|b", "/a|b", True),  # escaped pipe is literal
        ("a\\|b", "/b", False),
        ("\\*", "/*", True),  # escaped star is literal
        ("\\*", "/x", False),
    ],
)
def test_exclude_semantics(exclude: str, path: str, excluded: bool) -> None:
    assert rules(exclude=exclude).selects(path) is not excluded


def test_include_selects_subtrees_and_ancestors_are_walked() -> None:
    r = rules(include="/docs|/src/*.py")
    assert r.selects("/docs/a/b.txt")
    assert r.selects("/src/main.py")
    assert r.selects("/src/pkg/mod.py")  # * crosses "/"
    assert not r.selects("/src/readme.md")
    assert not r.selects("/other")
    assert r.decide("/src", True, False) == (False, True)  # walked, not itself selected
    assert r.decide("/other", True, False) == (False, False)  # never walked


def test_exclude_wins_over_include() -> None:
    r = rules(include="/docs", exclude="*.tmp")
    assert r.selects("/docs/a.txt")
    assert not r.selects("/docs/a.tmp")
    assert r.decide("/docs", True, False) == (True, True)
    assert rules(include="/docs", exclude="/docs").decide("/docs", True, False) == (False, False)


def test_parse_patterns() -> None:
    assert parse_patterns("/a|/b||*.c") == ["/a", "/b", "*.c"]
    assert parse_patterns("a\\|b|c") == ["a\\|b", "c"]


def test_from_rules_validates_against_the_model() -> None:
    fr = FilterRules.from_rules([{"FilterType": "SIMPLE_PATTERN", "Value": "/a"}], None)
    assert fr.include is not None and fr.exclude is None
    with pytest.raises(InvalidOptionsError, match="at most 1"):
        FilterRules.from_rules([{"FilterType": "SIMPLE_PATTERN", "Value": "/a"}] * 2, None)
    with pytest.raises(InvalidOptionsError, match="FilterType"):
        FilterRules.from_rules([{"FilterType": "REGEX", "Value": "/a"}], None)
    with pytest.raises(InvalidOptionsError, match="NUL"):
        FilterRules.from_rules(None, [{"FilterType": "SIMPLE_PATTERN", "Value": "a\x00b"}])
    with pytest.raises(InvalidOptionsError, match="longer"):
        FilterRules.from_rules(None, [{"FilterType": "SIMPLE_PATTERN", "Value": "a" * 102401}])


# -- property: the pruned walk decides exactly like the whole-path rule ---------------------------
names = st.sampled_from(["a", "b", "ab", "c.tmp", "d"])
paths = st.lists(names, min_size=1, max_size=4).map(lambda parts: "/" + "/".join(parts))
patterns = st.lists(
    st.one_of(paths, names, names.map(lambda n: "*" + n), paths.map(lambda p: p + "*")),
    min_size=1,
    max_size=3,
).map("|".join)


def _children(entries: set[str], prefix: str) -> set[str]:
    depth = prefix.count("/") + 1
    return {"/".join(p.split("/")[: depth + 1]) for p in entries if p.startswith(prefix + "/")}


@settings(max_examples=300, deadline=None)
@given(
    tree=st.lists(paths, min_size=1, max_size=20),
    include=st.one_of(st.none(), patterns),
    exclude=st.one_of(st.none(), patterns),
)
def test_walk_with_pruning_selects_like_the_whole_path_rule(
    tree: list[str], include: str | None, exclude: str | None
) -> None:
    r = rules(include, exclude)
    # Every proper prefix of a generated path is a directory; the other paths are files.
    dirs = {"/".join(p.split("/")[:i]) for p in tree for i in range(2, p.count("/") + 1)}
    files = set(tree) - dirs
    selected_by_walk: set[str] = set()

    def walk(prefix: str, included: bool) -> None:
        for path in sorted(_children(files | dirs, prefix)):
            sel, into = r.decide(path, path in dirs, included)
            if sel:
                selected_by_walk.add(path)
            if into:
                walk(path, included or (sel and r.active))

    walk("", False)
    expected = {p for p in files | dirs if r.selects(p)}
    # A directory walked only to reach includes below it is not itself selected: compare files
    # exactly, and require every selected directory to be expected.
    assert selected_by_walk & files == expected & files
    assert selected_by_walk & dirs <= expected
