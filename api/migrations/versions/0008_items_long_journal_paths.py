"""item_journal.long_path: journal paths too long for an index entry (issue 12).

A PostgreSQL btree entry holds at most ~2.7 kB, so the journal's key (`path`) cannot hold a
path of more than `JOURNAL_PATH_BYTES`; such a path is now keyed by its SHA-256 (`path` =
"\\x01" + hex digest, never a relative path) and kept whole in `long_path`. Before, it was not
journaled at all, so a resume or takeover compared (and with TransferMode=ALL re-copied) it.

Revision ID: 0008
Revises: 0007 (deadline)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"


def upgrade() -> None:
    op.add_column("item_journal", sa.Column("long_path", sa.Text, nullable=True))
