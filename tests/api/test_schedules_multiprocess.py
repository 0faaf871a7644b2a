"""Two real `serve` processes on one store (the SQLite files of one data dir, or one PostgreSQL
database: the suite runs once per store), three `rate(1 minute)` schedules: each slot starts
exactly one execution.

No clock is faked (serve has no clock option and the schedule floor is a real minute), so the
test waits for the first slot, one minute after the tasks were created, then watches a few more
of the runner's one-second ticks; it is bounded to about 100 seconds per store, the one slow
test of the schedules.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.api.harness import location_root, wait_for
from tests.reliability.proc import ServeProcess

pytestmark = pytest.mark.slow

TASKS = 3


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[ServeProcess, ServeProcess, Path]]:
    root = location_root(tmp_path / "files")
    data = tmp_path / "data"
    data.mkdir()
    # A carries the embedded agent the tasks use; B is a second control plane on the same store
    a = ServeProcess(data, [root], "--min-schedule-interval", "60").start()
    b = ServeProcess(data, [], "--no-embedded-agent", "--min-schedule-interval", "60")
    try:
        b.start()
        yield a, b, root
    finally:
        b.stop()
        a.stop()


def _executions(ds: Any, task: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = ds.list_task_executions(TaskArn=task)["TaskExecutions"]
    return found


def test_each_scheduled_slot_starts_exactly_once_across_two_servers(
    pair: tuple[ServeProcess, ServeProcess, Path],
) -> None:
    a, b, root = pair
    via_a, via_b = a.client(), b.client()
    agent = wait_for(lambda: via_a.list_agents()["Agents"], 20)[0]["AgentArn"]
    tasks: list[str] = []
    for i in range(TASKS):
        ds = (via_a, via_b)[i % 2]  # created through either server
        src, dst = root / f"src{i}", root / f"dst{i}"
        src.mkdir()
        (src / f"file{i}.txt").write_text(f"run {i}")
        source, destination = (
            ds.create_location_nfs(
                ServerHostname="localhost",
                Subdirectory=str(path),
                OnPremConfig={"AgentArns": [agent]},
            )["LocationArn"]
            for path in (src, dst)
        )
        tasks.append(
            ds.create_task(
                SourceLocationArn=source,
                DestinationLocationArn=destination,
                Schedule={"ScheduleExpression": "rate(1 minute)"},
            )["TaskArn"]
        )
    created = time.monotonic()
    # both servers see every schedule, ENABLED
    for ds in (via_a, via_b):
        for task in tasks:
            assert ds.describe_task(TaskArn=task)["Schedule"]["Status"] == "ENABLED"
    # nothing is due before the first slot, a minute after each task was created
    time.sleep(5)
    assert all(_executions(via_b, task) == [] for task in tasks)
    remaining = 60 + 25 - (time.monotonic() - created)
    for task in tasks:
        wait_for(lambda t=task: _executions(via_a, t), max(remaining, 1), 0.5)  # type: ignore[misc]
    first_slot_seen = time.monotonic() - created
    assert first_slot_seen >= 55, f"a run started {first_slot_seen:.0f} s after creation"
    # several more ticks of whichever server leads, and of the other: still one run per task
    time.sleep(5)
    for ds in (via_a, via_b):
        for task in tasks:
            assert len(_executions(ds, task)) == 1, (task, _executions(ds, task))
    for i, task in enumerate(tasks):
        arn = _executions(via_b, task)[0]["TaskExecutionArn"]

        def done(arn: str = arn) -> dict[str, Any] | None:
            doc: dict[str, Any] = via_b.describe_task_execution(TaskExecutionArn=arn)
            return doc if doc["Status"] in ("SUCCESS", "ERROR") else None

        assert wait_for(done, 20)["Status"] == "SUCCESS"
        assert (root / f"dst{i}" / f"file{i}.txt").read_text() == f"run {i}"
    # one of the two servers started each run, and said so once (serve's own log)
    logs = a.log.read_text(errors="replace") + b.log.read_text(errors="replace")
    for task in tasks:
        started = re.findall(re.escape(task) + r": scheduled run \S+ started", logs)
        assert len(started) == 1, (task, started)
