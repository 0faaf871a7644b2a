"""The control plane's state: SQLite (WAL) through SQLAlchemy Core, so a PostgreSQL URL can replace it.

Tables hold a JSON document per resource (the API shape, timestamps as epoch seconds) beside the
few columns queries need:

    resources   arn, kind (agent|location|task), created, doc
    executions  arn, seq (FIFO order), task_arn, agent_arn, status, job_status, doc
    tags        arn, key, value
    meta        key, value             (e.g. the embedded agent's ARN, kept across restarts)

Every method is one short transaction; the caller (the backend) runs on one event loop, so
there is a single writer and no read-modify-write race between requests.
"""

from __future__ import annotations

import json
import os
from typing import Any

from sqlalchemy import (
    Column,
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

__all__ = ["TERMINAL_STATUSES", "Store"]

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


def _dump(doc: Doc) -> str:
    return json.dumps(doc, separators=(",", ":"), sort_keys=True)


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

    @classmethod
    def in_directory(cls, data_dir: str) -> Store:
        os.makedirs(data_dir, exist_ok=True)
        return cls(f"sqlite:///{os.path.join(os.path.abspath(data_dir), 'datasync-local.db')}")

    def close(self) -> None:
        self.engine.dispose()

    # resources (agents, locations, tasks) ------------------------------------------------------
    def put(self, kind: str, arn: str, created: float, doc: Doc) -> None:
        with self.engine.begin() as conn:
            found = conn.execute(select(_resources.c.arn).where(_resources.c.arn == arn)).first()
            if found is None:
                conn.execute(
                    insert(_resources).values(arn=arn, kind=kind, created=created, doc=_dump(doc))
                )
            else:
                conn.execute(
                    update(_resources).where(_resources.c.arn == arn).values(doc=_dump(doc))
                )

    def get(self, kind: str, arn: str) -> Doc | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(_resources.c.doc).where(_resources.c.arn == arn, _resources.c.kind == kind)
            ).first()
        return None if row is None else dict(json.loads(row[0]))

    def all(self, kind: str) -> list[Doc]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(_resources.c.doc).where(_resources.c.kind == kind).order_by(_resources.c.arn)
            ).all()
        return [dict(json.loads(row[0])) for row in rows]

    def remove(self, arn: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(_resources).where(_resources.c.arn == arn))
            conn.execute(delete(_tags).where(_tags.c.arn == arn))

    # executions -------------------------------------------------------------------------------
    def add_execution(self, doc: Doc) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                insert(_executions).values(
                    arn=doc["TaskExecutionArn"],
                    task_arn=doc["TaskArn"],
                    agent_arn=doc["AgentArn"],
                    status=doc["Status"],
                    job_status=doc["Job"]["status"],
                    doc=_dump(doc),
                )
            )

    def save_execution(self, doc: Doc) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                update(_executions)
                .where(_executions.c.arn == doc["TaskExecutionArn"])
                .values(status=doc["Status"], job_status=doc["Job"]["status"], doc=_dump(doc))
            )

    def execution(self, arn: str) -> Doc | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(_executions.c.doc).where(_executions.c.arn == arn)).first()
        return None if row is None else dict(json.loads(row[0]))

    def execution_by_id(self, agent_arn: str, execution_id: str) -> Doc | None:
        """An agent's execution by its `exec-…` id (the job id of the jobs protocol)."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(_executions.c.doc).where(
                    _executions.c.agent_arn == agent_arn,
                    _executions.c.arn.like(f"%/execution/{execution_id}"),
                )
            ).first()
        return None if row is None else dict(json.loads(row[0]))

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
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return [dict(json.loads(row[0])) for row in rows]

    def remove_executions(self, task_arn: str) -> None:
        with self.engine.begin() as conn:
            arns = [
                row[0]
                for row in conn.execute(
                    select(_executions.c.arn).where(_executions.c.task_arn == task_arn)
                )
            ]
            conn.execute(delete(_executions).where(_executions.c.task_arn == task_arn))
            if arns:
                conn.execute(delete(_tags).where(_tags.c.arn.in_(arns)))

    # tags -------------------------------------------------------------------------------------
    def tags(self, arn: str) -> dict[str, str]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(_tags.c.key, _tags.c.value).where(_tags.c.arn == arn).order_by(_tags.c.key)
            ).all()
        return {key: value for key, value in rows}

    def set_tags(self, arn: str, tags: dict[str, str]) -> None:
        with self.engine.begin() as conn:
            for key, value in tags.items():
                conn.execute(delete(_tags).where(_tags.c.arn == arn, _tags.c.key == key))
                conn.execute(insert(_tags).values(arn=arn, key=key, value=value))

    def remove_tags(self, arn: str, keys: list[str]) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(_tags).where(_tags.c.arn == arn, _tags.c.key.in_(keys)))

    # meta -------------------------------------------------------------------------------------
    def meta(self, key: str) -> str | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(_meta.c.value).where(_meta.c.key == key)).first()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(_meta).where(_meta.c.key == key))
            conn.execute(insert(_meta).values(key=key, value=value))
