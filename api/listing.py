"""Pagination and Filters for the List operations.

Pages follow the items' sort key (ARNs): `NextToken` is the last key returned with a digest of
it, base64url-encoded (so it matches the model's `[a-zA-Z0-9=_-]+`) and opaque to clients. A token
that decodes but carries no matching digest was not issued here: InvalidRequestException, never
an empty page. (The digest needs no secret: tokens are not credentials, they only must not be
mistaken for a real position; any process of a shared store reads any other's.) Filters (ListTasks,
ListLocations) are ANDed; each operator is allowed only for the attribute types DataSync
documents (CreationTime compares as a time, the others as strings).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import operator
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from api.errors import InvalidRequestException
from contract import Doc

__all__ = ["matches", "page", "page_by"]

T = TypeVar("T")

_SEPARATOR = "\x00"


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def _token(key: str) -> str:
    return base64.urlsafe_b64encode(f"{key}{_SEPARATOR}{_digest(key)}".encode()).decode()


def _position(token: str) -> str:
    try:
        text = base64.urlsafe_b64decode(token.encode()).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        text = ""
    key, separator, digest = text.rpartition(_SEPARATOR)
    if not separator or digest != _digest(key):
        raise _invalid("NextToken is not a token this server issued.", "InvalidNextToken")
    return key


def _invalid(message: str, code: str) -> InvalidRequestException:
    return InvalidRequestException(message, code)


def page(items: Sequence[Doc], key: str, params: Doc) -> tuple[list[Doc], str | None]:
    """One page of `items` (sorted by `key`) after the opaque NextToken, and the next token."""
    return page_by(items, lambda item: str(item[key]), params)


def page_by(items: Sequence[T], key: Callable[[T], str], params: Doc) -> tuple[list[T], str | None]:
    """`page` over any items (domain values): `key` gives the sort key (an ARN) of one."""
    limit = params.get("MaxResults") or 100
    token = params.get("NextToken")
    start = 0
    if token is not None:
        after = _position(token)
        start = next((i for i, item in enumerate(items) if key(item) > after), len(items))
    page = list(items[start : start + limit])
    more = start + limit < len(items)
    next_token = _token(key(page[-1])) if more else None
    return page, next_token


def _parse_time(value: str) -> float:
    text = value.strip().replace("T", " ").rstrip("Z")
    for fmt in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d:%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d"):
        try:
            return dt.datetime.strptime(text, fmt).replace(tzinfo=dt.UTC).timestamp()
        except ValueError:
            continue
    try:
        return float(value)
    except ValueError:
        raise _invalid(
            f"Filter value {value!r} is not a time (use 'YYYY-MM-DD HH:MM:SS', UTC).",
            "InvalidFilter",
        ) from None


_STRING_OPS = {"Equals", "NotEquals", "In", "Contains", "NotContains", "BeginsWith"}
_NUMBER_OPS = {
    "Equals",
    "NotEquals",
    "LessThan",
    "LessThanOrEqual",
    "GreaterThan",
    "GreaterThanOrEqual",
}


def matches(filters: list[Doc], attributes: Callable[[str], list[Any]]) -> bool:
    """Whether an item passes every filter (they are ANDed); `attributes(name)` gives its values."""
    for flt in filters:
        name, op, values = flt["Name"], flt["Operator"], flt["Values"]
        actual = attributes(name)
        if name == "CreationTime":
            if op not in _NUMBER_OPS:
                raise _invalid(f"Filter operator {op} cannot be used with {name}.", "InvalidFilter")
            wanted = [_parse_time(v) for v in values]
            checks: dict[str, Callable[[float, float], bool]] = {
                "Equals": lambda a, w: int(a) == int(w),
                "NotEquals": lambda a, w: int(a) != int(w),
                "LessThan": operator.lt,
                "LessThanOrEqual": operator.le,
                "GreaterThan": operator.gt,
                "GreaterThanOrEqual": operator.ge,
            }
            check = checks[op]
            ok = all(check(actual[0], w) for w in wanted)
        else:
            if op not in _STRING_OPS:
                raise _invalid(f"Filter operator {op} cannot be used with {name}.", "InvalidFilter")
            if op in ("Equals", "In"):
                ok = any(a == v for a in actual for v in values)
            elif op == "NotEquals":
                ok = all(a != v for a in actual for v in values)
            elif op == "Contains":
                ok = any(v in a for a in actual for v in values)
            elif op == "NotContains":
                ok = all(v not in a for a in actual for v in values)
            else:
                ok = any(a.startswith(v) for a in actual for v in values)
        if not ok:
            return False
    return True
