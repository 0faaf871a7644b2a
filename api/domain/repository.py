"""Typed reads and writes of the resources over the store's rows: the one place a resource
document is turned into its domain type and back (executions too: `execution`, `executions`).
The store itself stays generic (kind, ARN, creation time, JSON document) and knows nothing of
the domain."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Protocol, Self, TypeVar

from api.domain.execution import Execution
from api.store import Store

__all__ = ["Resource", "every", "execution", "executions", "get", "put"]


class Resource(Protocol):
    """What the store boundary needs of a domain type (`Agent`, `Location`, `Task`)."""

    KIND: ClassVar[str]

    @property
    def arn(self) -> str: ...

    @property
    def creation_time(self) -> float: ...

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Self: ...

    def to_row(self) -> dict[str, Any]: ...


R = TypeVar("R", bound=Resource)


def get(store: Store, kind: type[R], arn: str) -> R | None:
    row = store.get(kind.KIND, arn)
    return None if row is None else kind.from_row(row)


def every(store: Store, kind: type[R]) -> list[R]:
    """All resources of a kind, in ARN order."""
    return [kind.from_row(row) for row in store.all(kind.KIND)]


def put(store: Store, resource: Resource) -> None:
    store.put(resource.KIND, resource.arn, resource.creation_time, resource.to_row())


def execution(store: Store, arn: str) -> Execution | None:
    """One execution, typed; None when there is none."""
    row = store.execution(arn)
    return None if row is None else Execution.from_row(row)


def executions(
    store: Store,
    *,
    task_arn: str | None = None,
    agent_arn: str | None = None,
    active: bool | None = None,
    job_status: str | None = None,
) -> list[Execution]:
    """Executions in FIFO (start) order, typed, filtered as `Store.executions` filters."""
    rows = store.executions(
        task_arn=task_arn, agent_arn=agent_arn, active=active, job_status=job_status
    )
    return [Execution.from_row(row) for row in rows]
