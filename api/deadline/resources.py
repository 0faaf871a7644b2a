"""How this control plane looks as one Deadline Cloud farm: the read model of the routes.

    farm   this control plane (one; its ID is made once and kept in the store: api.deadline.ids)
    queue  a DataSync task            displayName = TaskArn, status SCHEDULING while it has an
                                      unfinished execution, else IDLE
    job    a task execution           name = TaskExecutionArn
    steps  "Prepare"   item 0: the claiming agent lists the source and plans the split
           "Transfer"  the TRANSFER work items (the tree's parts)
           "Remove"    the REMOVE item, when the task's PreserveDeletedFiles is REMOVE
    task   a work item                parameters = {"path": {"path": REL}}, REL = its path in
                                      the source location ("." = the whole tree)

Statuses are the items' own (api.workitems): a task's `runStatus`/`targetRunStatus`,
`failureRetryCount`, `startedAt`/`endedAt` are its item's columns. A step's or job's
`taskRunStatus` is the most pressing of its tasks' by `_PRECEDENCE` (anything running, then what
will run, then what waits for an operator, then what waits for other items, then the failures,
then success), its counts are the counts of its tasks, and its target is the one target all its
tasks share (else none).

Two cases have no item rows to show, and are rendered from the execution itself:
- an execution with no items at all (not planned yet, a tree too small to split, or one started
  before work items existed): item 0 is synthesized from the DataSync status;
- a step without tasks: before planning it is PENDING; when the execution ran in item 0 alone (a
  small tree, no plan: workitems.md) it shows item 0's status; a step the execution ended before
  reaching (Remove after a failed transfer) is CANCELED.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from api.deadline.ids import step_id, task_id
from api.deadline.wire import iso
from api.store import TERMINAL_STATUSES, Store
from api.workitems import PLAN_TARGET_KEY, ItemNotFound, WorkItem, get_item, list_items
from contract.model import enum_values
from contract.workitems import ItemKind

__all__ = [
    "CREATED_BY",
    "STEP_NAMES",
    "JobView",
    "StepView",
    "TaskView",
    "aggregate",
    "job_view",
    "one_task",
    "task_doc",
]

CREATED_BY = "datasync-local"
STEP_NAMES = ("Prepare", "Transfer", "Remove")
_STEP_KIND = {"Prepare": ItemKind.PREPARE, "Transfer": ItemKind.TRANSFER, "Remove": ItemKind.REMOVE}

RUN_STATUSES = enum_values("TaskRunStatus", "deadline")
_PRECEDENCE = (
    "RUNNING",
    "INTERRUPTING",
    "STARTING",
    "ASSIGNED",
    "SCHEDULED",
    "READY",
    "SUSPENDED",  # before PENDING: a REMOVE item waiting on suspended items waits on them
    "PENDING",
    "FAILED",
    "NOT_COMPATIBLE",
    "CANCELED",
    "SUCCEEDED",
)
_TERMINAL_RUN = ("SUCCEEDED", "FAILED", "CANCELED", "NOT_COMPATIBLE")
assert set(_PRECEDENCE) == set(RUN_STATUSES), "the deadline model's TaskRunStatus changed"


@dataclass(frozen=True)
class TaskView:
    """One work item as a Deadline task."""

    index: int
    kind: ItemKind
    path: str  # parameters.path.path
    status: str
    target: str | None
    started: float | None
    ended: float | None
    retries: int
    updated: float | None

    @classmethod
    def of(cls, item: WorkItem) -> TaskView:
        return cls(
            item.index,
            item.kind,
            item.scope.parameter_path if item.scope is not None else ".",
            str(item.status),
            None if item.target is None else str(item.target),
            item.started_at,
            item.ended_at,
            item.failure_retry_count,
            item.updated_at,
        )


def aggregate(statuses: Sequence[str]) -> str | None:
    """The most pressing of `statuses` (None for none)."""
    present = set(statuses)
    return next((s for s in _PRECEDENCE if s in present), None)


def _counts(tasks: Sequence[TaskView]) -> dict[str, int]:
    counted = Counter(t.status for t in tasks)
    return {status: counted.get(status, 0) for status in RUN_STATUSES}


def _shared_target(tasks: Sequence[TaskView]) -> str | None:
    targets = {t.target for t in tasks}
    return targets.pop() if len(targets) == 1 and tasks else None


@dataclass(frozen=True)
class StepView:
    step_id: str
    name: str
    tasks: tuple[TaskView, ...]
    status: str
    created: float

    @property
    def started(self) -> float | None:
        return min((t.started for t in self.tasks if t.started is not None), default=None)

    @property
    def ended(self) -> float | None:
        if not self.tasks or self.status not in _TERMINAL_RUN:
            return None
        return max((t.ended for t in self.tasks if t.ended is not None), default=None)

    @property
    def updated(self) -> float | None:
        return max((t.updated for t in self.tasks if t.updated is not None), default=None)

    def task(self, index: int) -> TaskView | None:
        return next((t for t in self.tasks if t.index == index), None)

    def summary(self) -> dict[str, Any]:
        return {
            "stepId": self.step_id,
            "name": self.name,
            "lifecycleStatus": "CREATE_COMPLETE",
            "lifecycleStatusMessage": f"{len(self.tasks)} work item(s)",
            "taskRunStatus": self.status,
            "taskRunStatusCounts": _counts(self.tasks),
            "taskFailureRetryCount": sum(t.retries for t in self.tasks),
            "targetTaskRunStatus": _shared_target(self.tasks),
            "createdAt": iso(self.created),
            "createdBy": CREATED_BY,
            "updatedAt": iso(self.updated),
            "startedAt": iso(self.started),
            "endedAt": iso(self.ended),
            "dependencyCounts": {
                "dependenciesResolved": 0,
                "dependenciesUnresolved": 0,
                "consumersResolved": 0,
                "consumersUnresolved": 0,
            },
        }

    def detail(self) -> dict[str, Any]:
        out = self.summary()
        out["parameterSpace"] = {"parameters": [{"name": "path", "type": "PATH"}]}
        out["description"] = _STEP_DESCRIPTIONS[self.name]
        return out

    def task_doc(self, task: TaskView) -> dict[str, Any]:
        return task_doc(self.step_id, self.created, task)


def task_doc(step: str, created: float, task: TaskView) -> dict[str, Any]:
    """GetTask's document (and ListTasks' summaries, which drop `parameters`' siblings)."""
    return {
        "taskId": task_id(step, task.index),
        "createdAt": iso(created),
        "createdBy": CREATED_BY,
        "runStatus": task.status,
        "targetRunStatus": task.target,
        "failureRetryCount": task.retries,
        "startedAt": iso(task.started),
        "endedAt": iso(task.ended),
        "updatedAt": iso(task.updated),
        "parameters": {"path": {"path": task.path}},
    }


def one_task(
    store: Store, execution: Mapping[str, Any], wanted_step: str, index: int
) -> TaskView | None:
    """One task read from its one row, for GetTask (polled: a plan of thousands of items need
    not be decoded for it). None when that step has no such item row; the caller then falls
    back to `job_view` (which also covers item 0 synthesized for an execution without items)."""
    arn = str(execution["TaskExecutionArn"])
    name = next((n for n in STEP_NAMES if step_id(arn, n) == wanted_step), None)
    if name is None:
        return None
    try:
        item = get_item(store, arn, index)
    except ItemNotFound:
        return None
    return TaskView.of(item) if item.kind == _STEP_KIND[name] else None


_STEP_DESCRIPTIONS = {
    "Prepare": "Item 0: list the source and plan the work items.",
    "Transfer": "The work items: each copies one part of the source tree.",
    "Remove": "Delete destination files absent from the source, after every item succeeded.",
}


def _synthesized_item_zero(execution: Mapping[str, Any]) -> TaskView:
    """Item 0 of an execution that has no item rows, from its DataSync state."""
    status = execution["Status"]
    job_status = execution.get("Job", {}).get("status")
    if status == "SUCCESS":
        run = "SUCCEEDED"
    elif status == "ERROR":
        cancelled = execution.get("Result", {}).get("ErrorCode") == "Cancelled"
        run = "CANCELED" if cancelled else "FAILED"
    elif status == "CANCELLING":
        run = "INTERRUPTING"
    elif status == "QUEUED" or job_status == "QUEUED":
        run = "READY"
    elif status == "LAUNCHING":
        run = "STARTING"
    else:
        run = "RUNNING"
    history = execution.get("History") or [[status, execution["StartTime"]]]
    return TaskView(
        0,
        ItemKind.PREPARE,
        ".",
        run,
        None,
        execution.get("LaunchTime"),
        execution.get("EndTime"),
        0,
        float(history[-1][1]),
    )


@dataclass(frozen=True)
class JobView:
    execution: Mapping[str, Any]
    steps: tuple[StepView, ...]
    itemized: bool  # False: no item rows (not planned yet, or no plan): item 0 is synthesized

    @property
    def arn(self) -> str:
        return str(self.execution["TaskExecutionArn"])

    @property
    def tasks(self) -> list[TaskView]:
        return [t for s in self.steps for t in s.tasks]

    def step(self, wanted: str) -> StepView | None:
        return next((s for s in self.steps if s.step_id == wanted), None)

    def doc(self, job_id: str) -> dict[str, Any]:
        tasks = self.tasks
        status = aggregate([t.status for t in tasks]) or "PENDING"
        started = min((t.started for t in tasks if t.started is not None), default=None)
        ended = None
        if status in _TERMINAL_RUN:
            ended = max((t.ended for t in tasks if t.ended is not None), default=None)
        updated = max((t.updated for t in tasks if t.updated is not None), default=None)
        return {
            "jobId": job_id,
            "name": self.arn,
            "lifecycleStatus": "CREATE_COMPLETE",
            "lifecycleStatusMessage": f"DataSync status {self.execution['Status']}",
            "priority": 50,
            "createdAt": iso(self.execution["StartTime"]),
            "createdBy": CREATED_BY,
            "updatedAt": iso(updated),
            "startedAt": iso(started if started is not None else self.execution.get("LaunchTime")),
            "endedAt": iso(ended if ended is not None else self.execution.get("EndTime")),
            "taskRunStatus": status,
            # before its plan, the wish kept for it (api.workitems.wish_before_plan)
            "targetTaskRunStatus": _shared_target(tasks)
            if self.itemized
            else self.execution.get(PLAN_TARGET_KEY),
            "taskRunStatusCounts": _counts(tasks),
            "taskFailureRetryCount": sum(t.retries for t in tasks),
            "maxRetriesPerTask": None,
            "description": f"DataSync task execution {self.arn}",
        }


def job_view(store: Store, execution: Mapping[str, Any]) -> JobView:
    """The job of one execution, with its steps and their tasks, read now."""
    arn = str(execution["TaskExecutionArn"])
    items = [TaskView.of(i) for i in list_items(store, arn)]
    itemized = bool(items)
    if not any(t.index == 0 for t in items):
        items.insert(0, _synthesized_item_zero(execution))
    item_zero = next(t for t in items if t.index == 0)
    planned = any(t.index != 0 for t in items)
    ended = execution["Status"] in TERMINAL_STATUSES
    remove = execution.get("Options", {}).get("PreserveDeletedFiles") == "REMOVE"
    created = float(execution["StartTime"])
    steps: list[StepView] = []
    for name in STEP_NAMES:
        kind = _STEP_KIND[name]
        tasks = tuple(sorted((t for t in items if t.kind == kind), key=lambda t: t.index))
        if name == "Remove" and not (remove or tasks):
            continue
        status = aggregate([t.status for t in tasks])
        if status is None:  # a step without tasks (see the module docstring)
            if not planned and item_zero.status in _TERMINAL_RUN:
                status = item_zero.status
            elif ended:
                status = "CANCELED"
            else:
                status = "PENDING"
        steps.append(StepView(step_id(arn, name), name, tasks, status, created))
    return JobView(execution, tuple(steps), itemized)
