"""The page's Suspend and Resume (issue 12 on the status page of issue 14).

Both go through `api.workitems.set_target`, the one call the Deadline routes' UpdateJob and
UpdateTask make, so the page can do nothing those would not (and a suspension is the same store
state, surviving a restart of the control plane):

* Suspend an execution: target SUSPENDED on every item (indexes None, as UpdateJob does).
* Resume an execution: target READY on the items that are suspended or asked to be, not on every
  item: READY on a FAILED item requeues it (a retry), which is not what "resume" means.
* Suspend / Resume one item: the same on that item alone; Resume refuses an item that is not
  suspended for the same reason.

An ended execution refuses both whether or not anything would change (as the Deadline routes
do); `set_target`'s own ConflictEnded still answers the race of an execution ending meanwhile.

What cannot be done is a `Refusal` with an HTTP status and a sentence for the page (404 for an
unknown execution or item, 409 for an ended execution or one without work items, which runs as
one piece and can only be cancelled), never a 500.
"""

from __future__ import annotations

from enum import StrEnum

from api.domain.execution import Execution
from api.store import Store
from api.workitems import ConflictEnded, ItemNotFound, WorkItem, list_items, set_target
from contract.workitems import ItemKind

__all__ = ["Refusal", "Wish", "apply"]


class Wish(StrEnum):
    SUSPEND = "suspend"
    RESUME = "resume"


class Refusal(Exception):
    """An action the page cannot carry out, said as its message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _suspended(item: WorkItem) -> bool:
    return item.status.value == "SUSPENDED" or (
        item.target is not None and item.target.value == "SUSPENDED"
    )


def apply(
    store: Store, execution_arn: str, wish: Wish, index: int | None, now: float
) -> list[WorkItem]:
    """Carry out `wish` on the execution (`index` None) or on its item `index`; the items named,
    as they are afterwards. `Refusal` when it cannot be done."""
    row = store.execution(execution_arn)
    if row is None:
        raise Refusal(404, f"Task execution {execution_arn} is not found.")
    execution = Execution.from_row(row)
    status = execution.status.value
    if execution.ended:  # whether or not anything would change (as Deadline)
        raise Refusal(
            409,
            f"Task execution {execution_arn} has ended ({status}): it can no longer be "
            "suspended or resumed. Start a new execution; it skips what is already there.",
        )
    items = list_items(store, execution_arn)
    if not any(i.kind != ItemKind.PREPARE for i in items):
        raise Refusal(
            409,
            f"Task execution {execution_arn} ({status}) has no work items yet: its agent "
            "plans them first, and a tree too small to split runs as one piece (cancel it).",
        )
    by_index = {i.index: i for i in items}
    if index is not None and index not in by_index:
        raise Refusal(404, f"Task execution {execution_arn} has no work item {index}.")
    indexes: list[int] | None
    if wish == Wish.SUSPEND:
        indexes = None if index is None else [index]
        target = "SUSPENDED"
    else:
        chosen = [by_index[index]] if index is not None else items
        indexes = [i.index for i in chosen if _suspended(i)]
        if not indexes:
            what = f"Work item {index}" if index is not None else "Nothing of this execution"
            raise Refusal(409, f"{what} is not suspended.")
        target = "READY"
    try:
        return set_target(store, execution_arn, indexes, target, now)
    except ConflictEnded as exc:
        raise Refusal(409, str(exc)) from None
    except ItemNotFound as exc:  # the execution was deleted meanwhile
        raise Refusal(404, str(exc)) from None
    except ValueError as exc:
        raise Refusal(400, str(exc)) from None
