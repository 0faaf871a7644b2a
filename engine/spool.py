"""An append-then-read queue of records that lives on disk once it grows.

PREPARING writes the plan here directory by directory and TRANSFERRING reads it back, so a
tree of millions of files never needs millions of objects in memory. Records are tuples of plain
values (a NamedTuple such as plan.Action is one) stored with marshal, ~4x faster than pickle
(pickling 50,000 Actions and reading them back cost ~0.1 s of a 2.5 s D2 copy); `make` turns
each tuple read back into the record type again.
"""

from __future__ import annotations

import marshal
import tempfile
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["Spool"]

_BATCH = 512
_IN_MEMORY_LIMIT = 8 << 20


class Spool:
    def __init__(self, make: Callable[[Any], Any] | None = None) -> None:
        """`make`: rebuilds a record from its tuple (e.g. `Action._make`); None keeps tuples."""
        self._make = make
        self._file = tempfile.SpooledTemporaryFile(  # noqa: SIM115 - owned, closed by close()
            max_size=_IN_MEMORY_LIMIT, prefix="dsl-plan-"
        )
        self._batch: list[Any] = []
        self.count = 0

    def append(self, record: Any) -> None:
        self._batch.append(record)
        self.count += 1
        if len(self._batch) >= _BATCH:
            self._flush()

    def _flush(self) -> None:
        if self._batch:
            blob = marshal.dumps([tuple(r) for r in self._batch])
            self._file.write(len(blob).to_bytes(8, "little") + blob)
            self._batch = []

    def __iter__(self) -> Iterator[Any]:
        """Read every record back in order (once writing is done)."""
        self._flush()
        self._file.seek(0)
        make = self._make
        while True:
            header = self._file.read(8)
            if len(header) < 8:
                return
            batch = marshal.loads(self._file.read(int.from_bytes(header, "little")))
            if make is None:
                yield from batch
            else:
                yield from map(make, batch)

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
