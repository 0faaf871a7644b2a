"""Schema migrations of the store (Alembic), shipped inside the package so an installed wheel
can migrate: `upgrade(engine)` brings any database to the newest revision, and is what
`Store` calls on open.

Revisions (`versions/`):
    0001  baseline: exactly the schema of the first release (resources, executions, tags, meta)
    0002  executions.version (compare-and-swap) and executions.job_id (indexed job-id lookups),
          leases (singleton duties with a fencing epoch), changes (cross-process notifications)
    0004  log_events (execution logs, issue 13)
    0005  request_counts (API request counts and latency histograms, issue 14)
    0006  work_items (the parts of an execution agents claim, with their Deadline TaskRunStatus,
          fencing epoch, lease and counters) and item_journal (the files an item finished),
          issue 12
    0007  deadline_ids, deadline_client_tokens (the Deadline routes, api/deadline: issue 12)
    0008  item_journal.long_path (journal paths too long to be a key: keyed by their hash)

A database made by the first release has the baseline tables but no `alembic_version`: it is
stamped at 0001 and upgraded in place. Several processes opening one PostgreSQL at once
serialize on an advisory lock, so a migration runs once.

A new revision: `alembic -c /dev/null` is not needed; write `versions/NNNN_name.py` by hand with
`revision`/`down_revision` and `upgrade()` (the files here are the examples).
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection, Engine

__all__ = ["BASELINE", "HEAD", "upgrade"]

BASELINE = "0001"
HEAD = "0008"
_LOCK_KEY = 0x64736C6D  # "dslm": the advisory lock that serializes migrations on PostgreSQL


def _config(conn: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent))
    config.attributes["connection"] = conn
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Migrate the database behind `engine` to `revision` (stamping a first-release one)."""
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
        tables = set(inspect(conn).get_table_names())
        config = _config(conn)
        if "alembic_version" not in tables and "resources" in tables:
            command.stamp(config, BASELINE)
        command.upgrade(config, revision)
