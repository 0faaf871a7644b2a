"""`api.domain.execution.Execution`'s transitions applied to a stored execution document in place.

The control plane's writers (`api.scheduler`, `api.jobs`, `api.workitems`,
`api.resources.executions`) apply `Execution`'s methods through `api.cas.update_execution`;
nothing in `api` calls these. They stay for the tests that build stored documents step by
step (tests/api/test_lifecycle.py, tests/api/test_executions.py,
tests/api/domain/test_execution.py): each reads the document as an `Execution`, applies one
transition and writes the result back into the same document, keeping any member the type
does not know. The rules live on the type alone.
"""

from __future__ import annotations

from collections.abc import Callable

from api.domain.execution import Execution
from contract import Doc

__all__ = ["Doc", "apply_report", "claim", "finish", "request_cancel", "requeue"]


def _apply(doc: Doc, change: Callable[[Execution], Execution]) -> Execution:
    """Apply one transition to the document in place; returns the execution after it."""
    after = change(Execution.from_row(doc))
    kept = {k: v for k, v in doc.items() if k not in Execution.ROW_MEMBERS}
    doc.clear()
    doc.update(after.to_row())
    doc.update(kept)
    return after


def claim(doc: Doc, now: float, step_timeout_minutes: int | None, lease_seconds: float) -> None:
    _apply(doc, lambda e: e.claimed(now, step_timeout_minutes, lease_seconds))


def requeue(doc: Doc, agent_arn: str, now: float) -> None:
    _apply(doc, lambda e: e.requeued(agent_arn, now))


def apply_report(doc: Doc, status: str, details: dict[str, str], now: float) -> None:
    _apply(doc, lambda e: e.reported(status, details, now))


def finish(doc: Doc, status: str, now: float, error_code: str, error_detail: str) -> None:
    _apply(doc, lambda e: e.finished(status, now, error_code, error_detail))


def request_cancel(doc: Doc, now: float) -> None:
    _apply(doc, lambda e: e.cancel_requested(now))
