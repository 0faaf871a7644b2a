"""Alembic's environment: migrations run on the connection `api.migrations.upgrade` hands over
(inside its transaction), never from an ini file's URL."""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

connection: Connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=None)
with context.begin_transaction():
    context.run_migrations()
