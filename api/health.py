"""Operational routes beside the AWS protocols: `/health`, `/ready` and `/metrics`.

They answer plain JSON / Prometheus text, not an AWS error shape, because their callers are
load balancers, orchestrators and scrapers, not SDKs. `/metrics` is open unless the server was
given a token (`serve --metrics-token T`), then it wants `Authorization: Bearer T`.
"""

from __future__ import annotations

import hmac
import logging

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from api.metrics import CONTENT_TYPE_LATEST, render
from api.models import Backend
from api.request_counts import RequestMeter

__all__ = ["operational_routes"]

log = logging.getLogger("datasync_local.api")


def _ready_checks(backend: Backend, embedded_agent_arn: str | None) -> dict[str, str]:
    """Each check's verdict ("ok" or why not): the store answers a query, and the embedded
    agent (when this server runs one) is ONLINE."""
    checks: dict[str, str] = {}
    try:
        backend.store.meta("ready-probe")
        checks["store"] = "ok"
    except Exception as exc:  # any driver error means not ready, never a 500
        log.warning("readiness: store unreachable: %s", exc)
        checks["store"] = f"unreachable: {type(exc).__name__}"
        return checks
    if embedded_agent_arn is not None:
        checks["embedded_agent"] = (
            "ok" if backend.scheduler.online(embedded_agent_arn) else "offline"
        )
    return checks


def operational_routes(
    backend: Backend,
    *,
    embedded_agent_arn: str | None = None,
    metrics_token: str | None = None,
    requests: RequestMeter | None = None,
) -> list[Route]:
    async def health(_request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def ready(_request: Request) -> Response:
        checks = await anyio.to_thread.run_sync(_ready_checks, backend, embedded_agent_arn)
        ok = all(v == "ok" for v in checks.values())
        return JSONResponse(
            {"status": "ready" if ok else "not ready", "checks": checks},
            status_code=200 if ok else 503,
        )

    async def metrics(request: Request) -> Response:
        if metrics_token is not None:
            given = request.headers.get("authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {metrics_token}".encode()):
                return JSONResponse(
                    {"message": "A metrics token is required (Authorization: Bearer ...)."},
                    status_code=401,
                    headers={"WWW-Authenticate": "Bearer"},
                )
        try:
            text = await anyio.to_thread.run_sync(render, backend, requests)
        except Exception:
            log.exception("metrics scrape failed")
            return JSONResponse({"message": "The store could not be read."}, status_code=503)
        return Response(text, media_type=CONTENT_TYPE_LATEST)

    return [
        Route("/health", health, methods=["GET"]),
        Route("/ready", ready, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]
