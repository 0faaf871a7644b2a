"""The Deadline Cloud routes on the DataSync port: `/2023-10-12/...`, SigV4 service `deadline`.

One Starlette route takes every method under the model's prefix; the operation is found from the
model (api.deadline.wire), so every Deadline operation is recognised. Order of checks, each
failure in Deadline's error shape (api.deadline.errors):

1. the body (size, time: api.edge) and the SigV4 signature for service `deadline` with the
   operator's credentials (agents' own credentials may call only the jobs endpoint) — a bad or
   missing signature is AccessDeniedException 403;
2. the operation: an unknown path or method, or a model operation this server does not offer, is
   ValidationException with reason UNKNOWN_OPERATION (of the errors every Deadline operation
   declares, the one whose reason says exactly this), naming the operations it does offer;
3. the parameters, validated against the model (ValidationException FIELD_VALIDATION_FAILED);
4. the handler (api.deadline.operations), in a worker thread: it reads the store.

boto3's `deadline` client prefixes hosts (`management.`, `scheduling.`); pointed at this server
it needs `Config(inject_host_prefix=False)` (see the README).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import anyio
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from api.config import ServerConfig
from api.deadline.errors import ValidationException, error_response
from api.deadline.operations import OPERATIONS, DeadlineApi
from api.deadline.wire import SERVICE, match_operation, parse_params, render_output
from api.edge import (
    BODY_TIMEOUT_SECONDS,
    Access,
    Call,
    Observe,
    Reply,
    endpoint,
    parse_object,
    read_body,
)
from api.store import Store

__all__ = ["PREFIX", "deadline_routes"]

PREFIX = "/2023-10-12"
Authenticate = Callable[[Request, bytes, str], Awaitable[None]]
_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]  # HEAD comes with GET


def deadline_routes(
    store: Store,
    config: ServerConfig,
    authenticate: Authenticate,
    body_timeout: float = BODY_TIMEOUT_SECONDS,
    *,
    observe: Observe = lambda *_: None,
    access: Access | None = None,
) -> list[BaseRoute]:
    """The routes to mount beside the DataSync ones; `authenticate` is the app's SigV4 check,
    `observe` counts each request (/metrics) and `access` logs it, through `api.edge.endpoint`
    as every other protocol, with Deadline's own error shapes."""
    api = DeadlineApi(store, config)

    async def handle(request: Request, call: Call) -> Reply:
        body = await read_body(request, body_timeout)
        await authenticate(request, body, SERVICE)
        # the raw path: labels are percent-decoded once, after the split into segments
        raw = request.scope.get("raw_path") or request.url.path.encode()
        path = raw.decode("latin-1").split("?", 1)[0]
        found = match_operation(request.method, path)
        if found is None:
            raise ValidationException(
                f"No Deadline operation is {request.method} {path}.", "UNKNOWN_OPERATION"
            )
        op, labels = found
        handler = api.handlers.get(op.name)
        if handler is None:
            raise ValidationException(
                f"{op.name} is not offered by datasync-local: its Deadline routes serve "
                f"{', '.join(OPERATIONS)}.",
                "UNKNOWN_OPERATION",
            )
        call.operation = op.name
        query = {k: v for k, v in request.query_params.multi_items()}
        headers = {k.lower(): v for k, v in request.headers.items()}
        params = parse_params(op, labels, query, headers, parse_object(body))
        result = await anyio.to_thread.run_sync(handler, params)
        return Reply(render_output(op, result))

    def answer(exc: Exception, request_id: str) -> tuple[Response, str]:
        out = error_response(exc, request_id)
        return out, out.headers["x-amzn-ErrorType"]

    serve = endpoint("deadline", True, handle, observe, errors=answer, access=access)

    return [
        Route(PREFIX, serve, methods=_METHODS),
        Route(PREFIX + "/{rest:path}", serve, methods=_METHODS),
    ]
