"""An execution's state: its DataSync status, its job (the agent's view), and how they move.

The execution document couples two state machines:

* DataSync `Status`: QUEUED → LAUNCHING → PREPARING → TRANSFERRING → VERIFYING → SUCCESS | ERROR,
  with CANCELLING on the way to ERROR after a cancel. Phases only move forward.
* The IoT job execution `Job.status`: QUEUED → IN_PROGRESS → SUCCEEDED | FAILED | REJECTED |
  TIMED_OUT | CANCELED; the last five are terminal and final.

Agents report phase and counters in `statusDetails` (string values, ≤ 1024 characters):
``phase`` (a TaskExecutionStatus), ``counters`` and ``result`` (compact JSON objects with the
DescribeTaskExecution names). The control plane's wishes go back in the reply's
``statusDetails`` under ``control:bytesPerSecond`` and ``control:cancel``.

An execution split into work items (issue 12, `_Plan` set by the plan upload) couples them
differently: its job is item 0's, which only plans (`report_planned`: the job moves, the
execution does not end with it), and the execution's counters, phase and end come from its
items (`api.workitems.settle` → `advance_phase`, `end_items`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from contract import Doc
from contract.jobs import (
    COUNTERS,
    JOB_TERMINAL,
    PHASES,
    REPORT_KEY,
    Control,
    JobDocument,
    decode_report,
)
from contract.workitems import ItemAssignment, ItemBudget, ItemKind

__all__ = [
    "COUNTERS",
    "JOB_TERMINAL",
    "PHASES",
    "advance_phase",
    "apply_report",
    "claim",
    "control_details",
    "describe",
    "end_items",
    "finish",
    "item_job_document",
    "job_document",
    "job_id",
    "location_for_agent",
    "new_execution",
    "plan_done",
    "renew_lease",
    "report_planned",
    "request_cancel",
    "requeue",
]

_PENDING_RESULT = {
    "PrepareDuration": 0,
    "PrepareStatus": "PENDING",
    "TransferDuration": 0,
    "TransferStatus": "PENDING",
    "VerifyDuration": 0,
    "VerifyStatus": "PENDING",
    "TotalDuration": 0,
}


def location_for_agent(location: Doc) -> Doc:
    """What an agent needs to know about a location to find its directory."""
    return {
        "LocationArn": location["LocationArn"],
        "LocationType": location["LocationType"],
        "LocationUri": location["LocationUri"],
        "ServerHostname": location["ServerHostname"],
        "Subdirectory": location["Subdirectory"],
    }


def new_execution(
    *,
    arn: str,
    task: Doc,
    agent_arn: str,
    options: Doc,
    includes: Any,
    excludes: Any,
    filters_key: str,
    source: Doc,
    destination: Doc,
    queued: bool,
    now: float,
) -> Doc:
    status = "QUEUED" if queued else "LAUNCHING"
    return {
        "TaskExecutionArn": arn,
        "TaskArn": task["TaskArn"],
        "AgentArn": agent_arn,
        "TaskMode": task["TaskMode"],
        "Status": status,
        "Options": options,
        "Includes": includes,
        "Excludes": excludes,
        "StartTime": now,
        **dict.fromkeys(COUNTERS, 0),
        "Result": dict(_PENDING_RESULT),
        "History": [[status, now]],
        "_FiltersKey": filters_key,
        "_Source": source,
        "_Destination": destination,
        "Job": {
            "status": "QUEUED",
            "statusDetails": {},
            "queuedAt": int(now),
            "lastUpdatedAt": int(now),
            "versionNumber": 1,
            "executionNumber": 1,
        },
    }


def _set_status(doc: Doc, status: str, now: float) -> None:
    if doc["Status"] != status:
        doc["Status"] = status
        doc["History"].append([status, now])


def describe(doc: Mapping[str, Any]) -> Mapping[str, Any]:
    """The DescribeTaskExecution view (internal members are dropped by the renderer)."""
    return doc


def claim(doc: Doc, now: float, step_timeout_minutes: int | None, lease_seconds: float) -> None:
    """The agent took the job: QUEUED → IN_PROGRESS, execution → LAUNCHING."""
    # `now` is read when the agent's poll began, which can be before StartTime: the execution
    # was started while the poll ran (seen under load). LaunchTime never precedes StartTime.
    now = max(now, float(doc["StartTime"]))
    job = doc["Job"]
    job.update(status="IN_PROGRESS", startedAt=int(now), lastUpdatedAt=int(now))
    job["versionNumber"] += 1
    renew_lease(doc, now, step_timeout_minutes, lease_seconds)
    doc["LaunchTime"] = now
    doc["_ReportedAt"] = now  # the last time an agent spoke for it (see api.scheduler.recover)
    if doc["Status"] == "QUEUED":
        _set_status(doc, "LAUNCHING", now)


def renew_lease(
    doc: Doc, now: float, step_timeout_minutes: int | None, lease_seconds: float
) -> None:
    """A heartbeat: the lease runs `lease_seconds` from now. A step timeout given with it sets
    the step timer (IoT Jobs: from now; -1 clears it); without one the timer stays as it is."""
    job = doc["Job"]
    job["leaseExpiresAt"] = now + lease_seconds
    if step_timeout_minutes is None:
        return
    if step_timeout_minutes < 0:
        job.pop("stepTimeoutInMinutes", None)
        job.pop("stepDeadline", None)
    else:
        job["stepTimeoutInMinutes"] = step_timeout_minutes
        job["stepDeadline"] = now + step_timeout_minutes * 60.0


def job_id(doc: Doc) -> str:
    """The job id of an execution: its `exec-…` part."""
    return str(doc["TaskExecutionArn"].rsplit("/", 1)[1])


def requeue(doc: Doc, agent_arn: str, now: float) -> None:
    """Its agent was lost: offer the job again, to `agent_arn`, as the next execution number.
    The DataSync phase stays (phases only move forward); the new run re-plans from the trees."""
    job = doc["Job"]
    for key in ("leaseExpiresAt", "stepDeadline", "stepTimeoutInMinutes", "startedAt"):
        job.pop(key, None)
    job.update(status="QUEUED", statusDetails={}, lastUpdatedAt=int(now))
    job["versionNumber"] += 1
    job["executionNumber"] += 1
    doc["AgentArn"] = agent_arn


def report_planned(doc: Doc, status: str, details: dict[str, str], now: float) -> None:
    """Item 0's report once its plan is in (`_Plan`): only its job moves. The execution's
    counters are its items' sums and it ends by the end rule over them (`api.workitems.settle`),
    not by this job's end. A phase it reports still moves the execution forward."""
    job = doc["Job"]
    job["statusDetails"] = details
    job["status"] = status
    job["lastUpdatedAt"] = int(now)
    job["versionNumber"] += 1
    doc["_ReportedAt"] = now
    if status == "IN_PROGRESS":
        phase = decode_report(details).phase
        if phase is not None:
            advance_phase(doc, phase, now)
    else:
        job.pop("leaseExpiresAt", None)
        job.pop("stepDeadline", None)


def plan_done(doc: Doc, now: float) -> None:
    """Item 0's job, whose plan is in, ended by the control plane (its agent was lost after
    the upload, or died with the previous process): the plan stands, so the job SUCCEEDED."""
    report_planned(doc, "SUCCEEDED", dict(doc["Job"]["statusDetails"]), now)


def _merge_counters(doc: Doc, details: dict[str, str]) -> None:
    report = decode_report(details)
    doc.update(report.counters)
    if doc.get("ReportResult") and REPORT_KEY in details:
        doc["ReportResult"] = _report_result(details[REPORT_KEY])
    if report.result:
        doc["Result"] = {**doc["Result"], **report.result}


def _report_result(raw: str) -> Doc:
    """The agent's ReportResult (Status SUCCESS | ERROR, ErrorCode, ErrorDetail), else ERROR."""
    try:
        value = json.loads(raw)
    except ValueError:
        value = None
    if isinstance(value, dict) and value.get("Status") in ("SUCCESS", "ERROR"):
        return {k: str(v) for k, v in value.items() if k in ("Status", "ErrorCode", "ErrorDetail")}
    return {"Status": "ERROR", "ErrorCode": "InvalidReport", "ErrorDetail": "unreadable result"}


def apply_report(doc: Doc, status: str, details: dict[str, str], now: float) -> None:
    """An agent's UpdateJobExecution: move the phase forward, take counters, maybe finish."""
    job = doc["Job"]
    job["statusDetails"] = details
    job["status"] = status
    job["lastUpdatedAt"] = int(now)
    doc["_ReportedAt"] = now
    job["versionNumber"] += 1
    _merge_counters(doc, details)
    if status == "IN_PROGRESS":
        phase = decode_report(details).phase
        current = doc["Status"]
        if current in PHASES and phase in PHASES and PHASES.index(phase) > PHASES.index(current):
            _set_status(doc, phase, now)
        return
    if status == "SUCCEEDED" and doc.get("CancelRequestedAt") is None:
        _end(doc, "SUCCESS", now)
        return
    # a cancel the API accepted is final: an agent finishing first still ends the execution in
    # ERROR / Cancelled, never SUCCESS
    result = doc["Result"]
    if doc.get("CancelRequestedAt") is not None:
        result.setdefault("ErrorCode", "Cancelled")
        result.setdefault("ErrorDetail", "The task execution was cancelled.")
    else:
        result.setdefault("ErrorCode", "AgentError" if status == "FAILED" else "AgentRejected")
        result.setdefault("ErrorDetail", f"The agent reported the job as {status}.")
    _end(doc, "ERROR", now)


def _end(doc: Doc, status: str, now: float) -> None:
    _set_status(doc, status, now)
    doc["EndTime"] = now
    doc["Job"].pop("leaseExpiresAt", None)
    doc["Job"].pop("stepDeadline", None)
    result = doc["Result"]
    result.setdefault("TotalDuration", int((now - doc["StartTime"]) * 1000))
    if result.get("TotalDuration", 0) == 0:
        result["TotalDuration"] = int((now - doc["StartTime"]) * 1000)
    if status == "ERROR":
        for phase in ("Prepare", "Transfer", "Verify"):
            if result.get(f"{phase}Status") == "PENDING":
                result[f"{phase}Status"] = "ERROR"
                break


def advance_phase(doc: Doc, phase: str, now: float) -> bool:
    """Move the DataSync phase forward to `phase` (never back); True if it moved. A cancelled
    execution stays CANCELLING."""
    current = doc["Status"]
    if current in PHASES and phase in PHASES and PHASES.index(phase) > PHASES.index(current):
        _set_status(doc, phase, now)
        return True
    return False


def end_items(
    doc: Doc,
    status: str,
    now: float,
    error_code: str,
    error_detail: str,
    result: Mapping[str, Any],
    reports: list[str] | None = None,
) -> None:
    """End an execution with a plan once no item keeps it alive (`api.workitems.settle`):
    SUCCESS, or ERROR naming its items that did not succeed. A cancel stays a cancel.
    `reports`: the ReportResults its items' agents sent (each wrote its part of the task
    report): SUCCESS when every one did, else the first error."""
    doc["Result"] = {**doc["Result"], **result}
    if (doc.get("ReportResult") or {}).get("Status") == "PENDING" and reports:
        parsed = [_report_result(raw) for raw in reports]
        failed = [r for r in parsed if r["Status"] != "SUCCESS"]
        doc["ReportResult"] = failed[0] if failed else {"Status": "SUCCESS"}
    if doc.get("CancelRequestedAt") is not None:
        status, error_code = "ERROR", "Cancelled"
        error_detail = "The task execution was cancelled. " + error_detail
    if status == "ERROR":
        doc["Result"]["ErrorCode"] = error_code or "WorkItemFailed"
        doc["Result"]["ErrorDetail"] = error_detail
        if (doc.get("ReportResult") or {}).get("Status") == "PENDING":
            doc["ReportResult"] = {
                "Status": "ERROR",
                "ErrorCode": doc["Result"]["ErrorCode"],
                "ErrorDetail": "Not every work item succeeded.",
            }
    elif (doc.get("ReportResult") or {}).get("Status") == "PENDING":
        doc["ReportResult"] = {
            "Status": "ERROR",
            "ErrorCode": "NoTaskReport",
            "ErrorDetail": "No work item's agent wrote a task report.",
        }
    _end(doc, status, now)


def finish(doc: Doc, status: str, now: float, error_code: str, error_detail: str) -> None:
    """End an execution from the control plane's side (cancel of a queued one, timeout, restart)."""
    job = doc["Job"]
    if job["status"] not in JOB_TERMINAL:
        # the service ended it (cancel, restart, nobody to run it), or its time ran out
        ended_by_service = error_code in ("Cancelled", "ServiceRestarted", "AgentUnavailable")
        job["status"] = "CANCELED" if ended_by_service else "TIMED_OUT"
        job["lastUpdatedAt"] = int(now)
        job["versionNumber"] += 1
    doc["Result"]["ErrorCode"] = error_code
    doc["Result"]["ErrorDetail"] = error_detail
    if (doc.get("ReportResult") or {}).get("Status") == "PENDING":
        # no agent is left to write the report of an execution the service ended
        doc["ReportResult"] = {
            "Status": "ERROR",
            "ErrorCode": error_code,
            "ErrorDetail": "No task report was written: the execution ended before an agent "
            "finished it.",
        }
    _end(doc, status, now)


def request_cancel(doc: Doc, now: float) -> None:
    """Cancel: a job nobody claimed ends at once; a running one goes CANCELLING, its agent stops."""
    doc["CancelRequestedAt"] = now
    if doc["Job"]["status"] == "QUEUED":
        finish(doc, "ERROR", now, "Cancelled", "The task execution was cancelled.")
    else:
        _set_status(doc, "CANCELLING", now)


def control_details(doc: Doc) -> dict[str, str]:
    """What the control plane wants the agent to do, as statusDetails entries."""
    control = Control(
        int(doc["Options"]["BytesPerSecond"]), doc.get("CancelRequestedAt") is not None
    )
    return control.to_details()


def item_job_document(doc: Doc, assignment: ItemAssignment) -> JobDocument:
    """The document a work item is offered as: the execution's, with the item's assignment."""
    return replace(job_document(doc), Item=assignment.to_json())


def job_document(doc: Doc) -> JobDocument:
    """The document the execution is offered as, derived from it on every read: its Options are
    the execution's own (one BytesPerSecond, changed in one place). Executions stored by an
    earlier release keep their locations inside ``Job.document``."""
    old = doc["Job"].get("document") or {}
    return JobDocument(
        TaskExecutionArn=doc["TaskExecutionArn"],
        TaskArn=doc["TaskArn"],
        TaskMode=doc["TaskMode"],
        Options=doc["Options"],
        Includes=list(doc.get("Includes") or []),
        Excludes=list(doc.get("Excludes") or []),
        Source=doc.get("_Source") or old.get("Source") or {},
        Destination=doc.get("_Destination") or old.get("Destination") or {},
        TaskReportConfig=doc.get("TaskReportConfig") or {},
        ManifestConfig=doc.get("ManifestConfig") or {},
        # item 0 of an execution: plan within this budget (contract.workitems)
        Item=ItemAssignment(
            0, ItemKind.PREPARE, budget=ItemBudget.from_json(doc["_Budget"])
        ).to_json()
        if doc.get("_Budget")
        else {},
    )
