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
  `ServiceRestarted`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from api import lifecycle
from api.cas import change_execution
from api.config import ServerConfig
from api.errors import InvalidRequestException
from api.store import Store
from contract import Doc
from engine import Options

__all__ = ["CANCEL_GRACE_SECONDS", "Admission", "Scheduler", "change_execution"]

CANCEL_GRACE_SECONDS = 30.0


@dataclass(frozen=True)
class Admission:
    """Where a new execution goes: its agent, and whether it waits (QUEUED) or starts."""

    agent_arn: str
    queued: bool


Reaper = Callable[[Doc, float], bool]


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

    # agents -----------------------------------------------------------------------------------
    def now(self) -> float:
        return self.config.clock()

    def agent_status(self, agent: Doc) -> str:
        last = float(agent.get("LastConnectionTime", 0.0))
        return "ONLINE" if self.now() - last < self.config.agent_timeout else "OFFLINE"

    def online(self, agent_arn: str) -> bool:
        agent = self.store.get("agent", agent_arn)
        return agent is not None and self.agent_status(agent) == "ONLINE"

    def candidates(self, task: Doc) -> list[str]:
        """Agents bound to both of the task's locations, in the source location's order."""
        source = self.store.get("location", task["SourceLocationArn"]) or {}
        destination = self.store.get("location", task["DestinationLocationArn"]) or {}
        theirs = set(destination.get("_Agents", []))
        return [a for a in source.get("_Agents", []) if a in theirs]

    def _execution_candidates(self, doc: Doc) -> list[str]:
        task = self.store.get("task", doc["TaskArn"])
        return self.candidates(task) if task is not None else []

    def _slots(self, agent_arn: str) -> int:
        agent = self.store.get("agent", agent_arn) or {}
        return max(1, int(agent.get("Concurrency", 1)))

    def task_status(self, task: Doc) -> str:
        """DataSync's TaskStatus: UNAVAILABLE whenever no agent that could run it is ONLINE."""
        if not any(self.online(a) for a in self.candidates(task)):
            return "UNAVAILABLE"
        active = self.store.executions(task_arn=task["TaskArn"], active=True)
        if any(e["Status"] != "QUEUED" for e in active):
            return "RUNNING"
        return "QUEUED" if active else "AVAILABLE"

    # admission --------------------------------------------------------------------------------
    def admit(self, task: Doc, options: Options, filters_key: str) -> Admission:
        """Choose the agent of a new execution and whether it waits; refuse what may not run."""
        for other in self.store.executions(task_arn=task["TaskArn"], active=True):
            if other["_FiltersKey"] == filters_key:
                raise InvalidRequestException(
                    f"Task {task['TaskArn']} already has execution {other['TaskExecutionArn']} "
                    f"({other['Status']}) with the same filters; wait for it or cancel it.",
                    "TaskExecutionAlreadyRunning",
                )
        candidates = self.candidates(task)
        if not candidates:
            raise InvalidRequestException(
                f"Task {task['TaskArn']}'s locations no longer share an agent.", "NoCommonAgent"
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
    ) -> Doc | None:
        """The job `agent_arn` should run next (already claimed and saved), or None."""
        now = self.now()
        running = self.store.executions(agent_arn=agent_arn, active=True, job_status="IN_PROGRESS")
        orphans = [d for d in running if lifecycle.job_id(d) not in running_ids]
        if orphans:  # the agent restarted: hand back what it was running

            def reattach(doc: Doc) -> bool:
                if doc["AgentArn"] != agent_arn or doc["Job"]["status"] != "IN_PROGRESS":
                    return False
                lifecycle.renew_lease(doc, now, step_timeout_minutes, self.config.agent_timeout)
                return True

            changed = change_execution(self.store, orphans[0]["TaskExecutionArn"], reattach)
            if changed is not None and changed[1]:
                return changed[0]
        if len(running) >= slots:
            return None
        for queued in self.store.executions(active=True, job_status="QUEUED"):
            owner = queued["AgentArn"]
            if owner != agent_arn and (
                agent_arn not in self._execution_candidates(queued) or self.online(owner)
            ):
                continue

            def take(doc: Doc, owner: str = owner) -> bool:
                # re-checked on the fresh copy: another agent (or process) may have taken it
                if doc["Job"]["status"] != "QUEUED" or doc["AgentArn"] != owner:
                    return False
                doc["AgentArn"] = agent_arn
                lifecycle.claim(doc, now, step_timeout_minutes, self.config.agent_timeout)
                if details:
                    doc["Job"]["statusDetails"] = details
                return True

            changed = change_execution(self.store, queued["TaskExecutionArn"], take)
            if changed is not None and changed[1]:
                return changed[0]
        return None

    # leases, timeouts, executions nobody can run ----------------------------------------------
    def reap(self) -> int:
        """One round of housekeeping; returns how many executions ended or moved agent."""
        now = self.now()
        changed = 0
        for status, reap in (("IN_PROGRESS", self._reap_running), ("QUEUED", self._reap_queued)):
            for seen in self.store.executions(active=True, job_status=status):

                def apply(doc: Doc, status: str = status, reap: Reaper = reap) -> bool:
                    return doc["Job"]["status"] == status and reap(doc, now)

                done = change_execution(self.store, seen["TaskExecutionArn"], apply)
                changed += done is not None and done[1]
        return changed

    def _reap_running(self, doc: Doc, now: float) -> bool:
        job = doc["Job"]
        cancelled_at = doc.get("CancelRequestedAt")
        if cancelled_at is not None and now - cancelled_at > CANCEL_GRACE_SECONDS:
            lifecycle.finish(doc, "ERROR", now, "Cancelled", "The task execution was cancelled.")
            return True
        step_deadline = job.get("stepDeadline")
        if step_deadline is not None and step_deadline < now:
            lifecycle.finish(
                doc,
                "ERROR",
                now,
                "StepTimedOut",
                f"The job's step timer ({job.get('stepTimeoutInMinutes')} min, "
                "stepTimeoutInMinutes) ran out before agent "
                f"{doc['AgentArn']} finished the execution.",
            )
            return True
        if job.get("leaseExpiresAt", now + 1) >= now:
            return False
        lost = doc["AgentArn"]
        others = [a for a in self._execution_candidates(doc) if a != lost and self.online(a)]
        if others and cancelled_at is None:
            lifecycle.requeue(doc, others[0], now)
            self._notify(others[0])
            return True
        silent = now - job.get("lastUpdatedAt", now)
        lifecycle.finish(
            doc,
            "ERROR",
            now,
            "AgentTimeout",
            f"The agent was lost: {lost} sent no report for this execution for {silent:.0f} s "
            f"(the agent timeout is {self.config.agent_timeout:g} s).",
        )
        return True

    def _reap_queued(self, doc: Doc, now: float) -> bool:
        candidates = self._execution_candidates(doc)
        online = [a for a in candidates if self.online(a)]
        if online:
            if doc["AgentArn"] not in online:  # its agent is gone: offer it to one that is here
                doc["AgentArn"] = online[0]
                self._notify(online[0])
                return True
            return False
        last_seen = max(
            (
                float((self.store.get("agent", a) or {}).get("LastConnectionTime", 0.0))
                for a in candidates
            ),
            default=0.0,
        )
        waiting_since = max(
            float(doc["StartTime"]), last_seen + self.config.agent_timeout, self.started_at
        )
        if now - waiting_since <= self.config.unclaimed_wait:
            return False
        names = ", ".join(candidates) or "none"
        lifecycle.finish(
            doc,
            "ERROR",
            now,
            "AgentUnavailable",
            f"No agent could run this execution: every agent bound to both locations ({names}) "
            f"stayed OFFLINE for {self.config.unclaimed_wait:g} s after it was started.",
        )
        return True

    # recovery ---------------------------------------------------------------------------------
    def recover(self) -> int:
        """Resolve executions a previous process left unfinished; returns how many ended."""
        count = 0
        now = self.now()
        for doc in self.store.executions(active=True):
            if (
                doc["StartTime"] >= self.started_at
                or doc.get("_ReportedAt", 0.0) >= self.started_at
            ):
                # started, claimed or reported on during this process's life: its agent lives
                # (recovery runs again whenever the lease is re-taken, e.g. after a slow renewal)
                continue
            if self._is_remote(doc["AgentArn"]):
                if doc["Job"]["status"] == "IN_PROGRESS":
                    lifecycle.renew_lease(doc, now, None, self.config.agent_timeout)
                    self.store.save_execution(doc)
                continue
            lifecycle.finish(
                doc,
                "ERROR",
                now,
                "ServiceRestarted",
                "The server stopped while this execution was queued or running; start it again.",
            )
            self.store.save_execution(doc)
            count += 1
        return count
