"""The execution documents' side of `api.domain.execution.Execution`'s state machine.

The transitions are `Execution`'s methods (`claimed`, `reported`, `cancel_requested`,
`rate_set`, `finished`, …, with the state diagram there). The writers of an execution
(`api.scheduler`, `api.jobs`, `api.workitems`, `api.resources.executions`) still change the
stored document inside a compare-and-swap (`api.cas.change_execution`); each function here reads
the document as an `Execution`, applies one transition and writes the result back into the same
document, keeping any member the type does not know. The rules live on the type alone.

Agents report phase and counters in `statusDetails` (string values, ≤ 1024 characters, see
`contract.jobs`); the control plane's wishes go back under ``control:bytesPerSecond`` and
``control:cancel`` (`control_details`). An execution split into work items (issue 12, `_Plan`
set by the plan upload) couples them differently: its job is item 0's, which only plans
(`report_planned`: the job moves, the execution does not end with it), and the execution's
counters, phase and end come from its items (`api.workitems.settle` → `advance_phase`,
`end_items`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from api.domain.execution import Execution
from contract import Doc
from contract.jobs import COUNTERS, JOB_TERMINAL, PHASES, JobDocument
from contract.workitems import ItemAssignment

__all__ = [
    "COUNTERS",
    "JOB_TERMINAL",
    "PHASES",
    "advance_phase",
    "apply_report",
    "claim",
    "control_details",
    "end_items",
    "finish",
    "item_job_document",
    "job_document",
    "job_id",
    "new_execution",
    "plan_done",
    "renew_lease",
    "report_planned",
    "request_cancel",
    "requeue",
    "set_rate",
]


def _apply(doc: Doc, change: Callable[[Execution], Execution]) -> Execution:
    """Apply one transition to the document in place; returns the execution after it."""
    after = change(Execution.from_row(doc))
    kept = {k: v for k, v in doc.items() if k not in Execution.ROW_MEMBERS}
    doc.clear()
    doc.update(after.to_row())
    doc.update(kept)
    return after


def new_execution(
    *,
    arn: str,
    task_arn: str,
    task_mode: str,
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
    """The document of a started execution (`Execution.new`)."""
    return Execution.new(
        arn=arn,
        task_arn=task_arn,
        task_mode=task_mode,
        agent_arn=agent_arn,
        options=options,
        includes=includes,
        excludes=excludes,
        filters_key=filters_key,
        source=source,
        destination=destination,
        queued=queued,
        now=now,
    ).to_row()


def claim(doc: Doc, now: float, step_timeout_minutes: int | None, lease_seconds: float) -> None:
    _apply(doc, lambda e: e.claimed(now, step_timeout_minutes, lease_seconds))


def renew_lease(
    doc: Doc, now: float, step_timeout_minutes: int | None, lease_seconds: float
) -> None:
    _apply(doc, lambda e: e.lease_renewed(now, step_timeout_minutes, lease_seconds))


def job_id(doc: Mapping[str, Any]) -> str:
    """The job id of an execution: its `exec-…` part."""
    return str(doc["TaskExecutionArn"]).rsplit("/", 1)[1]


def requeue(doc: Doc, agent_arn: str, now: float) -> None:
    _apply(doc, lambda e: e.requeued(agent_arn, now))


def report_planned(doc: Doc, status: str, details: dict[str, str], now: float) -> None:
    _apply(doc, lambda e: e.planner_reported(status, details, now))


def plan_done(doc: Doc, now: float) -> None:
    _apply(doc, lambda e: e.plan_done(now))


def apply_report(doc: Doc, status: str, details: dict[str, str], now: float) -> None:
    _apply(doc, lambda e: e.reported(status, details, now))


def advance_phase(doc: Doc, phase: str, now: float) -> bool:
    """Move the DataSync phase forward to `phase` (never back); True if it moved."""
    before = str(doc["Status"])
    return _apply(doc, lambda e: e.phase_advanced(phase, now)).status != before


def end_items(
    doc: Doc,
    status: str,
    now: float,
    error_code: str,
    error_detail: str,
    result: Mapping[str, Any],
    reports: list[str] | None = None,
) -> None:
    _apply(doc, lambda e: e.items_ended(status, now, error_code, error_detail, result, reports))


def finish(doc: Doc, status: str, now: float, error_code: str, error_detail: str) -> None:
    _apply(doc, lambda e: e.finished(status, now, error_code, error_detail))


def request_cancel(doc: Doc, now: float) -> None:
    _apply(doc, lambda e: e.cancel_requested(now))


def set_rate(doc: Doc, options: Mapping[str, Any]) -> None:
    _apply(doc, lambda e: e.rate_set(options))


def control_details(doc: Mapping[str, Any]) -> dict[str, str]:
    """What the control plane wants the agent to do, as statusDetails entries."""
    return Execution.from_row(doc).control().to_details()


def item_job_document(doc: Mapping[str, Any], assignment: ItemAssignment) -> JobDocument:
    return Execution.from_row(doc).item_job_document(assignment)


def job_document(doc: Mapping[str, Any]) -> JobDocument:
    return Execution.from_row(doc).job_document()
