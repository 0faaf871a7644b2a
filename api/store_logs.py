"""Execution log events in the store (table `log_events`, migration 0004): append, read in
CloudWatch order, list groups and streams, and drop what is older than the retention.

Kept beside `api.store` rather than inside it: it shares the store's engine (so SQLite and
PostgreSQL, one process or several) but nothing else. Events are read as a stream ordered by
(timestamp, seq) from the index, so a query never loads a group into memory; the event id is
the row's sequence number, zero-padded so that string order is numeric order.

Retention is by event timestamp: `prune` deletes events older than `retention_days`; `append`
(and the execution log's state lines) call it at most once a minute per process, so a log never grows past the retention by more
than a minute's worth of events.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    delete,
    func,
    insert,
    or_,
    select,
)
from sqlalchemy.engine import Dialect

from api.logs_query import LogEvent
from api.store import Store

__all__ = ["DEFAULT_RETENTION_DAYS", "LogStore"]

DEFAULT_RETENTION_DAYS = 30
_PRUNE_EVERY_SECONDS = 60.0
_READ_BATCH = 1000
_TOKEN_KEY = "logs:token-key"

_metadata = MetaData()
_events = Table(
    "log_events",
    _metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("log_group", String(512), nullable=False),
    Column("log_stream", String(512), nullable=False),
    Column("timestamp", BigInteger, nullable=False),
    Column("ingestion_time", BigInteger, nullable=False),
    Column("message", Text, nullable=False),
)


_INSERT_COLUMNS = ("log_group", "log_stream", "timestamp", "ingestion_time", "message")


def _event_id(seq: int) -> str:
    return f"{seq:020d}"


class LogStore:
    def __init__(self, store: Store, retention_days: float = DEFAULT_RETENTION_DAYS) -> None:
        if retention_days <= 0:
            raise ValueError("the log retention must be a positive number of days")
        self.store = store
        self.retention_days = retention_days
        self._pruned = 0.0
        self._lock = threading.Lock()
        self._insert_cache: dict[str, tuple[str, bool]] = {}

    def append(self, group: str, stream: str, events: Iterable[tuple[int, str]]) -> int:
        """Store (timestamp ms, message) events of one stream, in one transaction and one
        DBAPI `executemany`; returns how many.

        The statement is compiled once per dialect and run with plain parameter tuples (or
        dicts, for a named paramstyle): SQLAlchemy's per-row parameter processing cost more
        than the insert itself, several µs per event, and an agent ships one event per file.
        """
        batch = list(events)
        if batch:
            with self.store.transaction() as conn:
                self.insert(conn, group, stream, batch)
        self.prune_due()
        return len(batch)

    def insert(
        self, conn: Connection, group: str, stream: str, events: Sequence[tuple[int, str]]
    ) -> None:
        """`append` inside the caller's transaction `conn` (no pruning): the execution log's
        state lines commit with the execution write they describe (api/execution_log.py)."""
        if not events:
            return
        now = int(time.time() * 1000)
        sql, positional = self._insert_sql(conn.dialect)
        rows: list[Any]
        if positional:
            rows = [(group, stream, ts, now, message) for ts, message in events]
        else:
            rows = [
                dict(zip(_INSERT_COLUMNS, (group, stream, ts, now, message), strict=True))
                for ts, message in events
            ]
        conn.exec_driver_sql(sql, rows)

    def _insert_sql(self, dialect: Dialect) -> tuple[str, bool]:
        """The INSERT of `_INSERT_COLUMNS` for `dialect`, and whether it takes positions."""
        cached = self._insert_cache.get(dialect.name)
        if cached is None:
            compiled = insert(_events).compile(dialect=dialect, column_keys=list(_INSERT_COLUMNS))
            order = compiled.positiontup
            if compiled.positional and list(order or ()) != list(_INSERT_COLUMNS):
                raise RuntimeError(f"unexpected parameter order {order} for log_events")
            cached = (str(compiled), bool(compiled.positional))
            self._insert_cache[dialect.name] = cached
        return cached

    def prune_due(self) -> None:
        """Prune if this process last pruned a minute ago or more (`append` calls it)."""
        with self._lock:
            if time.monotonic() - self._pruned < _PRUNE_EVERY_SECONDS and self._pruned:
                return
            self._pruned = time.monotonic()
        self.prune()

    def prune(self, now_ms: int | None = None) -> int:
        """Delete the events older than the retention; returns how many went."""
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        cutoff = now_ms - int(self.retention_days * 86_400_000)
        with self.store.transaction() as conn:
            done = conn.execute(delete(_events).where(_events.c.timestamp < cutoff))
        return int(done.rowcount or 0)

    def events(
        self,
        group: str,
        streams: Sequence[str] = (),
        start_time: int | None = None,
        end_time: int | None = None,
    ) -> Iterator[LogEvent]:
        """The group's events in (timestamp, event id) order, read in batches (keyset paging)."""
        after: tuple[int, int] | None = None
        while True:
            query = select(
                _events.c.seq,
                _events.c.log_stream,
                _events.c.timestamp,
                _events.c.ingestion_time,
                _events.c.message,
            ).where(_events.c.log_group == group)
            if streams:
                query = query.where(_events.c.log_stream.in_(list(streams)))
            if start_time is not None:
                query = query.where(_events.c.timestamp >= start_time)
            if end_time is not None:
                query = query.where(_events.c.timestamp <= end_time)
            if after is not None:
                ts, seq = after
                query = query.where(
                    (_events.c.timestamp > ts)
                    | ((_events.c.timestamp == ts) & (_events.c.seq > seq))
                )
            query = query.order_by(_events.c.timestamp, _events.c.seq).limit(_READ_BATCH)
            with self.store.engine.connect() as conn:
                rows = conn.execute(query).all()
            for seq, stream, ts, ingested, message in rows:
                yield LogEvent(int(ts), _event_id(int(seq)), str(message), int(ingested), stream)
            if len(rows) < _READ_BATCH:
                return
            after = (int(rows[-1][2]), int(rows[-1][0]))

    def matching(
        self, group: str, stream: str, start_time: int, patterns: Sequence[str], limit: int
    ) -> list[tuple[int, str]]:
        """(timestamp ms, message) of a stream's events since `start_time` whose message is
        LIKE one of `patterns`, oldest first, at most `limit`: filtered by the database, so
        finding an execution's few error lines never reads its per-file lines."""
        query = (
            select(_events.c.timestamp, _events.c.message)
            .where(
                _events.c.log_group == group,
                _events.c.log_stream == stream,
                _events.c.timestamp >= start_time,
                or_(*(_events.c.message.like(p) for p in patterns)),
            )
            .order_by(_events.c.timestamp, _events.c.seq)
            .limit(limit)
        )
        with self.store.engine.connect() as conn:
            return [(int(ts), str(message)) for ts, message in conn.execute(query).all()]

    def groups(self) -> list[tuple[str, int, int]]:
        """(group, first event ms, stored bytes) for every group holding events."""
        query = (
            select(
                _events.c.log_group,
                func.min(_events.c.ingestion_time),
                func.sum(func.length(_events.c.message)),
            )
            .group_by(_events.c.log_group)
            .order_by(_events.c.log_group)
        )
        with self.store.engine.connect() as conn:
            return [(str(g), int(t), int(b or 0)) for g, t, b in conn.execute(query).all()]

    def streams(self, group: str) -> list[tuple[str, int, int, int, int]]:
        """(stream, first ingestion ms, first event ms, last event ms, last ingestion ms)."""
        query = (
            select(
                _events.c.log_stream,
                func.min(_events.c.ingestion_time),
                func.min(_events.c.timestamp),
                func.max(_events.c.timestamp),
                func.max(_events.c.ingestion_time),
            )
            .where(_events.c.log_group == group)
            .group_by(_events.c.log_stream)
            .order_by(_events.c.log_stream)
        )
        with self.store.engine.connect() as conn:
            return [
                (str(s), int(c), int(f), int(last), int(i))
                for s, c, f, last, i in conn.execute(query).all()
            ]

    def token_key(self) -> bytes:
        """The pagination-token key, shared by every process of the store (made once)."""
        key = self.store.meta(_TOKEN_KEY)
        if key is None:
            self.store.set_meta(_TOKEN_KEY, secrets.token_hex(32))
            key = self.store.meta(_TOKEN_KEY)
        assert key is not None
        return bytes.fromhex(key)
