"""The Deadline Cloud REST-JSON wire, read from botocore's `deadline` model: which operation a
method and path are, the request's parameters from path, query, headers and body, server-side
validation, and rendering the output shape.

Every operation of the model is routed (so an operation this server does not offer is recognised
and named in a clear error, see `api.deadline.routes`), by its `http.method` and `requestUri`
(`{label}` = one path segment). Parameters are gathered by each input member's `location`
(`uri`, `querystring`, `header`; the rest from the JSON body), converted from text by the member's
type, and then validated exactly as the DataSync routes are (api.validation: required members,
types, lengths, patterns, enums, unknown members), failures becoming ValidationException
FIELD_VALIDATION_FAILED with the member in `fieldList`.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any
from urllib.parse import unquote

from api.deadline.errors import FieldProblem, ValidationException
from api.errors import InvalidRequestException
from api.responses import render
from api.validation import _Validator
from contract.model import load_service_model

__all__ = ["SERVICE", "Operation", "iso", "match_operation", "parse_params", "render_output"]

SERVICE = "deadline"


@dataclass(frozen=True)
class Operation:
    name: str
    method: str
    pattern: re.Pattern[str]
    uri_members: Mapping[str, str]  # label → member
    input_shape: str | None
    output_shape: str | None


def _model() -> dict[str, Any]:
    return load_service_model(SERVICE)


@cache
def _operations() -> tuple[Operation, ...]:
    found: list[Operation] = []
    shapes = _model()["shapes"]
    for name, op in _model()["operations"].items():
        uri = op["http"]["requestUri"].split("?", 1)[0]
        labels: dict[str, str] = {}
        input_shape = op.get("input", {}).get("shape")
        if input_shape is not None:
            for member, ref in shapes[input_shape].get("members", {}).items():
                if ref.get("location") == "uri":
                    labels[ref.get("locationName", member)] = member
        regex = re.sub(r"\\\{([^}+]+)\+?\\\}", lambda m: f"(?P<{m.group(1)}>[^/]+)", re.escape(uri))
        found.append(
            Operation(
                name,
                op["http"]["method"],
                re.compile(regex),
                labels,
                input_shape,
                op.get("output", {}).get("shape"),
            )
        )
    # literal segments win over labels: the longest literal text first
    found.sort(key=lambda o: -len(re.sub(r"\(\?P<[^>]+>\[\^/\]\+\)", "", o.pattern.pattern)))
    return tuple(found)


def match_operation(method: str, path: str) -> tuple[Operation, dict[str, str]] | None:
    """The model operation for `method path`, with its URI labels (percent-decoded)."""
    for op in _operations():
        if op.method != method:
            continue
        match = op.pattern.fullmatch(path)
        if match is not None:
            return op, {k: unquote(v) for k, v in match.groupdict().items()}
    return None


def path_is_routed(path: str) -> bool:
    """Whether any operation (with any method) has this path: a wrong method is then named."""
    return any(op.pattern.fullmatch(path) for op in _operations())


def _invalid(field: str, message: str) -> ValidationException:
    return ValidationException(message, "FIELD_VALIDATION_FAILED", [FieldProblem(field, message)])


def _from_text(shape_name: str, member: str, text: str) -> Any:
    kind = _model()["shapes"][shape_name]["type"]
    if kind in ("integer", "long"):
        if not re.fullmatch(r"-?[0-9]{1,18}", text):
            raise _invalid(member, f"{member} must be an integer; got {text!r}.")
        return int(text)
    if kind == "boolean":
        if text not in ("true", "false"):
            raise _invalid(member, f"{member} must be true or false; got {text!r}.")
        return text == "true"
    return text


def parse_params(
    op: Operation,
    labels: Mapping[str, str],
    query: Mapping[str, str],
    headers: Mapping[str, str],
    body: Mapping[str, Any],
) -> dict[str, Any]:
    """The operation's input as one dict of members (as boto3 names them), validated."""
    params: dict[str, Any] = {}
    if op.input_shape is None:
        if body:
            raise ValidationException(f"{op.name} takes no body.", "FIELD_VALIDATION_FAILED")
        return params
    members: dict[str, Any] = _model()["shapes"][op.input_shape].get("members", {})
    located: set[str] = set()
    for member, ref in members.items():
        location = ref.get("location")
        if location is None:
            continue
        located.add(member)
        wire_name = ref.get("locationName", member)
        if location == "uri":
            params[member] = labels[wire_name]
        elif location == "querystring" and wire_name in query:
            params[member] = _from_text(ref["shape"], member, query[wire_name])
        elif location == "header" and wire_name.lower() in headers:
            params[member] = _from_text(ref["shape"], member, headers[wire_name.lower()])
    for name, value in body.items():
        if name in located:
            raise _invalid(name, f"{name} is not a member of the request body.")
        if value is not None:
            params[name] = value
    _validate(op.input_shape, params)
    return params


class _FieldInvalid(InvalidRequestException):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message, "ValidationError")
        self.field = field


class _DeadlineValidator(_Validator):
    """api.validation's model-driven checks, reporting which member failed."""

    def fail(self, path: str, message: str) -> InvalidRequestException:
        return _FieldInvalid(path or "request", f"{path or 'The request'} {message}")


@cache
def _validator() -> _DeadlineValidator:
    return _DeadlineValidator(SERVICE)


def _validate(shape: str, params: dict[str, Any]) -> None:
    try:
        _validator().check(shape, params, "")
    except _FieldInvalid as exc:
        raise _invalid(exc.field, exc.message) from None


def render_output(op: Operation, result: Mapping[str, Any]) -> Any:
    """Only what the output shape declares, without None members."""
    if op.output_shape is None:
        return {}
    return render(op.output_shape, dict(result), SERVICE)


def iso(epoch: float | None) -> str | None:
    """A timestamp as the model's `timestampFormat: iso8601` (UTC, milliseconds)."""
    if epoch is None:
        return None
    moment = dt.datetime.fromtimestamp(float(epoch), dt.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
