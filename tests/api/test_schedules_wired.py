"""Task schedules on a real server: accepted and described, invalid ones refused, a due
`rate(1 minute)` run starts (once, after a restart that missed several slots) while a DISABLED
one does not, a run due while the task runs is skipped and logged, and repeated identical
failures disable the schedule (DisabledBy SERVICE).

Time is not mocked: a test makes a slot due by moving the schedule's stored anchor back (what a
server finds after being down that long), then waits for the real runner's next tick.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from api.schedule_runner import SCHEDULE_RUNS_PREFIX
from tests.api.harness import Server, finished, nfs_task, serving, wait_for


@pytest.fixture
def srv(tmp_path: Path) -> Iterator[Server]:
    with serving(tmp_path) as server:
        yield server


def backdate(srv: Server, task: str, seconds: float) -> None:
    """The schedule was set `seconds` ago and has not fired since (as after a long outage)."""
    assert srv.served is not None
    store = srv.served.extras["backend"].store
    doc = store.get("task", task)
    doc["_ScheduleAnchor"] = doc["_ScheduleAnchor"] - seconds
    doc.pop("_ScheduleLastFired", None)
    store.put("task", task, doc["CreationTime"], doc)


def executions(ds: Any, task: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = ds.list_task_executions(TaskArn=task)["TaskExecutions"]
    return found


def test_schedule_accepted_described_and_invalid_refused(srv: Server) -> None:
    root: Path = srv.root  # type: ignore[attr-defined]
    ds = srv.client()
    _, _, task = nfs_task(
        ds, srv.agent_arn, root / "src", root / "dst",
        Schedule={"ScheduleExpression": "cron(0 12 ? * MON-FRI *)"},
    )  # fmt: skip
    described = ds.describe_task(TaskArn=task)
    assert described["Schedule"] == {
        "ScheduleExpression": "cron(0 12 ? * MON-FRI *)",
        "Status": "ENABLED",
    }
    assert "StatusUpdateTime" in described["ScheduleDetails"]
    ds.update_task(
        TaskArn=task, Schedule={"ScheduleExpression": "rate(1 hour)", "Status": "DISABLED"}
    )
    details = ds.describe_task(TaskArn=task)["ScheduleDetails"]
    assert details["DisabledBy"] == "USER"
    for bad, said in (
        ("rate(1 minutes)", "rate"),
        ("cron(0 12 * * MON *)", "?"),
        ("cron(61 * ? * * *)", "minutes"),
        ("every day", ""),
    ):
        with pytest.raises(ClientError) as caught:
            ds.update_task(TaskArn=task, Schedule={"ScheduleExpression": bad})
        error = caught.value.response["Error"]
        assert error["Code"] == "InvalidRequestException", bad
        assert said in error["Message"] and bad in error["Message"], error["Message"]


def test_rate_runs_once_after_downtime_disabled_does_not(tmp_path: Path, srv: Server) -> None:
    root: Path = srv.root  # type: ignore[attr-defined]
    (root / "src" / "a.txt").write_text("a")
    ds = srv.client()
    _, _, task = nfs_task(
        ds, srv.agent_arn, root / "src", root / "dst",
        Schedule={"ScheduleExpression": "rate(1 minute)"},
    )  # fmt: skip
    (root / "src2").mkdir()
    _, _, off = nfs_task(
        ds, srv.agent_arn, root / "src2", root / "dst2",
        Schedule={"ScheduleExpression": "rate(1 minute)", "Status": "DISABLED"},
    )  # fmt: skip
    srv.restart()  # the schedule survives a restart (it lives in the store)
    backdate(srv, task, 10 * 60)  # ten slots missed
    backdate_off = srv.served.extras["backend"].store.get("task", off)  # type: ignore[union-attr]
    assert backdate_off["Schedule"]["Status"] == "DISABLED"
    wait_for(lambda: executions(ds, task), 10)
    first = wait_for(
        lambda: [e for e in executions(ds, task) if e["Status"] in ("SUCCESS", "ERROR")], 20
    )
    assert first[0]["Status"] == "SUCCESS"
    assert (root / "dst" / "a.txt").read_text() == "a"
    time.sleep(2.5)  # a few more ticks: the missed slots collapsed into that one run
    assert len(executions(ds, task)) == 1
    store = srv.served.extras["backend"].store  # type: ignore[union-attr]
    assert store.meta(SCHEDULE_RUNS_PREFIX + task) == "1"  # datasync_local_schedule_runs_total
    assert executions(ds, off) == []
    assert ds.describe_task(TaskArn=task)["Schedule"]["Status"] == "ENABLED"


def test_repeated_failures_disable_the_schedule(srv: Server) -> None:
    root: Path = srv.root  # type: ignore[attr-defined]
    ds = srv.client()
    _, _, task = nfs_task(
        ds, srv.agent_arn, root / "src", root / "dst",
        Schedule={"ScheduleExpression": "rate(5 minutes)"},
    )  # fmt: skip
    (root / "src").rmdir()  # every run now fails the same way
    for run in range(1, 4):
        backdate(srv, task, 5 * 60)
        done = wait_for(
            lambda n=run: (
                len(  # type: ignore[misc]
                    [e for e in executions(ds, task) if e["Status"] in ("SUCCESS", "ERROR")]
                )
                >= n
                and all(e["Status"] in ("SUCCESS", "ERROR") for e in executions(ds, task))
            ),
            20,
        )
        assert done
    described = wait_for(
        lambda: (d := ds.describe_task(TaskArn=task))["Schedule"]["Status"] == "DISABLED" and d,
        10,
    )
    assert described["ScheduleDetails"]["DisabledBy"] == "SERVICE"
    assert "3 consecutive" in described["ScheduleDetails"]["DisabledReason"]
    assert all(e["Status"] == "ERROR" for e in executions(ds, task))
    assert len(executions(ds, task)) == 3


def test_slot_while_running_is_skipped_and_logged(srv: Server) -> None:
    root: Path = srv.root  # type: ignore[attr-defined]
    (root / "src" / "big.bin").write_bytes(b"x" * (512 * 1024))
    ds, logs = srv.client(), srv.client("logs")
    _, _, task = nfs_task(
        ds, srv.agent_arn, root / "src", root / "dst",
        Schedule={"ScheduleExpression": "rate(1 minute)"},
        Options={"BytesPerSecond": 64 * 1024, "LogLevel": "BASIC"},
    )  # fmt: skip
    arn = ds.start_task_execution(TaskArn=task)["TaskExecutionArn"]
    backdate(srv, task, 60)  # a slot is due while the execution runs

    def skipped() -> list[str]:
        events = logs.filter_log_events(logGroupName="/aws/datasync", filterPattern="skipped")
        return [e["message"] for e in events["events"]]

    said = wait_for(skipped, 10)
    assert arn in said[0] and "Scheduled run" in said[0]
    assert [e["TaskExecutionArn"] for e in executions(ds, task)] == [arn]
    ds.cancel_task_execution(TaskExecutionArn=arn)


@pytest.mark.parametrize(
    ("bad", "said"),
    [
        ("cron(0 12 * * ?)", "has 5 fields; cron takes 6"),
        ("cron(0 12 * * MON *)", "exactly one of day-of-month and day-of-week must be '?'"),
        ("cron(60 12 * * ? *)", "minutes value 60 is outside 0-59"),
        ("cron(0 12 ? * 8 *)", "day-of-week value 8 is outside 1-7"),
        ("cron(0 12 ? * 2#6 *)", "the week in '2#6' must be 1-5"),
        ("cron(0 12 LW * ? *)", "'LW' in day-of-month is not supported"),
        ("cron(0 0 31 2 ? *)", "never runs"),
        ("cron(0 12 * * ? 1969)", "year value 1969 is outside"),
        ("rate(1 minutes)", "with the value 1 the unit is singular"),
        ("rate(30 seconds)", "unit 'seconds' must be minute(s), hour(s) or day(s)"),
        ("every(5 minutes)", "must be rate(value unit) or cron("),
    ],
)
def test_create_task_refuses_an_invalid_expression_saying_what_is_wrong(
    srv: Server, bad: str, said: str
) -> None:
    root: Path = srv.root  # type: ignore[attr-defined]
    ds = srv.client()
    source, destination, _ = nfs_task(ds, srv.agent_arn, root / "src", root / "dst")
    before = ds.list_tasks()["Tasks"]
    with pytest.raises(ClientError) as caught:
        ds.create_task(
            SourceLocationArn=source,
            DestinationLocationArn=destination,
            Schedule={"ScheduleExpression": bad},
        )
    error = caught.value.response["Error"]
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert error["Code"] == "InvalidRequestException"
    assert "ScheduleExpression" in error["Message"] and bad in error["Message"]
    assert said in error["Message"], error["Message"]
    assert ds.list_tasks()["Tasks"] == before  # nothing was created


def test_an_hourly_cron_fires_for_the_latest_whole_hour(srv: Server) -> None:
    """End to end through the runner: a `cron(0 * * * ? *)` set three hours ago (as after an
    outage) starts one run, for the slot of the last whole hour UTC."""
    root: Path = srv.root  # type: ignore[attr-defined]
    (root / "src" / "c.txt").write_text("c")
    ds = srv.client()
    _, _, task = nfs_task(
        ds, srv.agent_arn, root / "src", root / "dst",
        Schedule={"ScheduleExpression": "cron(0 * * * ? *)"},
    )  # fmt: skip
    before = time.time()
    backdate(srv, task, 3 * 3600)
    wait_for(lambda: executions(ds, task), 10)
    after = time.time()
    assert srv.served is not None
    fired = srv.served.extras["backend"].store.get("task", task)["_ScheduleLastFired"]
    # the whole hour at or before now (the bounds differ only if an hour struck meanwhile)
    assert fired in {before - before % 3600, after - after % 3600}
    time.sleep(2.5)  # later ticks: the three missed hours were one run
    assert len(executions(ds, task)) == 1


def test_a_stale_leader_cannot_fire_a_slot_another_runner_fired(srv: Server) -> None:
    """Two runners on one store, as when a leader stalled past its lease and its successor
    ticks meanwhile: the one that still holds the task as it was before the other fired finds
    the slot claimed, and starts nothing."""
    from api.domain.task import Task
    from api.schedule_runner import ScheduleRunner
    from api.store_logs import LogStore

    root: Path = srv.root  # type: ignore[attr-defined]
    (root / "src" / "s.txt").write_text("s")
    ds = srv.client()
    _, _, task = nfs_task(
        ds, srv.agent_arn, root / "src", root / "dst",
        Schedule={"ScheduleExpression": "rate(5 minutes)"},
    )  # fmt: skip
    assert srv.served is not None
    backend = srv.served.extras["backend"]
    runner = ScheduleRunner(backend, LogStore(backend.store))
    stale = ScheduleRunner(backend, LogStore(backend.store))
    backdate(srv, task, 5 * 60 + 1)
    as_read = backend.store.get("task", task)  # the stale leader read it: the slot is due
    fired = wait_for(lambda: executions(ds, task), 10)  # the server's own runner fired it
    # once it ended, a second start would not even be skipped as "still running"
    wait_for(lambda: finished(ds, fired[0]["TaskExecutionArn"]), 30)
    assert stale._fire(Task.from_row(as_read), backend.now()) == 0
    assert runner._fire(Task.from_row(as_read), backend.now()) == 0
    time.sleep(1.5)
    assert len(executions(ds, task)) == 1
