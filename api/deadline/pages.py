"""Pagination of the Deadline List operations (`nextToken`/`maxResults`, as the model has them).

A page follows its items' sort key: `nextToken` is the last key returned plus a digest binding
it to the listing it came from (the operation and its parent IDs), base64url-encoded and opaque.
A token from another listing, or one not issued here, is a ValidationException (never an empty
page or a silently restarted listing). Keys, not offsets: a queue created or an execution started
between two pages neither repeats nor skips an item. `maxResults` defaults to the model's maximum
(100).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Callable, Sequence
from typing import TypeVar

from api.deadline.errors import FieldProblem, ValidationException

__all__ = ["DEFAULT_MAX_RESULTS", "key_after", "page", "token_for"]

DEFAULT_MAX_RESULTS = 100
_SEPARATOR = "\x00"
T = TypeVar("T")


def _digest(scope: str, key: str) -> str:
    return hashlib.sha256(f"{scope}{_SEPARATOR}{key}".encode()).hexdigest()[:16]


def _token(scope: str, key: str) -> str:
    raw = f"{key}{_SEPARATOR}{_digest(scope, key)}".encode()
    return base64.urlsafe_b64encode(raw).decode()


def _after(scope: str, token: str) -> str:
    try:
        text = base64.urlsafe_b64decode(token.encode()).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        text = ""
    key, separator, digest = text.rpartition(_SEPARATOR)
    if not separator or digest != _digest(scope, key):
        message = "nextToken is not a token this server issued for this listing."
        raise ValidationException(
            message, "FIELD_VALIDATION_FAILED", [FieldProblem("nextToken", message)]
        )
    return key


def page(
    items: Sequence[T],
    key: Callable[[T], str],
    scope: str,
    next_token: str | None,
    max_results: int | None,
) -> tuple[list[T], str | None]:
    """One page of `items` (in `key` order) after `next_token`, and the token of the next."""
    ordered = sorted(items, key=key)
    start = 0
    if next_token:
        after = _after(scope, next_token)
        start = next((i for i, item in enumerate(ordered) if key(item) > after), len(ordered))
    limit = max_results or DEFAULT_MAX_RESULTS
    chunk = list(ordered[start : start + limit])
    more = start + limit < len(ordered)
    return chunk, _token(scope, key(chunk[-1])) if more and chunk else None


def token_for(scope: str, key: str) -> str:
    """The nextToken after `key` of a listing paged by the store itself (a key range)."""
    return _token(scope, key)


def key_after(scope: str, token: str) -> str:
    """The key a nextToken of `token_for` carries (ValidationException if not one of ours)."""
    return _after(scope, token)
