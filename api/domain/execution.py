"""A task execution, typed: its DataSync state, the IoT job it is offered as, and its wire shape.

The stored document (one `executions` row's JSON) is read and written here whole: `from_row`
keeps every member a release wrote, `to_row` gives the same document back (a document read and
written back unchanged is byte-identical). `to_wire` is DescribeTaskExecution's response and
`list_entry` ListTaskExecutions' entry: built from the typed fields alone, so the internal
members (the job, the locations as the agent sees them, the plan, the log bookkeeping) can never
reach the wire.

The transitions are this type's methods; its writers (`api.scheduler`, `api.jobs`,
`api.workitems`, `api.resources.executions`) apply them inside `api.cas.update_execution`'s
compare-and-swap.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any, ClassVar

from api.domain.enums import TaskMode
from contract.jobs import (
    COUNTERS,
    JOB_TERMINAL,
    NESTED_COUNTERS,
    PHASE_KEY,
    PHASES,
    REPORT_KEY,
    Control,
    JobDocument,
    decode_report,
)
from contract.model import enum_values
from contract.workitems import WHOLE_KEY, ItemAssignment, ItemBudget, ItemKind

__all__ = ["Execution", "JobExecutionStatus", "JobState", "TaskExecutionStatus"]

TaskExecutionStatus = StrEnum(  # type: ignore[misc]
    "TaskExecutionStatus", {v: v for v in enum_values("TaskExecutionStatus")}
)
TaskExecutionStatus.__doc__ = "DataSync's TaskExecutionStatus, from botocore's datasync model."
JobExecutionStatus = StrEnum(  # type: ignore[misc]
    "JobExecutionStatus", {v: v for v in enum_values("JobExecutionStatus", "iot-jobs-data")}
)
JobExecutionStatus.__doc__ = "IoT Jobs' JobExecutionStatus, from botocore's iot-jobs-data model."

_COUNTER_NAMES = (*COUNTERS, *NESTED_COUNTERS)
_PENDING_RESULT = {
    "PrepareDuration": 0,
    "PrepareStatus": "PENDING",
    "TransferDuration": 0,
    "TransferStatus": "PENDING",
    "VerifyDuration": 0,
    "VerifyStatus": "PENDING",
    "TotalDuration": 0,
}
# the service ended the job (cancel, restart, nobody to run it); any other end is a timeout
_ENDED_BY_SERVICE = ("Cancelled", "ServiceRestarted", "AgentUnavailable")
# the phases of an engine run past planning: item 0 reporting one without a plan runs whole
_PAST_PLANNING = frozenset({"TRANSFERRING", "VERIFYING"})


def _report_result(raw: str) -> dict[str, str]:
    """An agent's ReportResult (Status SUCCESS | ERROR, ErrorCode, ErrorDetail), else ERROR."""
    try:
        value = json.loads(raw)
    except ValueError:
        value = None
    if isinstance(value, dict) and value.get("Status") in ("SUCCESS", "ERROR"):
        return {k: str(v) for k, v in value.items() if k in ("Status", "ErrorCode", "ErrorDetail")}
    return {"Status": "ERROR", "ErrorCode": "InvalidReport", "ErrorDetail": "unreadable result"}


def _optional_float(row: Mapping[str, Any], name: str) -> float | None:
    value = row.get(name)
    return None if value is None else float(value)


@dataclass(frozen=True, slots=True)
class JobState:
    """The IoT job execution an execution is offered to its agent as (the agent's view)."""

    status: JobExecutionStatus
    status_details: Mapping[str, str]
    queued_at: int
    last_updated_at: int
    version_number: int
    execution_number: int
    started_at: int | None = None
    lease_expires_at: float | None = None
    step_timeout_in_minutes: int | None = None
    step_deadline: float | None = None
    # release 0.1 kept a copy of the job document here; it is derived from the execution now
    legacy_document: Mapping[str, Any] | None = None

    @property
    def ended(self) -> bool:
        return self.status.value in JOB_TERMINAL

    def moved(self, now: float, **changes: Any) -> JobState:
        """The job after a change: a new version, updated now."""
        return replace(
            self, last_updated_at=int(now), version_number=self.version_number + 1, **changes
        )

    def leased(
        self, now: float, step_timeout_minutes: int | None, lease_seconds: float
    ) -> JobState:
        """A heartbeat: the lease runs `lease_seconds` from now. A step timeout given with it
        sets the step timer (IoT Jobs: from now; -1 clears it); without one it stays."""
        job = replace(self, lease_expires_at=now + lease_seconds)
        if step_timeout_minutes is None:
            return job
        if step_timeout_minutes < 0:
            return replace(job, step_timeout_in_minutes=None, step_deadline=None)
        return replace(
            job,
            step_timeout_in_minutes=step_timeout_minutes,
            step_deadline=now + step_timeout_minutes * 60.0,
        )

    def unleased(self) -> JobState:
        """No lease and no step timer (the job ended or waits to be claimed again)."""
        return replace(self, lease_expires_at=None, step_deadline=None)

    @classmethod
    def from_row(cls, job: Mapping[str, Any]) -> JobState:
        started, step = job.get("startedAt"), job.get("stepTimeoutInMinutes")
        return cls(
            status=JobExecutionStatus(job["status"]),
            status_details={str(k): str(v) for k, v in (job.get("statusDetails") or {}).items()},
            queued_at=int(job["queuedAt"]),
            last_updated_at=int(job["lastUpdatedAt"]),
            version_number=int(job["versionNumber"]),
            execution_number=int(job["executionNumber"]),
            started_at=None if started is None else int(started),
            lease_expires_at=_optional_float(job, "leaseExpiresAt"),
            step_timeout_in_minutes=None if step is None else int(step),
            step_deadline=_optional_float(job, "stepDeadline"),
            legacy_document=job.get("document"),
        )

    def to_row(self) -> dict[str, Any]:
        row: dict[str, Any] = {
            "status": self.status.value,
            "statusDetails": dict(self.status_details),
            "queuedAt": self.queued_at,
            "lastUpdatedAt": self.last_updated_at,
            "versionNumber": self.version_number,
            "executionNumber": self.execution_number,
        }
        optional = {
            "startedAt": self.started_at,
            "leaseExpiresAt": self.lease_expires_at,
            "stepTimeoutInMinutes": self.step_timeout_in_minutes,
            "stepDeadline": self.step_deadline,
            "document": None if self.legacy_document is None else dict(self.legacy_document),
        }
        row.update((k, v) for k, v in optional.items() if v is not None)
        return row


@dataclass(frozen=True, slots=True)
class Execution:
    """One task execution. `counters`: the DescribeTaskExecution counters it has (flat ones
    from the start, nested ones once reported); `history`: (status, when) at every change.

    The internal members: `filters_key` (admission: one active execution per filter set),
    `source`/`destination` (the locations as its agent is told them), `reported_at` (the last
    time an agent spoke for it), `plan` (how many work items its plan has, issue 12) and
    `budget` (item 0's planning budget), `log_group`/`logged_states` (`api.execution_log`),
    `plan_target` (the operator's wish kept until its plan exists, `api.workitems`), `whole`
    (item 0 runs the whole tree: no plan will come), `plan_target_withdrawn` (why a kept wish
    was dropped) and `pace` (its items' pacing, `api.item_pacing`)."""

    task_execution_arn: str
    task_arn: str
    agent_arn: str
    task_mode: TaskMode
    status: TaskExecutionStatus
    options: Mapping[str, Any]
    start_time: float
    result: Mapping[str, Any]
    job: JobState
    includes: tuple[Mapping[str, Any], ...] = ()
    excludes: tuple[Mapping[str, Any], ...] = ()
    counters: Mapping[str, Any] = field(default_factory=dict)
    history: tuple[tuple[str, float], ...] = ()
    launch_time: float | None = None
    end_time: float | None = None
    cancel_requested_at: float | None = None
    report_result: Mapping[str, Any] | None = None
    task_report_config: Mapping[str, Any] | None = None
    manifest_config: Mapping[str, Any] | None = None
    filters_key: str | None = None
    source: Mapping[str, Any] | None = None
    destination: Mapping[str, Any] | None = None
    reported_at: float | None = None
    plan: int | None = None
    budget: Mapping[str, Any] | None = None
    log_group: str | None = None
    logged_states: int | None = None
    plan_target: str | None = None
    whole: bool = False
    plan_target_withdrawn: str | None = None
    pace: Mapping[str, Any] | None = None

    # the stored document's members this type reads (any other is kept beside it, untouched)
    ROW_MEMBERS: ClassVar[frozenset[str]] = frozenset(
        {
            "TaskExecutionArn", "TaskArn", "AgentArn", "TaskMode", "Status", "Options",
            "StartTime", "Result", "Job", "Includes", "Excludes", *_COUNTER_NAMES, "History",
            "LaunchTime", "EndTime", "CancelRequestedAt", "ReportResult", "TaskReportConfig",
            "ManifestConfig", "_FiltersKey", "_Source", "_Destination", "_ReportedAt", "_Plan",
            "_Budget", "_LogGroup", "_LoggedStates", "_PlanTarget", "_Whole",
            "_PlanTargetWithdrawn", "_Pace",
        }
    )  # fmt: skip

    @property
    def arn(self) -> str:
        return self.task_execution_arn

    @property
    def ended(self) -> bool:
        return self.status.value in ("SUCCESS", "ERROR")

    @property
    def cancelled(self) -> bool:
        """A cancel the API accepted: final, whatever the agent reports after it."""
        return self.cancel_requested_at is not None

    @property
    def job_id(self) -> str:
        """Its IoT job id: the `exec-…` part of the ARN."""
        return self.task_execution_arn.rsplit("/", 1)[1]

    # the store boundary -------------------------------------------------------------------------
    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Execution:
        return cls(
            task_execution_arn=str(row["TaskExecutionArn"]),
            task_arn=str(row["TaskArn"]),
            agent_arn=str(row["AgentArn"]),
            task_mode=TaskMode(row.get("TaskMode", "BASIC")),
            status=TaskExecutionStatus(row["Status"]),
            options=dict(row.get("Options") or {}),
            start_time=float(row["StartTime"]),
            result=dict(row.get("Result") or {}),
            job=JobState.from_row(row["Job"]),
            includes=tuple(row.get("Includes") or ()),
            excludes=tuple(row.get("Excludes") or ()),
            counters={name: row[name] for name in _COUNTER_NAMES if name in row},
            history=tuple((str(s), float(t)) for s, t in row.get("History") or ()),
            launch_time=_optional_float(row, "LaunchTime"),
            end_time=_optional_float(row, "EndTime"),
            cancel_requested_at=_optional_float(row, "CancelRequestedAt"),
            report_result=row.get("ReportResult"),
            task_report_config=row.get("TaskReportConfig"),
            manifest_config=row.get("ManifestConfig"),
            filters_key=row.get("_FiltersKey"),
            source=row.get("_Source"),
            destination=row.get("_Destination"),
            reported_at=_optional_float(row, "_ReportedAt"),
            plan=None if row.get("_Plan") is None else int(row["_Plan"]),
            budget=row.get("_Budget"),
            log_group=row.get("_LogGroup"),
            logged_states=None if row.get("_LoggedStates") is None else int(row["_LoggedStates"]),
            plan_target=row.get("_PlanTarget"),
            whole=bool(row.get("_Whole")),
            plan_target_withdrawn=row.get("_PlanTargetWithdrawn"),
            pace=row.get("_Pace"),
        )

    def to_row(self) -> dict[str, Any]:
        row: dict[str, Any] = {
            "TaskExecutionArn": self.task_execution_arn,
            "TaskArn": self.task_arn,
            "AgentArn": self.agent_arn,
            "TaskMode": self.task_mode.value,
            "Status": self.status.value,
            "Options": dict(self.options),
            "Includes": [dict(rule) for rule in self.includes],
            "Excludes": [dict(rule) for rule in self.excludes],
            "StartTime": self.start_time,
            **self.counters,
            "Result": dict(self.result),
            "History": [[status, when] for status, when in self.history],
            "Job": self.job.to_row(),
        }
        optional = {
            "LaunchTime": self.launch_time,
            "EndTime": self.end_time,
            "CancelRequestedAt": self.cancel_requested_at,
            "ReportResult": self.report_result,
            "TaskReportConfig": self.task_report_config,
            "ManifestConfig": self.manifest_config,
            "_FiltersKey": self.filters_key,
            "_Source": self.source,
            "_Destination": self.destination,
            "_ReportedAt": self.reported_at,
            "_Plan": self.plan,
            "_Budget": self.budget,
            "_LogGroup": self.log_group,
            "_LoggedStates": self.logged_states,
            "_PlanTarget": self.plan_target,
            "_Whole": True if self.whole else None,
            "_PlanTargetWithdrawn": self.plan_target_withdrawn,
            "_Pace": self.pace,
        }
        row.update((k, v) for k, v in optional.items() if v is not None)
        return row

    # the wire -----------------------------------------------------------------------------------
    def to_wire(self) -> dict[str, Any]:
        """DescribeTaskExecution's response."""
        wire: dict[str, Any] = {
            "TaskExecutionArn": self.task_execution_arn,
            "Status": self.status.value,
            "Options": dict(self.options),
            "Excludes": [dict(rule) for rule in self.excludes],
            "Includes": [dict(rule) for rule in self.includes],
            "StartTime": self.start_time,
            **self.counters,
            "Result": dict(self.result),
            "TaskMode": self.task_mode.value,
        }
        optional = {
            "ManifestConfig": self.manifest_config,
            "TaskReportConfig": self.task_report_config,
            "ReportResult": self.report_result,
            "LaunchTime": self.launch_time,
            "EndTime": self.end_time,
        }
        wire.update((k, v) for k, v in optional.items() if v is not None)
        return wire

    def list_entry(self) -> dict[str, str]:
        """ListTaskExecutions' TaskExecutionListEntry."""
        return {
            "TaskExecutionArn": self.task_execution_arn,
            "Status": self.status.value,
            "TaskMode": self.task_mode.value,
        }

    # the state machine ---------------------------------------------------------------------------
    #
    #   Status:  QUEUED ─claim─▶ LAUNCHING ─▶ PREPARING ─▶ TRANSFERRING ─▶ VERIFYING ─▶ SUCCESS
    #              │                 │  (phases only move forward)                 └─▶ ERROR
    #              └─cancel─▶ ERROR  └──cancel──▶ CANCELLING ──(agent stops)──▶ ERROR
    #   Job:     QUEUED ─▶ IN_PROGRESS ─▶ SUCCEEDED | FAILED | REJECTED | TIMED_OUT | CANCELED
    #            (the last five are final; a lost agent's job is QUEUED again, next number)
    #
    # Every method returns the execution after the event; the value it is called on is unchanged.

    @classmethod
    def new(
        cls,
        *,
        arn: str,
        task_arn: str,
        task_mode: str,
        agent_arn: str,
        options: Mapping[str, Any],
        includes: Any,
        excludes: Any,
        filters_key: str,
        source: Mapping[str, Any],
        destination: Mapping[str, Any],
        queued: bool,
        now: float,
    ) -> Execution:
        """A started execution: LAUNCHING when its agent has a free slot, else QUEUED."""
        status = TaskExecutionStatus("QUEUED" if queued else "LAUNCHING")
        return cls(
            task_execution_arn=arn,
            task_arn=task_arn,
            agent_arn=agent_arn,
            task_mode=TaskMode(task_mode),
            status=status,
            options=dict(options),
            start_time=now,
            result=dict(_PENDING_RESULT),
            job=JobState(JobExecutionStatus("QUEUED"), {}, int(now), int(now), 1, 1),
            includes=tuple(includes or ()),
            excludes=tuple(excludes or ()),
            counters=dict.fromkeys(COUNTERS, 0),
            history=((status.value, now),),
            filters_key=filters_key,
            source=dict(source),
            destination=dict(destination),
        )

    def _with_status(self, status: str, now: float) -> Execution:
        if self.status == status:
            return self
        return replace(
            self, status=TaskExecutionStatus(status), history=(*self.history, (status, now))
        )

    def claimed(
        self, now: float, step_timeout_minutes: int | None, lease_seconds: float
    ) -> Execution:
        """Its agent took the job: the job is IN_PROGRESS, a QUEUED execution LAUNCHING."""
        # `now` is read when the agent's poll began, which can be before StartTime: the execution
        # was started while the poll ran (seen under load). LaunchTime never precedes StartTime.
        now = max(now, self.start_time)
        job = self.job.moved(now, status=JobExecutionStatus("IN_PROGRESS"), started_at=int(now))
        claimed = replace(
            self,
            job=job.leased(now, step_timeout_minutes, lease_seconds),
            launch_time=now,
            reported_at=now,  # the last time an agent spoke for it (api.scheduler.recover)
        )
        return claimed._with_status("LAUNCHING", now) if self.status == "QUEUED" else claimed

    def taken(
        self,
        now: float,
        step_timeout_minutes: int | None,
        lease_seconds: float,
        budget: ItemBudget,
        details: Mapping[str, str],
    ) -> Execution:
        """Its agent claimed the QUEUED job (a lost agent's job is first re-assigned by the
        reaper: `assigned`). Item 0 plans within `budget` (sized by the ONLINE candidates at the
        claim); the statusDetails the agent claimed with, if any, are the job's first."""
        claimed = self.claimed(now, step_timeout_minutes, lease_seconds)
        job = replace(claimed.job, status_details=dict(details)) if details else claimed.job
        return replace(claimed, job=job, budget=budget.to_json())

    def lease_renewed(
        self, now: float, step_timeout_minutes: int | None, lease_seconds: float
    ) -> Execution:
        return replace(self, job=self.job.leased(now, step_timeout_minutes, lease_seconds))

    def assigned(self, agent_arn: str) -> Execution:
        """A QUEUED job whose agent went away, offered to `agent_arn` instead: nobody ran it,
        so only the assignment moves (its job keeps its version and execution number)."""
        return replace(self, agent_arn=agent_arn)

    def plan_accepted(self, items: int) -> Execution:
        """Item 0's plan of `items` work items is in (`api.scheduler.accept_plan`): a wish kept
        for the plan is consumed (its items were created with it), and from now on the counters
        are the items' sums, so they start again from zero (item 0's planning is not counted)."""
        return replace(
            self,
            plan=items,
            plan_target=None,
            counters=dict.fromkeys(COUNTERS, 0),  # the nested ones come with the items' reports
        )

    def whole_reported(self, details: Mapping[str, str], reason: str) -> Execution:
        """Item 0's report before any plan: when it says it runs the whole tree (`WHOLE_KEY`,
        or its phase is past planning: an agent that does not say), no plan will come, so it
        is marked whole and a suspend wish kept for the plan is withdrawn, noting `reason`
        (GetJob's description), so that the operator's SUSPENDED is never silently dropped."""
        if self.plan or self.whole:
            return self
        if details.get(WHOLE_KEY) != "true" and details.get(PHASE_KEY) not in _PAST_PLANNING:
            return self
        withdrawn = self.plan_target_withdrawn
        if self.plan_target == "SUSPENDED":
            withdrawn = f"UpdateJob SUSPENDED was withdrawn: {reason}."
        return replace(self, whole=True, plan_target=None, plan_target_withdrawn=withdrawn)

    def requeued(self, agent_arn: str, now: float) -> Execution:
        """Its agent was lost: offer the job again, to `agent_arn`, as the next execution
        number. The DataSync phase stays (phases only move forward); the new run re-plans."""
        job = replace(self.job.unleased(), step_timeout_in_minutes=None, started_at=None).moved(
            now,
            status=JobExecutionStatus("QUEUED"),
            status_details={},
            execution_number=self.job.execution_number + 1,
        )
        return replace(self, job=job, agent_arn=agent_arn)

    def phase_advanced(self, phase: str | None, now: float) -> Execution:
        """The DataSync phase moved forward to `phase` (never back; CANCELLING stays)."""
        current = self.status.value
        if current in PHASES and phase in PHASES and PHASES.index(phase) > PHASES.index(current):
            return self._with_status(phase, now)
        return self

    def _reported_job(self, status: str, details: Mapping[str, str], now: float) -> Execution:
        job = self.job.moved(now, status=JobExecutionStatus(status), status_details=dict(details))
        return replace(self, job=job, reported_at=now)

    def planner_reported(self, status: str, details: Mapping[str, str], now: float) -> Execution:
        """Item 0's report once its plan is in: only its job moves. The execution's counters
        are its items' sums and it ends by the end rule over them (`api.workitems.settle`),
        not by this job's end. A phase it reports still moves the execution forward."""
        reported = self._reported_job(status, details, now)
        if status == "IN_PROGRESS":
            return reported.phase_advanced(decode_report(details).phase, now)
        return replace(reported, job=reported.job.unleased())

    def plan_done(self, now: float) -> Execution:
        """Item 0's job, whose plan is in, ended by the control plane (its agent was lost after
        the upload, or died with the previous process): the plan stands, so it SUCCEEDED."""
        return self.planner_reported("SUCCEEDED", dict(self.job.status_details), now)

    def reported(self, status: str, details: Mapping[str, str], now: float) -> Execution:
        """An agent's UpdateJobExecution: take its counters, move the phase forward, and end
        the execution when the job ended. A cancel the API accepted stays a cancel: an agent
        finishing first still ends it in ERROR / Cancelled, never SUCCESS."""
        report = decode_report(details)
        job = self.job.moved(now, status=JobExecutionStatus(status), status_details=dict(details))
        report_result = self.report_result
        if report_result and REPORT_KEY in details:
            report_result = _report_result(details[REPORT_KEY])
        execution = replace(  # one copy: every report passes here
            self,
            job=job,
            reported_at=now,
            counters={**self.counters, **report.counters},
            result={**self.result, **report.result},
            report_result=report_result,
        )
        if status == "IN_PROGRESS":
            return execution.phase_advanced(report.phase, now)
        if status == "SUCCEEDED" and not self.cancelled:
            return execution._ended("SUCCESS", now)
        if self.cancelled:
            code, detail = "Cancelled", "The task execution was cancelled."
        else:
            code = "AgentError" if status == "FAILED" else "AgentRejected"
            detail = f"The agent reported the job as {status}."
        result = {"ErrorCode": code, "ErrorDetail": detail, **execution.result}
        return replace(execution, result=result)._ended("ERROR", now)

    def _ended(self, status: str, now: float) -> Execution:
        result = dict(self.result)
        if not result.get("TotalDuration"):
            result["TotalDuration"] = int((now - self.start_time) * 1000)
        if status == "ERROR":
            for phase in ("Prepare", "Transfer", "Verify"):
                if result.get(f"{phase}Status") == "PENDING":
                    result[f"{phase}Status"] = "ERROR"
                    break
        ended = replace(self, end_time=now, job=self.job.unleased(), result=result)
        return ended._with_status(status, now)

    def _report_pending(self) -> bool:
        return (self.report_result or {}).get("Status") == "PENDING"

    def items_ended(
        self,
        status: str,
        now: float,
        error_code: str,
        error_detail: str,
        result: Mapping[str, Any],
        reports: list[str] | None = None,
    ) -> Execution:
        """End an execution with a plan once no item keeps it alive (`api.workitems.settle`):
        SUCCESS, or ERROR naming its items that did not succeed. A cancel stays a cancel.
        `reports`: the ReportResults its items' agents sent (each wrote its part of the task
        report): SUCCESS when every one did, else the first error."""
        execution = replace(self, result={**self.result, **result})
        if execution._report_pending() and reports:
            failed = [r for r in map(_report_result, reports) if r["Status"] != "SUCCESS"]
            execution = replace(
                execution, report_result=failed[0] if failed else {"Status": "SUCCESS"}
            )
        if self.cancelled:
            status, error_code = "ERROR", "Cancelled"
            error_detail = "The task execution was cancelled. " + error_detail
        report_result = execution.report_result
        if status == "ERROR":
            code = error_code or "WorkItemFailed"
            execution = replace(
                execution,
                result={**execution.result, "ErrorCode": code, "ErrorDetail": error_detail},
            )
            if execution._report_pending():
                report_result = {
                    "Status": "ERROR",
                    "ErrorCode": code,
                    "ErrorDetail": "Not every work item succeeded.",
                }
        elif execution._report_pending():
            report_result = {
                "Status": "ERROR",
                "ErrorCode": "NoTaskReport",
                "ErrorDetail": "No work item's agent wrote a task report.",
            }
        return replace(execution, report_result=report_result)._ended(status, now)

    def finished(self, status: str, now: float, error_code: str, error_detail: str) -> Execution:
        """Ended from the control plane's side (cancel of a queued one, timeout, restart)."""
        job = self.job
        if not job.ended:
            ended_by_service = error_code in _ENDED_BY_SERVICE
            job = job.moved(
                now, status=JobExecutionStatus("CANCELED" if ended_by_service else "TIMED_OUT")
            )
        report_result = self.report_result
        if self._report_pending():
            # no agent is left to write the report of an execution the service ended
            report_result = {
                "Status": "ERROR",
                "ErrorCode": error_code,
                "ErrorDetail": "No task report was written: the execution ended before an "
                "agent finished it.",
            }
        result = {**self.result, "ErrorCode": error_code, "ErrorDetail": error_detail}
        finished = replace(self, job=job, result=result, report_result=report_result)
        return finished._ended(status, now)

    def cancel_requested(self, now: float) -> Execution:
        """Cancel: a job nobody claimed ends at once; a running one goes CANCELLING and its
        agent stops (it hears `control:cancel` in its next reply)."""
        asked = replace(self, cancel_requested_at=now)
        if self.job.status == "QUEUED":
            return asked.finished("ERROR", now, "Cancelled", "The task execution was cancelled.")
        return asked._with_status("CANCELLING", now)

    def rate_set(self, options: Mapping[str, Any]) -> Execution:
        """UpdateTaskExecution: its Options (only BytesPerSecond may change) as merged and
        checked by the caller. The job document follows: it is derived from these."""
        return replace(self, options=dict(options))

    # what the agent is told -------------------------------------------------------------------
    def control(self) -> Control:
        """What the control plane wants the agent to do (every reply's statusDetails)."""
        return Control(int(self.options["BytesPerSecond"]), self.cancelled)

    def job_document(self) -> JobDocument:
        """The document the execution is offered as, derived from it on every read: its Options
        are the execution's own (one BytesPerSecond, changed in one place). Executions stored by
        an earlier release keep their locations inside the job's old copy."""
        old = self.job.legacy_document or {}
        item: Mapping[str, Any] = {}
        if self.budget:  # item 0 of an execution: plan within this budget (contract.workitems)
            budget = ItemBudget.from_json(dict(self.budget))
            item = ItemAssignment(0, ItemKind.PREPARE, budget=budget).to_json()
        return JobDocument(
            TaskExecutionArn=self.task_execution_arn,
            TaskArn=self.task_arn,
            TaskMode=self.task_mode.value,
            Options=dict(self.options),
            Includes=[dict(r) for r in self.includes],
            Excludes=[dict(r) for r in self.excludes],
            Source=self.source or old.get("Source") or {},
            Destination=self.destination or old.get("Destination") or {},
            TaskReportConfig=self.task_report_config or {},
            ManifestConfig=self.manifest_config or {},
            Item=item,
        )

    def item_job_document(self, assignment: ItemAssignment) -> JobDocument:
        """The document a work item is offered as: the execution's, with the item's part."""
        return replace(self.job_document(), Item=assignment.to_json())

    # the job on the jobs protocol's wire (IoT Jobs data plane shapes) --------------------------
    def job_details(self) -> dict[str, str]:
        """The job's statusDetails as its agent reads them: its last report and our wishes."""
        return {**self.job.status_details, **self.control().to_details()}

    def job_state(self) -> dict[str, Any]:
        """JobExecutionState: what a report's reply and a conflict carry."""
        return {
            "status": self.job.status.value,
            "statusDetails": self.job_details(),
            "versionNumber": self.job.version_number,
        }

    def job_summary(self) -> dict[str, Any]:
        """JobExecutionSummary (GetPendingJobExecutions); a JobExecution has these and more."""
        summary: dict[str, Any] = {
            "jobId": self.job_id,
            "queuedAt": self.job.queued_at,
            "lastUpdatedAt": self.job.last_updated_at,
            "versionNumber": self.job.version_number,
            "executionNumber": self.job.execution_number,
        }
        if self.job.started_at is not None:
            summary["startedAt"] = self.job.started_at
        return summary

    def job_execution(
        self, thing: str, now: float, include_document: bool = True
    ) -> dict[str, Any]:
        """JobExecution (DescribeJobExecution, a claim's answer): the job document is derived
        from the execution as it is now."""
        wire: dict[str, Any] = {
            **self.job_summary(),
            "thingName": thing,
            "status": self.job.status.value,
            "statusDetails": self.job_details(),
        }
        deadline = self.job.step_deadline
        if deadline is None:
            deadline = self.job.lease_expires_at
        if deadline is not None:
            wire["approximateSecondsBeforeTimedOut"] = max(0, int(deadline - now))
        if include_document:
            wire["jobDocument"] = self.job_document().to_json()
        return wire
