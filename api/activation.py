"""Agent activation, as DataSync does it: the agent shows a key, the operator calls CreateAgent.

    POST /agent-activation          an agent registers as pending (unauthenticated, rate-limited)
                                    → {ActivationKey, PollToken, ExpiresAt}
    POST /agent-activation/{key}    the agent polls with {PollToken}
                                    → {Status: PENDING} | {Status: ACTIVATED, AgentArn,
                                       ThingName, AccessKeyId, SecretAccessKey, Region}

A pending key (DataSync's format, 5 groups of 5 of ``[A-Z0-9]``) is kept in the store's ``meta``
table under ``activation:<key>`` with what the agent said about itself (name, host, roots,
mounts, concurrency) and expires after 30 minutes. Only the operator's authenticated
`CreateAgent(ActivationKey=...)` (`api.models.Backend.create_agent`) turns it into an agent with
its own credentials; the agent collects them by polling with the key *and* the poll token only it
received, so someone who merely saw the key on a screen cannot collect them.

The two routes are built by `api.app` (through `api.edge.endpoint`, like every protocol's, so
they are answered and counted in one place); this module is what they call.

Registration needs no credentials (the agent has none yet), so it is bounded: a token bucket
over all callers and a cap on pending keys, answered with ``ThrottlingException`` (429).
"""

from __future__ import annotations

import hmac
import json
import secrets
import string
import threading
import time
from typing import Any, ClassVar

from api.domain import repository
from api.domain.agent import Agent
from api.errors import ApiError, InvalidRequestException, ResourceNotFoundException
from api.models import Backend
from contract import Doc

__all__ = ["ACTIVATION_PREFIX", "KEY_ALPHABET", "Activation", "ThrottlingException", "new_key"]

ACTIVATION_PREFIX = "activation:"
KEY_ALPHABET = string.ascii_uppercase + string.digits
MAX_BODY = 16 * 1024
FORGET_AFTER = 600.0  # seconds a key is remembered after it expired


class ThrottlingException(ApiError):
    code: ClassVar[str] = "ThrottlingException"
    status: ClassVar[int] = 429


def new_key() -> str:
    return "-".join("".join(secrets.choice(KEY_ALPHABET) for _ in range(5)) for _ in range(5))


def _strings(value: Any, name: str, limit: int = 64) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > limit:
        raise InvalidRequestException(f"{name} must be a list of at most {limit} strings.")
    if sum(len(item) for item in value if isinstance(item, str)) > 8192:
        raise InvalidRequestException(f"{name} must hold at most 8192 characters in all.")
    out = []
    for item in value:
        if not isinstance(item, str) or not 0 < len(item) <= 4096:
            raise InvalidRequestException(f"{name} must hold strings of 1 to 4096 characters.")
        out.append(item)
    return out


def _string(value: Any, name: str, limit: int = 255) -> str:
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > limit or any(ord(c) < 32 for c in value):
        raise InvalidRequestException(f"{name} must be a printable string of at most {limit}.")
    return value


class Activation:
    """Pending keys over the store's meta table; the HTTP side is `routes()`."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.store = backend.store
        config = backend.config
        self._burst = config.registration_burst
        self._rate = config.registration_rate
        self._max_pending = config.max_pending_registrations
        self._tokens = self._burst
        self._filled_at = time.monotonic()
        self._bucket_lock = threading.Lock()  # registrations are served on worker threads

    def _take_token(self) -> None:
        with self._bucket_lock:
            now = time.monotonic()
            self._tokens = min(self._burst, self._tokens + (now - self._filled_at) * self._rate)
            self._filled_at = now
            if self._tokens < 1.0:
                raise ThrottlingException(
                    "Too many agent registrations; try again in a few seconds."
                )
            self._tokens -= 1.0

    def purge(self) -> int:
        """Forget keys ten minutes after they expired (until then CreateAgent can say "expired"
        rather than "not recognised"); returns how many still wait for the operator.

        An approved key stays until it expires, so that its agent can collect its credentials
        again, but it is no longer pending: counting it made a rollout stop at 200 agents (the
        cap) until the approved keys expired."""
        now = self.backend.now()
        pending = 0
        for key, value in self.store.meta_items(ACTIVATION_PREFIX):
            try:
                record = json.loads(value)
                expires = float(record.get("ExpiresAt", 0))
                approved = record.get("AgentArn") is not None
            except (ValueError, AttributeError):
                expires, approved = 0.0, False
            if expires + FORGET_AFTER < now:
                self.store.delete_meta(key)
            elif expires >= now and not approved:
                pending += 1
        return pending

    def register(self, body: Doc) -> Doc:
        info = {
            "Name": _string(body.get("Name"), "Name", 256),
            "Hostname": _string(body.get("Hostname"), "Hostname"),
            "Roots": _strings(body.get("Roots"), "Roots"),
            "Mounts": _strings(body.get("Mounts"), "Mounts"),
        }
        concurrency = body.get("Concurrency", 1)
        if isinstance(concurrency, bool) or not isinstance(concurrency, int):
            concurrency = 0
        if not 1 <= concurrency <= 64:
            raise InvalidRequestException("Concurrency must be an integer from 1 to 64.")
        if self.purge() >= self._max_pending:
            raise ThrottlingException(
                f"{self._max_pending} activation keys are pending; approve or let some expire first."
            )
        self._take_token()
        key = new_key()
        while self.store.meta(ACTIVATION_PREFIX + key) is not None:
            key = new_key()
        token = secrets.token_urlsafe(24)
        expires = self.backend.now() + self.backend.config.activation_ttl
        record = {**info, "Concurrency": concurrency, "PollToken": token, "ExpiresAt": expires}
        self.store.set_meta(ACTIVATION_PREFIX + key, json.dumps(record))
        return {"ActivationKey": key, "PollToken": token, "ExpiresAt": int(expires)}

    def poll(self, key: str, body: Doc) -> Doc:
        raw = self.store.meta(ACTIVATION_PREFIX + key)
        token = body.get("PollToken")
        record = json.loads(raw) if raw else None
        if (
            record is None
            or not isinstance(token, str)
            or not hmac.compare_digest(token.encode(), str(record.get("PollToken", "")).encode())
        ):
            raise ResourceNotFoundException(f"Activation key {key} is not pending.")
        arn = record.get("AgentArn")
        if arn is None:
            if record["ExpiresAt"] < self.backend.now():
                raise ResourceNotFoundException(f"Activation key {key} has expired.")
            return {"Status": "PENDING", "ExpiresAt": int(record["ExpiresAt"])}
        credential = self.backend.credentials.secret_of(arn)
        if repository.get(self.store, Agent, arn) is None or credential is None:
            raise ResourceNotFoundException(f"The agent activated with {key} was deleted.")
        return {
            "Status": "ACTIVATED",
            "AgentArn": arn,
            "ThingName": arn.rsplit("/", 1)[1],
            "Region": self.backend.config.region,
            "AccessKeyId": credential.access_key_id,
            "SecretAccessKey": credential.secret_access_key,
        }
