"""A small async client for the IoT Jobs data plane, signed with SigV4 by botocore's signer.

httpx carries the requests, so the same client works over the network (`http://host:port`) or
in-process through `httpx.ASGITransport` (the embedded agent). Errors keep the body the server
sent, which for a version conflict or a terminal job holds the current `executionState`
(botocore's own client drops it).
"""

from __future__ import annotations

import json
from urllib.parse import quote, urlencode

import httpx
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from contract import Doc
from contract.workitems import JournalBatch, JournalPage, PlanUpload

__all__ = ["ActivationClient", "JobsClient", "JobsError"]


class JobsError(Exception):
    """The control plane refused a jobs call; `code` is its error code (e.g. VersionMismatch)."""

    def __init__(self, status: int, code: str, message: str, body: Doc) -> None:
        super().__init__(f"{code} ({status}): {message}")
        self.status = status
        self.code = code
        self.body = body

    @property
    def transient(self) -> bool:
        """Worth retrying as is: the server is busy, restarting or failed (429, 5xx)."""
        return self.status == 429 or self.status >= 500


def _error(response: httpx.Response) -> Doc:
    try:
        payload = response.json() if response.content else {}
    except ValueError:
        payload = {}
    return payload if isinstance(payload, dict) else {}


class JobsClient:
    def __init__(
        self,
        base_url: str,
        access_key_id: str,
        secret_access_key: str,
        region: str = "us-east-1",
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = 30.0,
    ) -> None:
        # `URL1,URL2,...`: control-plane processes sharing one store. Calls go to the one that
        # answered last; a connection failure or a 5xx moves on to the next, so the agent keeps
        # working (and finishes its transfer) when one of them dies.
        self._bases = [u.strip().rstrip("/") for u in base_url.split(",") if u.strip()]
        self._current = 0
        self._credentials = Credentials(access_key_id, secret_access_key)
        self._region = region
        self._http = httpx.AsyncClient(transport=transport, timeout=timeout)

    async def aclose(self) -> None:
        await self._http.aclose()

    @property
    def server(self) -> str:
        """The control-plane URL calls go to now."""
        return self._bases[self._current]

    async def _call(
        self, method: str, path: str, body: Doc | bytes | None = None, query: Doc | None = None
    ) -> Doc:
        for attempt in range(len(self._bases)):
            last = attempt == len(self._bases) - 1
            try:
                return await self._call_one(self.server, method, path, body, query)
            except httpx.TransportError:
                if last:
                    raise
            except JobsError as exc:
                if last or exc.status < 500:
                    raise
            self._current = (self._current + 1) % len(self._bases)
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def _call_one(
        self, base: str, method: str, path: str, body: Doc | bytes | None, query: Doc | None
    ) -> Doc:
        url = base + quote(path, safe="/")
        if query:
            url += "?" + urlencode(query)
        if isinstance(body, bytes):
            data = body
        else:
            data = b"" if body is None else json.dumps(body, separators=(",", ":")).encode()
        request = AWSRequest(
            method=method, url=url, data=data, headers={"Content-Type": "application/json"}
        )
        SigV4Auth(self._credentials, "iot-jobs-data", self._region).add_auth(request)
        response = await self._http.request(
            method, url, content=data, headers=dict(request.headers.items())
        )
        try:
            payload = response.json() if response.content else {}
        except ValueError:
            payload = {}
        if not isinstance(payload, dict):
            payload = {}
        if response.status_code >= 400:
            code = response.headers.get("x-amzn-ErrorType") or payload.get("__type") or "Error"
            raise JobsError(response.status_code, code, str(payload.get("message", "")), payload)
        return payload

    async def start_next(
        self,
        thing: str,
        step_timeout_minutes: int | None = None,
        *,
        running: list[str] | None = None,
        slots: int | None = None,
    ) -> Doc | None:
        """Claim (or re-attach to) a job. With `running`/`slots`, the agent runs several at once:
        the server hands back a job it does not run, while it has a free slot."""
        body: Doc = {}
        if step_timeout_minutes is not None:
            body["stepTimeoutInMinutes"] = step_timeout_minutes
        if slots is not None:
            body["statusDetails"] = {
                "agent:slots": str(slots),
                "agent:running": ",".join(running or []) or "-",
            }
        result = await self._call("PUT", f"/things/{thing}/jobs/$next", body)
        execution = result.get("execution")
        return execution if isinstance(execution, dict) else None

    async def update(
        self,
        thing: str,
        job_id: str,
        status: str,
        details: dict[str, str],
        expected_version: int | None,
        execution_number: int | None = None,
    ) -> Doc:
        """Report; returns the new executionState (status, statusDetails, versionNumber).
        `execution_number` fences a work item's claim (contract/workitems.py)."""
        body: Doc = {"status": status, "statusDetails": details, "includeJobExecutionState": True}
        if expected_version is not None:
            body["expectedVersion"] = expected_version
        if execution_number is not None:
            body["executionNumber"] = execution_number
        result = await self._call("POST", f"/things/{thing}/jobs/{job_id}", body)
        state = result.get("executionState")
        return state if isinstance(state, dict) else {}

    async def post_events(self, thing: str, job_id: str, body: bytes) -> Doc:
        """A batch of per-file log events, its JSON made by the caller (contract/log_events.py
        `EventBatch.to_json`; agents/event_shipper.py sizes batches by it)."""
        return await self._call("POST", f"/things/{thing}/jobs/{job_id}/events", body)

    async def upload_plan(self, thing: str, job_id: str, plan: PlanUpload) -> Doc:
        """Item 0's split of the execution (contract/workitems.py)."""
        return await self._call("POST", f"/things/{thing}/jobs/{job_id}/items", plan.to_json())

    async def post_journal(self, thing: str, job_id: str, batch: JournalBatch) -> Doc:
        """Files a work item finished, fenced by the claim's executionNumber."""
        return await self._call("POST", f"/things/{thing}/jobs/{job_id}/journal", batch.to_json())

    async def journal(self, thing: str, job_id: str, next_token: str | None = None) -> JournalPage:
        """One page of a work item's journal."""
        query = {"nextToken": next_token} if next_token else None
        page = await self._call("GET", f"/things/{thing}/jobs/{job_id}/journal", query=query)
        return JournalPage.from_json(page)

    async def describe(self, thing: str, job_id: str) -> Doc:
        return await self._call("GET", f"/things/{thing}/jobs/{job_id}")

    async def pending(self, thing: str) -> Doc:
        return await self._call("GET", f"/things/{thing}/jobs")


class ActivationClient:
    """The unauthenticated activation calls: register as pending, then poll with the key."""

    def __init__(self, base_url: str, *, timeout: float = 30.0) -> None:
        self._base = base_url.rstrip("/")
        self._http = httpx.AsyncClient(timeout=timeout)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _post(self, path: str, body: Doc) -> Doc:
        response = await self._http.post(self._base + path, json=body)
        payload = _error(response)
        if response.status_code >= 400:
            code = response.headers.get("x-amzn-ErrorType") or payload.get("__type") or "Error"
            raise JobsError(response.status_code, code, str(payload.get("message", "")), payload)
        return payload

    async def register(self, info: Doc) -> Doc:
        """→ {ActivationKey, PollToken, ExpiresAt}"""
        return await self._post("/agent-activation", info)

    async def poll(self, key: str, token: str) -> Doc:
        """→ {Status: PENDING} or {Status: ACTIVATED, AgentArn, ThingName, AccessKeyId, ...}"""
        return await self._post(f"/agent-activation/{quote(key)}", {"PollToken": token})
