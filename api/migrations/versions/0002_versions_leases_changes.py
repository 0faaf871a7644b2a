"""Several processes: execution versions (compare-and-swap), job ids, leases, change counters.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    # ADD COLUMN with a constant default: in place on SQLite and PostgreSQL, no table rebuild
    op.add_column(
        "executions", sa.Column("version", sa.Integer, nullable=False, server_default="1")
    )
    op.add_column("executions", sa.Column("job_id", sa.String(64), nullable=True))
    executions = sa.table("executions", sa.column("seq", sa.Integer), sa.column("arn", sa.String))
    conn = op.get_bind()
    for seq, arn in conn.execute(sa.select(executions.c.seq, executions.c.arn)).all():
        conn.execute(
            sa.text("UPDATE executions SET job_id = :job WHERE seq = :seq"),
            {"job": str(arn).rsplit("/", 1)[-1], "seq": seq},
        )
    op.create_index("ix_executions_job_id", "executions", ["job_id"])
    op.create_table(
        "leases",
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("holder", sa.String(256), nullable=False),
        sa.Column("epoch", sa.Integer, nullable=False),
        sa.Column("expires", sa.Float, nullable=False),
    )
    op.create_table(
        "changes",
        sa.Column("channel", sa.String(256), primary_key=True),
        sa.Column("counter", sa.Integer, nullable=False),
    )
