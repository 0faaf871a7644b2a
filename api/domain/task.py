"""A task: what to copy from which location to which, how, and on what schedule.

Its Status is not a field: it is the scheduler's reading of its agents and executions
(`api.scheduler.Scheduler.task_status`). Beside the API's members a task keeps its schedule's
bookkeeping (`ScheduleRuns`, `api.schedule_runner`), in the stored document under the
underscored names of earlier releases, never on the wire.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

from api.domain.enums import ENABLED, ScheduleStatus, TaskMode, TaskStatus
from api.schedule import ScheduleHealth
from engine import Options

__all__ = ["ScheduleDetails", "ScheduleRuns", "Task", "TaskSchedule"]

FilterRules = tuple[Mapping[str, Any], ...]


@dataclass(frozen=True, slots=True)
class TaskSchedule:
    """The task's Schedule as DataSync shows it."""

    schedule_expression: str
    status: ScheduleStatus = ENABLED

    def to_wire(self) -> dict[str, str]:
        return {"ScheduleExpression": self.schedule_expression, "Status": self.status.value}


@dataclass(frozen=True, slots=True)
class ScheduleDetails:
    """When the schedule's Status last changed, and who disabled it (USER or SERVICE) why."""

    status_update_time: float
    disabled_by: str | None = None
    disabled_reason: str | None = None

    def to_wire(self) -> dict[str, Any]:
        wire: dict[str, Any] = {"StatusUpdateTime": self.status_update_time}
        if self.disabled_by is not None:
            wire["DisabledBy"] = self.disabled_by
        if self.disabled_reason is not None:
            wire["DisabledReason"] = self.disabled_reason
        return wire


@dataclass(frozen=True, slots=True)
class ScheduleRuns:
    """The schedule's bookkeeping: `anchor` (set or re-enabled: a rate counts from there),
    `last_fired` (the slot of the last run started or skipped), `health` (the run of identical
    failures; None: never set) and `scheduled_execution` (the last scheduled run, folded into
    the health once it ended)."""

    anchor: float | None = None
    last_fired: float | None = None
    health: ScheduleHealth | None = None
    scheduled_execution: str | None = None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> ScheduleRuns:
        raw = row.get("_ScheduleHealth")
        health = None
        if isinstance(raw, Mapping):
            code = raw.get("ErrorCode")
            health = ScheduleHealth(
                None if code is None else str(code), int(raw.get("Consecutive", 0))
            )
        anchor, fired = row.get("_ScheduleAnchor"), row.get("_ScheduleLastFired")
        return cls(
            anchor=None if anchor is None else float(anchor),
            last_fired=None if fired is None else float(fired),
            health=health,
            scheduled_execution=row.get("_ScheduledExecution") or None,
        )

    def to_row(self) -> dict[str, Any]:
        row: dict[str, Any] = {}
        if self.anchor is not None:
            row["_ScheduleAnchor"] = self.anchor
        if self.last_fired is not None:
            row["_ScheduleLastFired"] = self.last_fired
        if self.health is not None:
            fresh = self.health == ScheduleHealth()
            row["_ScheduleHealth"] = (
                {}
                if fresh
                else {"ErrorCode": self.health.error_code, "Consecutive": self.health.consecutive}
            )
        if self.scheduled_execution is not None:
            row["_ScheduledExecution"] = self.scheduled_execution
        return row


@dataclass(frozen=True, slots=True)
class Task:
    """One task. `options` are the task's own (validated against the model; an execution
    merges its OverrideOptions over them); the configs are as `api.bucket_configs` checked
    them, None when the task has none."""

    task_arn: str
    creation_time: float
    source_location_arn: str
    destination_location_arn: str
    options: Options
    task_mode: TaskMode
    includes: FilterRules = ()
    excludes: FilterRules = ()
    name: str = ""
    cloud_watch_log_group_arn: str | None = None
    task_report_config: Mapping[str, Any] | None = None
    manifest_config: Mapping[str, Any] | None = None
    current_task_execution_arn: str | None = None
    schedule: TaskSchedule | None = None
    schedule_details: ScheduleDetails | None = None
    runs: ScheduleRuns = field(default_factory=ScheduleRuns)

    KIND: ClassVar[str] = "task"

    @property
    def arn(self) -> str:
        return self.task_arn

    @property
    def location_arns(self) -> tuple[str, str]:
        return self.source_location_arn, self.destination_location_arn

    @property
    def scheduled(self) -> bool:
        """Whether its schedule starts runs (set and ENABLED)."""
        return self.schedule is not None and self.schedule.status == ENABLED

    def started(self, execution_arn: str) -> Task:
        return replace(self, current_task_execution_arn=execution_arn)

    # the store boundary -------------------------------------------------------------------------
    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Task:
        mode = TaskMode(row.get("TaskMode", "BASIC"))
        schedule = row.get("Schedule")
        details = row.get("ScheduleDetails")
        return cls(
            task_arn=str(row["TaskArn"]),
            creation_time=float(row["CreationTime"]),
            source_location_arn=str(row["SourceLocationArn"]),
            destination_location_arn=str(row["DestinationLocationArn"]),
            options=Options(row.get("Options") or {}, mode.value),
            task_mode=mode,
            includes=tuple(row.get("Includes") or ()),
            excludes=tuple(row.get("Excludes") or ()),
            name=str(row.get("Name") or ""),
            cloud_watch_log_group_arn=row.get("CloudWatchLogGroupArn"),
            task_report_config=row.get("TaskReportConfig") or None,
            manifest_config=row.get("ManifestConfig") or None,
            current_task_execution_arn=row.get("CurrentTaskExecutionArn"),
            schedule=(
                TaskSchedule(
                    str(schedule["ScheduleExpression"]),
                    ScheduleStatus(schedule.get("Status", ENABLED)),
                )
                if schedule
                else None
            ),
            schedule_details=(
                ScheduleDetails(
                    float(details["StatusUpdateTime"]),
                    details.get("DisabledBy"),
                    details.get("DisabledReason"),
                )
                if details
                else None
            ),
            runs=ScheduleRuns.from_row(row),
        )

    def to_row(self) -> dict[str, Any]:
        row = self._members()
        row.update(self.runs.to_row())
        return row

    def _members(self) -> dict[str, Any]:
        """The API's members (the stored document's and the wire's, but for Status)."""
        members: dict[str, Any] = {
            "TaskArn": self.task_arn,
            "CreationTime": self.creation_time,
            "SourceLocationArn": self.source_location_arn,
            "DestinationLocationArn": self.destination_location_arn,
            "Options": self.options.to_dict(),
            "Includes": [dict(rule) for rule in self.includes],
            "Excludes": [dict(rule) for rule in self.excludes],
            "TaskMode": self.task_mode.value,
        }
        optional: dict[str, Any] = {
            "Name": self.name or None,
            "CloudWatchLogGroupArn": self.cloud_watch_log_group_arn,
            "TaskReportConfig": None
            if not self.task_report_config
            else dict(self.task_report_config),
            "ManifestConfig": None if not self.manifest_config else dict(self.manifest_config),
            "CurrentTaskExecutionArn": self.current_task_execution_arn,
            "Schedule": None if self.schedule is None else self.schedule.to_wire(),
            "ScheduleDetails": (
                None if self.schedule_details is None else self.schedule_details.to_wire()
            ),
        }
        members.update((k, v) for k, v in optional.items() if v is not None)
        return members

    # the wire -----------------------------------------------------------------------------------
    def to_wire(self, status: TaskStatus) -> dict[str, Any]:
        """DescribeTask's response."""
        return {**self._members(), "Status": status.value}

    def list_entry(self, status: TaskStatus) -> dict[str, Any]:
        """ListTasks' TaskListEntry."""
        entry = {"TaskArn": self.task_arn, "Status": status.value, "TaskMode": self.task_mode.value}
        if self.name:
            entry["Name"] = self.name
        return entry
