"""The status page's login session: a cookie signed with a server secret kept in the store.

The secret lives in the store (not in one process's memory or one host's data dir) so every
`serve --workers` process, and every host of a PostgreSQL control plane, accepts the cookies any
of them signed. The cookie carries the operator's access key id and a CSRF token, never a
secret; itsdangerous signs and dates it.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass

from itsdangerous import BadSignature, URLSafeTimedSerializer

from api.store import Store

__all__ = ["COOKIE", "MAX_AGE_SECONDS", "Session", "Sessions"]

COOKIE = "dsl_session"
MAX_AGE_SECONDS = 12 * 3600
_SECRET_KEY = "ui:session-secret"


@dataclass(frozen=True)
class Session:
    access_key_id: str
    csrf: str


class Sessions:
    """Log in with an operator key pair; read a signed cookie back into a `Session`."""

    def __init__(self, store: Store, operators: Mapping[str, str]) -> None:
        self.store = store
        self.operators = dict(operators)  # operator key pairs only, never agents' keys

    def _serializer(self) -> URLSafeTimedSerializer:
        secret = self.store.meta(_SECRET_KEY)
        if secret is None:
            self.store.set_meta(_SECRET_KEY, secrets.token_urlsafe(32))
            secret = self.store.meta(_SECRET_KEY)  # whichever process wrote last wins for all
        assert secret is not None
        return URLSafeTimedSerializer(secret, salt="datasync-local-ui")

    def login(self, access_key_id: str, secret_access_key: str) -> str | None:
        """The cookie value for a correct key pair, else None."""
        expected = self.operators.get(access_key_id)
        if expected is None or not hmac.compare_digest(
            expected.encode(), secret_access_key.encode()
        ):
            return None
        return self._serializer().dumps({"k": access_key_id, "c": secrets.token_urlsafe(24)})

    def read(self, cookie: str | None) -> Session | None:
        if not cookie:
            return None
        try:
            data = self._serializer().loads(cookie, max_age=MAX_AGE_SECONDS)
        except BadSignature:
            return None
        if not isinstance(data, dict) or data.get("k") not in self.operators:
            return None
        return Session(str(data["k"]), str(data["c"]))
