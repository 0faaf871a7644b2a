"""Server-side validation of requests against botocore's model, generically, from the shapes.

botocore only checks required members, Python types and `min` on the client side; the server
checks everything the model declares: required, type, min/max length and value, pattern, enum,
list and map sizes, and unknown members. Every violation is an `InvalidRequestException` whose
message names the member by its path (``Options.VerifyMode``, ``Includes[0].Value``).

The model's patterns are Java regular expressions; the few Unicode property classes they use
(``\\p{Zs}``, ``\\p{C}``, …) are translated to what Python's `re` understands.
"""

from __future__ import annotations

import base64
import binascii
import re
import unicodedata
from collections.abc import Callable
from functools import cache
from typing import Any

from api.errors import InvalidRequestException
from contract.model import load_service_model

__all__ = ["compile_pattern", "validate_input"]

# Unicode "space separator" characters (category Zs), as a character-class body.
_ZS = "\\u0020\\u00a0\\u1680\\u2000-\\u200a\\u202f\\u205f\\u3000"

Matcher = Callable[[str], bool]


@cache
def compile_pattern(pattern: str) -> Matcher:
    """A full-match predicate for a model pattern (anchored or not, as Java's `matches` is not)."""
    if pattern == "^[\\p{L}\\p{M}\\p{Z}\\p{S}\\p{N}\\p{P}\\p{C}]*$":
        return lambda value: True  # every character of every category
    if pattern in ("[^\\p{C}]+", "^[^\\p{C}]+$", "[^\\p{C}]*"):
        allow_empty = pattern.endswith("*")
        return lambda value: (
            (allow_empty or value != "")
            and not any(unicodedata.category(ch).startswith("C") for ch in value)
        )
    # Java's end-of-input anchor \z is Python's \Z (Python's \z only exists from 3.14)
    translated = pattern.replace("\\p{Zs}", _ZS).replace("\\z", "\\Z")
    if "\\p{" in translated:  # pragma: no cover - a pattern this botocore does not have
        return lambda value: True
    compiled = re.compile(translated)
    # the whole value must match, as Java's Pattern.matches does on AWS: with re.search a `$`
    # also matches before a trailing newline, so "/data\n" passed "^...$"
    return lambda value: compiled.fullmatch(value) is not None


class _Validator:
    def __init__(self, service: str) -> None:
        self.shapes: dict[str, dict[str, Any]] = load_service_model(service)["shapes"]

    def fail(self, path: str, message: str) -> InvalidRequestException:
        return InvalidRequestException(f"{path or 'The request'} {message}", "ValidationError")

    def check(self, shape_name: str, value: Any, path: str) -> None:
        shape = self.shapes[shape_name]
        kind = shape["type"]
        handler = getattr(self, f"_check_{kind}", None)
        if handler is None:  # pragma: no cover - every DataSync input type is handled
            return
        handler(shape, value, path)

    def _check_structure(self, shape: dict[str, Any], value: Any, path: str) -> None:
        if not isinstance(value, dict):
            raise self.fail(path, "must be a JSON object.")
        members: dict[str, dict[str, Any]] = shape.get("members", {})
        for name in value:
            if name not in members:
                where = f"{path}.{name}" if path else name
                raise self.fail(where, "is not a member of this request.")
        for name in shape.get("required", []):
            if value.get(name) is None:
                where = f"{path}.{name}" if path else name
                raise self.fail(where, "is required.")
        for name, ref in members.items():
            if name in value and value[name] is not None:
                self.check(ref["shape"], value[name], f"{path}.{name}" if path else name)

    def _check_list(self, shape: dict[str, Any], value: Any, path: str) -> None:
        if not isinstance(value, list):
            raise self.fail(path, "must be a list.")
        self._size(shape, len(value), path, "items")
        for i, item in enumerate(value):
            if item is None:
                raise self.fail(f"{path}[{i}]", "must not be null.")
            self.check(shape["member"]["shape"], item, f"{path}[{i}]")

    def _check_map(self, shape: dict[str, Any], value: Any, path: str) -> None:
        if not isinstance(value, dict):
            raise self.fail(path, "must be a JSON object.")
        self._size(shape, len(value), path, "entries")
        for key, item in value.items():
            self.check(shape["key"]["shape"], key, f"{path} key {key!r}")
            self.check(shape["value"]["shape"], item, f"{path}.{key}")

    def _check_string(self, shape: dict[str, Any], value: Any, path: str) -> None:
        if not isinstance(value, str):
            raise self.fail(path, "must be a string.")
        if "enum" in shape and value not in shape["enum"]:
            raise self.fail(path, f"must be one of {', '.join(shape['enum'])}; got {value!r}.")
        self._size(shape, len(value), path, "characters")
        pattern = shape.get("pattern")
        if pattern is not None and not compile_pattern(pattern)(value):
            raise self.fail(path, f"does not match the pattern {pattern}.")

    def _check_integer(self, shape: dict[str, Any], value: Any, path: str) -> None:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(path, "must be an integer.")
        low, high = shape.get("min"), shape.get("max")
        if low is not None and value < low:
            raise self.fail(path, f"must be at least {low}; got {value}.")
        if high is not None and value > high:
            raise self.fail(path, f"must be at most {high}; got {value}.")

    _check_long = _check_integer

    def _check_boolean(self, shape: dict[str, Any], value: Any, path: str) -> None:
        if not isinstance(value, bool):
            raise self.fail(path, "must be true or false.")

    def _check_timestamp(self, shape: dict[str, Any], value: Any, path: str) -> None:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise self.fail(path, "must be a timestamp (epoch seconds).")

    def _check_blob(self, shape: dict[str, Any], value: Any, path: str) -> None:
        if not isinstance(value, str):
            raise self.fail(path, "must be a base64 string.")
        try:
            raw = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise self.fail(path, "must be valid base64.") from None
        self._size(shape, len(raw), path, "bytes")

    def _size(self, shape: dict[str, Any], size: int, path: str, unit: str) -> None:
        low, high = shape.get("min"), shape.get("max")
        if low is not None and size < low:
            raise self.fail(path, f"must have at least {low} {unit}; got {size}.")
        if high is not None and size > high:
            raise self.fail(path, f"must have at most {high} {unit}; got {size}.")


@cache
def _validator(service: str) -> _Validator:
    return _Validator(service)


def validate_input(operation: str, params: Any, service: str = "datasync") -> None:
    """Validate `params` against `operation`'s input shape; raise InvalidRequestException."""
    op = load_service_model(service)["operations"][operation]
    validator = _validator(service)
    if "input" not in op:
        if params not in ({}, None):
            raise InvalidRequestException(f"{operation} takes no parameters.", "ValidationError")
        return
    validator.check(op["input"]["shape"], params, "")
