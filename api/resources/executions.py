"""Task executions: start (admitted by `api.scheduler`), describe, list, cancel, and the live
BytesPerSecond update; every change is a compare-and-swap on the store. An execution split into
work items (issue 12) is cancelled item by item, and a new rate reaches every running item's
agent (each gets its share: `api.workitems.rate_share`)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Mapping
from dataclasses import replace
from functools import cached_property
from typing import Any

from api import bucket_configs, workitems
from api.cas import update_execution
from api.domain import repository
from api.domain.execution import Execution
from api.listing import page_by
from api.resources.base import (
    _execution_not_found,
    _filters_key,
    _hex17,
    _invalid,
    _options_error,
)
from api.resources.tasks import TaskHandlers
from api.store import TERMINAL_STATUSES
from contract import Doc
from contract.jobs import InvalidBytesPerSecond, check_bytes_per_second
from engine import InvalidOptionsError, Options

__all__ = ["ExecutionHandlers"]

_WIRE_MEMO_LIMIT = 4096


class _WireMemo:
    """DescribeTaskExecution's response per execution, kept while the store hands out the same
    read-only view (`Store.execution_view` decodes a row again only when its version moved):
    pollers in tight loops pay the typed rendering once per change, not once per request."""

    def __init__(self) -> None:
        self._wires: dict[str, tuple[Mapping[str, Any], Doc]] = {}
        self._lock = threading.Lock()

    def wire(self, arn: str, view: Mapping[str, Any]) -> Doc:
        known = self._wires.get(arn)
        if known is not None and known[0] is view:
            return known[1]
        wire = Execution.from_row(view).to_wire()
        with self._lock:
            if len(self._wires) >= _WIRE_MEMO_LIMIT:
                self._wires.clear()
            self._wires[arn] = (view, wire)
        return wire


class ExecutionHandlers(TaskHandlers):
    # executions -------------------------------------------------------------------------------
    def start_task_execution(self, p: Doc) -> Doc:
        task = self._task(p["TaskArn"])
        self._reject_unsupported_task_members(p)
        base = self._task_options(task.options.to_dict(), task.task_mode.value)
        try:
            options = base.merged(p.get("OverrideOptions"))
        except InvalidOptionsError as exc:
            raise _options_error(exc) from None
        includes = p.get("Includes", list(task.includes))
        excludes = p.get("Excludes", list(task.excludes))
        self._check_filters(includes, excludes)
        key = _filters_key(includes, excludes)
        # this execution's overrides over the task's configs, whose buckets must still be mapped
        report, manifest = bucket_configs.updated(
            task.task_report_config, task.manifest_config, p, self.config.buckets
        )
        bucket_configs.recheck(report, manifest, self.config.buckets)
        admission = self.scheduler.admit(task, options, key)
        agent_arn = admission.agent_arn
        source = self._location(task.source_location_arn)
        destination = self._location(task.destination_location_arn)
        arn = f"{task.task_arn}/execution/exec-{_hex17()}"
        execution = Execution.new(
            arn=arn,
            task_arn=task.task_arn,
            task_mode=task.task_mode.value,
            agent_arn=agent_arn,
            options=options.to_dict(),
            includes=includes,
            excludes=excludes,
            filters_key=key,
            source=source.for_agent(),
            destination=destination.for_agent(),
            queued=admission.queued,
            now=self.now(),
        )
        if report:
            execution = replace(
                execution, task_report_config=dict(report), report_result={"Status": "PENDING"}
            )
        if manifest:
            execution = replace(execution, manifest_config=dict(manifest))
        self.store.add_execution(execution.to_row())
        self._tag(arn, p.get("Tags"))
        repository.put(self.store, task.started(arn))
        self._notify(agent_arn)
        return {"TaskExecutionArn": arn}

    @cached_property
    def _wires(self) -> _WireMemo:
        return _WireMemo()

    def describe_task_execution(self, p: Doc) -> Mapping[str, Any]:
        view = self.store.execution_view(p["TaskExecutionArn"])
        if view is None:
            raise _execution_not_found(p["TaskExecutionArn"])
        return self._wires.wire(p["TaskExecutionArn"], view)

    def list_task_executions(self, p: Doc) -> Doc:
        if "TaskArn" in p:
            self._task(p["TaskArn"])
        found = sorted(
            repository.executions(self.store, task_arn=p.get("TaskArn")),
            key=lambda e: e.task_execution_arn,
        )
        items, token = page_by(found, lambda e: e.task_execution_arn, p)
        return {"TaskExecutions": [e.list_entry() for e in items], "NextToken": token}

    def cancel_task_execution(self, p: Doc) -> Doc:
        def cancel(execution: Execution) -> Execution:
            if execution.status in TERMINAL_STATUSES:
                raise _invalid(
                    f"Task execution {execution.arn} cannot be cancelled in its "
                    f"current status: {execution.status}.",
                    "InvalidExecutionStatus",
                )
            return execution.cancel_requested(self.now())

        changed = update_execution(self.store, p["TaskExecutionArn"], cancel)
        if changed is None:
            raise _execution_not_found(p["TaskExecutionArn"])
        if changed[0].plan:
            # every item is cancelled: those nobody runs at once, running ones by their agents
            # (the reply's control:cancel); the execution ends ERROR / Cancelled once all stop
            with contextlib.suppress(workitems.ConflictEnded):
                workitems.set_target(
                    self.store, p["TaskExecutionArn"], None, "CANCELED", self.now()
                )
        self._notify(changed[0].agent_arn)
        return {}

    def update_task_execution(self, p: Doc) -> Doc:
        changes = p["Options"]
        others = sorted(set(changes) - {"BytesPerSecond"})
        if others:
            raise _invalid(
                f"UpdateTaskExecution can change only Options.BytesPerSecond, not "
                f"{', '.join('Options.' + o for o in others)}.",
                "InvalidOptions",
            )
        if "BytesPerSecond" not in changes:
            raise _invalid("Options.BytesPerSecond is required.", "InvalidOptions")
        try:
            check_bytes_per_second(changes["BytesPerSecond"])
        except InvalidBytesPerSecond as exc:
            raise _invalid(str(exc), "InvalidOptions") from None

        def set_rate(execution: Execution) -> Execution:
            try:
                options = Options(dict(execution.options), execution.task_mode.value)
                merged = options.merged(changes)
            except InvalidOptionsError as exc:
                raise _options_error(exc) from None
            if execution.status in TERMINAL_STATUSES or execution.status == "CANCELLING":
                raise _invalid(
                    f"Task execution {execution.arn} is {execution.status}: only a queued "
                    "or running execution can be updated.",
                    "InvalidExecutionStatus",
                )
            return execution.rate_set(merged.to_dict())

        changed = update_execution(self.store, p["TaskExecutionArn"], set_rate)
        if changed is None:
            raise _execution_not_found(p["TaskExecutionArn"])
        self._notify(changed[0].agent_arn)
        if changed[0].plan:  # each running item's share changed: its agent hears now
            items = workitems.list_items(self.store, p["TaskExecutionArn"])
            for agent in sorted({i.agent_arn for i in items if i.running and i.agent_arn}):
                self._notify(agent)
        return {}
