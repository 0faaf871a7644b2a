"""Tasks: create (two locations sharing an agent), describe with the scheduler's TaskStatus,
update, list, delete; the Options and filter checks executions reuse."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from api import bucket_configs
from api.listing import matches, page
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

    def _schedule(self, task: Doc, p: Doc) -> None:
        if "Schedule" in p:
            minimum = timedelta(seconds=self.config.min_schedule_interval)
            apply_schedule(task, p["Schedule"], self.now(), minimum)

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
        mode = p.get("TaskMode", "BASIC")
        options = self._task_options(p.get("Options"), mode)
        self._check_filters(p.get("Includes"), p.get("Excludes"))
        arn = self.arn(f"task/task-{_hex17()}")
        now = self.now()
        doc: Doc = {
            "TaskArn": arn,
            "Name": p.get("Name", ""),
            "SourceLocationArn": source.location_arn,
            "DestinationLocationArn": destination.location_arn,
            "Options": options.to_dict(),
            "Includes": p.get("Includes", []),
            "Excludes": p.get("Excludes", []),
            "TaskMode": mode,
            "CreationTime": now,
        }
        if "CloudWatchLogGroupArn" in p:
            doc["CloudWatchLogGroupArn"] = p["CloudWatchLogGroupArn"]
        bucket_configs.updated(doc, p, self.config.buckets)
        self._schedule(doc, p)
        if not doc["Name"]:
            del doc["Name"]
        self.store.put("task", arn, now, doc)
        self._tag(arn, p.get("Tags"))
        return {"TaskArn": arn}

    def task_status(self, task: Doc) -> str:
        return self.scheduler.task_status(task)

    def describe_task(self, p: Doc) -> Doc:
        task = self._get("task", p["TaskArn"], "Task")
        return {**task, "Status": self.task_status(task)}

    def update_task(self, p: Doc) -> Doc:
        task = self._get("task", p["TaskArn"], "Task")
        self._reject_unsupported_task_members(p)
        if "Options" in p:
            current = self._task_options(task["Options"], task["TaskMode"])
            try:
                task["Options"] = current.merged(p["Options"]).to_dict()
            except InvalidOptionsError as exc:
                raise _options_error(exc) from None
        includes = p.get("Includes", task["Includes"])
        excludes = p.get("Excludes", task["Excludes"])
        self._check_filters(includes, excludes)
        task.update(Includes=includes, Excludes=excludes)
        bucket_configs.updated(task, p, self.config.buckets)
        self._schedule(task, p)
        for name in ("Name", "CloudWatchLogGroupArn"):
            if name in p:
                task[name] = p[name]
        self.store.put("task", task["TaskArn"], task["CreationTime"], task)
        return {}

    def delete_task(self, p: Doc) -> Doc:
        task = self._get("task", p["TaskArn"], "Task")
        if self.store.executions(task_arn=task["TaskArn"], active=True):
            raise _invalid(
                f"Task {task['TaskArn']} has an execution in progress; cancel it first.",
                "TaskExecutionInProgress",
            )
        self.store.remove_executions(task["TaskArn"])
        self.store.remove(task["TaskArn"])
        return {}

    def list_tasks(self, p: Doc) -> Doc:
        filters = p.get("Filters", [])

        def attributes(doc: Doc) -> Callable[[str], list[Any]]:
            return lambda name: {
                "LocationId": [doc["SourceLocationArn"], doc["DestinationLocationArn"]],
                "CreationTime": [doc["CreationTime"]],
            }[name]

        found = [t for t in self.store.all("task") if matches(filters, attributes(t))]
        items, token = page(found, "TaskArn", p)
        return {"Tasks": [{**t, "Status": self.task_status(t)} for t in items], "NextToken": token}
