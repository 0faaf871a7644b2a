"""Idempotency of the Deadline Update* operations by `clientToken` (header X-Amz-Client-Token).

The model marks `clientToken` as an idempotencyToken: boto3 sends a fresh UUID when the caller
gives none, and a caller retrying a request sends the same one. The contract (issue 12): a replay
within 24 hours returns the first result and has no second effect, even after later updates
changed the resource; the same token with a different request is a ConflictException. The tokens
live in the store (`deadline_client_tokens`, migration 0007), so a replay after a restart of the
control plane, or to another process of it, behaves the same.

A token is claimed *before* the effect runs (insert-if-absent on its primary key), so two
concurrent requests with one token cannot both act: the second sees the claim without a result
and gets ConflictException CONCURRENT_MODIFICATION. An effect that fails releases its claim (an
error is not a result to replay: the caller fixes the cause and retries with the same token).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import Column, Float, MetaData, String, Table, Text, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite

from api.deadline.errors import ConflictException
from api.store import Store

__all__ = ["REPLAY_WINDOW_SECONDS", "ClientTokens", "fingerprint"]

REPLAY_WINDOW_SECONDS = 24 * 3600.0

_metadata = MetaData()
client_tokens = Table(
    "deadline_client_tokens",
    _metadata,
    Column("token", String(64), primary_key=True),
    Column("request", String(64), nullable=False),
    Column("response", Text, nullable=True),
    Column("created", Float, nullable=False, index=True),
)


def fingerprint(operation: str, params: Mapping[str, Any]) -> str:
    """What makes two requests "the same": the operation and every parameter but the token."""
    canonical = json.dumps(
        [operation, {k: v for k, v in params.items() if k != "clientToken"}],
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


class ClientTokens:
    def __init__(self, store: Store, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock

    def run_once(
        self, token: str, request: str, effect: Callable[[], dict[str, Any]]
    ) -> dict[str, Any]:
        """`effect()`'s result, run only if `token` was not used for `request` in the window."""
        now = self.clock()
        dialect = sqlite if self.store.dialect == "sqlite" else postgresql
        with self.store.transaction() as conn:
            conn.execute(
                delete(client_tokens).where(client_tokens.c.created < now - REPLAY_WINDOW_SECONDS)
            )
            claimed = conn.execute(
                dialect.insert(client_tokens)
                .values(token=token, request=request, response=None, created=now)
                .on_conflict_do_nothing(index_elements=["token"])
                .returning(client_tokens.c.token)
            ).first()
        if claimed is None:
            return self._replay(token, request)
        try:
            result = effect()
        except BaseException:
            with self.store.transaction() as conn:
                conn.execute(delete(client_tokens).where(client_tokens.c.token == token))
            raise
        with self.store.transaction() as conn:
            conn.execute(
                update(client_tokens)
                .where(client_tokens.c.token == token)
                .values(response=json.dumps(result, separators=(",", ":")))
            )
        return result

    def _replay(self, token: str, request: str) -> dict[str, Any]:
        with self.store.engine.connect() as conn:
            row = conn.execute(
                select(client_tokens.c.request, client_tokens.c.response).where(
                    client_tokens.c.token == token
                )
            ).first()
        if row is None:  # released by a failed first attempt just now: the caller may retry
            raise ConflictException(
                "A request with this clientToken was in progress and failed; retry it.",
                "CONCURRENT_MODIFICATION",
                token,
                "clientToken",
            )
        if row[0] != request:
            raise ConflictException(
                "This clientToken was already used for a different request in the last 24 hours.",
                "CONFLICT_EXCEPTION",
                token,
                "clientToken",
            )
        if row[1] is None:
            raise ConflictException(
                "A request with this clientToken is still in progress.",
                "CONCURRENT_MODIFICATION",
                token,
                "clientToken",
            )
        replayed: dict[str, Any] = json.loads(row[1])
        return replayed
