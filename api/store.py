"""The control plane's state: in memory for reads, persisted to SQLite (WAL) through SQLAlchemy Core.

Tables hold a JSON document per resource (the API shape, timestamps as epoch seconds) beside the
few columns queries need:

    resources   arn, kind (agent|location|task), created, doc
    executions  seq (FIFO order), arn, task_arn, agent_arn, status, job_status, doc
    tags        arn, key, value
    meta        key, value             (the embedded agent's ARN, pending activation keys)

Everything is loaded at start-up and served from memory; every change is applied in memory at
once and written to the database, in order, by one writer thread. So a DescribeTaskExecution
never waits for the disk — not even while the engine floods the page cache and the kernel
throttles writers — and the event loop never blocks on SQLite. `close()` drains the writer.

The process is the only writer of its database (one control plane per store). Several replicas
sharing a PostgreSQL store would need the reads to go to the database instead.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import (
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
    insert,
    select,
    update,
)
from sqlalchemy.engine import Engine
from sqlalchemy.sql.expression import Executable

__all__ = ["TERMINAL_STATUSES", "Store"]

log = logging.getLogger("datasync_local.store")

Doc = dict[str, Any]
TERMINAL_STATUSES = ("SUCCESS", "ERROR")

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

Write = Callable[[Connection], None]


def _statements(*statements: Executable) -> Write:
    def write(conn: Connection) -> None:
        for statement in statements:
            conn.execute(statement)

    return write


def _dump(doc: Doc) -> str:
    return json.dumps(doc, separators=(",", ":"), sort_keys=True)


def _load(text: str) -> Doc:
    return dict(json.loads(text))


class _Execution:
    """One execution in memory: the indexed columns and the serialized document. Every change
    makes a new one, so its decoded `view` can be kept for readers that only read."""

    __slots__ = ("_view", "agent_arn", "arn", "doc", "job_status", "status", "task_arn")

    def __init__(self, doc: Doc) -> None:
        self.arn: str = doc["TaskExecutionArn"]
        self.task_arn: str = doc["TaskArn"]
        self.agent_arn: str = doc["AgentArn"]
        self.status: str = doc["Status"]
        self.job_status: str = doc["Job"]["status"]
        self.doc = _dump(doc)
        self._view: Mapping[str, Any] | None = None

    def view(self) -> Mapping[str, Any]:
        if self._view is None:
            self._view = _load(self.doc)
        return self._view


class _Writer(threading.Thread):
    """Applies writes to the database in order, each in its own short transaction."""

    def __init__(self, engine: Engine) -> None:
        super().__init__(name="datasync-local-store-writer", daemon=True)
        self.engine = engine
        self.queue: queue.Queue[Write | None] = queue.Queue()

    def run(self) -> None:
        while True:
            write = self.queue.get()
            try:
                if write is None:
                    return
                with self.engine.begin() as conn:
                    write(conn)
            except Exception:  # keep the writer alive; the change stays in memory
                log.exception("store: a write failed")
            finally:
                self.queue.task_done()


class Store:
    def __init__(self, url: str) -> None:
        self.engine: Engine = create_engine(url)
        if url.startswith("sqlite"):

            @event.listens_for(self.engine, "connect")
            def _pragmas(dbapi_conn: Any, _record: Any) -> None:
                cursor = dbapi_conn.cursor()
                cursor.execute("PRAGMA journal_mode=WAL")
                cursor.execute("PRAGMA synchronous=NORMAL")
                cursor.execute("PRAGMA busy_timeout=5000")
                cursor.close()

        _metadata.create_all(self.engine)
        self._resources: dict[str, tuple[str, float, str]] = {}
        self._executions: dict[str, _Execution] = {}
        self._tags: dict[str, dict[str, str]] = {}
        self._meta: dict[str, str] = {}
        self._load()
        self._writer = _Writer(self.engine)
        self._writer.start()
        self._closed = False

    @classmethod
    def in_directory(cls, data_dir: str) -> Store:
        os.makedirs(data_dir, exist_ok=True)
        return cls(f"sqlite:///{os.path.join(os.path.abspath(data_dir), 'datasync-local.db')}")

    def _load(self) -> None:
        with self.engine.connect() as conn:
            for arn, kind, created, doc in conn.execute(
                select(_resources.c.arn, _resources.c.kind, _resources.c.created, _resources.c.doc)
            ):
                self._resources[arn] = (kind, created, doc)
            for (doc,) in conn.execute(select(_executions.c.doc).order_by(_executions.c.seq)):
                entry = _Execution(_load(doc))
                self._executions[entry.arn] = entry
            for arn, key, value in conn.execute(select(_tags.c.arn, _tags.c.key, _tags.c.value)):
                self._tags.setdefault(arn, {})[key] = value
            for key, value in conn.execute(select(_meta.c.key, _meta.c.value)):
                self._meta[key] = value

    def _write(self, write: Write) -> None:
        self._writer.queue.put(write)

    def flush(self) -> None:
        """Wait until every change so far is in the database."""
        self._writer.queue.join()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._writer.queue.put(None)
            self._writer.join(timeout=30)
            self.engine.dispose()

    # resources (agents, locations, tasks) ------------------------------------------------------
    def put(self, kind: str, arn: str, created: float, doc: Doc) -> None:
        text = _dump(doc)
        existed = arn in self._resources
        self._resources[arn] = (kind, created, text)
        if existed:
            self._write(
                _statements(update(_resources).where(_resources.c.arn == arn).values(doc=text))
            )
        else:
            self._write(
                _statements(
                    insert(_resources).values(arn=arn, kind=kind, created=created, doc=text)
                )
            )

    def get(self, kind: str, arn: str) -> Doc | None:
        found = self._resources.get(arn)
        return None if found is None or found[0] != kind else _load(found[2])

    def all(self, kind: str) -> list[Doc]:
        return [_load(text) for _, (k, _, text) in sorted(self._resources.items()) if k == kind]

    def remove(self, arn: str) -> None:
        self._resources.pop(arn, None)
        self._tags.pop(arn, None)
        self._write(
            _statements(
                delete(_resources).where(_resources.c.arn == arn),
                delete(_tags).where(_tags.c.arn == arn),
            )
        )

    # executions -------------------------------------------------------------------------------
    def add_execution(self, doc: Doc) -> None:
        entry = _Execution(doc)
        self._executions[entry.arn] = entry
        self._write(
            _statements(
                insert(_executions).values(
                    arn=entry.arn,
                    task_arn=entry.task_arn,
                    agent_arn=entry.agent_arn,
                    status=entry.status,
                    job_status=entry.job_status,
                    doc=entry.doc,
                )
            )
        )

    def save_execution(self, doc: Doc) -> None:
        entry = _Execution(doc)
        if entry.arn not in self._executions:
            raise KeyError(entry.arn)
        self._executions[entry.arn] = entry
        self._write(
            _statements(
                update(_executions)
                .where(_executions.c.arn == entry.arn)
                .values(status=entry.status, job_status=entry.job_status, doc=entry.doc)
            )
        )

    def execution(self, arn: str) -> Doc | None:
        entry = self._executions.get(arn)
        return None if entry is None else _load(entry.doc)

    def execution_view(self, arn: str) -> Mapping[str, Any] | None:
        """The execution for reading only: shared by every reader until it changes, never to
        be modified (DescribeTaskExecution, polled in tight loops, skips decoding it each time)."""
        entry = self._executions.get(arn)
        return None if entry is None else entry.view()

    def execution_by_id(self, agent_arn: str, execution_id: str) -> Doc | None:
        """An agent's execution by its `exec-…` id (the job id of the jobs protocol)."""
        suffix = f"/execution/{execution_id}"
        for entry in reversed(self._executions.values()):
            if entry.agent_arn == agent_arn and entry.arn.endswith(suffix):
                return _load(entry.doc)
        return None

    def executions(
        self,
        *,
        task_arn: str | None = None,
        agent_arn: str | None = None,
        active: bool | None = None,
        job_status: str | None = None,
    ) -> list[Doc]:
        """Executions in FIFO (start) order, optionally only the non-terminal (`active`) ones."""
        found = []
        for entry in self._executions.values():
            if task_arn is not None and entry.task_arn != task_arn:
                continue
            if agent_arn is not None and entry.agent_arn != agent_arn:
                continue
            if active is not None and (entry.status not in TERMINAL_STATUSES) != active:
                continue
            if job_status is not None and entry.job_status != job_status:
                continue
            found.append(_load(entry.doc))
        return found

    def remove_executions(self, task_arn: str) -> None:
        arns = [e.arn for e in self._executions.values() if e.task_arn == task_arn]
        for arn in arns:
            del self._executions[arn]
            self._tags.pop(arn, None)
        self._write(
            _statements(
                delete(_executions).where(_executions.c.task_arn == task_arn),
                delete(_tags).where(_tags.c.arn.in_(arns)),
            )
        )

    # tags -------------------------------------------------------------------------------------
    def tags(self, arn: str) -> dict[str, str]:
        return dict(sorted(self._tags.get(arn, {}).items()))

    def set_tags(self, arn: str, tags: dict[str, str]) -> None:
        self._tags.setdefault(arn, {}).update(tags)
        self._write(
            _statements(
                delete(_tags).where(_tags.c.arn == arn, _tags.c.key.in_(list(tags))),
                *(insert(_tags).values(arn=arn, key=k, value=v) for k, v in tags.items()),
            )
        )

    def remove_tags(self, arn: str, keys: list[str]) -> None:
        current = self._tags.get(arn, {})
        for key in keys:
            current.pop(key, None)
        self._write(_statements(delete(_tags).where(_tags.c.arn == arn, _tags.c.key.in_(keys))))

    # meta -------------------------------------------------------------------------------------
    def meta(self, key: str) -> str | None:
        return self._meta.get(key)

    def meta_items(self, prefix: str) -> list[tuple[str, str]]:
        return [(k, v) for k, v in sorted(self._meta.items()) if k.startswith(prefix)]

    def delete_meta(self, key: str) -> None:
        if self._meta.pop(key, None) is not None:
            self._write(_statements(delete(_meta).where(_meta.c.key == key)))

    def set_meta(self, key: str, value: str) -> None:
        self._meta[key] = value
        self._write(
            _statements(
                delete(_meta).where(_meta.c.key == key), insert(_meta).values(key=key, value=value)
            )
        )
