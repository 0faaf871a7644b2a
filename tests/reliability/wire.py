"""Raw signed requests for the reliability suite: botocore's `SigV4Auth` over bytes we choose.

boto3 refuses to send what its model forbids, so the hostile tests build requests themselves:
any body (even not JSON), any header, a chosen clock, and tampering after signing. The signature
is botocore's own, so a well-formed request here is exactly what boto3 would have sent.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from typing import Any

import httpx
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from tests.api.harness import ACCESS_KEY, REGION, SECRET_KEY

CONTENT_TYPE = "application/x-amz-json-1.1"


def sign(
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    *,
    method: str = "POST",
    key: str = ACCESS_KEY,
    secret: str = SECRET_KEY,
    region: str = REGION,
    service: str = "datasync",
    when: dt.datetime | None = None,
) -> dict[str, str]:
    """The headers to send: `headers` plus X-Amz-Date and Authorization, signed at `when`."""
    request = AWSRequest(method=method, url=url, data=body)
    for name, value in headers.items():
        request.headers[name] = value
    stamp = (when or dt.datetime.now(dt.UTC)).strftime("%Y%m%dT%H%M%SZ")
    request.context["timestamp"] = stamp
    signer = SigV4Auth(Credentials(key, secret), service, region)
    signer._modify_request_before_signing(request)  # sets X-Amz-Date from the context
    canonical = signer.canonical_request(request)
    signature = signer.signature(signer.string_to_sign(request, canonical), request)
    signer._inject_signature_to_request(request, signature)
    return {k: v for k, v in request.headers.items()}


def datasync_headers(url: str, operation: str | None, body: bytes, **kwargs: Any) -> dict[str, str]:
    headers = {"Content-Type": CONTENT_TYPE}
    if operation is not None:
        headers["X-Amz-Target"] = f"FmrsService.{operation}"
    return sign(url, body, headers, **kwargs)


def call(
    http: httpx.Client, url: str, operation: str | None, body: bytes | Any, **kwargs: Any
) -> httpx.Response:
    """POST one signed DataSync request; `body` is bytes as-is, anything else JSON-encoded."""
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return http.post(
        url + "/", content=raw, headers=datasync_headers(url, operation, raw, **kwargs)
    )


def check_error_shape(response: httpx.Response) -> dict[str, Any]:
    """A DataSync error: 4xx, JSON 1.1, `__type` and `message` strings. Returns the body."""
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:500])
    assert response.headers["content-type"].startswith(CONTENT_TYPE), response.headers
    body = response.json()
    assert isinstance(body, dict), body
    assert isinstance(body.get("__type"), str) and body["__type"], body
    assert isinstance(body.get("message"), str) and body["message"], body
    return body
