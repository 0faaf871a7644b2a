"""One run's context: what every stage of a transfer shares.

A run's stages (engine/plan.py's Planner, engine/execute.py's Executor, engine/verify.py's
verifiers) all work on the same two roots with the same settings, filters, progress and cancel
flag, within the same limits. Threaded through each stage's constructor one by one, those were
six to nine arguments in a different order per stage, and a new limit meant a new parameter on
every stage between `Transfer` and the one that used it. `Transfer` makes one `RunContext` and
a stage takes it plus what is really its own (the planner its journal, the executor its copier,
the verifier the items it must excuse).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from engine.filters import FilterRules
from engine.progress import Progress
from engine.settings import Settings
from engine.split import Scope
from engine.throttle import TokenBucket

__all__ = ["LARGE_FILE_SIZE", "RunContext"]

# Files of this size or more are copied and verified on a thread pool (engine/execute.py)
LARGE_FILE_SIZE = 1 << 20


@dataclass(frozen=True, slots=True, eq=False)
class RunContext:
    """Made once per run by `Transfer`. Frozen, so no stage changes what the next one sees; the
    objects it holds (progress, bucket) are the run's shared, thread-safe state. Compared by
    identity (`eq=False`): two runs are never the same run, whatever their values."""

    source: str  # absolute paths of the two location roots
    destination: str
    settings: Settings  # the run's Options, read once
    filters: FilterRules
    progress: Progress  # the counters, failures and events of the run
    cancelled: Callable[[], bool]  # True once the run is to stop
    # the run's bandwidth limit, shared by every copy (and changed live by Transfer)
    bucket: TokenBucket = field(default_factory=TokenBucket)
    workers: int = 0  # threads for large files (copy and verify); 0: all inline
    large_file_size: int = LARGE_FILE_SIZE
    fsync: bool = False  # file data flushed before its rename, directory entries after it
    max_delete: int | None = None  # at most this many deletes, then MaxDeleteExceeded
    allow_empty_source: bool = False  # REMOVE may mirror an empty source (else refused)
    scope: Scope | None = None  # the part of the tree a work item covers (engine/split.py)
    deletes_only: bool = False  # the REMOVE pass after a split run's parts: deletions only
