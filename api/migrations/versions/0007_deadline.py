"""The Deadline Cloud routes' own state (api/deadline): the reverse lookup of their IDs (and
the farm's identity), and the clientTokens of Update* calls (replayed for 24 h, across restarts).

Revision ID: 0007
Revises: 0006 (work items)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"


def upgrade() -> None:
    op.create_table(
        "deadline_ids",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("arn", sa.String(256), nullable=False),
        sa.Column("created", sa.Float, nullable=False),
        sa.UniqueConstraint("kind", "arn", name="uq_deadline_ids_kind_arn"),
    )
    op.create_table(
        "deadline_client_tokens",
        sa.Column("token", sa.String(64), primary_key=True),
        sa.Column("request", sa.String(64), nullable=False),
        sa.Column("response", sa.Text, nullable=True),
        sa.Column("created", sa.Float, nullable=False),
    )
    # expired tokens are deleted by creation time
    op.create_index("ix_deadline_client_tokens_created", "deadline_client_tokens", ["created"])
