"""Where an execution is scheduled: the one module that decides which agent runs what, and when.

Everything about putting executions onto agents is here, and nowhere else:

* **Agent choice.** The candidates of an execution are the agents bound to *both* of its task's
  locations (a location may list several `AgentArns`), read from the locations on every
  decision, so `UpdateLocationNfs` changes them at once. An ONLINE candidate is preferred, the
  least busy one first (in the locations' order on a tie). If none is ONLINE the execution is
  still assigned (to the first) and waits; its task shows `UNAVAILABLE`, as on DataSync.
* **Admission and TaskQueueing.** One active execution per task and filter set
  (`TaskExecutionAlreadyRunning`); an execution starts `LAUNCHING` when its agent has a free slot
  (`Concurrency` from its activation, else 1), else `QUEUED` — unless `TaskQueueing=DISABLED`,
  which refuses it (`AgentBusy`).
* **The one claim path.** `claim()` (behind `StartNextPendingJobExecution`) re-attaches an agent
  to an IN_PROGRESS job it no longer runs (after its restart), else hands it the oldest QUEUED job
  assigned to it — or assigned to a candidate that is not ONLINE (takeover) — while it has a free
  slot among the `agent:slots` it declares. `UpdateJobExecution` never claims.
* **Leases and their expiry.** Every report is a heartbeat: the job's lease is the agent timeout
  from its last report. When it runs out the agent is lost: another ONLINE candidate takes the
  job over (it is queued again with the next `executionNumber`, assigned to that agent; the lost
  agent's later reports no longer find it), else the execution ends `ERROR` / `AgentTimeout`.
  A step timer (`stepTimeoutInMinutes`, IoT Jobs semantics: set at a claim or an update, -1 clears
  it) that runs out ends the job `TIMED_OUT` and the execution `ERROR` / `StepTimedOut`. A cancel
  the agent does not act on within `CANCEL_GRACE_SECONDS` is ended by the control plane.
* **Executions nobody can run.** A QUEUED job whose candidates are all OFFLINE waits
  `unclaimed_timeout` seconds (default: the agent timeout) counted from the latest of its start,
  the moment its last candidate went OFFLINE, and this process's start; then it ends `ERROR` /
  `AgentUnavailable`, naming the agents. It never hangs.
* **Recovery after a restart.** An on-prem agent's work survives: its queued jobs stay queued and
  a running one gets a fresh lease, so the agent re-attaches with its next call. Work of an agent
  that lived in the previous process (the embedded one) died with it: `ERROR` /
  `ServiceRestarted` — unless the execution was split into work items: then its items are READY
  again (they can be redone; the journal skips what they finished) and SUSPENDED ones stay so.
* **Work items (issue 12).** Item 0's holder uploads the plan (`accept_plan`): items 1…n READY,
  a REMOVE item PENDING when the task deletes extras. The claim path offers READY items before
  queued executions (oldest execution first, lowest index first) to any ONLINE candidate with a
  free slot, each claim under the next `executionNumber`; every report renews the item's lease.
  A lost holder's item goes back to READY for another candidate, or, when none is ONLINE, the
  execution ends `ERROR` / `AgentTimeout` (and `AgentUnavailable` when READY items wait with
  nobody to claim them). The items' transitions and the end rule are `api.workitems`'.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from api import workitems
from api.cas import update_execution
from api.config import ServerConfig
from api.domain import repository
from api.domain.agent import Agent
from api.domain.enums import (
    AVAILABLE,
    OFFLINE,
    ONLINE,
    QUEUED_TASK,
    RUNNING_TASK,
    UNAVAILABLE,
    AgentStatus,
    TaskStatus,
)
from api.domain.execution import Execution
from api.domain.location import Location
from api.domain.task import Task
from api.errors import InvalidRequestException
from api.store import TERMINAL_STATUSES, Store
from api.workitems import WorkItem
from contract.workitems import ItemBudget, ItemKind, PlanUpload, item_job_id
from engine import Options

__all__ = [
    "CANCEL_GRACE_SECONDS",
    "RUNNING_STATUSES",
    "Admission",
    "Claimed",
    "Scheduler",
    "item_job_id_of",
]

CANCEL_GRACE_SECONDS = 30.0
# a throttled execution that would run longer than this at its BytesPerSecond is split into
# work items whatever serve's split minimum, so that it can be suspended: 1 GiB at 1 MiB/s runs
# 17 minutes, and the ~30-60 ms an item costs is nothing beside that
THROTTLED_WHOLE_SECONDS = 60
# the TaskRunStatus values of an item an agent holds
# an execution with an item in one of these is still being worked on (PENDING items wait for
# others: with none of these left, only a roll-up can move them)
ITEM_BUSY_STATUSES = tuple(sorted(s.value for s in workitems.ACTIVE - {workitems.PENDING}))
RUNNING_STATUSES = tuple(sorted(s.value for s in (workitems.HELD | {workitems.RUNNING})))


@dataclass(frozen=True)
class Claimed:
    """What a claim hands an agent: an execution's own job, or one of its work items."""

    execution: Execution
    item: WorkItem | None = None


def _cancel_outlived_grace(execution: Execution, now: float) -> bool:
    """A cancel its agent did not act on within CANCEL_GRACE_SECONDS: the control plane ends it."""
    cancelled_at = execution.cancel_requested_at
    return cancelled_at is not None and now - cancelled_at > CANCEL_GRACE_SECONDS


def _step_timed_out(execution: Execution, now: float) -> bool:
    """The job's step timer (stepTimeoutInMinutes) ran out."""
    deadline = execution.job.step_deadline
    return deadline is not None and deadline < now


def item_job_id_of(item: WorkItem) -> str:
    """The job id an item is offered as (`exec-…-iN`)."""
    return item_job_id(item.execution_arn.rsplit("/", 1)[1], item.index)


@dataclass(frozen=True)
class Admission:
    """Where a new execution goes: its agent, and whether it waits (QUEUED) or starts."""

    agent_arn: str
    queued: bool


Reaper = Callable[[Execution, float], Execution | None]


class Scheduler:
    """The scheduling decisions over the store. Stateless but for this process's start time."""

    def __init__(
        self,
        store: Store,
        config: ServerConfig,
        *,
        notify: Callable[[str], None],
        is_remote: Callable[[str], bool],
    ) -> None:
        self.store = store
        self.config = config
        self._notify = notify
        self._is_remote = is_remote
        self.started_at = config.clock()
        self._after_write: list[str] = []  # executions whose item 0 the reaper just ended

    # agents -----------------------------------------------------------------------------------
    def now(self) -> float:
        return self.config.clock()

    def agent_status(self, agent: Agent) -> AgentStatus:
        """ONLINE while the agent spoke within the agent timeout, else OFFLINE."""
        recent = self.now() - agent.last_connection_time < self.config.agent_timeout
        return ONLINE if recent else OFFLINE

    def online(self, agent_arn: str) -> bool:
        agent = repository.get(self.store, Agent, agent_arn)
        return agent is not None and self.agent_status(agent) == ONLINE

    def _last_seen(self, agent_arns: list[str]) -> float:
        """When the latest of these agents last spoke (0 when none is known)."""
        agents = (repository.get(self.store, Agent, a) for a in agent_arns)
        return max((a.last_connection_time for a in agents if a is not None), default=0.0)

    def candidates(self, task: Task) -> list[str]:
        """Agents bound to both of the task's locations, in the source location's order."""
        source = repository.get(self.store, Location, task.source_location_arn)
        destination = repository.get(self.store, Location, task.destination_location_arn)
        if source is None or destination is None:
            return []
        return [a for a in source.agent_arns if a in destination.agent_arns]

    def execution_candidates(self, execution: Execution) -> list[str]:
        """The agents that may run an execution's work (bound to both of its locations)."""
        task = repository.get(self.store, Task, execution.task_arn)
        return self.candidates(task) if task is not None else []

    _execution_candidates = execution_candidates

    def _slots(self, agent_arn: str) -> int:
        agent = repository.get(self.store, Agent, agent_arn)
        return 1 if agent is None else agent.slots

    def task_status(self, task: Task) -> TaskStatus:
        """DataSync's TaskStatus: UNAVAILABLE whenever no agent that could run it is ONLINE."""
        if not any(self.online(a) for a in self.candidates(task)):
            return UNAVAILABLE
        active = self.store.executions(task_arn=task.task_arn, active=True)
        if any(e["Status"] != "QUEUED" for e in active):
            return RUNNING_TASK
        return QUEUED_TASK if active else AVAILABLE

    # admission --------------------------------------------------------------------------------
    def admit(self, task: Task, options: Options, filters_key: str) -> Admission:
        """Choose the agent of a new execution and whether it waits; refuse what may not run."""
        for other in self.store.executions(task_arn=task.task_arn, active=True):
            if other["_FiltersKey"] == filters_key:
                raise InvalidRequestException(
                    f"Task {task.task_arn} already has execution {other['TaskExecutionArn']} "
                    f"({other['Status']}) with the same filters; wait for it or cancel it.",
                    "TaskExecutionAlreadyRunning",
                )
        candidates = self.candidates(task)
        if not candidates:
            raise InvalidRequestException(
                f"Task {task.task_arn}'s locations no longer share an agent.", "NoCommonAgent"
            )
        busy = {a: self.store.executions(agent_arn=a, active=True) for a in candidates}
        online = [a for a in candidates if self.online(a)] or candidates
        agent_arn = min(online, key=lambda a: len(busy[a]) / self._slots(a))
        full = len(busy[agent_arn]) >= self._slots(agent_arn)
        if full and options.enum("TaskQueueing") == "DISABLED":
            raise InvalidRequestException(
                f"Agent {agent_arn} is busy with {busy[agent_arn][0]['TaskExecutionArn']} and "
                "Options.TaskQueueing is DISABLED, so this execution cannot wait in the queue.",
                "AgentBusy",
            )
        return Admission(agent_arn, full)

    # the one claim path -----------------------------------------------------------------------
    def claim(
        self,
        agent_arn: str,
        running_ids: set[str],
        slots: int,
        step_timeout_minutes: int | None,
        details: dict[str, str],
    ) -> Claimed | None:
        """The job `agent_arn` should run next (already claimed and saved), or None.

        In order: a job it no longer runs (it restarted) is handed back; then, while it has a
        free slot, the oldest READY work item of an execution it is a candidate for (oldest
        execution first, lowest index first), then its own oldest QUEUED execution job."""
        now = self.now()
        running = repository.executions(
            self.store, agent_arn=agent_arn, active=True, job_status="IN_PROGRESS"
        )
        held = [
            item
            for item in map(
                workitems.WorkItem.from_row,
                self.store.items_with_status(RUNNING_STATUSES, agent_arn=agent_arn),
            )
            if item.kind != ItemKind.PREPARE
        ]
        orphans = [e for e in running if e.job_id not in running_ids]
        if orphans:  # the agent restarted: hand back what it was running

            def reattach(current: Execution) -> Execution | None:
                if current.agent_arn != agent_arn or current.job.status != "IN_PROGRESS":
                    return None
                lease = self.config.agent_timeout
                return current.lease_renewed(now, step_timeout_minutes, lease)

            changed = update_execution(self.store, orphans[0].arn, reattach)
            if changed is not None and changed[1]:
                return Claimed(changed[0])
        for item in held:
            if item_job_id_of(item) in running_ids:
                continue
            back = self._reattach_item(item, agent_arn, now)
            if back is not None:
                return back
        if len(running) + len(held) >= slots:
            return None
        taken = self._claim_item(agent_arn, now)
        if taken is not None:
            return taken
        # its own QUEUED jobs only: one whose agent was lost is handed to an ONLINE candidate by
        # the reaper (`_reap_queued`, within a second, with a poke). Looking through every
        # agent's queue here cost three store reads per queued execution on every claim: 62% of
        # the server's CPU with a fleet of 200 agents, which then made 20-30 calls/s
        queue = repository.executions(
            self.store, agent_arn=agent_arn, active=True, job_status="QUEUED"
        )
        for queued in queue:

            def take(current: Execution) -> Execution | None:
                # re-checked on the fresh copy: another agent (or process) may have taken it
                if current.job.status != "QUEUED" or current.agent_arn != agent_arn:
                    return None
                online = [a for a in self._execution_candidates(current) if self.online(a)]
                budget = self.plan_budget(current, agents=max(1, len(online)))
                lease = self.config.agent_timeout
                return current.taken(now, step_timeout_minutes, lease, budget, details)

            changed = update_execution(self.store, queued.arn, take)
            if changed is not None and changed[1]:
                return Claimed(changed[0])
        return None

    def plan_budget(self, execution: Execution, agents: int) -> ItemBudget:
        """Item 0's planning budget: items sized for `agents`, and the minimum tree that is
        split at all (serve's --split-min-files/--split-min-bytes, the byte minimum lowered to
        `THROTTLED_WHOLE_SECONDS` worth of a throttled execution's BytesPerSecond)."""
        min_bytes = self.config.split_min_bytes
        rate = execution.options.get("BytesPerSecond", -1)
        if isinstance(rate, int) and rate > 0 and min_bytes:
            min_bytes = min(min_bytes, max(1, rate * THROTTLED_WHOLE_SECONDS))
        return ItemBudget(agents=agents, min_files=self.config.split_min_files, min_bytes=min_bytes)

    def _reattach_item(self, item: WorkItem, agent_arn: str, now: float) -> Claimed | None:
        """A restarted agent's RUNNING item, handed back to it (a fresh lease, the same epoch)."""
        lease = self.config.agent_timeout

        def renew(current: WorkItem) -> WorkItem | None:
            if current.agent_arn != agent_arn or not current.running:
                return None
            return replace(current, lease_expires=now + lease, updated_at=now)

        written = workitems.change_item(self.store, item.execution_arn, item.index, renew)
        execution = repository.execution(self.store, item.execution_arn)
        if written is None or execution is None:
            return None
        return Claimed(execution, written)

    def _claim_item(self, agent_arn: str, now: float) -> Claimed | None:
        """The oldest READY item this agent may run, claimed under the next epoch."""
        lease = self.config.agent_timeout
        kinds = (ItemKind.TRANSFER.value, ItemKind.REMOVE.value)
        for arn in self.store.executions_with_items((workitems.READY.value,)):
            execution = repository.execution(self.store, arn)
            if (
                execution is None
                or execution.status in TERMINAL_STATUSES
                or execution.cancelled
                or agent_arn not in self._execution_candidates(execution)
            ):
                continue

            def take(current: WorkItem) -> WorkItem | None:
                if current.status != workitems.READY:
                    return None  # another agent (or process) took it first
                return workitems.claim_item(current, agent_arn, now, lease)

            for index in self.store.item_indexes(arn, (workitems.READY.value,), kinds):
                written = workitems.change_item(self.store, arn, index, take)
                if written is None:
                    continue
                # the running set changed: the other holders' rate shares did too
                workitems.poke_running(self.store, arn, but=agent_arn)
                return Claimed(execution, written)
        return None

    # plans (item 0's upload) -----------------------------------------------------------------
    def accept_plan(self, execution: Execution, plan: PlanUpload, now: float) -> list[WorkItem]:
        """Create the items of `plan` for the execution (its item 0's holder is checked by the
        caller): item 0 RUNNING under its job's epoch, items 1…n READY, and a last REMOVE item
        PENDING when the task deletes destination extras. The same plan again is a no-op; a
        different one is refused (InvalidRequestException)."""
        arn = execution.arn
        job = execution.job
        rows = [
            replace(
                workitems.WorkItem.from_row(
                    workitems.new_row(arn, 0, ItemKind.PREPARE, None, workitems.RUNNING, now)
                ),
                agent_arn=execution.agent_arn,
                execution_number=job.execution_number,
                started_at=float(now if job.started_at is None else job.started_at),
                lease_expires=job.lease_expires_at,
            ).to_row()
        ]
        # the operator suspended the execution before its plan existed: its items start so
        suspended = execution.plan_target == workitems.SUSPENDED.value
        for index, scope in enumerate(plan.items, 1):
            # the files directly in a directory wait for the items beneath it, so that its own
            # metadata (mtime) is set and verified last, never while they create entries in it
            status = workitems.PENDING if workitems.waits(scope, plan.items) else workitems.READY
            if suspended:
                status = workitems.SUSPENDED
            rows.append(workitems.new_row(arn, index, ItemKind.TRANSFER, scope, status, now))
        if execution.options.get("PreserveDeletedFiles") == "REMOVE":
            rows.append(
                workitems.new_row(arn, len(rows), ItemKind.REMOVE, None, workitems.PENDING, now)
            )
        if not self.store.add_items(rows):
            existing = [
                i.scope
                for i in workitems.list_items(self.store, arn)
                if i.kind == ItemKind.TRANSFER
            ]
            if existing != list(plan.items):
                raise InvalidRequestException(
                    f"Task execution {arn} already has a different plan of "
                    f"{len(existing)} items; a plan is uploaded once."
                )
        else:

            def mark(current: Execution) -> Execution:
                wished = current.plan_target
                late[0] = wished == workitems.SUSPENDED.value and not suspended
                return current.plan_accepted(len(rows))

            late = [False]  # a suspend that came between reading `execution` and this mark
            update_execution(self.store, arn, mark)
            if late[0]:
                workitems.set_target(self.store, arn, None, workitems.SUSPENDED.value, now)
            for agent in self._execution_candidates(execution):
                if self.online(agent):
                    self._notify(agent)
        return workitems.list_items(self.store, arn)

    # leases, timeouts, executions nobody can run ----------------------------------------------
    def reap(self) -> int:
        """One round of housekeeping; returns how many executions ended or moved agent."""
        now = self.now()
        changed = 0
        for status, reap in (("IN_PROGRESS", self._reap_running), ("QUEUED", self._reap_queued)):
            for seen in repository.executions(self.store, active=True, job_status=status):
                if status == "IN_PROGRESS" and not self._running_due(seen, now):
                    # nothing to do on what was read: a running execution's own CAS each second
                    # was 1,000 read transactions a second for a fleet of 1,000 agents
                    continue

                def apply(
                    current: Execution, status: str = status, reap: Reaper = reap
                ) -> Execution | None:
                    return reap(current, now) if current.job.status == status else None

                done = update_execution(self.store, seen.arn, apply)
                changed += done is not None and done[1]
        for arn in self._after_write:  # item 0 ended by the reaper: its row, then the rest
            self._plan_done(arn, now)
        self._after_write.clear()
        return changed + self._reap_items(now) + self._settle_stranded(now)

    def _plan_done(self, arn: str, now: float) -> None:
        def done(item: WorkItem) -> WorkItem | None:
            if item.status in workitems.ENDED:
                return None
            return replace(
                item, status=workitems.SUCCEEDED, lease_expires=None, ended_at=now, updated_at=now
            )

        workitems.change_item(self.store, arn, 0, done)
        workitems.settle(self.store, arn, now)

    def _settle_stranded(self, now: float) -> int:
        """Roll up an active execution none of whose items is being worked on: an item's last
        report and the roll-up into its execution are two writes, and a process killed between
        them (kill -9, a lost host) leaves the execution unended, or its PENDING items (the
        root's files, REMOVE) waiting for a release that only the roll-up gives. `settle` is
        idempotent, so racing a live report's own roll-up is harmless."""
        busy = set(self.store.executions_with_items(ITEM_BUSY_STATUSES))
        changed = 0
        for doc in self.store.executions(active=True):
            arn = doc["TaskExecutionArn"]
            if not doc.get("_Plan") or arn in busy:
                continue
            settled = workitems.settle(self.store, arn, now)
            changed += settled is not None and settled.status in TERMINAL_STATUSES
        return changed

    # work items' leases -----------------------------------------------------------------------
    def _reap_items(self, now: float) -> int:
        """Items whose holder is lost go back to READY (another candidate takes them under the
        next epoch), or end their execution ERROR / AgentTimeout when no candidate is ONLINE; a
        cancel not acted on within the grace ends the item CANCELED; an execution whose READY
        items nobody can claim ends ERROR / AgentUnavailable."""
        changed = 0
        touched: set[str] = set()
        for row in self.store.items_with_status(RUNNING_STATUSES):
            item = WorkItem.from_row(row)
            execution = repository.execution(self.store, item.execution_arn)
            if execution is None:
                continue
            if item.kind == ItemKind.PREPARE:
                # item 0 is its execution's own job, reaped as one above; its row follows
                if execution.status in TERMINAL_STATUSES:
                    changed += self._end_item(item, workitems.CANCELED, now, "", "")
                continue
            cancelled_at = execution.cancel_requested_at
            if execution.status in TERMINAL_STATUSES or _cancel_outlived_grace(execution, now):
                changed += self._end_item(item, workitems.CANCELED, now, "Cancelled", "")
                touched.add(item.execution_arn)
                continue
            if item.lease_expires is None or item.lease_expires >= now:
                continue
            online = [a for a in self._execution_candidates(execution) if self.online(a)]
            if online and cancelled_at is None:

                def requeue(
                    current: WorkItem, epoch: int = item.execution_number
                ) -> WorkItem | None:
                    if not current.running or current.execution_number != epoch:
                        return None
                    return workitems.release_item(current, now)

                if workitems.change_item(self.store, item.execution_arn, item.index, requeue):
                    changed += 1
                    touched.add(item.execution_arn)
                    for agent in online:  # one of them takes it; the holders' shares grew
                        self._notify(agent)
                continue
            silent = now - item.updated_at
            detail = (
                f"The agent was lost: {item.agent_arn} sent no report for work item "
                f"{item.index} for {silent:.0f} s (the agent timeout is "
                f"{self.config.agent_timeout:g} s) and no other agent bound to both locations "
                "is ONLINE."
            )
            changed += self._end_execution(execution, now, "AgentTimeout", detail, item.index)
        for arn in touched:
            workitems.settle(self.store, arn, now)
        return changed + self._reap_unclaimed_items(now)

    def _end_item(
        self, item: WorkItem, status: workitems.ItemStatus, now: float, code: str, detail: str
    ) -> int:
        def end(current: WorkItem) -> WorkItem | None:
            if current.status in workitems.ENDED:
                return None
            result = dict(current.result)
            if code:
                result.setdefault("ErrorCode", code)
            if detail:
                result.setdefault("ErrorDetail", detail)
            return replace(
                current,
                status=status,
                target=None,
                lease_expires=None,
                ended_at=now,
                result=result,
                updated_at=now,
            )

        return int(
            workitems.change_item(self.store, item.execution_arn, item.index, end) is not None
        )

    def _end_execution(
        self, execution: Execution, now: float, code: str, detail: str, lost: int | None = None
    ) -> int:
        """End an execution with items from the control plane's side: the lost item FAILED,
        every other unfinished one CANCELED (nobody will run them for this execution)."""
        arn = execution.arn
        for item in workitems.list_items(self.store, arn):
            if item.kind == ItemKind.PREPARE and item.status in workitems.ENDED:
                continue
            status = workitems.FAILED if item.index == lost else workitems.CANCELED
            self._end_item(item, status, now, code, detail if item.index == lost else "")

        def end(current: Execution) -> Execution | None:
            if current.status in TERMINAL_STATUSES:
                return None
            return current.finished("ERROR", now, code, detail)

        done = update_execution(self.store, arn, end)
        return int(done is not None and done[1])

    def _reap_unclaimed_items(self, now: float) -> int:
        """READY items of an execution with no item running and no candidate ONLINE for
        `unclaimed_wait` seconds: the execution ends ERROR / AgentUnavailable, never hangs."""
        changed = 0
        for arn in self.store.executions_with_items((workitems.READY.value,)):
            execution = repository.execution(self.store, arn)
            if execution is None or execution.status in TERMINAL_STATUSES:
                continue
            if workitems.running_indexes(self.store, arn):
                continue
            candidates = self._execution_candidates(execution)
            if any(self.online(a) for a in candidates):
                continue
            items = workitems.list_items(self.store, arn)  # rare: nobody could take them
            last_seen = self._last_seen(candidates)
            waiting_since = max(
                max(i.updated_at for i in items),
                last_seen + self.config.agent_timeout,
                self.started_at,
            )
            if now - waiting_since <= self.config.unclaimed_wait:
                continue
            names = ", ".join(candidates) or "none"
            changed += self._end_execution(
                execution,
                now,
                "AgentUnavailable",
                f"No agent could run the rest of this execution: every agent bound to both "
                f"locations ({names}) stayed OFFLINE for {self.config.unclaimed_wait:g} s.",
            )
        return changed

    @staticmethod
    def _running_due(execution: Execution, now: float) -> bool:
        """Whether `_reap_running` would change this running execution: its cancel outlived the
        grace, its step timer or its lease ran out. Checked first on the rows read, so that
        only these few are re-read and changed under the compare-and-swap."""
        job = execution.job
        return (
            _cancel_outlived_grace(execution, now)
            or _step_timed_out(execution, now)
            or (job.lease_expires_at is not None and job.lease_expires_at < now)
        )

    def _reap_running(self, execution: Execution, now: float) -> Execution | None:
        if not self._running_due(execution, now):
            return None
        job = execution.job
        cancelled_at = execution.cancel_requested_at
        if _cancel_outlived_grace(execution, now):
            return execution.finished(
                "ERROR", now, "Cancelled", "The task execution was cancelled."
            )
        if _step_timed_out(execution, now):
            return execution.finished(
                "ERROR",
                now,
                "StepTimedOut",
                f"The job's step timer ({job.step_timeout_in_minutes} min, "
                "stepTimeoutInMinutes) ran out before agent "
                f"{execution.agent_arn} finished the execution.",
            )
        if execution.plan:
            # its agent was lost after uploading the plan: the plan stands, item 0 is done
            self._after_write.append(execution.arn)
            return execution.plan_done(now)
        lost = execution.agent_arn
        others = [a for a in self._execution_candidates(execution) if a != lost and self.online(a)]
        if others and cancelled_at is None:
            self._notify(others[0])
            return execution.requeued(others[0], now)
        silent = now - job.last_updated_at
        return execution.finished(
            "ERROR",
            now,
            "AgentTimeout",
            f"The agent was lost: {lost} sent no report for this execution for {silent:.0f} s "
            f"(the agent timeout is {self.config.agent_timeout:g} s).",
        )

    def _reap_queued(self, execution: Execution, now: float) -> Execution | None:
        candidates = self._execution_candidates(execution)
        online = [a for a in candidates if self.online(a)]
        if online:
            if execution.agent_arn not in online:  # its agent is gone: offer it to one here
                self._notify(online[0])
                return execution.assigned(online[0])
            return None
        last_seen = self._last_seen(candidates)
        waiting_since = max(
            execution.start_time, last_seen + self.config.agent_timeout, self.started_at
        )
        if now - waiting_since <= self.config.unclaimed_wait:
            return None
        names = ", ".join(candidates) or "none"
        return execution.finished(
            "ERROR",
            now,
            "AgentUnavailable",
            f"No agent could run this execution: every agent bound to both locations ({names}) "
            f"stayed OFFLINE for {self.config.unclaimed_wait:g} s after it was started.",
        )

    # recovery ---------------------------------------------------------------------------------
    def recover(self) -> int:
        """Resolve executions a previous process left unfinished; returns how many ended."""
        count = 0
        now = self.now()
        lease = self.config.agent_timeout
        for execution in repository.executions(self.store, active=True):
            reported_at = 0.0 if execution.reported_at is None else execution.reported_at
            if execution.start_time >= self.started_at or reported_at >= self.started_at:
                # started, claimed or reported on during this process's life: its agent lives
                # (recovery runs again whenever the lease is re-taken, e.g. after a slow renewal)
                continue
            if execution.plan:
                count += self._recover_items(execution, now)
                continue
            if self._is_remote(execution.agent_arn):
                if execution.job.status == "IN_PROGRESS":
                    update_execution(self.store, execution.arn, self._renewed(now, lease))
                continue

            def restarted(current: Execution) -> Execution:
                return current.finished(
                    "ERROR",
                    now,
                    "ServiceRestarted",
                    "The server stopped while this execution was queued or running; start it "
                    "again.",
                )

            if update_execution(self.store, execution.arn, restarted) is not None:
                count += 1
        return count

    @staticmethod
    def _renewed(now: float, lease: float) -> Callable[[Execution], Execution | None]:
        """A fresh lease for a job a remote agent still runs (it re-attaches with its next
        call), checked on the copy being written."""

        def renew(current: Execution) -> Execution | None:
            if current.job.status != "IN_PROGRESS":
                return None
            return current.lease_renewed(now, None, lease)

        return renew

    @staticmethod
    def _planned(now: float) -> Callable[[Execution], Execution | None]:
        """Item 0's job ended by recovery: its agent died with the previous process after
        uploading the plan, which stands (checked on the copy being written)."""

        def done(current: Execution) -> Execution | None:
            if current.job.status != "IN_PROGRESS":
                return None
            return current.plan_done(now)

        return done

    def _recover_items(self, execution: Execution, now: float) -> int:
        """An execution with a plan survives a restart: a remote agent's RUNNING item keeps a
        fresh lease (it re-attaches with its next call); the embedded agent's died with the
        previous process and is READY again (it can be redone; its journal skips what it
        finished). SUSPENDED items stay suspended. Returns how many items were requeued."""
        arn = execution.arn
        lease = self.config.agent_timeout
        count = 0
        for item in workitems.list_items(self.store, arn):
            if not item.running or item.updated_at >= self.started_at:
                continue
            if item.kind == ItemKind.PREPARE:
                continue  # its job is the execution's: its lease is the job's
            remote = item.agent_arn is not None and self._is_remote(item.agent_arn)

            def recover(current: WorkItem, remote: bool = remote) -> WorkItem | None:
                if not current.running or current.updated_at >= self.started_at:
                    return None
                if remote:
                    return replace(current, lease_expires=now + lease)
                return workitems.release_item(current, now)

            if workitems.change_item(self.store, arn, item.index, recover) and not remote:
                count += 1
        if execution.job.status == "IN_PROGRESS":
            if self._is_remote(execution.agent_arn):
                update_execution(self.store, arn, self._renewed(now, lease))
            else:  # it died after uploading the plan: the plan stands
                update_execution(self.store, arn, self._planned(now))
                self._plan_done(arn, now)
        # the previous process may have died between an item's last report and its roll-up
        workitems.settle(self.store, arn, now)
        return count
