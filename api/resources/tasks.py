"""Tasks: create (two locations sharing an agent), describe with the scheduler's TaskStatus,
update, list, delete; the Options and filter checks executions reuse. Tasks are
`api.domain.task.Task` values."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from typing import Any

from api import bucket_configs
from api.domain import repository
from api.domain.enums import TaskMode, TaskStatus
from api.domain.task import Task
from api.listing import matches, page_by
from api.resources.base import (
    _hex17,
    _invalid,
    _options_error,
)
from api.resources.locations import LocationHandlers
from api.schedule_runner import apply_schedule
from contract import Doc
from engine import FilterRules, InvalidOptionsError, Options

__all__ = ["TaskHandlers"]


class TaskHandlers(LocationHandlers):
    # tasks ------------------------------------------------------------------------------------
    def _task_options(self, raw: Doc | None, task_mode: str) -> Options:
        try:
            return Options.create(raw, task_mode=task_mode)
        except InvalidOptionsError as exc:
            raise _options_error(exc) from None

    def _check_filters(self, includes: Any, excludes: Any) -> None:
        try:
            FilterRules.from_rules(includes or None, excludes or None)
        except InvalidOptionsError as exc:
            raise _options_error(exc) from None

    def _reject_unsupported_task_members(self, p: Doc) -> None:
        """Every DataSync task member is supported now (issue 13); kept for the callers."""

    def _schedule(self, task: Task, p: Doc) -> Task:
        if "Schedule" not in p:
            return task
        minimum = timedelta(seconds=self.config.min_schedule_interval)
        return apply_schedule(task, p["Schedule"], self.now(), minimum)

    def _task(self, arn: str) -> Task:
        task = repository.get(self.store, Task, arn)
        if task is None:
            raise _invalid(f"Task {arn} is not found.", "ResourceNotFound")
        return task

    def create_task(self, p: Doc) -> Doc:
        source = self._location(p["SourceLocationArn"])
        destination = self._location(p["DestinationLocationArn"])
        common = [a for a in source.agent_arns if a in destination.agent_arns]
        if not common:  # the scheduler picks among these for each execution
            raise _invalid(
                "SourceLocationArn and DestinationLocationArn must be served by a common agent: "
                "this server moves data between directories of one agent's host.",
                "NoCommonAgent",
            )
        self._reject_unsupported_task_members(p)
        mode = TaskMode(p.get("TaskMode", "BASIC"))
        options = self._task_options(p.get("Options"), mode.value)
        self._check_filters(p.get("Includes"), p.get("Excludes"))
        report, manifest = bucket_configs.updated(None, None, p, self.config.buckets)
        task = Task(
            task_arn=self.arn(f"task/task-{_hex17()}"),
            creation_time=self.now(),
            source_location_arn=source.location_arn,
            destination_location_arn=destination.location_arn,
            options=options,
            task_mode=mode,
            includes=tuple(p.get("Includes", ())),
            excludes=tuple(p.get("Excludes", ())),
            name=p.get("Name", ""),
            cloud_watch_log_group_arn=p.get("CloudWatchLogGroupArn"),
            task_report_config=report,
            manifest_config=manifest,
        )
        task = self._schedule(task, p)
        repository.put(self.store, task)
        self._tag(task.task_arn, p.get("Tags"))
        return {"TaskArn": task.task_arn}

    def task_status(self, task: Task) -> TaskStatus:
        return self.scheduler.task_status(task)

    def describe_task(self, p: Doc) -> Doc:
        task = self._task(p["TaskArn"])
        return task.to_wire(self.task_status(task))

    def update_task(self, p: Doc) -> Doc:
        task = self._task(p["TaskArn"])
        self._reject_unsupported_task_members(p)
        options = task.options
        if "Options" in p:
            try:
                options = self._task_options(task.options.to_dict(), task.task_mode.value).merged(
                    p["Options"]
                )
            except InvalidOptionsError as exc:
                raise _options_error(exc) from None
        includes = p.get("Includes", list(task.includes))
        excludes = p.get("Excludes", list(task.excludes))
        self._check_filters(includes, excludes)
        report, manifest = bucket_configs.updated(
            task.task_report_config, task.manifest_config, p, self.config.buckets
        )
        task = replace(
            task,
            options=options,
            includes=tuple(includes),
            excludes=tuple(excludes),
            task_report_config=report,
            manifest_config=manifest,
            name=p.get("Name", task.name),
            cloud_watch_log_group_arn=p.get(
                "CloudWatchLogGroupArn", task.cloud_watch_log_group_arn
            ),
        )
        repository.put(self.store, self._schedule(task, p))
        return {}

    def delete_task(self, p: Doc) -> Doc:
        arn = self._task(p["TaskArn"]).task_arn
        if self.store.executions(task_arn=arn, active=True):
            raise _invalid(
                f"Task {arn} has an execution in progress; cancel it first.",
                "TaskExecutionInProgress",
            )
        self.store.remove_executions(arn)
        self.store.remove(arn)
        return {}

    def list_tasks(self, p: Doc) -> Doc:
        filters = p.get("Filters", [])

        def attributes(task: Task) -> Callable[[str], list[Any]]:
            values: dict[str, list[Any]] = {
                "LocationId": list(task.location_arns),
                "CreationTime": [task.creation_time],
            }
            return lambda name: values[name]

        found = [t for t in repository.every(self.store, Task) if matches(filters, attributes(t))]
        items, token = page_by(found, lambda t: t.task_arn, p)
        return {"Tasks": [t.list_entry(self.task_status(t)) for t in items], "NextToken": token}
