"""AWS Signature Version 4: verify every request with botocore's own signer.

The expected signature is computed by botocore (`SigV4Auth.canonical_request`, `string_to_sign`,
`signature`) over a rebuilt `AWSRequest` holding exactly the headers the client named in
`SignedHeaders`, with `context["timestamp"]` taken from its `X-Amz-Date`; the two signatures
are compared with `hmac.compare_digest`. botocore's header map *appends* on assignment, so the
rebuilt request is filled once per header and never through `add_auth` (which would re-add the
date header and double it).

Who may do what (`KeyRing`, when the app is given one): operator credentials call the DataSync
API, and act on the jobs endpoint only for agents without credentials of their own (the embedded
agent); an agent's credentials (issued at activation) call only the jobs endpoint, and only for
its own thing name. Anything else is `AccessDeniedException`.

Credentials: `load_or_create_credentials` returns the configured pair, or the pair stored in
the data directory (mode 0600), or a freshly generated one. There is no built-in default secret.
"""

from __future__ import annotations

import datetime as dt
import hmac
import json
import os
import re
import secrets
import string
from collections.abc import Container, Iterable, Iterator, Mapping
from dataclasses import dataclass
from urllib.parse import unquote

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from api.errors import (
    AccessDeniedException,
    InvalidSignatureException,
    UnrecognizedClientException,
)

__all__ = [
    "MAX_SKEW",
    "AgentKey",
    "Credential",
    "KeyRing",
    "Principal",
    "load_or_create_credentials",
    "new_agent_credential",
    "verify_request",
]

MAX_SKEW = dt.timedelta(minutes=15)
_AUTH_RE = re.compile(
    r"^AWS4-HMAC-SHA256\s+Credential=(?P<credential>[^,\s]+)\s*,\s*"
    r"SignedHeaders=(?P<signed>[^,\s]+)\s*,\s*Signature=(?P<signature>[0-9a-f]{64})\s*$"
)
_CREDENTIALS_FILE = "credentials.json"


@dataclass(frozen=True)
class Credential:
    access_key_id: str
    secret_access_key: str


@dataclass(frozen=True)
class Principal:
    """Who signed a request, and for which service and region."""

    access_key_id: str
    service: str
    region: str


@dataclass(frozen=True)
class AgentKey:
    """An agent's own credential: the thing name it may act as, and its secret."""

    thing: str
    secret_access_key: str


def _thing_of(raw_path: str) -> str | None:
    parts = raw_path.split("?", 1)[0].split("/")
    if len(parts) >= 3 and parts[1] == "things":
        return unquote(parts[2])
    return None


class KeyRing(Mapping[str, str]):
    """Operator secrets plus agents' secrets (both live views), with who may call what."""

    def __init__(
        self,
        operator: Mapping[str, str],
        agents: Mapping[str, AgentKey],
        credentialed_things: Container[str],
    ) -> None:
        self.operator = operator
        self.agents = agents
        self.credentialed_things = credentialed_things

    def __getitem__(self, key: str) -> str:
        if key in self.operator:
            return self.operator[key]
        return self.agents[key].secret_access_key

    def __iter__(self) -> Iterator[str]:
        yield from self.operator
        yield from self.agents

    def __len__(self) -> int:
        return len(self.operator) + len(self.agents)

    def authorize(self, access_key: str, service: str, raw_path: str) -> None:
        thing = _thing_of(raw_path)
        if access_key in self.operator:
            if service == "iot-jobs-data" and thing in self.credentialed_things:
                raise AccessDeniedException(
                    f"Thing {thing} is an activated agent: only its own credentials may act for it."
                )
            return
        agent = self.agents[access_key]
        if service != "iot-jobs-data" or thing is None:
            raise AccessDeniedException(
                "Agent credentials may call only the jobs endpoint (/things/<agent>/jobs), not "
                "the DataSync API."
            )
        if thing != agent.thing:
            raise AccessDeniedException(
                f"These credentials belong to agent {agent.thing}; they cannot act for {thing}."
            )


def verify_request(
    *,
    method: str,
    raw_path: str,
    query_string: str,
    headers: Iterable[tuple[str, str]],
    body: bytes,
    secrets_by_key: Mapping[str, str],
    services: Iterable[str],
    region: str | None = None,
    now: dt.datetime | None = None,
) -> Principal:
    """Check a request's SigV4 signature; return its principal or raise an AuthError."""
    header_values: dict[str, list[str]] = {}
    for name, value in headers:
        header_values.setdefault(name.lower(), []).append(value)
    authorization = (header_values.get("authorization") or [""])[0]
    if not authorization:
        raise UnrecognizedClientException(
            "Missing Authentication Token: requests must be signed with AWS Signature Version 4."
        )
    match = _AUTH_RE.match(authorization)
    if match is None:
        raise InvalidSignatureException(
            "Authorization header is malformed: expected AWS4-HMAC-SHA256 Credential=..., "
            "SignedHeaders=..., Signature=..."
        )
    scope = match["credential"].split("/")
    if len(scope) != 5 or scope[4] != "aws4_request":
        raise InvalidSignatureException(
            "Credential scope is malformed: expected KEY/DATE/REGION/SERVICE/aws4_request."
        )
    access_key, date, scope_region, service, _ = scope
    if region is not None and scope_region != region:
        # a request signed for another region is not for this server (as on AWS)
        raise InvalidSignatureException(
            f"Credential should be scoped to a valid region: this server is {region!r}, not "
            f"{scope_region!r}."
        )
    region = scope_region
    allowed = tuple(services)
    if service not in allowed:
        raise InvalidSignatureException(
            f"Credential should be scoped to service {' or '.join(allowed)}, not {service!r}."
        )
    secret = secrets_by_key.get(access_key)
    if secret is None:
        raise UnrecognizedClientException("The security token included in the request is invalid.")

    timestamp = (header_values.get("x-amz-date") or [""])[0]
    try:
        signed_at = dt.datetime.strptime(timestamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)
    except ValueError:
        raise InvalidSignatureException(
            "Missing or malformed X-Amz-Date header (expected YYYYMMDDTHHMMSSZ)."
        ) from None
    if timestamp[:8] != date:
        raise InvalidSignatureException("Credential scope date does not match X-Amz-Date.")
    current = now or dt.datetime.now(dt.UTC)
    if abs(current - signed_at) > MAX_SKEW:
        raise InvalidSignatureException(
            f"Signature expired: {timestamp} is more than 15 minutes away from the server time "
            f"{current.strftime('%Y%m%dT%H%M%SZ')}."
        )

    signed_names = match["signed"].split(";")
    if "host" not in signed_names:
        raise InvalidSignatureException("The host header must be signed.")
    host = (header_values.get("host") or [""])[0]
    url = f"http://{host}{raw_path}" + (f"?{query_string}" if query_string else "")
    request = AWSRequest(method=method, url=url, data=body)
    for name in signed_names:
        values = header_values.get(name)
        if values is None:
            raise InvalidSignatureException(f"Signed header {name!r} is missing from the request.")
        request.headers[name] = ",".join(values)  # assigned once: botocore's map appends
    request.context["timestamp"] = timestamp
    signer = SigV4Auth(Credentials(access_key, secret), service, region)
    canonical = signer.canonical_request(request)
    expected = signer.signature(signer.string_to_sign(request, canonical), request)
    if not hmac.compare_digest(expected, match["signature"]):
        raise InvalidSignatureException(
            "The request signature we calculated does not match the signature you provided. "
            "Check your AWS Secret Access Key and signing method."
        )
    if isinstance(secrets_by_key, KeyRing):
        secrets_by_key.authorize(access_key, service, raw_path)
    return Principal(access_key, service, region)


def _generate_pair(prefix: str = "DSLK") -> Credential:
    alphabet = string.ascii_uppercase + "234567"
    access_key = prefix + "".join(secrets.choice(alphabet) for _ in range(16))
    return Credential(access_key, secrets.token_urlsafe(30)[:40])


def new_agent_credential() -> Credential:
    """A fresh pair for an activated agent (access key ids start with DSLA)."""
    return _generate_pair("DSLA")


def load_or_create_credentials(
    data_dir: str, access_key_id: str | None, secret_access_key: str | None
) -> tuple[Credential, bool]:
    """The operator credentials, and whether they were generated just now (print them once).

    Configured credentials win; otherwise the pair stored in `data_dir`; otherwise a new random
    pair is generated and stored there with mode 0600.
    """
    if access_key_id and secret_access_key:
        return Credential(access_key_id, secret_access_key), False
    if access_key_id or secret_access_key:
        raise ValueError("--access-key-id and --secret-access-key must be given together")
    path = os.path.join(data_dir, _CREDENTIALS_FILE)
    if os.path.exists(path):
        with open(path, encoding="utf-8") as fh:
            stored = json.load(fh)
        return Credential(stored["AccessKeyId"], stored["SecretAccessKey"]), False
    credential = _generate_pair()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(
            {
                "AccessKeyId": credential.access_key_id,
                "SecretAccessKey": credential.secret_access_key,
            },
            fh,
        )
    return credential, True
