"""The request edge, written once for every route: body size limit (413), body timeout (408),
strict JSON objects with bounded nesting, and the one place an error becomes a response.

`endpoint` is where every AWS-protocol request (DataSync, CloudWatch Logs, jobs, activation)
is answered: it times the handler, maps what it raised to its error response, and counts the
request once by protocol, operation and code (`api.request_counts`), whatever the outcome.

Used by the DataSync and jobs routes (`api.app`) and by agent activation (`api.activation`),
so all three refuse the same way. Starlette is used directly rather than FastAPI: every route
here speaks an AWS wire protocol whose validation and error shapes come from botocore's models
(`api.validation`), which FastAPI's pydantic models and its 422 errors would duplicate and
contradict; FastAPI fits the REST-JSON routes that come next, mounted beside these.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import anyio
from starlette.requests import Request
from starlette.responses import Response

from api.errors import (
    ApiError,
    InternalException,
    RequestEntityTooLargeException,
    RequestTimeoutException,
    SerializationException,
)

__all__ = [
    "BODY_TIMEOUT_SECONDS",
    "DATASYNC_CONTENT_TYPE",
    "MAX_BODY_BYTES",
    "MAX_JSON_DEPTH",
    "Call",
    "Observe",
    "Reply",
    "endpoint",
    "error_code",
    "error_response",
    "parse_object",
    "read_body",
    "response",
]

log = logging.getLogger("datasync_local.api")

DATASYNC_CONTENT_TYPE = "application/x-amz-json-1.1"
MAX_BODY_BYTES = 1024 * 1024
# No DataSync or jobs input nests deeper than a few levels; deeper JSON is refused before any
# recursive walk over it (a body nested ~950 deep parsed, then overflowed the stack: a 500).
MAX_JSON_DEPTH = 32
# The whole body must arrive this long after the headers (a slow or stalled upload is cut off).
BODY_TIMEOUT_SECONDS = 30.0


def _json(body: Any) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


def response(body: Any, status: int, content_type: str, request_id: str) -> Response:
    return Response(
        _json(body),
        status_code=status,
        media_type=content_type,
        headers={"x-amzn-RequestId": request_id},
    )


def error_response(exc: Exception, rest_json: bool, request_id: str) -> Response:
    if not isinstance(exc, ApiError):
        log.exception("unexpected error handling request %s", request_id)
        exc = InternalException(f"An internal error occurred (request id {request_id}).")
    out = response(
        exc.to_body(),
        exc.status,
        "application/json" if rest_json else DATASYNC_CONTENT_TYPE,
        request_id,
    )
    if rest_json:
        out.headers["x-amzn-ErrorType"] = exc.code
    if isinstance(exc, RequestTimeoutException):
        out.headers["connection"] = "close"  # the rest of that body is not awaited
    return out


def error_code(exc: Exception) -> str:
    """The error code `error_response` answers `exc` with (what requests are counted by)."""
    return exc.code if isinstance(exc, ApiError) else InternalException.code


@dataclass
class Call:
    """What a handler tells the edge about its request as soon as it knows: the operation."""

    operation: str = "unknown"


@dataclass(frozen=True)
class Reply:
    """A handler's answer: a 200 body, or a protocol's modeled error it returns rather than
    raises (CloudWatch Logs' errors, whose shapes are not ApiErrors)."""

    body: Any
    status: int = 200
    code: str = "OK"


Observe = Callable[[str, str, str, float], None]  # (protocol, operation, code, seconds)
Handle = Callable[[Request, Call], Awaitable[Reply]]


def endpoint(
    protocol: str, rest_json: bool, handle: Handle, observe: Observe
) -> Callable[[Request], Awaitable[Response]]:
    """The route function of one protocol's handler: request id, timing, error mapping and the
    request's count, in this one place for every protocol."""
    content_type = "application/json" if rest_json else DATASYNC_CONTENT_TYPE

    async def run(request: Request) -> Response:
        request_id = str(uuid.uuid4())
        started = time.perf_counter()
        call = Call()
        try:
            reply = await handle(request, call)
            out, code = response(reply.body, reply.status, content_type, request_id), reply.code
        except Exception as exc:
            out, code = error_response(exc, rest_json, request_id), error_code(exc)
        observe(protocol, call.operation, code, time.perf_counter() - started)
        return out

    return run


async def read_body(
    request: Request, timeout: float = BODY_TIMEOUT_SECONDS, limit: int = MAX_BODY_BYTES
) -> bytes:
    with anyio.move_on_after(timeout) as scope:
        body = await _read_body_unbounded(request, limit)
    if scope.cancelled_caught:
        raise RequestTimeoutException(
            f"The request body did not arrive within {timeout:g} seconds."
        )
    return body


async def _read_body_unbounded(request: Request, limit: int) -> bytes:
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise RequestEntityTooLargeException(f"The request body exceeds {limit} bytes.")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestEntityTooLargeException(f"The request body exceeds {limit} bytes.")
        chunks.append(chunk)
    return b"".join(chunks)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_object(body: bytes) -> dict[str, Any]:
    """The body as a JSON object: strict JSON (no NaN/Infinity), bounded nesting."""
    if not body.strip():
        return {}
    try:
        value = json.loads(body, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError, RecursionError):
        # RecursionError: nesting deeper than the interpreter's stack (`[[[[...` bodies)
        raise SerializationException("The request body is not valid JSON.") from None
    if not isinstance(value, dict):
        raise SerializationException("The request body must be a JSON object.")
    if _depth_exceeds(value, MAX_JSON_DEPTH):
        raise SerializationException(f"The request body nests deeper than {MAX_JSON_DEPTH} levels.")
    return value


def _depth_exceeds(value: Any, limit: int) -> bool:
    """Whether `value` nests lists/objects deeper than `limit` (iteratively: no recursion)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return False
