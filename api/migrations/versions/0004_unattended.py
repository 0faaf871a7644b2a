"""Execution logs: one row per log event (CloudWatch Logs' group, stream, timestamp, message).

Revision ID: 0004
Revises: 0002 (the coordinator rechains it after 0003_work_items)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0002"


def upgrade() -> None:
    op.create_table(
        "log_events",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("log_group", sa.String(512), nullable=False),
        sa.Column("log_stream", sa.String(512), nullable=False),
        sa.Column("timestamp", sa.BigInteger, nullable=False),
        sa.Column("ingestion_time", sa.BigInteger, nullable=False),
        sa.Column("message", sa.Text, nullable=False),
    )
    # FilterLogEvents / GetLogEvents read a group (and stream) in timestamp order; retention
    # deletes by timestamp
    op.create_index("ix_log_events_group_time", "log_events", ["log_group", "timestamp", "seq"])
    op.create_index("ix_log_events_time", "log_events", ["timestamp"])
