"""An append-then-read queue of records that lives on disk once it grows.

PREPARING writes the plan here directory by directory and TRANSFERRING reads it back, so a
tree of millions of files never needs millions of objects in memory.
"""

from __future__ import annotations

import pickle
import tempfile
from collections.abc import Iterator
from typing import Any

__all__ = ["Spool"]

_BATCH = 512
_IN_MEMORY_LIMIT = 8 << 20


class Spool:
    def __init__(self) -> None:
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
            pickle.dump(self._batch, self._file, protocol=pickle.HIGHEST_PROTOCOL)
            self._batch = []

    def __iter__(self) -> Iterator[Any]:
        """Read every record back in order (once writing is done)."""
        self._flush()
        self._file.seek(0)
        while True:
            try:
                batch = pickle.load(self._file)
            except EOFError:
                return
            yield from batch

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
