"""The DataSync JSON 1.1 front: `X-Amz-Target` → validate → backend method → render.

Thin by design: parse, validate against botocore's input shape, call the operation's handler
from the table in `api.dispatch`, and render the result through the output shape (members the model does not have, and
`None`s, are dropped, so internal state never leaks and absent members are omitted).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import cache
from typing import Any

from api.dispatch import Handler
from api.errors import InvalidRequestException, UnknownOperationException
from api.models import Backend
from api.validation import validate_input
from contract.model import load_service_model

__all__ = ["TARGET_PREFIX", "dispatch", "render"]

TARGET_PREFIX = "FmrsService."
_SUPPORTED_LOCATIONS = {"Nfs", "Smb"}


@cache
def _plan(shape_name: str, service: str) -> tuple[str, Any]:
    """How to render a shape: ("scalar", None), ("list", member) or ("structure", members)."""
    shape = load_service_model(service)["shapes"][shape_name]
    kind = shape["type"]
    if kind == "structure":
        return kind, tuple((name, ref["shape"]) for name, ref in shape.get("members", {}).items())
    if kind == "list":
        return kind, shape["member"]["shape"]
    return "scalar", None


def render(shape_name: str, value: Any, service: str = "datasync") -> Any:
    """Keep only what `shape_name` declares; drop None; recurse into structures and lists."""
    kind, detail = _plan(shape_name, service)
    if kind == "structure" and isinstance(value, dict):
        out = {}
        for name, member in detail:
            item = value.get(name)
            if item is not None:
                out[name] = render(member, item, service)
        return out
    if kind == "list" and isinstance(value, list):
        return [render(detail, v, service) for v in value]
    return value


def _without_nulls(value: Any) -> Any:
    """JSON `null` members mean "absent" (botocore never sends them; a hand-made body may)."""
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


def dispatch(
    table: Mapping[str, Handler], backend: Backend, target: str | None, params: Any
) -> dict[str, Any]:
    """Run one DataSync operation named by an `X-Amz-Target` header value, through `table`
    (`api.dispatch.handlers(backend)`, built once per app)."""
    if not target:
        raise UnknownOperationException("Missing X-Amz-Target header (FmrsService.<Operation>).")
    if not target.startswith(TARGET_PREFIX):
        raise UnknownOperationException(f"Unknown target {target!r}: expected FmrsService.<Op>.")
    operation = target[len(TARGET_PREFIX) :]
    model = load_service_model()
    if operation not in model["operations"]:
        raise UnknownOperationException(f"Unknown operation {operation!r}.")
    params = _without_nulls(params)
    validate_input(operation, params)
    method = table.get(operation)
    if method is None:
        kind = re.fullmatch(r"(?:Create|Describe|Update)Location(\w+)", operation)
        if kind and kind.group(1) not in _SUPPORTED_LOCATIONS:
            raise backend.unsupported_location(operation)
        raise InvalidRequestException(
            f"{operation} is not supported by this server.", "UnsupportedOperation"
        )
    result = method(params)
    op = model["operations"][operation]
    if "output" not in op:
        return {}
    rendered = render(op["output"]["shape"], result)
    assert isinstance(rendered, dict)
    return rendered
