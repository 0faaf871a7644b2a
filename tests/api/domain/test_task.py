"""Task: a released document round-trips, the wire shapes are DescribeTask's and ListTasks',
and the schedule's bookkeeping stays in the store, off the wire."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from api.domain.enums import DISABLED, ENABLED, UNAVAILABLE, ScheduleStatus, TaskStatus
from api.domain.task import ScheduleRuns, Task, TaskSchedule
from api.errors import InvalidRequestException
from api.schedule import ScheduleHealth
from api.schedule_runner import apply_schedule
from contract.model import shape
from tests.api.domain.released import released_rows

MINUTE = timedelta(minutes=1)


def _released() -> tuple[dict[str, object], Task]:
    (row,) = released_rows("task")
    return row, Task.from_row(row)


def test_a_released_document_reads_and_writes_back() -> None:
    row, task = _released()
    # `_Agent` (the agent fixed at CreateTask by the first release) is no longer kept: the
    # scheduler chooses among the locations' agents for every execution
    assert task.to_row() == {k: v for k, v in row.items() if k != "_Agent"}
    assert Task.from_row(task.to_row()) == task
    assert task.name == "first-release"
    assert task.options["BytesPerSecond"] == -1


def test_wire_shapes_are_the_models() -> None:
    _, task = _released()
    wire = task.to_wire(UNAVAILABLE)
    assert set(wire) <= set(shape("DescribeTaskResponse")["members"])
    assert wire["Status"] == "UNAVAILABLE"
    assert wire["CurrentTaskExecutionArn"] == task.current_task_execution_arn
    entry = task.list_entry(UNAVAILABLE)
    assert set(entry) == set(shape("TaskListEntry")["members"])
    assert [s.value for s in TaskStatus] == shape("TaskStatus")["enum"]
    assert [s.value for s in ScheduleStatus] == shape("ScheduleStatus")["enum"]


def test_a_schedule_is_set_changed_disabled_and_removed() -> None:
    _, task = _released()
    scheduled = apply_schedule(task, {"ScheduleExpression": "rate(1 hour)"}, 100.0, MINUTE)
    assert scheduled.schedule == TaskSchedule("rate(1 hour)", ENABLED)
    assert scheduled.scheduled
    assert scheduled.runs == ScheduleRuns(anchor=100.0, health=ScheduleHealth())
    assert scheduled.to_wire(UNAVAILABLE)["ScheduleDetails"] == {"StatusUpdateTime": 100.0}
    assert apply_schedule(scheduled, {"ScheduleExpression": "rate(1 hour)"}, 200.0, MINUTE) == (
        scheduled
    )
    disabled = apply_schedule(
        scheduled, {"ScheduleExpression": "rate(1 hour)", "Status": "DISABLED"}, 300.0, MINUTE
    )
    assert disabled.schedule == TaskSchedule("rate(1 hour)", DISABLED)
    assert not disabled.scheduled
    assert disabled.to_wire(UNAVAILABLE)["ScheduleDetails"] == {
        "StatusUpdateTime": 300.0,
        "DisabledBy": "USER",
        "DisabledReason": "Disabled by the user.",
    }
    removed = apply_schedule(disabled, {"ScheduleExpression": ""}, 400.0, MINUTE)
    assert removed.schedule is None and removed.schedule_details is None
    assert removed.runs.anchor is None
    with pytest.raises(InvalidRequestException):
        apply_schedule(task, {"ScheduleExpression": "rate(1 second)"}, 100.0, MINUTE)


def test_the_schedules_bookkeeping_is_stored_but_never_on_the_wire() -> None:
    _, task = _released()
    runs = ScheduleRuns(
        anchor=1.0,
        last_fired=2.0,
        health=ScheduleHealth("AgentUnavailable", 2),
        scheduled_execution=f"{task.task_arn}/execution/exec-0123456789abcdef0",
    )
    kept = replace(task, runs=runs)
    row = kept.to_row()
    assert row["_ScheduleHealth"] == {"ErrorCode": "AgentUnavailable", "Consecutive": 2}
    assert Task.from_row(row).runs == runs
    assert not [k for k in kept.to_wire(UNAVAILABLE) if k.startswith("_")]
