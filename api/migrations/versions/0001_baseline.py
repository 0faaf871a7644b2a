"""Baseline: the schema of the first release (api/store.py at 10f1811), table for table.

Revision ID: 0001
Revises: none
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None


def upgrade() -> None:
    op.create_table(
        "resources",
        sa.Column("arn", sa.String(256), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False, index=True),
        sa.Column("created", sa.Float, nullable=False),
        sa.Column("doc", sa.Text, nullable=False),
    )
    op.create_table(
        "executions",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("arn", sa.String(256), nullable=False, unique=True),
        sa.Column("task_arn", sa.String(256), nullable=False, index=True),
        sa.Column("agent_arn", sa.String(256), nullable=False, index=True),
        sa.Column("status", sa.String(16), nullable=False, index=True),
        sa.Column("job_status", sa.String(16), nullable=False),
        sa.Column("doc", sa.Text, nullable=False),
    )
    op.create_table(
        "tags",
        sa.Column("arn", sa.String(256), primary_key=True),
        sa.Column("key", sa.String(256), primary_key=True),
        sa.Column("value", sa.String(256), nullable=False),
    )
    op.create_table(
        "meta",
        sa.Column("key", sa.String(128), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )
