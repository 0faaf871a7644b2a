"""Compare-and-swap on one execution: the read-modify-write every writer of an execution uses.

Its own module so that both the scheduler and the work-item domain (`api.workitems`, which the
scheduler builds on) can use it without importing each other; `api.scheduler` re-exports it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from api.errors import InternalException
from api.store import Store
from contract import Doc

__all__ = ["CAS_ATTEMPTS", "change_execution"]

CAS_ATTEMPTS = 50  # compare-and-swap retries before giving up (each loser re-reads at once)

T = TypeVar("T")


def change_execution(store: Store, arn: str, apply: Callable[[Doc], T]) -> tuple[Doc, T] | None:
    """Read-modify-write one execution with compare-and-swap, so that writers in any process
    never lose each other's changes (a cancel racing an agent's final report stays a cancel).

    `apply` changes the document in place and returns a value; returning False (exactly) means
    "nothing to write". It may raise to refuse. Returns (document, value), None if it is gone.
    """
    for _ in range(CAS_ATTEMPTS):
        found = store.execution_versioned(arn)
        if found is None:
            return None
        doc, version = found
        value = apply(doc)
        if value is False or store.update_execution(doc, version):
            return doc, value
    raise InternalException(f"Task execution {arn} is changing too fast to update; retry.")
