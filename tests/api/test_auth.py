"""SigV4 on every request: missing, malformed, stale, unknown key, wrong secret; credentials."""

from __future__ import annotations

import datetime as dt
import os
import stat
from pathlib import Path
from typing import Any

import httpx
import pytest
from botocore.exceptions import ClientError

from api.auth import load_or_create_credentials, verify_request
from api.errors import InvalidSignatureException
from tests.api.harness import SECRET_KEY, Server
from tests.api.test_wire import error_of, signed


def test_missing_signature_is_rejected(server: Server) -> None:
    response = httpx.post(
        server.url + "/",
        content=b"{}",
        headers={"X-Amz-Target": "FmrsService.ListAgents"},
    )
    assert response.status_code == 403
    assert error_of(response)["__type"] == "UnrecognizedClientException"


def test_malformed_authorization_is_rejected(server: Server) -> None:
    response = httpx.post(
        server.url + "/",
        content=b"{}",
        headers={"X-Amz-Target": "FmrsService.ListAgents", "Authorization": "Bearer abc"},
    )
    assert response.status_code == 403
    assert error_of(response)["__type"] == "InvalidSignatureException"


def test_unknown_access_key(server: Server) -> None:
    client = server.client(aws_access_key_id="AKIDSOMEONEELSE")
    with pytest.raises(ClientError) as info:
        client.list_agents()
    assert info.value.response["Error"]["Code"] == "UnrecognizedClientException"
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_wrong_secret(server: Server) -> None:
    client = server.client(aws_secret_access_key="not-the-secret")
    with pytest.raises(ClientError) as info:
        client.list_agents()
    assert info.value.response["Error"]["Code"] == "InvalidSignatureException"


def test_tampered_body_fails_the_signature(server: Server) -> None:
    good = signed(server, b"{}")
    assert good.status_code == 200
    headers = {k: v for k, v in good.request.headers.items() if k.lower() != "content-length"}
    response = httpx.post(server.url + "/", content=b'{"MaxResults":1}', headers=headers)
    assert response.status_code == 403
    assert error_of(response)["__type"] == "InvalidSignatureException"


def test_wrong_service_scope(server: Server) -> None:
    response = signed(server, b"{}", service="s3")
    assert response.status_code == 403
    assert "service" in error_of(response)["message"]


def _headers_signed_at(when: dt.datetime) -> tuple[list[tuple[str, str]], str]:
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    request = AWSRequest(
        method="POST", url="http://127.0.0.1:1/", data=b"{}", headers={"X-Amz-Target": "x"}
    )
    signer = SigV4Auth(Credentials("AK", "SK"), "datasync", "us-east-1")
    request.context["timestamp"] = when.strftime("%Y%m%dT%H%M%SZ")
    request.headers["X-Amz-Date"] = request.context["timestamp"]
    request.headers["Host"] = "127.0.0.1:1"
    canonical = signer.canonical_request(request)
    signature = signer.signature(signer.string_to_sign(request, canonical), request)
    signed_headers = signer.signed_headers(signer.headers_to_sign(request))
    auth = (
        f"AWS4-HMAC-SHA256 Credential=AK/{request.context['timestamp'][:8]}/us-east-1/datasync/"
        f"aws4_request, SignedHeaders={signed_headers}, Signature={signature}"
    )
    return [*request.headers.items(), ("Authorization", auth)], request.context["timestamp"]


@pytest.mark.parametrize("skew_minutes", [-16, 16])
def test_clock_skew_over_15_minutes_is_rejected(skew_minutes: int) -> None:
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    headers, _ = _headers_signed_at(now + dt.timedelta(minutes=skew_minutes))
    kwargs: dict[str, Any] = {
        "method": "POST",
        "raw_path": "/",
        "query_string": "",
        "headers": headers,
        "body": b"{}",
        "secrets_by_key": {"AK": "SK"},
        "services": ("datasync",),
        "now": now,
    }
    with pytest.raises(InvalidSignatureException, match="expired"):
        verify_request(**kwargs)
    kwargs["now"] = now + dt.timedelta(minutes=skew_minutes)
    assert verify_request(**kwargs).access_key_id == "AK"  # the same request, in time


def test_generated_credentials_are_private_and_stable(tmp_path: Path) -> None:
    credential, created = load_or_create_credentials(str(tmp_path), None, None)
    assert created
    path = tmp_path / "credentials.json"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    again, created_again = load_or_create_credentials(str(tmp_path), None, None)
    assert (again, created_again) == (credential, False)
    assert credential.secret_access_key != SECRET_KEY and len(credential.secret_access_key) >= 30
    configured, created = load_or_create_credentials(str(tmp_path), "AKID", "SECRET")
    assert configured.access_key_id == "AKID" and not created
    with pytest.raises(ValueError):
        load_or_create_credentials(str(tmp_path), "AKID", None)
