"""Compare-and-swap on one execution: the read-modify-write every writer of an execution uses.

Its own module so that both the scheduler and the work-item domain (`api.workitems`, which the
scheduler builds on) can use it without importing each other.
"""

from __future__ import annotations

from collections.abc import Callable

from api.domain.execution import Execution
from api.errors import InternalException
from api.store import Store

__all__ = ["CAS_ATTEMPTS", "update_execution"]

CAS_ATTEMPTS = 50  # compare-and-swap retries before giving up (each loser re-reads at once)


def update_execution(
    store: Store, arn: str, change: Callable[[Execution], Execution | None]
) -> tuple[Execution, bool] | None:
    """The typed compare-and-swap, so that writers in any process never lose each other's
    changes (a cancel racing an agent's final report stays a cancel): `change` gets the stored
    execution (read from its row once per attempt) and returns the execution after it, or None
    (or the same value) for "nothing to write"; it may raise to refuse. Members of the stored
    document the type does not know are written back untouched. Returns (the execution as
    stored now, whether this call wrote it), None if it is gone."""
    for _ in range(CAS_ATTEMPTS):
        found = store.execution_versioned(arn)
        if found is None:
            return None
        doc, version = found
        before = Execution.from_row(doc)
        after = change(before)
        if after is None or after is before:
            return before, False
        row = after.to_row()
        row.update((k, v) for k, v in doc.items() if k not in Execution.ROW_MEMBERS)
        if store.update_execution(row, version):
            return after, True
    raise InternalException(f"Task execution {arn} is changing too fast to update; retry.")
