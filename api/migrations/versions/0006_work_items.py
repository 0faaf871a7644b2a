"""Work items (issue 12): the parts of an execution agents claim, and the journal of done files.

Revision ID: 0006
Revises: 0005 (request counts)

`work_items` holds one row per item (item 0 = the execution's own PREPARE job, 1…n the
TRANSFER items of its plan, maybe a last REMOVE item): its scope, its Deadline `TaskRunStatus`
and the operator's `target`, who holds it under which fencing epoch (`execution_number`) until
when (`lease_expires`), its counters and result (JSON text) and the last statusDetails its agent
reported (`details`, so that item jobs answer like execution jobs do), with a `version` for
compare-and-swap. `item_journal` lists the files an item finished, so that a resume or a takeover
redoes only what was in flight.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"


def upgrade() -> None:
    op.create_table(
        "work_items",
        sa.Column("execution_arn", sa.String(256), primary_key=True),
        sa.Column("item", sa.Integer, primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("recursive", sa.Boolean, nullable=False),
        sa.Column("files", sa.BigInteger, nullable=False),
        sa.Column("bytes", sa.BigInteger, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("target", sa.String(16), nullable=True),
        sa.Column("agent_arn", sa.String(256), nullable=True),
        sa.Column("execution_number", sa.Integer, nullable=False),
        sa.Column("lease_expires", sa.Float, nullable=True),
        sa.Column("started_at", sa.Float, nullable=True),
        sa.Column("ended_at", sa.Float, nullable=True),
        sa.Column("failure_retry_count", sa.Integer, nullable=False),
        sa.Column("counters", sa.Text, nullable=False),
        sa.Column("result", sa.Text, nullable=False),
        sa.Column("details", sa.Text, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    # the claim path reads READY items, the reaper RUNNING ones, across executions
    op.create_index("ix_work_items_status", "work_items", ["status"])
    op.create_table(
        "item_journal",
        sa.Column("execution_arn", sa.String(256), primary_key=True),
        sa.Column("item", sa.Integer, primary_key=True),
        sa.Column("path", sa.Text, primary_key=True),
    )
