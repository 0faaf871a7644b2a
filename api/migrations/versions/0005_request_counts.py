"""API request counts and latency histograms, summed over every process (api/request_counts.py).

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"


def upgrade() -> None:
    # one row per (metric, protocol, operation, label); processes add to `value`, never set it
    op.create_table(
        "request_counts",
        sa.Column("metric", sa.String(16), primary_key=True),
        sa.Column("protocol", sa.String(32), primary_key=True),
        sa.Column("operation", sa.String(64), primary_key=True),
        sa.Column("label", sa.String(64), primary_key=True),
        sa.Column("value", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("request_counts")
