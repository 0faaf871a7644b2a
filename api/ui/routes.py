"""The live status page: `/ui` (login, page, a small JSON state endpoint, actions).

Server-rendered with Jinja2 and one local script (no CDN: it works offline); the script polls
`/ui/state.json` every second and redraws. The rate change and cancel go through
`api.responses.dispatch`, the very path a signed DataSync request takes (model validation
included); suspend and resume (of an execution or one of its work items) through
`api.workitems.set_target`, the call the Deadline routes make (`api.ui.suspension`). So the page
can do nothing the APIs would refuse. Every action carries the session's CSRF token in
`X-CSRF-Token`; the session cookie is HttpOnly and SameSite=Strict.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from api.dispatch import handlers
from api.edge import read_body
from api.errors import ApiError
from api.models import Backend
from api.responses import dispatch
from api.store_logs import LogStore
from api.ui.failures import FailureIndex
from api.ui.session import COOKIE, MAX_AGE_SECONDS, Session, Sessions
from api.ui.state import snapshot
from api.ui.suspension import Refusal, Wish, apply

__all__ = ["ui_routes", "wants_page"]

_HERE = Path(__file__).parent
_ACTIONS = {"cancel": "FmrsService.CancelTaskExecution", "rate": "FmrsService.UpdateTaskExecution"}
_WISHES = {w.value: w for w in Wish}  # suspend, resume: work items (api.ui.suspension)


class _BadItem(ValueError):
    """An `Item` that names no work item's index."""


def _item_index(body: Mapping[str, Any]) -> int | None:
    """The optional `Item` of a suspend/resume: a work item's index, or absent for all of them."""
    index = body.get("Item")
    if index is None:
        return None
    if isinstance(index, bool) or not isinstance(index, int) or index < 0:
        raise _BadItem("Item must be a work item's index (a non-negative integer).")
    return index


def wants_page(request: Request) -> bool:
    """A browser navigating (Accept: text/html), not an SDK (which never asks for HTML)."""
    return "text/html" in request.headers.get("accept", "")


async def _form(request: Request) -> dict[str, str]:
    """An urlencoded form (the page's only kind), size- and time-limited like every body here;
    stdlib parsing rather than python-multipart for two text fields."""
    try:
        fields = parse_qs((await read_body(request)).decode(), max_num_fields=8)
    except (ValueError, UnicodeDecodeError, ApiError):  # ApiError: too large or too slow
        return {}
    return {k: v[0] for k, v in fields.items()}


def ui_routes(backend: Backend, operators: Mapping[str, str]) -> list[BaseRoute]:
    templates = Jinja2Templates(directory=str(_HERE / "templates"))
    sessions = Sessions(backend.store, operators)
    table = handlers(backend)
    failures = FailureIndex(
        backend.store, LogStore(backend.store, backend.config.log_retention_days)
    )

    async def session_of(request: Request) -> Session | None:
        return await anyio.to_thread.run_sync(sessions.read, request.cookies.get(COOKIE))

    async def login_page(request: Request) -> Response:
        return templates.TemplateResponse(request, "login.html", {"error": None})

    async def login(request: Request) -> Response:
        form = await _form(request)
        key, secret = str(form.get("access_key_id", "")), str(form.get("secret_access_key", ""))
        cookie = await anyio.to_thread.run_sync(sessions.login, key, secret)
        if cookie is None:
            return templates.TemplateResponse(
                request, "login.html", {"error": "Wrong access key pair."}, status_code=401
            )
        out = RedirectResponse("/ui", status_code=303)
        out.set_cookie(
            COOKIE,
            cookie,
            max_age=MAX_AGE_SECONDS,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
            path="/",
        )
        return out

    async def logout(request: Request) -> Response:
        session = await session_of(request)
        form = await _form(request)
        out = RedirectResponse("/ui/login", status_code=303)
        if session is not None and hmac.compare_digest(str(form.get("csrf", "")), session.csrf):
            out.delete_cookie(COOKIE, path="/")
        return out

    async def page(request: Request) -> Response:
        session = await session_of(request)
        if session is None:
            return RedirectResponse("/ui/login", status_code=303)
        context = {"csrf": session.csrf, "operator": session.access_key_id}
        return templates.TemplateResponse(request, "page.html", context)

    async def state(request: Request) -> Response:
        if await session_of(request) is None:
            return JSONResponse({"message": "Log in first."}, status_code=401)
        data = await anyio.to_thread.run_sync(snapshot, backend, failures)
        return JSONResponse(data, headers={"cache-control": "no-store"})

    async def wish(arn: str, what: Wish, index: int | None) -> Response:
        try:
            await anyio.to_thread.run_sync(apply, backend.store, arn, what, index, backend.now())
        except Refusal as exc:
            return JSONResponse({"message": exc.message}, status_code=exc.status)
        return JSONResponse({"ok": True})

    async def action(request: Request) -> Response:
        session = await session_of(request)
        if session is None:
            return JSONResponse({"message": "Log in first."}, status_code=401)
        token = request.headers.get("x-csrf-token", "")
        if not hmac.compare_digest(token.encode(), session.csrf.encode()):
            return JSONResponse({"message": "Missing or wrong CSRF token."}, status_code=403)
        try:
            raw = await read_body(request)
        except ApiError as exc:
            return JSONResponse(exc.to_body(), status_code=exc.status)
        wished: Wish | None = None
        try:
            body: Any = json.loads(raw)
            name = str(body["action"])
            arn = str(body["TaskExecutionArn"])
            if name in _WISHES:
                wished, index = _WISHES[name], _item_index(body)
            else:
                target = _ACTIONS[name]
                params: dict[str, Any] = {"TaskExecutionArn": arn}
                if name == "rate":
                    params["Options"] = {"BytesPerSecond": int(body["BytesPerSecond"])}
        except _BadItem as exc:
            return JSONResponse({"message": str(exc)}, status_code=400)
        except (ValueError, KeyError, TypeError):
            return JSONResponse({"message": "Malformed action."}, status_code=400)
        if wished is not None:
            return await wish(arn, wished, index)
        try:
            await anyio.to_thread.run_sync(dispatch, table, backend, target, params)
        except ApiError as exc:
            return JSONResponse(exc.to_body(), status_code=exc.status)
        return JSONResponse({"ok": True})

    return [
        Route("/ui", page, methods=["GET"]),
        Route("/ui/login", login_page, methods=["GET"]),
        Route("/ui/login", login, methods=["POST"]),
        Route("/ui/logout", logout, methods=["POST"]),
        Route("/ui/state.json", state, methods=["GET"]),
        Route("/ui/action", action, methods=["POST"]),
        Mount("/ui/static", StaticFiles(directory=str(_HERE / "static")), name="ui-static"),
    ]
