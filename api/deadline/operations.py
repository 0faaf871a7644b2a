"""The thirteen Deadline operations this control plane offers, over the store and api.workitems.

Each handler takes the validated parameters (api.deadline.wire) and returns the output document.
Resolution walks the hierarchy the IDs name, checking each link, so an ID that exists but under
another parent is ResourceNotFoundException like an unknown one: farm → queue (a DataSync task)
→ job (one of *that task's* executions) → step → task (a work item of that step).

The Update operations change only targets (`targetTaskRunStatus` / `targetRunStatus`) through
`api.workitems.set_target`, with the issue's semantics (SUSPENDED pauses, READY/PENDING resume or
requeue, CANCELED skips, SUCCEEDED/FAILED mark), and each runs at most once per clientToken
(api.deadline.tokens). UpdateJob's other members (priority, retries, name, …) describe Deadline's
own scheduler and have no meaning here: a request naming one is a ValidationException saying so,
rather than a silent no-op. The Identity Center `principalId` filters of the List operations are
accepted (validated) and do not narrow anything: there are no Identity Center principals here,
every operator sees everything.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from api.config import ServerConfig
from api.deadline.errors import (
    ConflictException,
    FieldProblem,
    ResourceNotFoundException,
    ValidationException,
)
from api.deadline.ids import Farm, IdIndex, derive, parse_task_id, task_id
from api.deadline.pages import DEFAULT_MAX_RESULTS, key_after, page, token_for
from api.deadline.resources import (
    CREATED_BY,
    JobView,
    StepView,
    TaskView,
    find_task,
    job_view,
    step_indexes,
    step_tasks,
)
from api.deadline.tokens import ClientTokens, fingerprint
from api.deadline.wire import iso
from api.store import TERMINAL_STATUSES, Store
from api.workitems import (
    WHOLE,
    ConflictEnded,
    ItemNotFound,
    set_target,
    whole_reason,
    wish_before_plan,
)

__all__ = ["OPERATIONS", "DeadlineApi"]

Doc = dict[str, Any]
OPERATIONS = (
    "ListFarms",
    "GetFarm",
    "ListQueues",
    "GetQueue",
    "ListJobs",
    "GetJob",
    "UpdateJob",
    "ListSteps",
    "GetStep",
    "UpdateStep",
    "ListTasks",
    "GetTask",
    "UpdateTask",
)
_REQUEUE = ("READY", "PENDING")
_JOB_UPDATABLE = {"farmId", "queueId", "jobId", "clientToken", "targetTaskRunStatus"}


def _not_found(kind: str, resource_id: str) -> ResourceNotFoundException:
    return ResourceNotFoundException(
        f"{kind.capitalize()} {resource_id} was not found.", resource_id, kind
    )


class DeadlineApi:
    def __init__(
        self, store: Store, config: ServerConfig, clock: Callable[[], float] = time.time
    ) -> None:
        self.store = store
        self.config = config
        self.clock = clock
        self.ids = IdIndex(store)
        self.tokens = ClientTokens(store, clock)
        self.handlers: dict[str, Callable[[Doc], Doc]] = {
            "ListFarms": self.list_farms,
            "GetFarm": self.get_farm,
            "ListQueues": self.list_queues,
            "GetQueue": self.get_queue,
            "ListJobs": self.list_jobs,
            "GetJob": self.get_job,
            "UpdateJob": self.update_job,
            "ListSteps": self.list_steps,
            "GetStep": self.get_step,
            "UpdateStep": self.update_step,
            "ListTasks": self.list_tasks,
            "GetTask": self.get_task,
            "UpdateTask": self.update_task,
        }

    # resolution -------------------------------------------------------------------------------
    def _farm(self, p: Doc) -> Farm:
        farm = self.ids.farm()
        if p["farmId"] != farm.farm_id:
            raise _not_found("farm", p["farmId"])
        return farm

    def _task(self, p: Doc) -> Doc:
        self._farm(p)
        arn = self.ids.resolve(
            "queue", p["queueId"], lambda: [t["TaskArn"] for t in self.store.all("task")]
        )
        task = None if arn is None else self.store.get("task", arn)
        if task is None:
            raise _not_found("queue", p["queueId"])
        return task

    def _execution(self, p: Doc) -> Mapping[str, Any]:
        task = self._task(p)
        task_arn = task["TaskArn"]
        arn = self.ids.resolve(
            "job",
            p["jobId"],
            lambda: [e["TaskExecutionArn"] for e in self.store.executions(task_arn=task_arn)],
        )
        execution = None if arn is None else self.store.execution_view(arn)
        if execution is None or execution["TaskArn"] != task_arn:
            raise _not_found("job", p["jobId"])
        return execution

    def _execution_now(self, arn: str) -> Mapping[str, Any]:
        """The execution as stored now (after a write of ours), for a fresh view."""
        execution = self.store.execution(arn)
        if execution is None:
            raise _not_found("job", derive("job", arn))
        return execution

    def _job(self, p: Doc) -> JobView:
        return job_view(self.store, self._execution(p))

    def _step(self, p: Doc) -> tuple[JobView, StepView]:
        job = self._job(p)
        step = job.step(p["stepId"])
        if step is None:
            raise _not_found("step", p["stepId"])
        return job, step

    def _task_of_step(self, p: Doc) -> tuple[JobView, StepView, TaskView]:
        job, step = self._step(p)
        parsed = parse_task_id(p["taskId"])
        task = None
        if parsed is not None and parsed[0] == step.step_id:
            task = find_task(self.store, job, step, parsed[1])
        if task is None:
            raise _not_found("task", p["taskId"])
        return job, step, task

    # farms ------------------------------------------------------------------------------------
    def _farm_doc(self, farm: Farm) -> Doc:
        return {
            "farmId": farm.farm_id,
            "displayName": "datasync-local",
            "description": f"The datasync-local control plane ({self.config.region}, account "
            f"{self.config.account_id}): one queue per DataSync task.",
            "createdAt": iso(farm.created),
            "createdBy": CREATED_BY,
            "costScaleFactor": 1.0,
        }

    def list_farms(self, p: Doc) -> Doc:
        farms, token = page(
            [self.ids.farm()], lambda f: f.farm_id, "farms", p.get("nextToken"), p.get("maxResults")
        )
        return {"farms": [self._farm_doc(f) for f in farms], "nextToken": token}

    def get_farm(self, p: Doc) -> Doc:
        return self._farm_doc(self._farm(p))

    # queues -----------------------------------------------------------------------------------
    def _queue_doc(self, farm_id: str, task: Mapping[str, Any]) -> Doc:
        arn = task["TaskArn"]
        busy = bool(self.store.executions(task_arn=arn, active=True))
        return {
            "farmId": farm_id,
            "queueId": derive("queue", arn),
            "displayName": arn,
            "description": f"DataSync task {task.get('Name') or arn}"[:100],
            "status": "SCHEDULING" if busy else "IDLE",
            "defaultBudgetAction": "NONE",
            "createdAt": iso(task["CreationTime"]),
            "createdBy": CREATED_BY,
        }

    def list_queues(self, p: Doc) -> Doc:
        farm = self._farm(p)
        tasks = self.store.all("task")
        self.ids.remember("queue", [t["TaskArn"] for t in tasks])
        docs = [self._queue_doc(farm.farm_id, t) for t in tasks]
        if p.get("status"):
            docs = [d for d in docs if d["status"] == p["status"]]
        chosen, token = page(
            docs,
            lambda d: str(d["displayName"]),
            f"queues/{farm.farm_id}/{p.get('status')}",
            p.get("nextToken"),
            p.get("maxResults"),
        )
        return {"queues": chosen, "nextToken": token}

    def get_queue(self, p: Doc) -> Doc:
        return self._queue_doc(p["farmId"], self._task(p))

    # jobs -------------------------------------------------------------------------------------
    def list_jobs(self, p: Doc) -> Doc:
        task = self._task(p)
        executions = self.store.executions(task_arn=task["TaskArn"])
        chosen, token = page(
            executions,
            lambda e: f"{float(e['StartTime']):020.6f}|{e['TaskExecutionArn']}",
            f"jobs/{p['queueId']}",
            p.get("nextToken"),
            p.get("maxResults"),
        )
        self.ids.remember("job", [e["TaskExecutionArn"] for e in chosen])
        jobs = []
        for execution in chosen:
            arn = execution["TaskExecutionArn"]
            jobs.append(job_view(self.store, execution).doc(derive("job", arn)))
        return {"jobs": jobs, "nextToken": token}

    def get_job(self, p: Doc) -> Doc:
        return self._job(p).doc(p["jobId"])

    def update_job(self, p: Doc) -> Doc:
        unsupported = sorted(set(p) - _JOB_UPDATABLE)
        if unsupported:
            message = (
                f"UpdateJob here changes only targetTaskRunStatus; {', '.join(unsupported)} "
                "belong to Deadline's own scheduler and cannot be set on a DataSync execution."
            )
            raise ValidationException(
                message, "FIELD_VALIDATION_FAILED", [FieldProblem(n, message) for n in unsupported]
            )

        def effect() -> Doc:
            job = self._job(p)
            if "targetTaskRunStatus" in p:
                self._set(job, None, p["targetTaskRunStatus"], "job", p["jobId"])
            return {}

        return self._once("UpdateJob", p, effect)

    # steps ------------------------------------------------------------------------------------
    def list_steps(self, p: Doc) -> Doc:
        job = self._job(p)
        order = {s.step_id: f"{i:02d}" for i, s in enumerate(job.steps)}
        chosen, token = page(
            list(job.steps),
            lambda s: order[s.step_id],
            f"steps/{p['jobId']}",
            p.get("nextToken"),
            p.get("maxResults"),
        )
        return {"steps": [s.summary() for s in chosen], "nextToken": token}

    def get_step(self, p: Doc) -> Doc:
        return self._step(p)[1].detail()

    def update_step(self, p: Doc) -> Doc:
        def effect() -> Doc:
            job, step = self._step(p)
            indexes = step_indexes(self.store, job, step)
            if not indexes:
                raise ConflictException(
                    f"Step {step.name} has no tasks yet (the execution is "
                    f"{job.execution['Status']}); update the job or try again once it is planned.",
                    "STATUS_CONFLICT",
                    step.step_id,
                    "step",
                )
            self._set(job, indexes, p["targetTaskRunStatus"], "step", step.step_id)
            return {}

        return self._once("UpdateStep", p, effect)

    # tasks ------------------------------------------------------------------------------------
    def list_tasks(self, p: Doc) -> Doc:
        job, step = self._step(p)
        scope = f"tasks/{step.step_id}"
        after = None
        if p.get("nextToken"):
            key = key_after(scope, p["nextToken"])
            after = int(key) if key.isdigit() else None
        limit = p.get("maxResults") or DEFAULT_MAX_RESULTS
        # a page by key range: one more row than asked says whether another page follows
        tasks = step_tasks(self.store, job, step, after, limit + 1)
        chosen = tasks[:limit]
        token = None
        if len(tasks) > limit and chosen:
            token = token_for(scope, f"{chosen[-1].index:010d}")
        return {"tasks": [step.task_doc(t) for t in chosen], "nextToken": token}

    def get_task(self, p: Doc) -> Doc:
        _job, step, task = self._task_of_step(p)
        return step.task_doc(task)

    def update_task(self, p: Doc) -> Doc:
        def effect() -> Doc:
            job, step, task = self._task_of_step(p)
            tid = task_id(step.step_id, task.index)
            self._set(job, [task.index], p["targetRunStatus"], "task", tid)
            return {}

        return self._once("UpdateTask", p, effect)

    # the one write ----------------------------------------------------------------------------
    def _set(
        self,
        job: JobView,
        indexes: Sequence[int] | None,
        target: str,
        kind: str,
        resource_id: str,
    ) -> None:
        ended = job.execution["Status"] in TERMINAL_STATUSES
        if ended and target in _REQUEUE:
            # the issue's rule, whatever the items' states: requeueing anything of an ended
            # execution is a conflict (api.workitems alone would answer a no-op for SUCCEEDED
            # items, which reads as "done" to a caller who asked for a re-run)
            raise ConflictException(
                f"Cannot set {target} on this {kind}: the execution has ended "
                f"({job.execution['Status']}). Start a new execution: it skips what is already "
                "at the destination.",
                "STATUS_CONFLICT",
                resource_id,
                kind,
            )
        if not job.itemized and indexes is None and not ended:
            # UpdateJob before the plan: kept for it (its items are created SUSPENDED); if
            # the plan landed meanwhile, its items take the wish below
            if wish_before_plan(self.store, job.arn, target):
                return
            job = job_view(self.store, self._execution_now(job.arn))
        if not job.itemized:
            raise ConflictException(
                f"Cannot set {target} on this {kind}: "
                + (
                    f"the execution has ended ({job.execution['Status']}). Start a new "
                    "execution: it skips what is already at the destination."
                    if ended
                    else whole_reason(self.config.split_min_files, self.config.split_min_bytes)
                    + "."
                    if job.execution.get(WHOLE)
                    else f"the execution ({job.execution['Status']}) has no work items yet: "
                    "its agent plans them first, and a tree too small to split runs as one "
                    "piece (cancel it with CancelTaskExecution)."
                ),
                "STATUS_CONFLICT",
                resource_id,
                kind,
            )
        try:
            set_target(self.store, job.arn, indexes, target, self.clock())
        except ItemNotFound:
            raise _not_found(kind, resource_id) from None
        except ValueError as exc:  # a target outside the model's enum (validated before)
            raise ValidationException(str(exc), "FIELD_VALIDATION_FAILED") from None
        except ConflictEnded as exc:
            detail = str(exc) or (
                f"the execution has ended ({job.execution['Status']}). Start a new execution: "
                "it skips what is already at the destination."
            )
            raise ConflictException(
                f"Cannot set {target} on this {kind}: {detail}",
                "STATUS_CONFLICT",
                resource_id,
                kind,
            ) from None

    def _once(self, operation: str, p: Doc, effect: Callable[[], Doc]) -> Doc:
        token = p.get("clientToken")
        if token is None:  # boto3 always sends one; a hand-made request may not
            return effect()
        return self.tokens.run_once(token, fingerprint(operation, p), effect)
