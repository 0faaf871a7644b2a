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
from api.store import TERMINAL_STATUSES, ItemGroup, Store
from api.workitems import PLAN_TARGET_KEY, WITHDRAWN_KEY, ItemNotFound, WorkItem, get_item
from contract.model import enum_values
from contract.workitems import ItemKind

__all__ = [
    "CREATED_BY",
    "STEP_NAMES",
    "JobView",
    "Stats",
    "StepView",
    "TaskView",
    "aggregate",
    "find_task",
    "job_view",
    "step_indexes",
    "step_tasks",
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


@dataclass(frozen=True)
class Stats:
    """Some tasks summed up: from the store's per-(kind, status, target) groups, so that a job
    or step of 10,000 items is shown without reading its items (or from a few TaskViews)."""

    groups: tuple[ItemGroup, ...]

    @classmethod
    def of_tasks(cls, tasks: Sequence[TaskView]) -> Stats:
        return cls(
            tuple(
                ItemGroup(
                    t.kind.value, t.status, t.target, 1, t.retries, t.started, t.ended, t.updated
                )
                for t in tasks
            )
        )

    def __add__(self, other: Stats) -> Stats:
        return Stats(self.groups + other.groups)

    def of_kind(self, kind: ItemKind) -> Stats:
        return Stats(tuple(g for g in self.groups if g.kind == kind.value and g.items))

    @property
    def count(self) -> int:
        return sum(g.items for g in self.groups)

    @property
    def status(self) -> str | None:
        return aggregate([g.status for g in self.groups if g.items])

    @property
    def counts(self) -> dict[str, int]:
        counted: Counter[str] = Counter()
        for g in self.groups:
            counted[g.status] += g.items
        return {status: counted.get(status, 0) for status in RUN_STATUSES}

    @property
    def retries(self) -> int:
        return sum(g.retries for g in self.groups)

    @property
    def target(self) -> str | None:
        """The one target every task shares (None: none, or not the same)."""
        targets = {g.target for g in self.groups if g.items}
        return targets.pop() if len(targets) == 1 else None

    @property
    def started(self) -> float | None:
        return min((g.started for g in self.groups if g.started is not None), default=None)

    @property
    def ended(self) -> float | None:
        return max((g.ended for g in self.groups if g.ended is not None), default=None)

    @property
    def updated(self) -> float | None:
        return max((g.updated for g in self.groups if g.updated is not None), default=None)


@dataclass(frozen=True)
class StepView:
    step_id: str
    name: str
    stats: Stats  # its tasks summed up (the tasks themselves: `step_tasks`, `find_task`)
    status: str
    created: float

    @property
    def kind(self) -> ItemKind:
        return _STEP_KIND[self.name]

    @property
    def count(self) -> int:
        return self.stats.count

    @property
    def started(self) -> float | None:
        return self.stats.started

    @property
    def ended(self) -> float | None:
        if not self.count or self.status not in _TERMINAL_RUN:
            return None
        return self.stats.ended

    @property
    def updated(self) -> float | None:
        return self.stats.updated

    def summary(self) -> dict[str, Any]:
        return {
            "stepId": self.step_id,
            "name": self.name,
            "lifecycleStatus": "CREATE_COMPLETE",
            "lifecycleStatusMessage": f"{self.count} work item(s)",
            "taskRunStatus": self.status,
            "taskRunStatusCounts": self.stats.counts,
            "taskFailureRetryCount": self.stats.retries,
            "targetTaskRunStatus": self.stats.target,
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


def find_task(store: Store, job: JobView, step: StepView, index: int) -> TaskView | None:
    """One task of a step, read from its one row (GetTask and UpdateTask are O(1) whatever the
    plan's size); item 0 of an execution without items is synthesized. None if there is none."""
    if not job.itemized:
        if step.name == "Prepare" and index == 0:
            return _synthesized_item_zero(job.execution)
        return None
    try:
        item = get_item(store, job.arn, index)
    except ItemNotFound:
        return None
    return TaskView.of(item) if item.kind == step.kind else None


def step_tasks(
    store: Store, job: JobView, step: StepView, after: int | None, limit: int
) -> list[TaskView]:
    """Up to `limit` tasks of a step in index order, after index `after`: one page, read by
    key range (ListTasks)."""
    if not job.itemized:
        zero = _synthesized_item_zero(job.execution)
        wanted = step.name == "Prepare" and (after is None or after < 0) and limit > 0
        return [zero] if wanted else []
    rows = store.items_page(job.arn, step.kind.value, after, limit)
    return [TaskView.of(WorkItem.from_row(row)) for row in rows]


def step_indexes(store: Store, job: JobView, step: StepView) -> list[int]:
    """Every task index of a step (UpdateStep changes them all)."""
    if not job.itemized:
        return []
    return store.item_indexes(job.arn, RUN_STATUSES, (step.kind.value,))


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
    stats: Stats  # every task of the job summed up

    @property
    def arn(self) -> str:
        return str(self.execution["TaskExecutionArn"])

    def step(self, wanted: str) -> StepView | None:
        return next((s for s in self.steps if s.step_id == wanted), None)

    def doc(self, job_id: str) -> dict[str, Any]:
        stats = self.stats
        status = stats.status or "PENDING"
        ended = stats.ended if status in _TERMINAL_RUN else None
        started = stats.started
        return {
            "jobId": job_id,
            "name": self.arn,
            "lifecycleStatus": "CREATE_COMPLETE",
            "lifecycleStatusMessage": f"DataSync status {self.execution['Status']}",
            "priority": 50,
            "createdAt": iso(self.execution["StartTime"]),
            "createdBy": CREATED_BY,
            "updatedAt": iso(stats.updated),
            "startedAt": iso(started if started is not None else self.execution.get("LaunchTime")),
            "endedAt": iso(ended if ended is not None else self.execution.get("EndTime")),
            "taskRunStatus": status,
            # before its plan, the wish kept for it (api.workitems.wish_before_plan)
            "targetTaskRunStatus": stats.target
            if self.itemized
            else self.execution.get(PLAN_TARGET_KEY),
            "taskRunStatusCounts": stats.counts,
            "taskFailureRetryCount": stats.retries,
            "maxRetriesPerTask": None,
            # a suspend wish withdrawn because the execution runs whole says so here
            "description": ". ".join(
                filter(
                    None, (f"DataSync task execution {self.arn}", self.execution.get(WITHDRAWN_KEY))
                )
            ),
        }


def job_view(store: Store, execution: Mapping[str, Any]) -> JobView:
    """The job of one execution with its steps, summed up from one grouped query (O(1) in the
    number of items; the tasks themselves are read by `step_tasks` / `find_task`)."""
    arn = str(execution["TaskExecutionArn"])
    stats = Stats(tuple(store.item_groups(arn)))
    itemized = bool(stats.count)
    prepare = stats.of_kind(ItemKind.PREPARE)
    if not prepare.count:  # no row for item 0: synthesized from the DataSync state
        prepare = Stats.of_tasks([_synthesized_item_zero(execution)])
        stats = stats + prepare
    item_zero_status = prepare.status
    planned = bool(stats.count - prepare.count)
    ended = execution["Status"] in TERMINAL_STATUSES
    remove = execution.get("Options", {}).get("PreserveDeletedFiles") == "REMOVE"
    created = float(execution["StartTime"])
    steps: list[StepView] = []
    for name in STEP_NAMES:
        kind = _STEP_KIND[name]
        mine = stats.of_kind(kind)
        if name == "Remove" and not (remove or mine.count):
            continue
        status = mine.status
        if status is None:  # a step without tasks (see the module docstring)
            if not planned and item_zero_status in _TERMINAL_RUN:
                status = item_zero_status
            elif ended:
                status = "CANCELED"
            else:
                status = "PENDING"
        steps.append(StepView(step_id(arn, name), name, mine, status, created))
    return JobView(execution, tuple(steps), itemized, stats)
