"""Task schedules, wired: `apply_schedule` takes CreateTask/UpdateTask's `Schedule` into the task
document, `ScheduleRunner.tick` starts the runs that are due (api/schedule.py decides which).

State kept in the task document beside the API's `Schedule` and `ScheduleDetails`:
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
from datetime import UTC, datetime, timedelta
from typing import Any

from api.errors import ApiError, InvalidRequestException
from api.execution_log import group_name
from api.metrics import record_schedule_run
from api.schedule import (
    ScheduleError,
    ScheduleHealth,
    after_run,
    check_min_interval,
    due_run,
    parse,
)
from api.store import TERMINAL_STATUSES
from api.store_logs import LogStore
from contract import Doc

__all__ = ["ScheduleRunner", "apply_schedule"]

log = logging.getLogger("datasync_local.schedules")

CLAIM_SECONDS = 30.0


def _ts(instant: datetime) -> float:
    return instant.timestamp()


def _dt(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def apply_schedule(task: Doc, schedule: Doc, now: float, min_interval: timedelta) -> None:
    """Set, change, disable or (with an empty expression) remove the task's schedule."""
    text = str(schedule.get("ScheduleExpression", "")).strip()
    if not text:
        for key in ("Schedule", "ScheduleDetails", "_ScheduleAnchor", "_ScheduleLastFired"):
            task.pop(key, None)
        return
    try:
        expression = parse(text)
        check_min_interval(expression, min_interval)
    except ScheduleError as exc:
        raise InvalidRequestException(
            f"Schedule.ScheduleExpression {text!r}: {exc}", "InvalidSchedule"
        ) from None
    status = str(schedule.get("Status", "ENABLED"))
    old = task.get("Schedule") or {}
    changed = old.get("ScheduleExpression") != text or old.get("Status") != status
    task["Schedule"] = {"ScheduleExpression": text, "Status": status}
    if not changed:
        return
    details: Doc = {"StatusUpdateTime": now}
    if status == "DISABLED":
        details.update(DisabledBy="USER", DisabledReason="Disabled by the user.")
    else:
        task["_ScheduleAnchor"] = now  # a rate counts from here; nothing before it is due
        task.pop("_ScheduleLastFired", None)
        task["_ScheduleHealth"] = {}
    task["ScheduleDetails"] = details


class ScheduleRunner:
    def __init__(self, backend: Any, logs: LogStore) -> None:
        self.backend = backend  # api.models.Backend (its handlers start the runs)
        self.store = backend.store
        self.logs = logs
        self.claimer = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"

    def _claim(self, task: Doc, slot: datetime) -> bool:
        """Whether this runner may fire `slot` of `task` (no other runner claimed it)."""
        name = "schedule:" + str(task["TaskArn"]).rsplit("/", 1)[-1]
        holder = f"{int(_ts(slot))}:{self.claimer}"
        return self.store.acquire_lease(name, holder, CLAIM_SECONDS) is not None

    def _say(self, task: Doc, when: float, message: str) -> None:
        log.info("%s: %s", task["TaskArn"], message)
        self.logs.append(
            group_name(task.get("CloudWatchLogGroupArn")),
            task["TaskArn"].rsplit("/", 1)[-1],
            [(int(when * 1000), message)],
        )

    def tick(self) -> int:
        """Start every due scheduled run; returns how many started."""
        now = self.backend.now()
        started = 0
        for task in self.store.all("task"):
            schedule = task.get("Schedule") or {}
            if schedule.get("Status") != "ENABLED":
                continue
            try:
                if self._fold(task, now):
                    continue
                started += self._fire(task, now)
            except Exception:  # one task's trouble must not stop the others' schedules
                log.exception("schedule of %s failed", task["TaskArn"])
        return started

    def _save(self, task: Doc) -> None:
        self.store.put("task", task["TaskArn"], task["CreationTime"], task)

    def _fold(self, task: Doc, now: float) -> bool:
        """Fold the last scheduled run's result in; True if the schedule was just disabled."""
        arn = task.get("_ScheduledExecution")
        if not arn:
            return False
        execution = self.store.execution(arn)
        if execution is not None and execution["Status"] not in TERMINAL_STATUSES:
            return False
        result = (execution or {}).get("Result") or {}
        code = result.get("ErrorCode") if (execution or {}).get("Status") == "ERROR" else None
        raw = task.get("_ScheduleHealth") or {}
        health = ScheduleHealth(raw.get("ErrorCode"), int(raw.get("Consecutive", 0)))
        health, reason = after_run(health, code, result.get("ErrorDetail"))
        task["_ScheduleHealth"] = {
            "ErrorCode": health.error_code,
            "Consecutive": health.consecutive,
        }
        task.pop("_ScheduledExecution", None)
        if reason is not None:
            task["Schedule"]["Status"] = "DISABLED"
            task["ScheduleDetails"] = {
                "StatusUpdateTime": now,
                "DisabledBy": "SERVICE",
                "DisabledReason": reason[:8192],
            }
            self._say(task, now, f"[WARN] Schedule disabled by the service: {reason}")
        self._save(task)
        return reason is not None

    def _fire(self, task: Doc, now: float) -> int:
        expression = parse(task["Schedule"]["ScheduleExpression"])
        anchor = float(task.get("_ScheduleAnchor") or task.get("CreationTime") or now)
        last = task.get("_ScheduleLastFired")
        slot = due_run(
            expression,
            anchor=_dt(anchor),
            last_fired=None if last is None else _dt(float(last)),
            now=_dt(now),
        )
        if slot is None:
            return 0
        if not self._claim(task, slot):
            log.info("%s: slot %s was claimed by another runner", task["TaskArn"], slot.isoformat())
            return 0
        task["_ScheduleLastFired"] = _ts(slot)
        running = self.store.executions(task_arn=task["TaskArn"], active=True)
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
            arn = self.backend.start_task_execution({"TaskArn": task["TaskArn"]})[
                "TaskExecutionArn"
            ]
        except ApiError as exc:
            self._say(task, now, f"[ERROR] Scheduled run of {slot.isoformat()} not started: {exc}")
            return 0
        record_schedule_run(self.store, task["TaskArn"])  # datasync_local_schedule_runs_total
        fresh = self.store.get("task", task["TaskArn"]) or task
        fresh["_ScheduledExecution"] = arn
        self._save(fresh)
        log.info("%s: scheduled run %s started (slot %s)", task["TaskArn"], arn, slot.isoformat())
        return 1
