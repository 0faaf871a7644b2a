"""A running execution's work items as the status page lists them (issue 12).

The page shows the items under their execution (path, status, counters, retries) and the
execution row says how many are SUSPENDED: the DataSync status itself keeps its phase while
suspended (DescribeTaskExecution has no such state), so without this an operator would see a
TRANSFERRING execution that moves no bytes and not know why.

Read straight from `api.workitems.list_items`, the same rows the Deadline routes answer from.
A plan can have thousands of items and the page polls every second, so at most `LISTED` are
sent: every one still to do, running, suspended or failed before the ones that succeeded (those
need no action); the counts and the Suspend/Resume flags are over all of them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from api.workitems import WorkItem
from contract.workitems import ItemKind

__all__ = ["LISTED", "ItemView", "ItemsSummary", "summarize"]

LISTED = 100  # items sent per execution and poll
_DONE = frozenset({"SUCCEEDED", "CANCELED", "NOT_COMPATIBLE"})  # listed last (FAILED first)
_ENDED = _DONE | {"FAILED"}


def _count(counters: Any, name: str) -> int:
    value = counters.get(name, 0)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


@dataclass(frozen=True)
class ItemView:
    """One item's display fields (no agent secrets: items carry none; the agent's ARN is shown
    as the page shows agents elsewhere)."""

    Index: int
    Kind: str
    Path: str  # the scope's path ("." = the root); "" for PREPARE and REMOVE items
    Recursive: bool
    Status: str  # Deadline's TaskRunStatus
    Target: str | None  # the operator's wish not yet carried out (e.g. SUSPENDED while RUNNING)
    AgentArn: str | None
    FailureRetryCount: int
    FilesTransferred: int
    BytesTransferred: int
    EstimatedFiles: int  # the planner's counts for the item's scope
    EstimatedBytes: int

    @classmethod
    def of(cls, item: WorkItem) -> ItemView:
        scope = item.scope
        return cls(
            Index=item.index,
            Kind=item.kind.value,
            Path=scope.parameter_path if scope is not None else "",
            Recursive=scope.recursive if scope is not None else False,
            Status=item.status.value,
            Target=None if item.target is None else item.target.value,
            AgentArn=item.agent_arn,
            FailureRetryCount=item.failure_retry_count,
            FilesTransferred=_count(item.counters, "FilesTransferred"),
            BytesTransferred=_count(item.counters, "BytesTransferred"),
            EstimatedFiles=scope.files if scope is not None else 0,
            EstimatedBytes=scope.bytes if scope is not None else 0,
        )

    @property
    def suspended(self) -> bool:
        """Suspended, or asked to be and its agent not there yet (what Resume undoes)."""
        return self.Status == "SUSPENDED" or self.Target == "SUSPENDED"

    @property
    def suspendable(self) -> bool:
        """What Suspend still acts on: not ended, not already suspended, not the planner."""
        return (
            self.Kind != ItemKind.PREPARE.value and self.Status not in _ENDED and not self.suspended
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "Index": self.Index,
            "Kind": self.Kind,
            "Path": self.Path,
            "Recursive": self.Recursive,
            "Status": self.Status,
            "Target": self.Target,
            "AgentArn": self.AgentArn,
            "FailureRetryCount": self.FailureRetryCount,
            "FilesTransferred": self.FilesTransferred,
            "BytesTransferred": self.BytesTransferred,
            "EstimatedFiles": self.EstimatedFiles,
            "EstimatedBytes": self.EstimatedBytes,
        }


@dataclass(frozen=True)
class ItemsSummary:
    """An execution's items and what its row says about them."""

    Items: tuple[ItemView, ...]

    @property
    def itemized(self) -> bool:
        """Split into work items: only then can it be suspended (a tree too small to split, or
        one not planned yet, runs as one piece inside the execution's own job)."""
        return any(i.Kind != ItemKind.PREPARE.value for i in self.Items)

    def listed(self) -> list[ItemView]:
        """The items sent to the page (all of them up to LISTED), in index order."""
        if len(self.Items) <= LISTED:
            return list(self.Items)
        ranked = sorted(self.Items, key=lambda i: (i.Status in _DONE, i.Index))[:LISTED]
        return sorted(ranked, key=lambda i: i.Index)

    def to_json(self) -> dict[str, Any]:
        counts = Counter(i.Status for i in self.Items if i.Kind != ItemKind.PREPARE.value)
        return {
            "Items": [i.to_json() for i in self.listed()],
            "ItemsTotal": len(self.Items),
            "Itemized": self.itemized,
            "ItemCounts": dict(sorted(counts.items())),
            "SuspendedItems": sum(1 for i in self.Items if i.suspended),
            "CanSuspend": any(i.suspendable for i in self.Items),
            "CanResume": any(i.suspended for i in self.Items),
        }


def summarize(items: Sequence[WorkItem]) -> ItemsSummary:
    return ItemsSummary(tuple(ItemView.of(i) for i in items))
