"""The resource documents of the first release's data dir (tests/api/data/release-0.1.0.sql),
read from a real SQLite database made from that dump: what `from_row` must keep reading."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

DUMP = Path(__file__).parent.parent / "data" / "release-0.1.0.sql"


def released_rows(kind: str) -> list[dict[str, Any]]:
    with sqlite3.connect(":memory:") as conn:
        conn.executescript(DUMP.read_text())
        rows = conn.execute(
            "SELECT doc FROM resources WHERE kind = ? ORDER BY arn", (kind,)
        ).fetchall()
    return [json.loads(doc) for (doc,) in rows]


def released_execution() -> dict[str, Any]:
    """The one SUCCESS execution of the first release's data dir."""
    with sqlite3.connect(":memory:") as conn:
        conn.executescript(DUMP.read_text())
        ((doc,),) = conn.execute("SELECT doc FROM executions").fetchall()
    return dict(json.loads(doc))
