"""The control plane's state: one repository interface, SQLite or PostgreSQL behind it.

The store is the single source of truth: every read goes to the database, so several `serve`
processes (`--workers N`, or separate hosts sharing one PostgreSQL) see one state. Nothing about
executions, leases or credentials lives only in one process's memory; the one per-process cache
(decoded execution views) is checked against the row's version on every read.

Two implementations of the same interface, chosen by URL (SQLAlchemy Core does the dialects):

    sqlite:///DIR/datasync-local.db    the embedded default in `--data-dir` (WAL, several readers
                                       and processes on one host)
    postgresql://user@host:port/db     `serve --store URL` or env DATASYNC_LOCAL_STORE (driven by
                                       psycopg 3); several hosts

Tables hold a JSON document per resource (the API shape, timestamps as epoch seconds) beside the
few columns queries need; the schema is managed by Alembic (`api/migrations`), upgraded on open:

    resources   arn, kind (agent|location|task), created, doc
    executions  seq (FIFO order), arn, job_id (the `exec-…` id), task_arn, agent_arn, status,
                job_status, version (bumped by the store on every change), doc
    tags        arn, key, value
    meta        key, value                  (the embedded agent's ARN, pending activation keys)
    leases      name, holder, epoch, expires (singleton duties: reaper, recovery)
    changes     channel, counter            (cross-process notifications)
    work_items  execution_arn, item, kind, scope, status, target, holder, epoch, lease, counters,
                result, details, version    (issue 12: the parts of an execution agents claim)
    item_journal execution_arn, item, path  (the files an item finished)

The interface (every method is one short transaction; call from any thread):

- resources: `put(kind, arn, created, doc)`, `get(kind, arn)`, `all(kind)`, `remove(arn)`
- executions: `add_execution(doc)`, `save_execution(doc)` (unconditional), `execution(arn)`,
  `execution_view(arn)` (read-only, cached per version), `execution_by_id(agent, id)`,
  `executions(task_arn=, agent_arn=, active=, job_status=)`, `remove_executions(task_arn)`, and
  compare-and-swap: `execution_versioned(arn) -> (doc, version)`, `update_execution(doc,
  expected_version) -> bool` (False: someone else changed it first; read again and retry)
- work items (rows as `ItemRow`; `api.workitems` is the domain over them): `add_items(rows)`
  (all or nothing: False if the execution already has items), `items(execution_arn)`,
  `item(execution_arn, index)`, `items_with_status(statuses, agent_arn=)` (oldest execution
  first, lowest index first), `item_counts(execution_arn)` (per kind and status),
  `item_indexes(execution_arn, statuses, kinds)`, `executions_with_items(statuses)`,
  `item_groups(execution_arn)` (summed per kind, status, target), `items_page(execution_arn,
  kind, after, limit)` (by index range),
  compare-and-swap `update_item(row, expected_version) -> bool`;
  the journal: `journal_add(execution_arn, item, paths) -> added`, `journal_page(execution_arn,
  item, after, limit)` and `journal_keyed_page(...)` (in key order, after the key `after`; a
  path too long for an index is keyed by its hash)
- tags: `tags(arn)`, `set_tags(arn, tags)`, `remove_tags(arn, keys)`
- meta: `meta(key)`, `meta_items(prefix)`, `set_meta(key, value)`, `delete_meta(key)`
- leases: `acquire_lease(name, holder, ttl_seconds) -> epoch | None`, `renew_lease(name, holder,
  epoch, ttl_seconds) -> bool`, `release_lease(name, holder, epoch)`, `lease(name)`,
  `take_over_lease(name, holder, from_epoch, ttl_seconds)` (for a holder known to be dead). An epoch
  grows every time the lease changes hands, so work done under a stale epoch can be refused
  (fencing). Expiry uses the wall clock of the callers: hosts sharing a store need NTP.
- credentials: kept as meta records by `api.credentials` (never inside a resource document)
- notifications: `notify(channel)` bumps a counter, `change_count(channel)` reads it and
  `wait(channel, seen, timeout)` polls it (one indexed read every `poll` seconds, bounded by
  `timeout`) until it differs from `seen`. The same on both dialects, so SQLite processes on
  one host get it too.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    delete,
    event,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

__all__ = [
    "JOURNAL_PATH_BYTES",
    "STORE_ENV",
    "TERMINAL_STATUSES",
    "ExecutionEffect",
    "ItemGroup",
    "ItemRow",
    "Lease",
    "Store",
    "store_url",
]

Doc = dict[str, Any]
TERMINAL_STATUSES = ("SUCCESS", "ERROR")
STORE_ENV = "DATASYNC_LOCAL_STORE"
DB_NAME = "datasync-local.db"
_VIEW_CACHE_LIMIT = 4096
# bumped whenever an agent is added or removed (a cache of the agents may key on it)
CREDENTIALS_CHANNEL = "store:agents"

# The schema at the newest revision (api/migrations/versions): what the queries below use.
_metadata = MetaData()
_resources = Table(
    "resources",
    _metadata,
    Column("arn", String(256), primary_key=True),
    Column("kind", String(16), nullable=False, index=True),
    Column("created", Float, nullable=False),
    Column("doc", Text, nullable=False),
)
_executions = Table(
    "executions",
    _metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("arn", String(256), nullable=False, unique=True),
    Column("task_arn", String(256), nullable=False, index=True),
    Column("agent_arn", String(256), nullable=False, index=True),
    Column("status", String(16), nullable=False, index=True),
    Column("job_status", String(16), nullable=False),
    Column("doc", Text, nullable=False),
    Column("version", Integer, nullable=False, server_default="1"),
    Column("job_id", String(64), nullable=True, index=True),
)
_tags = Table(
    "tags",
    _metadata,
    Column("arn", String(256), primary_key=True),
    Column("key", String(256), primary_key=True),
    Column("value", String(256), nullable=False),
)
_meta = Table(
    "meta",
    _metadata,
    Column("key", String(128), primary_key=True),
    Column("value", Text, nullable=False),
)
_leases = Table(
    "leases",
    _metadata,
    Column("name", String(128), primary_key=True),
    Column("holder", String(256), nullable=False),
    Column("epoch", Integer, nullable=False),
    Column("expires", Float, nullable=False),
)
_changes = Table(
    "changes",
    _metadata,
    Column("channel", String(256), primary_key=True),
    Column("counter", Integer, nullable=False),
)
_work_items = Table(
    "work_items",
    _metadata,
    Column("execution_arn", String(256), primary_key=True),
    Column("item", Integer, primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("path", Text, nullable=False),
    Column("recursive", Boolean, nullable=False),
    Column("files", BigInteger, nullable=False),
    Column("bytes", BigInteger, nullable=False),
    Column("status", String(16), nullable=False, index=True),
    Column("target", String(16), nullable=True),
    Column("agent_arn", String(256), nullable=True),
    Column("execution_number", Integer, nullable=False),
    Column("lease_expires", Float, nullable=True),
    Column("started_at", Float, nullable=True),
    Column("ended_at", Float, nullable=True),
    Column("failure_retry_count", Integer, nullable=False),
    Column("counters", Text, nullable=False),
    Column("result", Text, nullable=False),
    Column("details", Text, nullable=False),
    Column("version", Integer, nullable=False),
    Column("updated_at", Float, nullable=False),
)
_journal = Table(
    "item_journal",
    _metadata,
    Column("execution_arn", String(256), primary_key=True),
    Column("item", Integer, primary_key=True),
    Column("path", Text, primary_key=True),  # the path, or LONG_PATH_KEY + its SHA-256
    Column("long_path", Text, nullable=True),  # the whole path when it is too long to be a key
)
_ITEM_KEY = ("execution_arn", "item")
# the longest path that is its own journal key: a PostgreSQL btree entry holds at most ~2.7 kB
# (with the ARN); a longer one is keyed by its hash (never a relative path: \x01 leads it)
JOURNAL_PATH_BYTES = 2048
LONG_PATH_KEY = "\x01sha256:"


def _journal_key(path: str) -> tuple[str, str | None]:
    """(key, long_path) of a journaled path."""
    raw = path.encode("utf-8", "surrogatepass")
    if len(raw) <= JOURNAL_PATH_BYTES:
        return path, None
    return LONG_PATH_KEY + hashlib.sha256(raw).hexdigest(), path


@dataclass(frozen=True)
class ItemRow:
    """One `work_items` row as stored: plain column values (JSON members still text), so that
    the store knows nothing of the domain's enums (`api.workitems.WorkItem` is built on it)."""

    execution_arn: str
    item: int
    kind: str
    path: str
    recursive: bool
    files: int
    bytes: int
    status: str
    target: str | None = None
    agent_arn: str | None = None
    execution_number: int = 0
    lease_expires: float | None = None
    started_at: float | None = None
    ended_at: float | None = None
    failure_retry_count: int = 0
    counters: str = "{}"
    result: str = "{}"
    details: str = "{}"
    version: int = 1
    updated_at: float = 0.0

    def columns(self) -> dict[str, Any]:
        return {c.name: getattr(self, c.name) for c in _work_items.columns}


class ItemGroup(NamedTuple):
    """The items of one execution that share a kind, status and target, summed up."""

    kind: str
    status: str
    target: str | None
    items: int  # how many
    retries: int  # sum of failure_retry_count
    started: float | None  # the earliest started_at
    ended: float | None  # the latest ended_at
    updated: float | None  # the latest updated_at


def _item_row(row: Any) -> ItemRow:
    values = row._mapping
    return ItemRow(**{c.name: values[c.name] for c in _work_items.columns})


@dataclass(frozen=True)
class Lease:
    """Who holds a singleton duty, under which fencing epoch, until when (epoch seconds)."""

    name: str
    holder: str
    epoch: int
    expires: float


def store_url(data_dir: str, url: str | None = None) -> str:
    """The store a `serve` with this data dir uses: `url`, else env DATASYNC_LOCAL_STORE, else
    SQLite in the data dir. `postgresql://` means the psycopg 3 driver."""
    url = url or os.environ.get(STORE_ENV) or None
    if url is None:
        return f"sqlite:///{os.path.join(os.path.abspath(data_dir), DB_NAME)}"
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _dump(doc: Mapping[str, Any]) -> str:
    return json.dumps(doc, separators=(",", ":"), sort_keys=True)


def _load(text: str) -> Doc:
    return dict(json.loads(text))


def _job_id(arn: str) -> str:
    return arn.rsplit("/", 1)[-1]


def _columns(doc: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "status": doc["Status"],
        "job_status": doc["Job"]["status"],
        "doc": _dump(doc),
    }


@dataclass(frozen=True)
class ExecutionEffect:
    """What an execution hook adds to one write of an execution.

    `within` runs inside the write's transaction, once the row is written: its rows commit with
    the execution or not at all (a lost compare-and-swap, a failed write), so a reader that sees
    the new state sees them too (the execution log's end line beside SUCCESS). `after` runs once
    the write committed, for what cannot be rolled back (a line of the process's own log); its
    failure is logged, never raised.
    """

    within: Callable[[Connection], None] | None = None
    after: Callable[[], None] | None = None


class Store:
    """The repository: one instance per process (a pool of connections), shared by threads."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.dialect = "sqlite" if url.startswith("sqlite") else "postgresql"
        if self.dialect == "sqlite":
            self.engine: Engine = create_engine(url)

            @event.listens_for(self.engine, "connect")
            def _pragmas(dbapi_conn: Any, _record: Any) -> None:
                cursor = dbapi_conn.cursor()
                cursor.execute("PRAGMA journal_mode=WAL")
                cursor.execute("PRAGMA synchronous=NORMAL")
                cursor.execute("PRAGMA busy_timeout=10000")
                cursor.close()

        else:
            # no pre-ping: it would add a round trip to every read (DescribeTaskExecution)
            self.engine = create_engine(url, pool_size=8, max_overflow=16, pool_recycle=600)
        # reads run outside a transaction: one round trip for a SELECT instead of three
        # (BEGIN, SELECT, ROLLBACK on return to the pool) on PostgreSQL
        self._read: Engine = (
            self.engine
            if self.dialect == "sqlite"
            else self.engine.execution_options(isolation_level="AUTOCOMMIT")
        )
        from api.migrations import upgrade

        upgrade(self.engine)
        self._views: dict[str, tuple[int, Mapping[str, Any]]] = {}
        self._views_lock = threading.Lock()
        # SQLite: this process's writers queue here, not in SQLite's busy handler, which sleeps
        # 1…100 ms between tries: 40 request threads contending for the one writer lock made
        # 600 writes/s with a p99 of 800 ms, through this lock 1,900/s and 140 ms. Other
        # processes on the same file (`serve --workers N`) still meet the busy handler.
        self._write_lock: threading.RLock | None = (
            threading.RLock() if self.dialect == "sqlite" else None
        )
        self._closed = False
        # called with an execution about to be written (it may add private members); what it
        # returns joins the write (execution logs: api/execution_log.py)
        self.execution_hooks: list[Callable[[Doc], ExecutionEffect | None]] = []

    def _before_write(self, doc: Doc) -> list[ExecutionEffect]:
        return [effect for hook in self.execution_hooks if (effect := hook(doc)) is not None]

    @staticmethod
    def _within_write(conn: Connection, pending: list[ExecutionEffect]) -> None:
        for effect in pending:
            if effect.within is not None:
                effect.within(conn)

    @staticmethod
    def _after_write(pending: list[ExecutionEffect]) -> None:
        for effect in pending:
            if effect.after is None:
                continue
            try:
                effect.after()
            except Exception:  # an execution log must never fail the write it describes
                logging.getLogger("datasync_local.store").exception("execution hook failed")

    @classmethod
    def in_directory(cls, data_dir: str, url: str | None = None) -> Store:
        """The store of a `serve` with this data dir (see `store_url`)."""
        resolved = store_url(data_dir, url)
        if resolved.startswith("sqlite"):
            os.makedirs(data_dir, exist_ok=True)
        return cls(resolved)

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """One write transaction (committed when the block ends, rolled back if it raises):
        every writer of the store, here and in its companion modules, goes through it."""
        if self._write_lock is None:
            with self.engine.begin() as conn:
                yield conn
            return
        with self._write_lock, self.engine.begin() as conn:
            yield conn

    def _upsert(self, conn: Connection, table: Table, keys: list[str], values: Doc) -> None:
        dialect: Any = sqlite if self.dialect == "sqlite" else postgresql
        statement = dialect.insert(table).values(**values)
        changes = {k: v for k, v in values.items() if k not in keys}
        conn.execute(statement.on_conflict_do_update(index_elements=keys, set_=changes))

    def flush(self) -> None:
        """Every change is committed when its method returns; kept for callers that wait."""

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.engine.dispose()

    # resources (agents, locations, tasks) ------------------------------------------------------
    def put(self, kind: str, arn: str, created: float, doc: Doc) -> None:
        if kind == "agent":
            self._put_agent(arn, created, doc)
            return
        with self.transaction() as conn:
            self._upsert(
                conn,
                _resources,
                ["arn"],
                {"arn": arn, "kind": kind, "created": created, "doc": _dump(doc)},
            )

    def _put_agent(self, arn: str, created: float, doc: Doc) -> None:
        # an agent's credentials are set when it is created: only an insert (or a remove) changes
        # the credential index, not the heartbeat rewrites of LastConnectionTime
        text = _dump(doc)
        with self.transaction() as conn:
            done = conn.execute(update(_resources).where(_resources.c.arn == arn).values(doc=text))
            if done.rowcount == 0:
                conn.execute(
                    insert(_resources).values(arn=arn, kind="agent", created=created, doc=text)
                )
                self._upsert_counter(conn, CREDENTIALS_CHANNEL)

    def get(self, kind: str, arn: str) -> Doc | None:
        with self._read.connect() as conn:
            text = conn.execute(
                select(_resources.c.doc).where(_resources.c.arn == arn, _resources.c.kind == kind)
            ).scalar()
        return None if text is None else _load(text)

    def all(self, kind: str) -> list[Doc]:
        with self._read.connect() as conn:
            rows = conn.execute(
                select(_resources.c.doc).where(_resources.c.kind == kind).order_by(_resources.c.arn)
            ).scalars()
            return [_load(text) for text in rows]

    def remove(self, arn: str) -> None:
        with self.transaction() as conn:
            gone = conn.execute(
                delete(_resources).where(_resources.c.arn == arn).returning(_resources.c.kind)
            ).scalar()
            conn.execute(delete(_tags).where(_tags.c.arn == arn))
            if gone == "agent":
                self._upsert_counter(conn, CREDENTIALS_CHANNEL)

    # executions -------------------------------------------------------------------------------
    def add_execution(self, doc: Doc) -> None:
        arn = doc["TaskExecutionArn"]
        pending = self._before_write(doc)
        with self.transaction() as conn:
            conn.execute(
                insert(_executions).values(
                    arn=arn,
                    job_id=_job_id(arn),
                    task_arn=doc["TaskArn"],
                    agent_arn=doc["AgentArn"],
                    version=1,
                    **_columns(doc),
                )
            )
            self._within_write(conn, pending)
        self._after_write(pending)

    def save_execution(self, doc: Doc) -> None:
        """Write the execution whatever changed meanwhile (last writer wins); KeyError if gone."""
        arn = doc["TaskExecutionArn"]
        pending = self._before_write(doc)
        with self.transaction() as conn:
            done = conn.execute(
                update(_executions)
                .where(_executions.c.arn == arn)
                .values(
                    agent_arn=doc["AgentArn"], version=_executions.c.version + 1, **_columns(doc)
                )
            )
            if done.rowcount != 1:
                raise KeyError(arn)  # rolls back: nothing of the hooks is written either
            self._within_write(conn, pending)
        self._after_write(pending)

    def update_execution(self, doc: Doc, expected_version: int) -> bool:
        """Compare-and-swap: write `doc` only if the row is still at `expected_version` (as read
        with `execution_versioned`); False when another writer got there first."""
        arn = doc["TaskExecutionArn"]
        pending = self._before_write(doc)
        with self.transaction() as conn:
            done = conn.execute(
                update(_executions)
                .where(_executions.c.arn == arn, _executions.c.version == expected_version)
                .values(agent_arn=doc["AgentArn"], version=expected_version + 1, **_columns(doc))
            )
            if done.rowcount == 1:  # a lost swap writes nothing of the hooks: its retry will
                self._within_write(conn, pending)
        if done.rowcount == 1:
            self._after_write(pending)
        return done.rowcount == 1

    def execution_versioned(self, arn: str) -> tuple[Doc, int] | None:
        with self._read.connect() as conn:
            row = conn.execute(
                select(_executions.c.doc, _executions.c.version).where(_executions.c.arn == arn)
            ).first()
        return None if row is None else (_load(row[0]), int(row[1]))

    def execution(self, arn: str) -> Doc | None:
        found = self.execution_versioned(arn)
        return None if found is None else found[0]

    def execution_view(self, arn: str) -> Mapping[str, Any] | None:
        """The execution for reading only, never to be modified. DescribeTaskExecution is polled
        in tight loops: a read fetches the row's version (an index lookup) and decodes the
        document only when it changed since this process last decoded it."""
        with self._read.connect() as conn:
            version = conn.execute(
                select(_executions.c.version).where(_executions.c.arn == arn)
            ).scalar()
            if version is None:
                with self._views_lock:
                    self._views.pop(arn, None)
                return None
            cached = self._views.get(arn)
            if cached is not None and cached[0] == version:
                return cached[1]
            row = conn.execute(
                select(_executions.c.doc, _executions.c.version).where(_executions.c.arn == arn)
            ).first()
        if row is None:
            return None
        view: Mapping[str, Any] = _load(row[0])
        with self._views_lock:
            if len(self._views) >= _VIEW_CACHE_LIMIT:
                self._views.clear()
            self._views[arn] = (int(row[1]), view)
        return view

    def execution_by_id(self, agent_arn: str, execution_id: str) -> Doc | None:
        """An agent's execution by its `exec-…` id (the job id of the jobs protocol)."""
        with self._read.connect() as conn:
            text = conn.execute(
                select(_executions.c.doc)
                .where(_executions.c.job_id == execution_id, _executions.c.agent_arn == agent_arn)
                .order_by(_executions.c.seq.desc())
                .limit(1)
            ).scalar()
        return None if text is None else _load(text)

    def executions(
        self,
        *,
        task_arn: str | None = None,
        agent_arn: str | None = None,
        active: bool | None = None,
        job_status: str | None = None,
    ) -> list[Doc]:
        """Executions in FIFO (start) order, optionally only the non-terminal (`active`) ones."""
        query = select(_executions.c.doc).order_by(_executions.c.seq)
        if task_arn is not None:
            query = query.where(_executions.c.task_arn == task_arn)
        if agent_arn is not None:
            query = query.where(_executions.c.agent_arn == agent_arn)
        if active is True:
            query = query.where(_executions.c.status.not_in(TERMINAL_STATUSES))
        elif active is False:
            query = query.where(_executions.c.status.in_(TERMINAL_STATUSES))
        if job_status is not None:
            query = query.where(_executions.c.job_status == job_status)
        with self._read.connect() as conn:
            return [_load(text) for text in conn.execute(query).scalars()]

    def remove_executions(self, task_arn: str) -> None:
        with self.transaction() as conn:
            arns = list(
                conn.execute(
                    select(_executions.c.arn).where(_executions.c.task_arn == task_arn)
                ).scalars()
            )
            conn.execute(delete(_executions).where(_executions.c.task_arn == task_arn))
            if arns:
                conn.execute(delete(_tags).where(_tags.c.arn.in_(arns)))
                conn.execute(delete(_work_items).where(_work_items.c.execution_arn.in_(arns)))
                conn.execute(delete(_journal).where(_journal.c.execution_arn.in_(arns)))
        with self._views_lock:
            for arn in arns:
                self._views.pop(arn, None)

    def execution_by_job_id(self, execution_id: str) -> Doc | None:
        """An execution by its `exec-…` id whichever agent it is assigned to: its work items are
        claimed by any candidate agent, so an item's job is found without the owner's ARN."""
        with self._read.connect() as conn:
            text = conn.execute(
                select(_executions.c.doc)
                .where(_executions.c.job_id == execution_id)
                .order_by(_executions.c.seq.desc())
                .limit(1)
            ).scalar()
        return None if text is None else _load(text)

    # work items (issue 12) -------------------------------------------------------------------
    def add_items(self, rows: list[ItemRow]) -> bool:
        """Insert an execution's items all at once; False (nothing written) when it already has
        items: a plan is uploaded once (another process may have won the race)."""
        if not rows:
            return True
        arn = rows[0].execution_arn
        try:
            with self.transaction() as conn:
                present = conn.execute(
                    select(_work_items.c.item).where(_work_items.c.execution_arn == arn).limit(1)
                ).first()
                if present is not None:
                    return False
                conn.execute(insert(_work_items), [row.columns() for row in rows])
        except IntegrityError:
            return False
        return True

    def items(self, execution_arn: str) -> list[ItemRow]:
        with self._read.connect() as conn:
            rows = conn.execute(
                select(_work_items)
                .where(_work_items.c.execution_arn == execution_arn)
                .order_by(_work_items.c.item)
            ).all()
        return [_item_row(row) for row in rows]

    def item(self, execution_arn: str, index: int) -> ItemRow | None:
        with self._read.connect() as conn:
            row = conn.execute(
                select(_work_items).where(
                    _work_items.c.execution_arn == execution_arn, _work_items.c.item == index
                )
            ).first()
        return None if row is None else _item_row(row)

    def items_with_status(
        self, statuses: tuple[str, ...], *, agent_arn: str | None = None
    ) -> list[ItemRow]:
        """Items in any of `statuses` (of one holder), oldest execution first, lowest index
        first: the order the claim path offers READY items in."""
        query = (
            select(_work_items)
            .join(_executions, _executions.c.arn == _work_items.c.execution_arn)
            .where(_work_items.c.status.in_(statuses))
            .order_by(_executions.c.seq, _work_items.c.item)
        )
        if agent_arn is not None:
            query = query.where(_work_items.c.agent_arn == agent_arn)
        with self._read.connect() as conn:
            rows = conn.execute(query).all()
        return [_item_row(row) for row in rows]

    def item_counts(self, execution_arn: str) -> dict[tuple[str, str], int]:
        """How many items of an execution are of each (kind, status): the end rule and the
        REMOVE item's turn are decided on these, without reading every item."""
        query = (
            select(_work_items.c.kind, _work_items.c.status, func.count())
            .where(_work_items.c.execution_arn == execution_arn)
            .group_by(_work_items.c.kind, _work_items.c.status)
        )
        with self._read.connect() as conn:
            return {(str(k), str(s)): int(n) for k, s, n in conn.execute(query)}

    def item_groups(self, execution_arn: str) -> list[ItemGroup]:
        """An execution's items summed up per (kind, status, target) in one query: what the
        Deadline job and step views show (counts, retries, first start, last end), without
        reading every item."""
        c = _work_items.c
        query = (
            select(
                c.kind,
                c.status,
                c.target,
                func.count(),
                func.sum(c.failure_retry_count),
                func.min(c.started_at),
                func.max(c.ended_at),
                func.max(c.updated_at),
            )
            .where(c.execution_arn == execution_arn)
            .group_by(c.kind, c.status, c.target)
        )
        with self._read.connect() as conn:
            return [
                ItemGroup(str(k), str(s), t, int(n), int(r or 0), a, e, u)
                for k, s, t, n, r, a, e, u in conn.execute(query)
            ]

    def items_page(
        self, execution_arn: str, kind: str, after: int | None, limit: int
    ) -> list[ItemRow]:
        """Up to `limit` items of one kind in index order, those after index `after` if given
        (a page of a Deadline step's tasks, read by key range)."""
        c = _work_items.c
        query = (
            select(_work_items)
            .where(c.execution_arn == execution_arn, c.kind == kind)
            .order_by(c.item)
            .limit(limit)
        )
        if after is not None:
            query = query.where(c.item > after)
        with self._read.connect() as conn:
            return [_item_row(row) for row in conn.execute(query)]

    def item_indexes(
        self, execution_arn: str, statuses: tuple[str, ...], kinds: tuple[str, ...]
    ) -> list[int]:
        """The indexes of an execution's items of these kinds in these statuses, in order."""
        query = (
            select(_work_items.c.item)
            .where(
                _work_items.c.execution_arn == execution_arn,
                _work_items.c.status.in_(statuses),
                _work_items.c.kind.in_(kinds),
            )
            .order_by(_work_items.c.item)
        )
        with self._read.connect() as conn:
            return [int(i) for i in conn.execute(query).scalars()]

    def executions_with_items(self, statuses: tuple[str, ...]) -> list[str]:
        """The executions that have items in any of `statuses`, oldest first (the claim path
        walks these instead of every READY item)."""
        # from the (indexed) statuses to their executions: never a scan of past executions
        having = (
            select(_work_items.c.execution_arn)
            .where(_work_items.c.status.in_(statuses))
            .distinct()
            .subquery()
        )
        query = (
            select(_executions.c.arn)
            .join(having, having.c.execution_arn == _executions.c.arn)
            .order_by(_executions.c.seq)
        )
        with self._read.connect() as conn:
            return [str(a) for a in conn.execute(query).scalars()]

    def update_item(self, row: ItemRow, expected_version: int) -> bool:
        """Compare-and-swap: write `row` (its version becomes expected_version + 1) only if the
        stored row is still at `expected_version`; False when another writer got there first."""
        values = {k: v for k, v in row.columns().items() if k not in (*_ITEM_KEY, "version")}
        with self.transaction() as conn:
            done = conn.execute(
                update(_work_items)
                .where(
                    _work_items.c.execution_arn == row.execution_arn,
                    _work_items.c.item == row.item,
                    _work_items.c.version == expected_version,
                )
                .values(version=expected_version + 1, **values)
            )
        return done.rowcount == 1

    def journal_add(self, execution_arn: str, item: int, paths: list[str]) -> int:
        """Record finished files of an item; returns how many were new (a path is kept once).

        A path longer than `JOURNAL_PATH_BYTES` (UTF-8) is keyed by its hash and kept whole
        beside it: PostgreSQL cannot index it."""
        keyed = dict(_journal_key(p) for p in paths)
        if not keyed:
            return 0
        dialect: Any = sqlite if self.dialect == "sqlite" else postgresql
        values = [
            {"execution_arn": execution_arn, "item": item, "path": key, "long_path": keyed[key]}
            for key in sorted(keyed)
        ]
        with self.transaction() as conn:
            # RETURNING, not rowcount: psycopg reports no rowcount for ON CONFLICT DO NOTHING
            added = conn.execute(
                dialect.insert(_journal)
                .values(values)
                .on_conflict_do_nothing(index_elements=["execution_arn", "item", "path"])
                .returning(_journal.c.path)
            ).all()
        return len(added)

    def journal_page(
        self, execution_arn: str, item: int, after: str | None, limit: int
    ) -> list[str]:
        """Up to `limit` finished paths of an item in key order, those after the key `after`."""
        return [path for _key, path in self.journal_keyed_page(execution_arn, item, after, limit)]

    def journal_keyed_page(
        self, execution_arn: str, item: int, after: str | None, limit: int
    ) -> list[tuple[str, str]]:
        """(key, path) of up to `limit` finished paths of an item in key order (a key is the
        path itself unless it is too long: see `journal_add`), those after the key `after`."""
        query = (
            select(_journal.c.path, _journal.c.long_path)
            .where(_journal.c.execution_arn == execution_arn, _journal.c.item == item)
            .order_by(_journal.c.path)
            .limit(limit)
        )
        if after is not None:
            query = query.where(_journal.c.path > after)
        with self._read.connect() as conn:
            return [(str(k), str(p if p is not None else k)) for k, p in conn.execute(query)]

    # tags -------------------------------------------------------------------------------------
    def tags(self, arn: str) -> dict[str, str]:
        with self._read.connect() as conn:
            rows = conn.execute(
                select(_tags.c.key, _tags.c.value).where(_tags.c.arn == arn).order_by(_tags.c.key)
            )
            return {key: value for key, value in rows}

    def set_tags(self, arn: str, tags: dict[str, str]) -> None:
        with self.transaction() as conn:
            for key, value in tags.items():
                self._upsert(conn, _tags, ["arn", "key"], {"arn": arn, "key": key, "value": value})

    def remove_tags(self, arn: str, keys: list[str]) -> None:
        with self.transaction() as conn:
            conn.execute(delete(_tags).where(_tags.c.arn == arn, _tags.c.key.in_(keys)))

    # meta -------------------------------------------------------------------------------------
    def meta(self, key: str) -> str | None:
        with self._read.connect() as conn:
            value: str | None = conn.execute(
                select(_meta.c.value).where(_meta.c.key == key)
            ).scalar()
            return value

    def meta_items(self, prefix: str) -> list[tuple[str, str]]:
        escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        with self._read.connect() as conn:
            rows = conn.execute(
                select(_meta.c.key, _meta.c.value)
                .where(_meta.c.key.like(escaped + "%", escape="\\"))
                .order_by(_meta.c.key)
            )
            return [(key, value) for key, value in rows]

    def delete_meta(self, key: str) -> None:
        with self.transaction() as conn:
            conn.execute(delete(_meta).where(_meta.c.key == key))

    def set_meta(self, key: str, value: str) -> None:
        with self.transaction() as conn:
            self._upsert(conn, _meta, ["key"], {"key": key, "value": value})

    # leases (singleton duties, with a fencing epoch) ------------------------------------------
    def lease(self, name: str) -> Lease | None:
        with self._read.connect() as conn:
            row = conn.execute(
                select(_leases.c.holder, _leases.c.epoch, _leases.c.expires).where(
                    _leases.c.name == name
                )
            ).first()
        return None if row is None else Lease(name, row[0], int(row[1]), float(row[2]))

    def acquire_lease(self, name: str, holder: str, ttl_seconds: float) -> int | None:
        """Take (or keep) the lease `name` for `holder`: its epoch, or None while another holder's
        lease has not expired. Taking over an expired lease, or re-taking one's own after it
        expired, starts a new epoch; renewing a live one keeps it."""
        now = time.time()
        with self.transaction() as conn:
            row = conn.execute(
                select(_leases.c.holder, _leases.c.epoch, _leases.c.expires).where(
                    _leases.c.name == name
                )
            ).first()
            if row is None:
                dialect: Any = sqlite if self.dialect == "sqlite" else postgresql
                # RETURNING, not rowcount: psycopg reports no rowcount for ON CONFLICT DO NOTHING
                inserted = conn.execute(
                    dialect.insert(_leases)
                    .values(name=name, holder=holder, epoch=1, expires=now + ttl_seconds)
                    .on_conflict_do_nothing(index_elements=["name"])
                    .returning(_leases.c.epoch)
                ).first()
                return 1 if inserted is not None else None
            current_holder, epoch, expires = row[0], int(row[1]), float(row[2])
            if expires > now and current_holder != holder:
                return None
            new_epoch = epoch if expires > now else epoch + 1
            done = conn.execute(
                update(_leases)
                .where(_leases.c.name == name, _leases.c.epoch == epoch)
                .where(_leases.c.holder == current_holder)
                .values(holder=holder, epoch=new_epoch, expires=now + ttl_seconds)
            )
            return new_epoch if done.rowcount == 1 else None

    def take_over_lease(
        self, name: str, holder: str, from_epoch: int, ttl_seconds: float
    ) -> int | None:
        """Take a lease still under `from_epoch` whose holder the caller knows is dead (a process
        of its own host that is gone); the new epoch, or None if it changed meanwhile."""
        now = time.time()
        with self.transaction() as conn:
            done = conn.execute(
                update(_leases)
                .where(_leases.c.name == name, _leases.c.epoch == from_epoch)
                .values(holder=holder, epoch=from_epoch + 1, expires=now + ttl_seconds)
            )
        return from_epoch + 1 if done.rowcount == 1 else None

    def renew_lease(self, name: str, holder: str, epoch: int, ttl_seconds: float) -> bool:
        """Extend a lease still held under `epoch`; False means it was lost (stop the duty)."""
        now = time.time()
        with self.transaction() as conn:
            done = conn.execute(
                update(_leases)
                .where(
                    _leases.c.name == name,
                    _leases.c.holder == holder,
                    _leases.c.epoch == epoch,
                    _leases.c.expires > now,
                )
                .values(expires=now + ttl_seconds)
            )
        return done.rowcount == 1

    def release_lease(self, name: str, holder: str, epoch: int) -> None:
        """Give the lease up at once (on shutdown), so another process need not wait out the TTL."""
        with self.transaction() as conn:
            conn.execute(
                update(_leases)
                .where(_leases.c.name == name, _leases.c.holder == holder, _leases.c.epoch == epoch)
                .values(expires=0.0)
            )

    # notifications across processes -----------------------------------------------------------
    def notify(self, channel: str) -> None:
        with self.transaction() as conn:
            self._upsert_counter(conn, channel)

    def _upsert_counter(self, conn: Connection, channel: str) -> None:
        dialect: Any = sqlite if self.dialect == "sqlite" else postgresql
        conn.execute(
            dialect.insert(_changes)
            .values(channel=channel, counter=1)
            .on_conflict_do_update(
                index_elements=["channel"], set_={"counter": _changes.c.counter + 1}
            )
        )

    def change_count(self, channel: str) -> int:
        with self._read.connect() as conn:
            value = conn.execute(
                select(_changes.c.counter).where(_changes.c.channel == channel)
            ).scalar()
        return int(value or 0)

    def wait(self, channel: str, seen: int, timeout: float, poll: float = 0.05) -> int:
        """Block until `channel`'s counter differs from `seen` or `timeout` passes; returns the
        counter. Blocking: from an event loop, run it in a worker thread."""
        deadline = time.monotonic() + max(0.0, timeout)
        while True:
            current = self.change_count(channel)
            if current != seen or time.monotonic() >= deadline:
                return current
            time.sleep(min(poll, max(0.0, deadline - time.monotonic())))
