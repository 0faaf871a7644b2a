"""Typed reads and writes of the resources over the store's rows: the one place a resource
document is turned into its domain type and back. The store itself stays generic (kind, ARN,
creation time, JSON document) and knows nothing of the domain."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Protocol, Self, TypeVar

from api.store import Store

__all__ = ["Resource", "every", "get", "put"]


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
