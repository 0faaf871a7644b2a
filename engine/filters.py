"""DataSync SIMPLE_PATTERN filters (Includes / Excludes).

Semantics (shared/spec/datasync-behaviour.md §6.1), decided where the docs are silent:

* A filter value is patterns joined by ``|``. ``\\`` escapes ``*``, ``|`` and ``\\`` inside names.
* Paths are relative to the location root and written with a leading ``/`` (``/photos/a.jpg``).
  A pattern starting with ``/`` is anchored at the root. A pattern starting with neither ``/``
  nor ``*`` (``.snapshot``) matches that name at any depth, as in rsync and gitignore.
* ``*`` matches any run of characters, ``/`` included. Matching is case-sensitive.
* A pattern that matches a folder covers the folder's whole subtree; ``/dir`` and ``/dir/`` are the
  same pattern.
* An item is selected iff (no include rule, or an include pattern matches it or an ancestor) and
  no exclude pattern matches it or an ancestor: exclude wins. An excluded directory is never
  walked; a directory is walked for includes only if something below it could match.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from engine.errors import InvalidOptionsError
from engine.model import shape

__all__ = ["Filter", "FilterRules", "parse_patterns"]

_ESCAPABLE = "*|\\"


def parse_patterns(value: str) -> list[str]:
    """Split a filter value on unescaped ``|``; keep escapes for `_compile` to interpret."""
    patterns: list[str] = []
    current: list[str] = []
    i = 0
    while i < len(value):
        ch = value[i]
        if ch == "\\" and i + 1 < len(value) and value[i + 1] in _ESCAPABLE:
            current.append(value[i : i + 2])
            i += 2
            continue
        if ch == "|":
            patterns.append("".join(current))
            current = []
        else:
            current.append(ch)
        i += 1
    patterns.append("".join(current))
    return [p for p in patterns if p.strip() != ""]


def _tokens(pattern: str) -> list[str]:
    """Split a pattern into literal characters and the wildcard token ``*``."""
    tokens: list[str] = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern) and pattern[i + 1] in _ESCAPABLE:
            tokens.append(pattern[i + 1])
            i += 2
            continue
        if ch == "\\":  # a lone backslash escapes nothing and is ignored
            i += 1
            continue
        tokens.append("\x00*" if ch == "*" else ch)
        i += 1
    return tokens


@dataclass(frozen=True)
class _Pattern:
    regex: str  # matches the full path of an item
    literal_prefix: str  # the text before the first wildcard
    has_wildcard: bool


def _compile(pattern: str) -> _Pattern:
    tokens = _tokens(pattern)
    while len(tokens) > 1 and tokens[-1] == "/":
        tokens.pop()  # "/dir/" is "/dir"
    if not tokens or tokens == ["/"]:
        return _Pattern(regex=".*", literal_prefix="/", has_wildcard=True)
    if tokens[0] not in ("/", "\x00*"):
        tokens = ["\x00*", "/", *tokens]  # an unanchored name matches at any depth
    regex = "".join(".*" if t == "\x00*" else re.escape(t) for t in tokens)
    prefix_tokens: list[str] = []
    for t in tokens:
        if t == "\x00*":
            break
        prefix_tokens.append(t)
    return _Pattern(
        regex=regex,
        literal_prefix="".join(prefix_tokens),
        has_wildcard=len(prefix_tokens) < len(tokens),
    )


class Filter:
    """One compiled list of patterns (the value of one FilterRule)."""

    def __init__(self, value: str) -> None:
        self.value = value
        self._patterns = [_compile(p) for p in parse_patterns(value)]
        # One alternation, so matching an item costs one regex call however many patterns.
        self._regex = re.compile("|".join(f"(?:{p.regex})" for p in self._patterns) or "(?!)")

    def __bool__(self) -> bool:
        return bool(self._patterns)

    def matches(self, path: str) -> bool:
        """`path` is relative to the location root with a leading ``/``."""
        return self._regex.fullmatch(path) is not None

    def may_match_below(self, dir_path: str) -> bool:
        """Could an item strictly inside `dir_path` match? (Used to prune the walk for includes.)"""
        below = dir_path.rstrip("/") + "/"
        for p in self._patterns:
            if p.has_wildcard:
                if p.literal_prefix.startswith(below) or below.startswith(p.literal_prefix):
                    return True
            elif p.literal_prefix.startswith(below):
                return True
        return False


def _rule_value(rules: object, field: str) -> str | None:
    if rules is None or (isinstance(rules, Sequence) and len(rules) == 0):
        return None
    if not isinstance(rules, list | tuple):
        raise InvalidOptionsError(f"{field} must be a list of FilterRule objects.", field)
    list_shape = shape("FilterList")
    if len(rules) > list_shape.get("max", len(rules)):
        raise InvalidOptionsError(
            f"{field} accepts at most {list_shape['max']} FilterRule; join patterns with '|'.",
            field,
        )
    rule = rules[0]
    if not isinstance(rule, Mapping):
        raise InvalidOptionsError(f"{field}[0] must be a FilterRule object.", field)
    filter_types = shape("FilterType")["enum"]
    ftype = rule.get("FilterType", filter_types[0])
    if ftype not in filter_types:
        raise InvalidOptionsError(
            f"{field}[0].FilterType must be one of {', '.join(filter_types)}; got {ftype!r}.",
            f"{field}[0].FilterType",
        )
    value = rule.get("Value")
    if value is None:
        return None
    value_shape = shape("FilterValue")
    if not isinstance(value, str) or not re.fullmatch(value_shape["pattern"], value):
        raise InvalidOptionsError(
            f"{field}[0].Value must be a non-empty string without NUL characters.",
            f"{field}[0].Value",
        )
    if len(value) > value_shape["max"]:
        raise InvalidOptionsError(
            f"{field}[0].Value is longer than {value_shape['max']} characters.",
            f"{field}[0].Value",
        )
    return value


class FilterRules:
    """Includes and Excludes of one transfer, applied to each item as the trees are walked."""

    def __init__(self, includes: str | None = None, excludes: str | None = None) -> None:
        self.include = Filter(includes) if includes else None
        self.exclude = Filter(excludes) if excludes else None
        if self.include is not None and not self.include:
            self.include = None
        if self.exclude is not None and not self.exclude:
            self.exclude = None

    @classmethod
    def from_rules(
        cls,
        includes: Sequence[Mapping[str, Any]] | object = None,
        excludes: Sequence[Mapping[str, Any]] | object = None,
    ) -> FilterRules:
        """Build from DataSync `FilterRule` lists, validated against the model."""
        return cls(_rule_value(includes, "Includes"), _rule_value(excludes, "Excludes"))

    @property
    def active(self) -> bool:
        return self.include is not None or self.exclude is not None

    def excluded(self, path: str) -> bool:
        """True if an exclude pattern matches the item itself (its ancestors were checked already)."""
        return self.exclude is not None and self.exclude.matches(path)

    def decide(self, path: str, is_dir: bool, parent_included: bool) -> tuple[bool, bool]:
        """Return (select this item, walk into it) for an item whose ancestors were selected/walked.

        `parent_included` says whether an include pattern already covers the parent (so this
        whole subtree is included). Callers prune with the second value.
        """
        if self.excluded(path):
            return False, False
        if self.include is None or parent_included:
            return True, is_dir
        if self.include.matches(path):
            return True, is_dir
        if is_dir and self.include.may_match_below(path):
            return False, True
        return False, False

    def above(self, path: str) -> bool | None:
        """For a walk that starts at `path` ("/a/b") instead of the root: None if an ancestor of
        `path` is excluded or never walked (nothing there is selected), else whether an include
        pattern already covers an ancestor (the `parent_included` of `path` in `decide`)."""
        parts = [p for p in path.split("/") if p]
        included = False
        for i in range(1, len(parts)):
            selected, walk = self.decide("/" + "/".join(parts[:i]), True, included)
            if not selected and not walk:
                return None
            included = included or (selected and self.active)
        return included

    def selects(self, path: str) -> bool:
        """Whole-path decision for one item (checks every ancestor); for tests and single paths."""
        parts = path.strip("/").split("/")
        included = self.include is None
        for i in range(1, len(parts) + 1):
            sub = "/" + "/".join(parts[:i])
            if self.excluded(sub):
                return False
            if not included and self.include is not None and self.include.matches(sub):
                included = True
        return included
