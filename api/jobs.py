"""The agents' protocol: the AWS IoT Jobs data plane (rest-json), over the executions.

    GET  /things/{thing}/jobs            GetPendingJobExecutions
    PUT  /things/{thing}/jobs/$next      StartNextPendingJobExecution (claim, FIFO per agent)
    GET  /things/{thing}/jobs/{jobId}    DescribeJobExecution
    POST /things/{thing}/jobs/{jobId}    UpdateJobExecution (phase + counters, expectedVersion)

    POST /things/{thing}/jobs/{jobId}/items     item 0's plan upload (contract.workitems)
    POST|GET /things/{thing}/jobs/{jobId}/journal  the files an item finished

A thing is an agent (`agent-<17 hex>`), a job is one task execution (`exec-<17 hex>`, its item 0)
or one of its work items (`exec-<17 hex>-iN`, claimed by any candidate agent). This
module speaks the protocol; which job an agent gets, leases, step timers and takeovers are decided
by `api.scheduler` alone. `$next` is the one way to claim a job; `UpdateJobExecution` reports on a
claimed one (a QUEUED job is refused) and is a heartbeat. `executionNumber`, when given, must be the
job's current one (a job taken over from a lost agent has the next). Replies carry the control
plane's wishes in `statusDetails` (`contract.jobs.Control`, and for items their rate share and
`control:suspend`). An item's report must come from its holder under its current epoch
(`executionNumber`): anything else is refused 409 VersionMismatch, with the item's state.
"""

from __future__ import annotations

import base64

from api import item_pacing, workitems
from api.cas import update_execution
from api.domain import repository
from api.domain.agent import Agent
from api.domain.execution import Execution
from api.errors import (
    InvalidRequestException,
    InvalidStateTransitionException,
    ResourceNotFoundException,
    VersionConflictException,
)
from api.models import Backend
from api.scheduler import (
    CANCEL_GRACE_SECONDS,
    RUNNING_STATUSES,
    Claimed,
    item_job_id_of,
)
from api.validation import validate_input
from api.workitems import WorkItem
from contract import Doc
from contract.jobs import (
    CANCEL_KEY,
    DEVICE_STATUSES,
    MAX_DETAIL_VALUE,
    PHASE_KEY,
    RATE_KEY,
    RUNNING_KEY,
    SLOTS_KEY,
)
from contract.workitems import (
    INTERRUPTED_KEY,
    MAX_JOURNAL_BATCH,
    SUSPEND_KEY,
    ItemAssignment,
    ItemKind,
    JournalBatch,
    JournalPage,
    PlanUpload,
    parse_item_job_id,
)

__all__ = ["CANCEL_GRACE_SECONDS", "RUNNING_KEY", "SLOTS_KEY", "Jobs"]
_DEVICE_STATUSES = DEVICE_STATUSES


def _item_index(job_id: str) -> int:
    """The item a job id names (0: an execution's own job, or not a job id at all)."""
    try:
        return parse_item_job_id(job_id)[1]
    except ValueError:
        return 0


class Jobs:
    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.store = backend.store

    def _agent(self, thing: str) -> str:
        arn = self.backend.arn(f"agent/{thing}")
        if repository.get(self.store, Agent, arn) is None:
            # registered under another region or account (the server's flags changed since)
            found = [a.agent_arn for a in repository.every(self.store, Agent) if a.thing == thing]
            if not found:
                raise ResourceNotFoundException(f"Thing {thing} is not a registered agent.")
            arn = found[0]
        self.backend.touch_agent(arn)
        return arn

    def _job(self, thing: str, job_id: str, execution_number: int | None = None) -> Execution:
        agent = self._agent(thing)
        doc = self.store.execution_by_id(agent, job_id)
        execution = None if doc is None else Execution.from_row(doc)
        if execution is None or execution.job_id != job_id:
            raise ResourceNotFoundException(f"Job {job_id} is not found for thing {thing}.")
        current = execution.job.execution_number
        if execution_number is not None and execution_number != current:
            # an earlier run of this job (its agent was lost and it was offered again)
            raise ResourceNotFoundException(
                f"Job {job_id} of thing {thing} has no execution number {execution_number}; "
                f"its current execution number is {current}."
            )
        return execution

    def job(self, thing: str, job_id: str) -> Execution:
        """The execution behind `thing`'s job or work item (ResourceNotFoundException if not
        its own)."""
        if _item_index(job_id):
            execution, item, agent = self._item(thing, job_id)
            if item.agent_arn != agent:
                raise ResourceNotFoundException(f"Job {job_id} is not found for thing {thing}.")
            return execution
        return self._job(thing, job_id)

    # work items as jobs ---------------------------------------------------------------------
    def _item(self, thing: str, job_id: str) -> tuple[Execution, WorkItem, str]:
        """An item's execution, the item, and the agent's ARN, for an agent that may run it
        (its holder or a candidate)."""
        agent = self._agent(thing)
        execution_id, index = parse_item_job_id(job_id)
        doc = self.store.execution_by_job_id(execution_id)
        execution = None if doc is None else Execution.from_row(doc)
        row = None if execution is None else self.store.item(execution.arn, index)
        if execution is None or row is None:
            raise ResourceNotFoundException(f"Job {job_id} is not found for thing {thing}.")
        item = WorkItem.from_row(row)
        candidates = self.backend.scheduler.execution_candidates(execution)
        if item.agent_arn != agent and agent not in candidates:
            raise ResourceNotFoundException(f"Job {job_id} is not found for thing {thing}.")
        return execution, item, agent

    def _item_control(self, execution: Execution, item: WorkItem) -> dict[str, str]:
        """The wishes for one item: its rate share, suspend, cancel (also to stop and mark)."""
        running = workitems.running_indexes(self.store, execution.arn)
        # the execution's limit, paced by what it actually moved (api.item_pacing)
        limit = item_pacing.execution_limit(execution, self.backend.now())
        out = {RATE_KEY: str(workitems.rate_share(limit, running, item.index))}
        if item.target == workitems.SUSPENDED:
            out[SUSPEND_KEY] = "true"
        stop = (workitems.CANCELED, workitems.SUCCEEDED, workitems.FAILED)
        if execution.cancelled or item.target in stop:
            out[CANCEL_KEY] = "true"
        return out

    @staticmethod
    def _item_status(item: WorkItem) -> str:
        """The IoT JobExecutionStatus an item shows its agents."""
        if item.running:
            return "IN_PROGRESS"
        return {
            workitems.SUCCEEDED: "SUCCEEDED",
            workitems.FAILED: "FAILED",
            workitems.CANCELED: "CANCELED",
            workitems.NOT_COMPATIBLE: "REJECTED",
        }.get(item.status, "QUEUED")

    def _item_state(self, execution: Execution, item: WorkItem) -> Doc:
        return {
            "status": self._item_status(item),
            "statusDetails": {**item.details, **self._item_control(execution, item)},
            "versionNumber": item.version,
        }

    def _item_summary(self, execution: Execution, item: WorkItem) -> Doc:
        out: Doc = {
            "jobId": item_job_id_of(item),
            "queuedAt": int(execution.start_time),
            "lastUpdatedAt": int(item.updated_at),
            "versionNumber": item.version,
            "executionNumber": item.execution_number,
        }
        if item.started_at is not None:
            out["startedAt"] = int(item.started_at)
        return out

    def item_execution(
        self, thing: str, execution: Execution, item: WorkItem, include_document: bool = True
    ) -> Doc:
        """A work item as an IoT JobExecution: its document is the execution's plus the item."""
        state = self._item_state(execution, item)
        out: Doc = {
            **self._item_summary(execution, item),
            "thingName": thing,
            **{k: v for k, v in state.items() if k != "versionNumber"},
        }
        if item.running and item.lease_expires is not None:
            out["approximateSecondsBeforeTimedOut"] = max(
                0, int(item.lease_expires - self.backend.now())
            )
        if include_document:
            assignment = ItemAssignment(item.index, item.kind, item.scope)
            out["jobDocument"] = execution.item_job_document(assignment).to_json()
        return out

    def _claimed(self, thing: str, claimed: Claimed) -> Doc:
        if claimed.item is None:
            return claimed.execution.job_execution(thing, self.backend.now())
        return self.item_execution(thing, claimed.execution, claimed.item)

    def _held(
        self, thing: str, job_id: str, execution_number: object
    ) -> tuple[Execution, WorkItem]:
        """The item `thing` holds under `execution_number`; 409 VersionMismatch if it does
        not (any more): another agent took it over, or its lease ran out."""
        execution, item, agent = self._item(thing, job_id)
        stale = execution_number is not None and execution_number != item.execution_number
        if (
            item.agent_arn != agent
            or stale
            or (not item.running and item.status not in workitems.ENDED)
        ):
            raise VersionConflictException(
                f"Job {job_id} is not held by thing {thing} under execution number "
                f"{execution_number if execution_number is not None else '(none)'}: its current "
                f"execution number is {item.execution_number} and it is {item.status.value}"
                + (f" on {item.agent_arn}" if item.agent_arn else "")
                + ".",
                self._item_state(execution, item),
            )
        return execution, item

    # operations -------------------------------------------------------------------------------
    def get_pending(self, thing: str) -> Doc:
        validate_input("GetPendingJobExecutions", {"thingName": thing}, "iot-jobs-data")
        agent = self._agent(thing)
        summaries: dict[str, list[Doc]] = {"inProgressJobs": [], "queuedJobs": []}
        for execution in map(
            Execution.from_row, self.store.executions(agent_arn=agent, active=True)
        ):
            status = execution.job.status.value
            key = {"IN_PROGRESS": "inProgressJobs", "QUEUED": "queuedJobs"}.get(status)
            if key is None:
                continue
            summaries[key].append(execution.job_summary())
        for row in self.store.items_with_status(RUNNING_STATUSES, agent_arn=agent):
            item = WorkItem.from_row(row)
            found = self.store.execution(item.execution_arn)
            if found is not None and item.kind != ItemKind.PREPARE:
                summaries["inProgressJobs"].append(
                    self._item_summary(Execution.from_row(found), item)
                )
        return summaries

    def start_next(self, thing: str, body: Doc) -> Doc:
        validate_input(
            "StartNextPendingJobExecution", {"thingName": thing, **body}, "iot-jobs-data"
        )
        agent = self._agent(thing)
        details = dict(body.get("statusDetails") or {})
        # An agent running several jobs says which it runs and how many it may (`agent:running`,
        # `agent:slots`); without these, one job at a time. The scheduler decides the rest.
        running_ids = set(details.pop(RUNNING_KEY, "").replace(",", " ").split()) - {"-"}
        try:
            slots = max(1, int(details.pop(SLOTS_KEY, "1")))
        except ValueError:
            raise InvalidRequestException(
                f"statusDetails.{SLOTS_KEY} must be an integer."
            ) from None
        claimed = self.backend.scheduler.claim(
            agent, running_ids, slots, body.get("stepTimeoutInMinutes"), details
        )
        return {} if claimed is None else {"execution": self._claimed(thing, claimed)}

    def describe(
        self,
        thing: str,
        job_id: str,
        include_document: bool,
        execution_number: int | None = None,
    ) -> Doc:
        if job_id == "$next":
            pending = self.get_pending(thing)
            first = (pending["inProgressJobs"] or pending["queuedJobs"] or [None])[0]
            if first is None:
                raise ResourceNotFoundException(f"Thing {thing} has no pending job.")
            job_id = first["jobId"]
        request: Doc = {"thingName": thing, "jobId": job_id}
        if execution_number is not None:
            request["executionNumber"] = execution_number
        validate_input("DescribeJobExecution", request, "iot-jobs-data")
        if _item_index(job_id):
            found, item, _agent = self._item(thing, job_id)
            if execution_number is not None and execution_number != item.execution_number:
                raise ResourceNotFoundException(
                    f"Job {job_id} of thing {thing} has no execution number {execution_number}; "
                    f"its current execution number is {item.execution_number}."
                )
            return {"execution": self.item_execution(thing, found, item, include_document)}
        execution = self._job(thing, job_id, execution_number)
        now = self.backend.now()
        return {"execution": execution.job_execution(thing, now, include_document)}

    def update(self, thing: str, job_id: str, body: Doc) -> Doc:
        validate_input(
            "UpdateJobExecution", {"thingName": thing, "jobId": job_id, **body}, "iot-jobs-data"
        )
        for key, value in (body.get("statusDetails") or {}).items():
            if len(value) > MAX_DETAIL_VALUE:
                raise InvalidRequestException(
                    f"statusDetails.{key} must have at most {MAX_DETAIL_VALUE} characters."
                )
        status = body["status"]
        if status not in _DEVICE_STATUSES:
            raise InvalidRequestException(
                f"status must be one of {', '.join(_DEVICE_STATUSES)}; {status} is set by the "
                "service."
            )
        if _item_index(job_id):
            return self._update_item(thing, job_id, body)
        found = self._job(thing, job_id, body.get("executionNumber"))
        owner = found.agent_arn
        now = self.backend.now()

        def report(current: Execution) -> Execution:
            # checked again on the copy being written: another process may have moved it
            job = current.job
            if current.agent_arn != owner:
                raise ResourceNotFoundException(f"Job {job_id} is not found for thing {thing}.")
            if job.ended:
                raise InvalidStateTransitionException(
                    f"Job {job_id} is {job.status.value}, a terminal state; it cannot become "
                    f"{status}.",
                    current.job_state(),
                )
            expected = body.get("expectedVersion")
            if expected is not None and expected != job.version_number:
                raise VersionConflictException(
                    f"expectedVersion {expected} does not match the current version "
                    f"{job.version_number}.",
                    current.job_state(),
                )
            if job.status == "QUEUED":
                # claims go through the scheduler alone (it honours agent:slots and takeovers)
                raise InvalidStateTransitionException(
                    f"Job {job_id} is QUEUED: claim it with StartNextPendingJobExecution "
                    "(PUT /things/{thing}/jobs/$next) before reporting on it.",
                    current.job_state(),
                )
            renewed = current.lease_renewed(
                now, body.get("stepTimeoutInMinutes"), self.backend.config.agent_timeout
            )
            details = {**job.status_details, **body.get("statusDetails", {})}
            if renewed.plan:
                return renewed.planner_reported(status, details, now)
            whole = renewed.whole_reported(details, self._whole_reason())
            return whole.reported(status, details, now)

        changed = update_execution(self.store, found.arn, report)
        if changed is None:
            raise ResourceNotFoundException(f"Job {job_id} is not found for thing {thing}.")
        execution = changed[0]
        if execution.plan:
            self._planner_reported(execution, status, body.get("statusDetails") or {}, now)
        out: Doc = {}
        if body.get("includeJobExecutionState"):
            out["executionState"] = execution.job_state()
        if body.get("includeJobDocument"):
            out["jobDocument"] = execution.job_document().to_json()
        return out

    def _whole_reason(self) -> str:
        config = self.backend.config
        return workitems.whole_reason(config.split_min_files, config.split_min_bytes)

    def _planner_reported(
        self, execution: Execution, status: str, details: dict[str, str], now: float
    ) -> None:
        """Item 0's report, its plan in: its row takes the report and the items settle."""
        arn = execution.arn
        lease = self.backend.config.agent_timeout
        cancelled = execution.cancelled

        def take(item: WorkItem) -> WorkItem | None:
            if item.status in workitems.ENDED:
                return None
            return workitems.report_item(item, status, details, now, lease, cancelled)

        workitems.change_item(self.store, arn, 0, take)
        workitems.settle(self.store, arn, now)

    def _update_item(self, thing: str, job_id: str, body: Doc) -> Doc:
        """UpdateJobExecution on a work item: fenced by holder and epoch, then settled."""
        status = body["status"]
        interrupted = (body.get("statusDetails") or {}).get(INTERRUPTED_KEY)
        if status != "IN_PROGRESS" and interrupted == workitems.SUSPENDED.value:
            # a suspend's acknowledgement: its counters reach the execution's sums first (as a
            # report of a running item), and only then is the item SUSPENDED, so that whoever
            # sees it suspended sees counters that no longer move (the item's row and the
            # execution's are two writes: a reader between them saw the sums move afterwards)
            self._update_item(
                thing, job_id, {**body, "status": "IN_PROGRESS", "includeJobExecutionState": False}
            )
            body = {k: v for k, v in body.items() if k != "expectedVersion"}  # checked just now
        execution, seen = self._held(thing, job_id, body.get("executionNumber"))
        arn = execution.arn
        agent = seen.agent_arn
        epoch = seen.execution_number
        now = self.backend.now()
        lease = self.backend.config.agent_timeout
        cancelled = execution.cancelled

        replaced: list[WorkItem] = [seen]  # the version this report is written over

        def report(item: WorkItem) -> WorkItem | None:
            replaced[0] = item
            # checked again on the copy being written: another agent may have taken it over
            if item.agent_arn != agent or item.execution_number != epoch:
                raise VersionConflictException(
                    f"Job {job_id} was taken over (execution number {item.execution_number}).",
                    self._item_state(execution, item),
                )
            if not item.running:
                raise InvalidStateTransitionException(
                    f"Job {job_id} is {self._item_status(item)}, a terminal state; it cannot "
                    f"become {status}.",
                    self._item_state(execution, item),
                )
            expected = body.get("expectedVersion")
            if expected is not None and expected != item.version:
                raise VersionConflictException(
                    f"expectedVersion {expected} does not match the current version "
                    f"{item.version}.",
                    self._item_state(execution, item),
                )
            details = dict(body.get("statusDetails") or {})
            return workitems.report_item(item, status, details, now, lease, cancelled)

        written = workitems.change_item(self.store, arn, seen.index, report)
        item = written or workitems.get_item(self.store, arn, seen.index)
        # every report: the execution's counters are the items' sums
        progress = None
        if written is not None:
            phase = written.details.get(PHASE_KEY)
            final = status != "IN_PROGRESS"
            # the delta from the version actually replaced, not the one read before the
            # compare-and-swap: two reports of one item served at once (a periodic one and the
            # final one) would otherwise both count from the same base, and the execution's
            # sums drift until the next full settle (counters moving while suspended)
            progress = workitems.Progress(replaced[0].counters, written.counters, phase, final)
        settled = workitems.settle(self.store, arn, now, progress)
        execution = settled or repository.execution(self.store, arn) or execution
        if status != "IN_PROGRESS":
            # the running set changed: the other holders' shares did; READY items may be new
            workitems.poke_running(self.store, arn, but=agent)
        out: Doc = {}
        if body.get("includeJobExecutionState"):
            out["executionState"] = self._item_state(execution, item)
        if body.get("includeJobDocument"):
            assignment = ItemAssignment(item.index, item.kind, item.scope)
            out["jobDocument"] = execution.item_job_document(assignment).to_json()
        return out

    # plans and the journal --------------------------------------------------------------------
    def upload_plan(self, thing: str, job_id: str, body: Doc) -> Doc:
        """Item 0's holder uploads the split of its execution (fenced by its epoch)."""
        try:
            plan = PlanUpload.from_json(body)
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidRequestException(f"Not a plan upload: {exc}") from None
        if _item_index(job_id) != 0:
            raise InvalidRequestException(
                f"Job {job_id} is a work item: only an execution's own job (item 0) uploads a plan."
            )
        execution = self._job(thing, job_id)
        job = execution.job
        if plan.execution_number != job.execution_number or job.status != "IN_PROGRESS":
            raise VersionConflictException(
                f"Job {job_id} is {job.status.value} under execution number "
                f"{job.execution_number}; a plan comes from its current holder "
                f"(execution number {plan.execution_number} is not).",
                execution.job_state(),
            )
        if execution.status in ("SUCCESS", "ERROR", "CANCELLING"):
            raise InvalidStateTransitionException(
                f"Task execution {execution.arn} is {execution.status.value}: no plan now.",
                execution.job_state(),
            )
        items = self.backend.scheduler.accept_plan(execution, plan, self.backend.now())
        return {
            "jobIds": [item_job_id_of(i) for i in items if i.kind != ItemKind.PREPARE],
        }

    def _journal_item(self, thing: str, job_id: str, execution_number: object) -> tuple[str, int]:
        """(execution ARN, item index) of a journal call from the item's current holder."""
        if _item_index(job_id):
            held, item = self._held(thing, job_id, execution_number)
            return held.arn, item.index
        execution = self._job(thing, job_id)
        number = execution.job.execution_number
        if execution_number is not None and execution_number != number:
            raise VersionConflictException(
                f"Job {job_id}'s current execution number is {number}.",
                execution.job_state(),
            )
        return execution.arn, 0

    def add_journal(self, thing: str, job_id: str, body: Doc) -> Doc:
        try:
            batch = JournalBatch.from_json(body)
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidRequestException(f"Not a journal batch: {exc}") from None
        arn, index = self._journal_item(thing, job_id, batch.execution_number)
        return {"added": self.store.journal_add(arn, index, list(batch.done))}

    def journal(self, thing: str, job_id: str, next_token: str | None) -> Doc:
        arn, index = self._journal_item(thing, job_id, None)
        after = None
        if next_token:
            try:
                after = base64.urlsafe_b64decode(next_token.encode("ascii")).decode("utf-8")
            except (ValueError, UnicodeError):
                raise InvalidRequestException("nextToken is not one this server gave.") from None
        rows = self.store.journal_keyed_page(arn, index, after, MAX_JOURNAL_BATCH)
        token = None
        if len(rows) == MAX_JOURNAL_BATCH:  # the last key (a long path's is its hash)
            token = base64.urlsafe_b64encode(rows[-1][0].encode("utf-8")).decode("ascii")
        return JournalPage([path for _key, path in rows], token).to_json()

    # housekeeping -----------------------------------------------------------------------------
    def reap(self) -> int:
        """Leases, step timers, forgotten cancels, unclaimable executions: see `api.scheduler`."""
        return self.backend.scheduler.reap()
