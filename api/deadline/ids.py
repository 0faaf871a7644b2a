"""Stable Deadline IDs for this control plane's resources, and the way back from an ID.

Deadline IDs are `farm-`/`queue-`/`job-`/`step-` + 32 hex digits and `task-<32 hex>-N` (the
model's patterns). They are derived, not invented: the hex is the first 128 bits of
SHA-256(kind, ARN), so a queue's ID is the same in every process and after every restart, and
nothing has to be written when a DataSync task or execution is created (the DataSync routes need
not know Deadline exists). A task's ID is its step's hex plus the work item's index, so it names
its item without a lookup.

The way back (queue ID → TaskArn, job ID → TaskExecutionArn) is the `deadline_ids` table
(migration 0007): filled whenever an ID is handed out in a listing, and on a miss by rescanning
the candidates (the tasks; a queue's executions) and hashing their ARNs, so an ID handed out by
another process, or before a restart, always resolves. The farm (this control plane) is the
table's one row of kind `farm`: its ID is random, made once by whichever process asks first
(insert-if-absent, so concurrent processes agree), and kept for the store's lifetime.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from sqlalchemy import Column, Float, MetaData, String, Table, UniqueConstraint, select
from sqlalchemy.dialects import postgresql, sqlite

from api.store import Store

__all__ = ["Farm", "IdIndex", "derive", "parse_task_id", "step_id", "task_id"]

_metadata = MetaData()
deadline_ids = Table(
    "deadline_ids",
    _metadata,
    Column("id", String(64), primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("arn", String(256), nullable=False),
    Column("created", Float, nullable=False),
    UniqueConstraint("kind", "arn", name="uq_deadline_ids_kind_arn"),
)

_TASK_ID = re.compile(r"task-([0-9a-f]{32})-(0|[1-9][0-9]{0,9})")
_FARM_ARN = "this-control-plane"


def _hex(kind: str, arn: str) -> str:
    return hashlib.sha256(f"{kind}\0{arn}".encode()).hexdigest()[:32]


def derive(kind: str, arn: str) -> str:
    """The ID of kind `queue` (arn = TaskArn) or `job` (arn = TaskExecutionArn)."""
    return f"{kind}-{_hex(kind, arn)}"


def step_id(execution_arn: str, step_name: str) -> str:
    return f"step-{_hex('step', f'{execution_arn}/{step_name}')}"


def task_id(step: str, index: int) -> str:
    """`task-<the step's hex>-<work item index>`."""
    return f"task-{step.removeprefix('step-')}-{index}"


def parse_task_id(task: str) -> tuple[str, int] | None:
    """(step ID, item index) of a task ID, or None if it does not have the model's shape."""
    match = _TASK_ID.fullmatch(task)
    return None if match is None else (f"step-{match.group(1)}", int(match.group(2)))


@dataclass(frozen=True)
class Farm:
    farm_id: str
    created: float


class IdIndex:
    """The `deadline_ids` table: the farm's identity and the reverse lookups."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._farm: Farm | None = None  # immutable once made: safe to keep per process

    def _insert_ignoring_conflicts(self, rows: list[dict[str, object]]) -> None:
        if not rows:
            return
        dialect = sqlite if self.store.dialect == "sqlite" else postgresql
        with self.store.transaction() as conn:
            conn.execute(dialect.insert(deadline_ids).values(rows).on_conflict_do_nothing())

    def farm(self) -> Farm:
        if self._farm is None:
            self._insert_ignoring_conflicts(
                [
                    {
                        "id": f"farm-{secrets.token_hex(16)}",
                        "kind": "farm",
                        "arn": _FARM_ARN,
                        "created": time.time(),
                    }
                ]
            )
            with self.store.engine.connect() as conn:
                row = conn.execute(
                    select(deadline_ids.c.id, deadline_ids.c.created).where(
                        deadline_ids.c.kind == "farm", deadline_ids.c.arn == _FARM_ARN
                    )
                ).one()
            self._farm = Farm(str(row[0]), float(row[1]))
        return self._farm

    def remember(self, kind: str, arns: Iterable[str]) -> None:
        """Record the IDs of `arns` (called with every listing, so lookups rarely rescan)."""
        now = time.time()
        rows: list[dict[str, object]] = [
            {"id": derive(kind, arn), "kind": kind, "arn": arn, "created": now} for arn in arns
        ]
        known = self._known({str(r["id"]) for r in rows})
        self._insert_ignoring_conflicts([r for r in rows if r["id"] not in known])

    def _known(self, ids: set[str]) -> set[str]:
        if not ids:
            return set()
        with self.store.engine.connect() as conn:
            found = conn.execute(select(deadline_ids.c.id).where(deadline_ids.c.id.in_(ids)))
            return {str(i) for i in found.scalars()}

    def resolve(
        self, kind: str, wanted: str, candidates: Callable[[], Iterable[str]]
    ) -> str | None:
        """The ARN whose ID of `kind` is `wanted`: from the table, else by hashing every ARN
        `candidates()` yields (and remembering them). None if no such resource exists (the
        caller still checks that a remembered ARN's resource was not deleted meanwhile)."""
        with self.store.engine.connect() as conn:
            arn = conn.execute(
                select(deadline_ids.c.arn).where(
                    deadline_ids.c.id == wanted, deadline_ids.c.kind == kind
                )
            ).scalar()
        if arn is not None:
            return str(arn)
        arns = list(candidates())
        self.remember(kind, arns)
        return next((a for a in arns if derive(kind, a) == wanted), None)
