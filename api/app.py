"""The ASGI application: routes, body limit, SigV4, and the one place errors meet the wire.

    POST /                              DataSync, JSON 1.1, `X-Amz-Target: FmrsService.<Op>`
    GET|PUT|POST /things/{thing}/jobs…  IoT Jobs data plane for agents (rest-json), with the
                                        work items' plan upload and journal (api.jobs)
    GET /health, /ready, /metrics       liveness, readiness, Prometheus (`api.health`)
    GET /ui…  (a browser's GET / too)   the live status page (`api.ui`)
    * /2023-10-12/…                     Deadline Cloud REST-JSON, SigV4 `deadline`: work items
                                        (`api.deadline`, which renders its own errors)

Every AWS-protocol route is an `api.edge.endpoint` (which also counts it for `/metrics` by
protocol, operation and code, `api.request_counts`), and every error leaves through
`api.edge.error_response`: DataSync errors as JSON 1.1 (`__type`, `message`,
`errorCode`, `datasyncErrorCode`), jobs errors the same plus `x-amzn-ErrorType`. Anything
unexpected is logged and answered `InternalException` (500) without a traceback.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import anyio
import anyio.to_thread
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from api.access_log import AccessLog
from api.activation import MAX_BODY as ACTIVATION_MAX_BODY
from api.activation import Activation
from api.auth import verify_request
from api.deadline import deadline_routes
from api.dispatch import handlers
from api.edge import (
    BODY_TIMEOUT_SECONDS,
    DATASYNC_CONTENT_TYPE,
    MAX_BODY_BYTES,
    Call,
    Reply,
    endpoint,
    error_response,
    parse_object,
    read_body,
)
from api.errors import (
    InvalidRequestException,
    InvalidSignatureException,
    UnknownOperationException,
)
from api.execution_log import ExecutionLog, parse_batch
from api.health import operational_routes
from api.jobs import Jobs
from api.logs_api import TARGET_PREFIX, LogsApi
from api.logs_query import LogsError
from api.models import Backend
from api.request_counts import UNKNOWN, RequestMeter
from api.responses import TARGET_PREFIX as DATASYNC_PREFIX
from api.responses import dispatch
from api.schedule_runner import ScheduleRunner
from api.store_logs import LogStore
from api.ui import ui_routes, wants_page
from contract.model import load_service_model
from contract.workitems import MAX_PLAN_BODY

__all__ = ["BODY_TIMEOUT_SECONDS", "DATASYNC_CONTENT_TYPE", "MAX_BODY_BYTES", "create_app"]

log = logging.getLogger("datasync_local.api")

REAP_INTERVAL_SECONDS = 1.0
SCHEDULE_TICK_SECONDS = 1.0

Hook = Callable[[], Coroutine[Any, Any, None]]


_SIGNED_HEADERS_RE = re.compile(r"SignedHeaders=([^,\s]+)")


T = TypeVar("T")


async def blocking(func: Callable[..., T], *args: Any) -> T:
    """Run a handler's store work on a worker thread, never on the event loop.

    Every handler reads or writes the store, and one blocked call on the loop stalls every other
    request of the process: a SQLite write waiting for the writer lock (`busy_timeout`) or a slow
    PostgreSQL round trip showed up as a seconds-long tail in the agent-fleet benchmark while the
    median stayed at 6 ms. The store is thread-safe (one short transaction per method).
    """
    return await anyio.to_thread.run_sync(func, *args)


# a few threads for the store work of every handler, not anyio's default 40: a fleet of 200
# agents kept 40 threads contending for the GIL and SQLite's writer lock (8 calls/s against 21
# with 4 threads, the same run otherwise). Set on the loop's default limiter at start-up (it is
# per event loop: tests run several servers in one process).
STORE_THREADS = 8


def _require_signed(request: Request, header: str) -> None:
    """`header`, when present, must be covered by the signature: X-Amz-Target names the
    operation, and the body alone must not be replayable as another operation (a DescribeTask
    body is also a valid DeleteTask body). botocore always signs it."""
    if header not in request.headers:
        return
    match = _SIGNED_HEADERS_RE.search(request.headers.get("authorization", ""))
    if match is None or header not in match.group(1).lower().split(";"):
        raise InvalidSignatureException(f"The {header} header must be signed (in SignedHeaders).")


def create_app(
    backend: Backend,
    secrets_by_key: Mapping[str, str],
    *,
    background: Sequence[Hook] = (),
    on_shutdown: Sequence[Hook] = (),
    body_timeout: float = BODY_TIMEOUT_SECONDS,
    leader: Callable[[], bool] = lambda: True,
    embedded_agent_arn: str | None = None,
    metrics_token: str | None = None,
    access_log: bool = False,
) -> Starlette:
    """The server. `background` coroutines run for the app's lifetime (e.g. an embedded agent);
    `on_shutdown` hooks run first when it stops (e.g. cancel running transfers cleanly)."""
    jobs = Jobs(backend)
    table = handlers(backend)  # DataSync operation → handler
    activation = Activation(backend)  # agents' unauthenticated key registration (issue 4)
    operators = dict(secrets_by_key)  # the status page's logins: operators only, never agents
    secrets_by_key = backend.keyring(secrets_by_key)  # + agents' own keys, and who may call what
    log_store = LogStore(backend.store, backend.config.log_retention_days)
    execution_log = ExecutionLog(backend.store, log_store)  # issue 13: execution logs
    backend.store.execution_hooks.append(execution_log.hook)
    schedules = ScheduleRunner(backend, log_store)
    logs_api = LogsApi(backend.store, log_store, backend.config.region, backend.config.account_id)
    meter = RequestMeter(backend.store)  # API requests by protocol, operation, code (/metrics)
    access = AccessLog() if access_log else None  # serve --access-log

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

    def operation_of(target: str | None, prefix: str, service: str) -> str:
        """The operation an `X-Amz-Target` names, if its model has it (a bounded label)."""
        name = (target or "")[len(prefix) :] if (target or "").startswith(prefix) else ""
        return name if name in load_service_model(service)["operations"] else UNKNOWN

    async def datasync(request: Request, call: Call) -> Reply:
        target = request.headers.get("x-amz-target")
        call.operation = operation_of(target, DATASYNC_PREFIX, "datasync")
        body = await read_body(request, body_timeout)
        await authenticate(request, body, "datasync")
        _require_signed(request, "x-amz-target")
        params = parse_object(body)
        return Reply(await blocking(dispatch, table, backend, target, params))

    async def logs(request: Request, call: Call) -> Reply:
        """CloudWatch Logs calls on the same port (api.logs_api), JSON 1.1 errors of its model."""
        target = request.headers["x-amz-target"]
        call.operation = operation_of(target, TARGET_PREFIX, "logs")
        body = await read_body(request, body_timeout)
        await authenticate(request, body, "logs")
        _require_signed(request, "x-amz-target")
        params = parse_object(body)
        try:
            return Reply(await blocking(logs_api.handle, target, params))
        except LogsError as exc:
            return Reply(exc.to_body(), 400, exc.code)

    async def job_events(request: Request, call: Call) -> Reply:
        """An agent's batch of per-file log events for one of its jobs (contract/log_events)."""
        call.operation = "PutJobExecutionEvents"
        body = await read_body(request, body_timeout)
        await authenticate(request, body, "iot-jobs-data")
        batch = parse_batch(body)  # one json.loads, columns checked (contract/log_events)
        execution = await blocking(
            jobs.job, request.path_params["thing"], request.path_params["job_id"]
        )
        stored = await blocking(execution_log.ingest, execution.to_row(), batch)
        return Reply({"stored": stored})

    async def things(request: Request, call: Call) -> Reply:
        thing = request.path_params["thing"]
        job_id = request.path_params.get("job_id")
        method = request.method
        # the IoT Jobs data plane's operation names (botocore's iot-jobs-data model)
        if job_id is None and method == "GET":
            call.operation = "GetPendingJobExecutions"
        elif job_id == "$next" and method == "PUT":
            call.operation = "StartNextPendingJobExecution"
        elif job_id is not None and method == "GET":
            call.operation = "DescribeJobExecution"
        elif job_id is not None and method == "POST":
            call.operation = "UpdateJobExecution"
        body = await read_body(request, body_timeout)
        await authenticate(request, body, "iot-jobs-data")
        if call.operation == "GetPendingJobExecutions":
            result = await blocking(jobs.get_pending, thing)
        elif call.operation == "StartNextPendingJobExecution":
            result = await blocking(jobs.start_next, thing, parse_object(body))
        elif call.operation == "DescribeJobExecution" and job_id is not None:
            flag = request.query_params.get("includeJobDocument", "true").lower()
            number = request.query_params.get("executionNumber")
            if number is not None and not number.lstrip("-").isdigit():
                raise InvalidRequestException("executionNumber must be an integer.")
            result = await blocking(
                jobs.describe,
                thing,
                job_id,
                flag != "false",
                None if number is None else int(number),
            )
        elif call.operation == "UpdateJobExecution" and job_id is not None:
            result = await blocking(jobs.update, thing, job_id, parse_object(body))
        else:
            raise UnknownOperationException(f"No operation for {method} {request.url.path}.")
        return Reply(result)

    async def register(request: Request, call: Call) -> Reply:
        """Agent activation (api.activation): register a key, or poll for its credentials."""
        key = request.path_params.get("key")
        call.operation = "RegisterActivation" if key is None else "PollActivation"
        body = parse_object(await read_body(request, body_timeout, ACTIVATION_MAX_BODY))
        if key is None:
            return Reply(await blocking(activation.register, body))
        return Reply(await blocking(activation.poll, key, body))

    datasync_route = endpoint("datasync", False, datasync, meter.observe, access=access)
    logs_route = endpoint("logs", False, logs, meter.observe, access=access)

    async def post_root(request: Request) -> Response:
        """DataSync and CloudWatch Logs share `POST /`; X-Amz-Target says which."""
        if request.headers.get("x-amz-target", "").startswith(TARGET_PREFIX):
            return await logs_route(request)
        return await datasync_route(request)

    async def work_items(request: Request, call: Call) -> Reply:
        """Item 0's plan upload and the items' journal (contract/workitems, issue 12)."""
        what = request.path_params["what"]
        if what == "items" and request.method == "POST":
            call.operation = "UploadPlan"
        elif what == "journal":
            call.operation = "PutJournal" if request.method == "POST" else "GetJournal"
        limit = MAX_PLAN_BODY if what == "items" else MAX_BODY_BYTES
        body = await read_body(request, body_timeout, limit)
        await authenticate(request, body, "iot-jobs-data")
        thing = request.path_params["thing"]
        job_id = request.path_params["job_id"]
        if call.operation == "UploadPlan":
            return Reply(await blocking(jobs.upload_plan, thing, job_id, parse_object(body)))
        if call.operation == "PutJournal":
            return Reply(await blocking(jobs.add_journal, thing, job_id, parse_object(body)))
        if call.operation == "GetJournal" and request.method == "GET":
            token = request.query_params.get("nextToken")
            return Reply(await blocking(jobs.journal, thing, job_id, token))
        raise UnknownOperationException(f"No operation for {request.method} {request.url.path}.")

    async def root(request: Request) -> Response:
        """A browser's `GET /` goes to the status page; anything else gets DataSync's error."""
        if wants_page(request):
            return RedirectResponse("/ui", status_code=303)
        return await not_found(request, HTTPException(405))

    async def not_found(request: Request, exc: Exception) -> Response:
        started = time.perf_counter()
        status = exc.status_code if isinstance(exc, HTTPException) else 404
        error = UnknownOperationException(
            f"No operation for {request.method} {request.url.path} (HTTP {status})."
        )
        out = error_response(error, False, str(uuid.uuid4()))
        meter.observe("http", UNKNOWN, error.code, time.perf_counter() - started)
        return out

    async def reaper() -> None:
        while True:
            await anyio.sleep(REAP_INTERVAL_SECONDS)
            try:
                if leader():  # one process of a control plane reaps (api.server.LeaderDuty)
                    jobs.reap()
            except Exception:  # keep reaping whatever one round did
                log.exception("execution reaper failed")

    async def schedule_loop() -> None:
        while True:
            await anyio.sleep(SCHEDULE_TICK_SECONDS)
            try:
                if leader():  # one process of a control plane starts scheduled runs
                    await blocking(schedules.tick)
            except Exception:
                log.exception("schedule runner failed")

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        anyio.to_thread.current_default_thread_limiter().total_tokens = STORE_THREADS
        async with anyio.create_task_group() as tg:
            tg.start_soon(meter.run)  # request counts into the store, once a second
            tg.start_soon(reaper)
            tg.start_soon(schedule_loop)
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

    jobs_route = endpoint("jobs", True, things, meter.observe, access=access)
    activation_route = endpoint("activation", True, register, meter.observe, access=access)
    routes = [
        Route("/", post_root, methods=["POST"]),
        Route("/", root, methods=["GET"]),
        Route("/things/{thing}/jobs", jobs_route, methods=["GET"]),
        Route("/things/{thing}/jobs/{job_id}", jobs_route, methods=["GET", "PUT", "POST"]),
        Route(
            "/things/{thing}/jobs/{job_id}/events",
            endpoint("jobs", True, job_events, meter.observe, access=access),
            methods=["POST"],
        ),
        Route(
            "/things/{thing}/jobs/{job_id}/{what:str}",
            endpoint("jobs", True, work_items, meter.observe, access=access),
            methods=["GET", "POST"],
        ),
        Route("/agent-activation", activation_route, methods=["POST"]),
        Route("/agent-activation/{key}", activation_route, methods=["POST"]),
        *deadline_routes(
            backend.store,
            backend.config,
            authenticate,
            body_timeout,
            observe=meter.observe,
            access=access,
        ),
        *operational_routes(
            backend,
            embedded_agent_arn=embedded_agent_arn,
            metrics_token=metrics_token,
            requests=meter,
        ),
        *ui_routes(backend, operators),
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={404: not_found, 405: not_found},
    )
    app.state.backend = backend
    app.state.jobs = jobs
    return app
