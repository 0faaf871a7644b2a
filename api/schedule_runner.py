"""Task schedules, wired: `apply_schedule` takes CreateTask/UpdateTask's `Schedule` into the task
(`api.domain.task.Task`), `ScheduleRunner.tick` starts the runs that are due (api/schedule.py decides which).

State kept with the task beside the API's `Schedule` and `ScheduleDetails` (`ScheduleRuns`,
stored in the task's document):
``_ScheduleAnchor`` (when it was set or re-enabled: a rate counts from there),
``_ScheduleLastFired`` (the slot of the last run started or skipped), ``_ScheduleHealth`` (the
run of identical failures) and ``_ScheduledExecution`` (the last scheduled run, folded into the
health once it ended). All of it is in the store, so a schedule survives restarts; `due_run`
collapses the slots missed while the server was down into one run at start-up.

Exactly once with several `serve` processes: only the holder of the control-plane lease ticks
(api.server.LeaderDuty, the same lease as the reaper), and it records the slot as fired before
starting the run, so a slot is never started twice by one leader nor retried by the next. The
leader lease alone leaves a window: a leader that stalled past the lease's TTL still believes it
leads until its next renewal, and may tick beside its successor. So each slot is also *claimed*
in the store before it fires (`Store.acquire_lease` on `schedule:<task id>`, holder = slot and
runner): a second runner claiming the same slot while the claim lives gets nothing. The claim
lives `CLAIM_SECONDS` (30 s): longer than that window (the 10 s lease TTL), shorter than any
schedule's interval (at least a minute), so the next slot finds it expired.

A slot that comes while the task still has an execution queued or running is skipped, as
DataSync does, and says so in the task's execution log. After
`DEFAULT_FAILURES_BEFORE_DISABLE` (3) consecutive scheduled runs failing with the same ErrorCode
the service disables the schedule (`DisabledBy: SERVICE`, the reason naming the error).
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from api.domain import repository
from api.domain.enums import DISABLED, ENABLED, ScheduleStatus
from api.domain.task import ScheduleDetails, Task, TaskSchedule
from api.errors import ApiError, InvalidRequestException
from api.execution_log import group_name
from api.schedule import (
    ScheduleError,
    ScheduleHealth,
    after_run,
    check_min_interval,
    due_run,
    parse,
)
from api.store import TERMINAL_STATUSES, Store
from api.store_logs import LogStore
from contract import Doc

__all__ = [
    "SCHEDULE_RUNS_PREFIX",
    "ScheduleRunner",
    "apply_schedule",
    "record_schedule_run",
    "schedule_runs",
]

log = logging.getLogger("datasync_local.schedules")

CLAIM_SECONDS = 30.0


def _ts(instant: datetime) -> float:
    return instant.timestamp()


def _dt(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def apply_schedule(task: Task, schedule: Doc, now: float, min_interval: timedelta) -> Task:
    """The task with its schedule set, changed, disabled or (an empty expression) removed."""
    text = str(schedule.get("ScheduleExpression", "")).strip()
    if not text:
        runs = replace(task.runs, anchor=None, last_fired=None)
        return replace(task, schedule=None, schedule_details=None, runs=runs)
    try:
        expression = parse(text)
        check_min_interval(expression, min_interval)
    except ScheduleError as exc:
        raise InvalidRequestException(
            f"Schedule.ScheduleExpression {text!r}: {exc}", "InvalidSchedule"
        ) from None
    new = TaskSchedule(text, ScheduleStatus(schedule.get("Status", ENABLED)))
    if new == task.schedule:
        return task
    if new.status == DISABLED:
        details = ScheduleDetails(now, "USER", "Disabled by the user.")
        return replace(task, schedule=new, schedule_details=details)
    # a rate counts from here; nothing before it is due
    runs = replace(task.runs, anchor=now, last_fired=None, health=ScheduleHealth())
    return replace(task, schedule=new, schedule_details=ScheduleDetails(now), runs=runs)


# store meta keys `metrics:schedule_runs:<TaskArn>` → runs started by the schedule runner
# (`datasync_local_schedule_runs_total` in api.metrics)
SCHEDULE_RUNS_PREFIX = "metrics:schedule_runs:"


def record_schedule_run(store: Store, task_arn: str) -> None:
    """Count one execution started by a task's schedule.

    Called by the schedule runner, which runs in the one leader process of a control plane, so
    the read-then-write here does not race another process."""
    key = SCHEDULE_RUNS_PREFIX + task_arn
    current = store.meta(key)
    store.set_meta(key, str(int(current or 0) + 1))


def schedule_runs(store: Store) -> Iterator[tuple[str, int]]:
    """(TaskArn, executions its schedule started) for every task whose schedule ran."""
    for key, value in store.meta_items(SCHEDULE_RUNS_PREFIX):
        yield key[len(SCHEDULE_RUNS_PREFIX) :], int(value)


class ScheduleRunner:
    def __init__(self, backend: Any, logs: LogStore) -> None:
        self.backend = backend  # api.models.Backend (its handlers start the runs)
        self.store = backend.store
        self.logs = logs
        self.claimer = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"

    def _claim(self, task: Task, slot: datetime) -> bool:
        """Whether this runner may fire `slot` of `task` (no other runner claimed it)."""
        name = "schedule:" + task.task_arn.rsplit("/", 1)[-1]
        holder = f"{int(_ts(slot))}:{self.claimer}"
        return self.store.acquire_lease(name, holder, CLAIM_SECONDS) is not None

    def _say(self, task: Task, when: float, message: str) -> None:
        log.info("%s: %s", task.task_arn, message)
        self.logs.append(
            group_name(task.cloud_watch_log_group_arn),
            task.task_arn.rsplit("/", 1)[-1],
            [(int(when * 1000), message)],
        )

    def tick(self) -> int:
        """Start every due scheduled run; returns how many started."""
        now = self.backend.now()
        started = 0
        for task in repository.every(self.store, Task):
            if not task.scheduled:
                continue
            try:
                folded = self._fold(task, now)
                if folded is None:
                    continue
                started += self._fire(folded, now)
            except Exception:  # one task's trouble must not stop the others' schedules
                log.exception("schedule of %s failed", task.task_arn)
        return started

    def _save(self, task: Task) -> None:
        repository.put(self.store, task)

    def _fold(self, task: Task, now: float) -> Task | None:
        """Fold the last scheduled run's result in: the task as it is now, None if the schedule
        was just disabled."""
        arn = task.runs.scheduled_execution
        if not arn:
            return task
        execution = self.store.execution(arn)
        if execution is not None and execution["Status"] not in TERMINAL_STATUSES:
            return task
        result = (execution or {}).get("Result") or {}
        code = result.get("ErrorCode") if (execution or {}).get("Status") == "ERROR" else None
        health, reason = after_run(
            task.runs.health or ScheduleHealth(), code, result.get("ErrorDetail")
        )
        task = replace(task, runs=replace(task.runs, health=health, scheduled_execution=None))
        if reason is not None:
            assert task.schedule is not None  # only scheduled tasks are folded
            task = replace(
                task,
                schedule=replace(task.schedule, status=DISABLED),
                schedule_details=ScheduleDetails(now, "SERVICE", reason[:8192]),
            )
            self._say(task, now, f"[WARN] Schedule disabled by the service: {reason}")
        self._save(task)
        return None if reason is not None else task

    def _fire(self, task: Task, now: float) -> int:
        assert task.schedule is not None  # only scheduled tasks fire
        expression = parse(task.schedule.schedule_expression)
        anchor = task.runs.anchor or task.creation_time or now
        last = task.runs.last_fired
        slot = due_run(
            expression,
            anchor=_dt(anchor),
            last_fired=None if last is None else _dt(last),
            now=_dt(now),
        )
        if slot is None:
            return 0
        if not self._claim(task, slot):
            log.info("%s: slot %s was claimed by another runner", task.task_arn, slot.isoformat())
            return 0
        task = replace(task, runs=replace(task.runs, last_fired=_ts(slot)))
        running = self.store.executions(task_arn=task.task_arn, active=True)
        if running:
            self._save(task)
            self._say(
                task,
                now,
                f"[INFO] Scheduled run of {slot.isoformat()} skipped: execution "
                f"{running[0]['TaskExecutionArn']} is still {running[0]['Status']}",
            )
            return 0
        self._save(task)  # fired before started: a slot never starts twice
        try:
            arn = self.backend.start_task_execution({"TaskArn": task.task_arn})["TaskExecutionArn"]
        except ApiError as exc:
            self._say(task, now, f"[ERROR] Scheduled run of {slot.isoformat()} not started: {exc}")
            return 0
        record_schedule_run(self.store, task.task_arn)  # datasync_local_schedule_runs_total
        fresh = repository.get(self.store, Task, task.task_arn) or task
        self._save(replace(fresh, runs=replace(fresh.runs, scheduled_execution=arn)))
        log.info("%s: scheduled run %s started (slot %s)", task.task_arn, arn, slot.isoformat())
        return 1
