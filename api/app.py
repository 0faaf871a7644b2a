"""The ASGI application: routes, body limit, SigV4, and the one place errors meet the wire.

    POST /                              DataSync, JSON 1.1, `X-Amz-Target: FmrsService.<Op>`
    GET|PUT|POST /things/{thing}/jobs…  IoT Jobs data plane for agents (rest-json)

Every error leaves through `_error_response`: DataSync errors as JSON 1.1 (`__type`, `message`,
`errorCode`, `datasyncErrorCode`), jobs errors the same plus `x-amzn-ErrorType`. Anything
unexpected is logged and answered `InternalException` (500) without a traceback.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from api.activation import Activation
from api.auth import verify_request
from api.errors import (
    ApiError,
    InternalException,
    InvalidRequestException,
    InvalidSignatureException,
    RequestEntityTooLargeException,
    RequestTimeoutException,
    SerializationException,
    UnknownOperationException,
)
from api.jobs import Jobs
from api.models import Backend
from api.responses import dispatch

__all__ = ["BODY_TIMEOUT_SECONDS", "DATASYNC_CONTENT_TYPE", "MAX_BODY_BYTES", "create_app"]

log = logging.getLogger("datasync_local.api")

DATASYNC_CONTENT_TYPE = "application/x-amz-json-1.1"
MAX_BODY_BYTES = 1024 * 1024
# No DataSync or jobs input nests deeper than a few levels; deeper JSON is refused before any
# recursive walk over it (a body nested ~950 deep parsed, then overflowed the stack: a 500).
MAX_JSON_DEPTH = 32
# The whole body must arrive this long after the headers (a slow or stalled upload is cut off).
BODY_TIMEOUT_SECONDS = 30.0
REAP_INTERVAL_SECONDS = 1.0

Hook = Callable[[], Coroutine[Any, Any, None]]


def _json(body: Any) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


def _response(body: Any, status: int, content_type: str, request_id: str) -> Response:
    return Response(
        _json(body),
        status_code=status,
        media_type=content_type,
        headers={"x-amzn-RequestId": request_id},
    )


def _error_response(exc: Exception, rest_json: bool, request_id: str) -> Response:
    if not isinstance(exc, ApiError):
        log.exception("unexpected error handling request %s", request_id)
        exc = InternalException(f"An internal error occurred (request id {request_id}).")
    response = _response(
        exc.to_body(),
        exc.status,
        "application/json" if rest_json else DATASYNC_CONTENT_TYPE,
        request_id,
    )
    if rest_json:
        response.headers["x-amzn-ErrorType"] = exc.code
    if isinstance(exc, RequestTimeoutException):
        response.headers["connection"] = "close"  # the rest of that body is not awaited
    return response


async def _read_body(request: Request, timeout: float = BODY_TIMEOUT_SECONDS) -> bytes:
    with anyio.move_on_after(timeout) as scope:
        body = await _read_body_unbounded(request)
    if scope.cancelled_caught:
        raise RequestTimeoutException(
            f"The request body did not arrive within {timeout:g} seconds."
        )
    return body


async def _read_body_unbounded(request: Request) -> bytes:
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > MAX_BODY_BYTES:
        raise RequestEntityTooLargeException(f"The request body exceeds {MAX_BODY_BYTES} bytes.")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise RequestEntityTooLargeException(
                f"The request body exceeds {MAX_BODY_BYTES} bytes."
            )
        chunks.append(chunk)
    return b"".join(chunks)


_SIGNED_HEADERS_RE = re.compile(r"SignedHeaders=([^,\s]+)")


def _require_signed(request: Request, header: str) -> None:
    """`header`, when present, must be covered by the signature: X-Amz-Target names the
    operation, and the body alone must not be replayable as another operation (a DescribeTask
    body is also a valid DeleteTask body). botocore always signs it."""
    if header not in request.headers:
        return
    match = _SIGNED_HEADERS_RE.search(request.headers.get("authorization", ""))
    if match is None or header not in match.group(1).lower().split(";"):
        raise InvalidSignatureException(f"The {header} header must be signed (in SignedHeaders).")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _parse_object(body: bytes) -> dict[str, Any]:
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


def create_app(
    backend: Backend,
    secrets_by_key: Mapping[str, str],
    *,
    background: Sequence[Hook] = (),
    on_shutdown: Sequence[Hook] = (),
    body_timeout: float = BODY_TIMEOUT_SECONDS,
) -> Starlette:
    """The server. `background` coroutines run for the app's lifetime (e.g. an embedded agent);
    `on_shutdown` hooks run first when it stops (e.g. cancel running transfers cleanly)."""
    jobs = Jobs(backend)
    activation = Activation(backend)  # agents' unauthenticated key registration (issue 4)
    secrets_by_key = backend.keyring(secrets_by_key)  # + agents' own keys, and who may call what

    async def authenticate(request: Request, body: bytes, service: str) -> None:
        verify_request(
            method=request.method,
            raw_path=request.scope.get("raw_path", request.url.path.encode()).decode("latin-1"),
            query_string=request.scope.get("query_string", b"").decode("latin-1"),
            headers=[(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.headers.raw],
            body=body,
            secrets_by_key=secrets_by_key,
            services=(service,),
            region=backend.config.region,
        )

    async def datasync(request: Request) -> Response:
        request_id = str(uuid.uuid4())
        try:
            body = await _read_body(request, body_timeout)
            await authenticate(request, body, "datasync")
            _require_signed(request, "x-amz-target")
            params = _parse_object(body)
            result = dispatch(backend, request.headers.get("x-amz-target"), params)
        except Exception as exc:
            return _error_response(exc, False, request_id)
        return _response(result, 200, DATASYNC_CONTENT_TYPE, request_id)

    async def things(request: Request) -> Response:
        request_id = str(uuid.uuid4())
        try:
            body = await _read_body(request, body_timeout)
            await authenticate(request, body, "iot-jobs-data")
            thing = request.path_params["thing"]
            job_id = request.path_params.get("job_id")
            method = request.method
            if job_id is None and method == "GET":
                result = jobs.get_pending(thing)
            elif job_id == "$next" and method == "PUT":
                result = jobs.start_next(thing, _parse_object(body))
            elif job_id is not None and method == "GET":
                flag = request.query_params.get("includeJobDocument", "true").lower()
                number = request.query_params.get("executionNumber")
                if number is not None and not number.lstrip("-").isdigit():
                    raise InvalidRequestException("executionNumber must be an integer.")
                result = jobs.describe(
                    thing, job_id, flag != "false", None if number is None else int(number)
                )
            elif job_id is not None and method == "POST":
                result = jobs.update(thing, job_id, _parse_object(body))
            else:
                raise UnknownOperationException(f"No operation for {method} {request.url.path}.")
        except Exception as exc:
            return _error_response(exc, True, request_id)
        return _response(result, 200, "application/json", request_id)

    async def not_found(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 404
        error = UnknownOperationException(
            f"No operation for {request.method} {request.url.path} (HTTP {status})."
        )
        return _error_response(error, False, str(uuid.uuid4()))

    async def reaper() -> None:
        while True:
            await anyio.sleep(REAP_INTERVAL_SECONDS)
            try:
                jobs.reap()
            except Exception:  # keep reaping whatever one round did
                log.exception("execution reaper failed")

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        async with anyio.create_task_group() as tg:
            tg.start_soon(reaper)
            for hook in background:
                tg.start_soon(hook)
            try:
                yield
            finally:
                with anyio.CancelScope(shield=True):
                    for stop in on_shutdown:
                        with anyio.move_on_after(30):
                            await stop()
                tg.cancel_scope.cancel()

    routes = [
        Route("/", datasync, methods=["POST"]),
        Route("/things/{thing}/jobs", things, methods=["GET"]),
        Route("/things/{thing}/jobs/{job_id}", things, methods=["GET", "PUT", "POST"]),
        *activation.routes(),
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={404: not_found, 405: not_found},
    )
    app.state.backend = backend
    app.state.jobs = jobs
    return app
