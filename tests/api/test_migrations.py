"""Alembic: the baseline revision is exactly the first release's schema, and a data dir (or a
PostgreSQL database) made by the first release upgrades in place with its resources intact.

`data/release-0.1.0.sql` is the SQLite dump of a data dir made by the release at 10f1811 (its
`serve`, an NFS and an SMB location, a task, one SUCCESS execution, a tag).
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, text

from api.migrations import BASELINE, HEAD, upgrade
from api.store import store_url
from tests.api.harness import Server, location_root, nfs_task, wait_for

FIXTURE = Path(__file__).with_name("data") / "release-0.1.0.sql"
EXECUTION = (
    "arn:aws:datasync:us-east-1:111122223333:task/task-49f1b77ca48ebb5c7/execution/"
    "exec-9663472885d6d8d42"
)
TASK = "arn:aws:datasync:us-east-1:111122223333:task/task-49f1b77ca48ebb5c7"
SOURCE = "arn:aws:datasync:us-east-1:111122223333:location/loc-a3f7e2a0525424089"
AGENT = "arn:aws:datasync:us-east-1:111122223333:agent/agent-6a1b3ec958cba374e"


def _schema(path: Path) -> set[str]:
    with sqlite3.connect(path) as conn:
        rows = conn.execute(
            "SELECT sql FROM sqlite_master WHERE sql IS NOT NULL AND name != 'alembic_version'"
        ).fetchall()
    return {re.sub(r"\s+", " ", sql) for (sql,) in rows}


def test_baseline_revision_is_the_first_release_schema(tmp_path: Path) -> None:
    released = tmp_path / "released.db"
    with sqlite3.connect(released) as conn:
        conn.executescript(FIXTURE.read_text())
    baseline = tmp_path / "baseline.db"
    engine = create_engine(f"sqlite:///{baseline}")
    upgrade(engine, BASELINE)
    engine.dispose()
    assert _schema(baseline) == _schema(released)


def _released_database(tmp_path: Path, store_kind: str, request: pytest.FixtureRequest) -> str:
    """The first release's database, in this test's store; returns the data dir."""
    data = tmp_path / "data"
    data.mkdir()
    if store_kind == "sqlite":
        with sqlite3.connect(data / "datasync-local.db") as conn:
            conn.executescript(FIXTURE.read_text())
        return str(data)
    # PostgreSQL: the baseline revision's tables (proved equal above) and the release's rows
    cluster = request.getfixturevalue("pg_cluster")
    url = store_url(str(data))
    name = url.rsplit("/", 1)[1]
    cluster.drop_database(name)
    cluster._admin(f"CREATE DATABASE {name}")
    engine = create_engine(url)
    upgrade(engine, BASELINE)
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE alembic_version"))  # as the release left it: unversioned
        for line in FIXTURE.read_text().splitlines():
            if line.startswith("INSERT INTO"):
                conn.execute(text(line.replace(":", "\\:")))
        conn.execute(
            text(
                "SELECT setval(pg_get_serial_sequence('executions', 'seq'), "
                "(SELECT max(seq) FROM executions))"
            )
        )
    engine.dispose()
    return str(data)


def test_a_first_release_data_dir_upgrades_in_place(
    tmp_path: Path, store_kind: str, request: pytest.FixtureRequest
) -> None:
    data = _released_database(tmp_path, store_kind, request)
    root = location_root(tmp_path)
    (root / "src" / "new.txt").write_text("after the upgrade\n")
    server = Server(data, [str(root)]).start()
    try:
        ds = server.client()
        assert server.agent_arn == AGENT  # the embedded agent keeps its identity
        execution = ds.describe_task_execution(TaskExecutionArn=EXECUTION)
        assert execution["Status"] == "SUCCESS"
        assert execution["FilesTransferred"] == 2  # hello.txt and the root directory
        assert execution["BytesWritten"] == len("hello from the first release\n")
        assert execution["Options"]["VerifyMode"] == "ONLY_FILES_TRANSFERRED"
        task = ds.describe_task(TaskArn=TASK)
        assert task["Name"] == "first-release"
        assert task["SourceLocationArn"] == SOURCE
        assert task["CurrentTaskExecutionArn"] == EXECUTION
        assert ds.describe_location_nfs(LocationArn=SOURCE)["LocationUri"].startswith("nfs://")
        assert ds.list_tags_for_resource(ResourceArn=SOURCE)["Tags"] == [
            {"Key": "side", "Value": "source"}
        ]
        listed = ds.list_task_executions(TaskArn=TASK)["TaskExecutions"]
        assert [e["TaskExecutionArn"] for e in listed] == [EXECUTION]
        # and the upgraded store takes new work
        _, _, new_task = nfs_task(ds, server.agent_arn, root / "src", root / "dst")
        arn = ds.start_task_execution(TaskArn=new_task)["TaskExecutionArn"]
        ended = wait_for(
            lambda: (
                (d := ds.describe_task_execution(TaskExecutionArn=arn))["Status"]
                in ("SUCCESS", "ERROR")
                and d
            )
        )
        assert ended["Status"] == "SUCCESS", ended
        assert (root / "dst" / "new.txt").read_text() == "after the upgrade\n"
    finally:
        server.stop()
    engine = create_engine(store_url(data))
    with engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == HEAD
        columns = {c["name"] for c in inspect(conn).get_columns("executions")}
        assert {"version", "job_id"} <= columns
        assert (
            conn.execute(
                text("SELECT job_id FROM executions WHERE arn = :arn"), {"arn": EXECUTION}
            ).scalar()
            == EXECUTION.rsplit("/", 1)[1]
        )
    engine.dispose()
