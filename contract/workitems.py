"""Work items: the parts of one execution that agents claim (issue 12), as both sides see them.

An execution is split into items so that several agents can share it, and an operator can
suspend, resume, retry or skip parts of it (the Deadline Cloud `UpdateTask` shape). Everything
`api` and `agents` must agree on about items lives here, once:

* **Item 0 is the execution's own job** (job id ``exec-…``, as before items existed) and has kind
  PREPARE: the agent that claims it plans the split (see `ItemScope`) and uploads the plan with
  ``POST /things/{thing}/jobs/{jobId}/items`` (`PlanUpload`), then reports the job SUCCEEDED.
  The control plane then offers items 1…n (kind TRANSFER) as jobs ``exec-…-iN`` through the one
  claim path (`$next`), and, when the task's PreserveDeletedFiles is REMOVE, one last item of
  kind REMOVE once every TRANSFER item has SUCCEEDED (deleting destination extras happens once).
* **Fencing.** Every claim of an item is a new IoT `executionNumber` (the item's epoch). An
  agent sends it with every report (`UpdateJobExecution.executionNumber`), plan upload and journal
  batch; a stale one is refused (409 `VersionConflictException`), so an agent that lost its lease
  can never overwrite the work of the agent that took the item over.
* **Control wishes** come back in every reply's statusDetails, as for BytesPerSecond and cancel:
  ``control:bytesPerSecond`` is *this item's share* of the execution's BytesPerSecond (the shares
  of the running items add up to it), ``control:suspend`` = "true" asks the agent to stop the
  item now (files in flight are dropped as temporaries, never left torn under a real name). The
  agent acknowledges with a final report of status FAILED carrying ``agent:interrupted`` =
  "SUSPENDED"; the control plane then holds the item SUSPENDED (not failed: its
  failureRetryCount does not grow) until it is resumed and offered again.
* **The journal**: an agent posts the relative paths it finished in an item (placed or found
  identical, and verified when the VerifyMode asks) with
  ``POST /things/{thing}/jobs/{jobId}/journal`` (`JournalBatch`); ``GET`` the same path returns
  them (`JournalPage`, paginated), so that a resumed or taken-over item redoes only the files that
  were in flight and counts each finished file once.

The control plane's answers (api/jobs.py), for the agent's side:

* the plan upload answers ``{"jobIds": [...]}`` (the items' job ids, REMOVE last); the same plan
  again is a no-op with the same answer, a different one 400 InvalidRequestException; a plan
  from anyone but item 0's current holder, or under another executionNumber, 409
  VersionMismatch (404 for a thing the job is not assigned to);
* a journal batch answers ``{"added": N}`` (paths new to the journal); journal calls come from
  the item's current holder (409 VersionMismatch otherwise, as for reports);
* a report on an item it no longer holds (taken over, lease expired: the item went back to
  READY) is 409 VersionMismatch whose ``executionState.status`` is not IN_PROGRESS: stop the
  item, its files in flight stay temporaries. An item's ``versionNumber`` is its row's version
  (operator changes move it too); its ``executionNumber`` grows at every claim.
* an item job's ``status`` as IoT shows it: IN_PROGRESS while held, QUEUED while READY, PENDING
  or SUSPENDED, else SUCCEEDED / FAILED / CANCELED.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

__all__ = [
    "DEFAULT_ITEM_BYTES",
    "DEFAULT_ITEM_FILES",
    "DEFAULT_SPLIT_MIN_BYTES",
    "DEFAULT_SPLIT_MIN_FILES",
    "INTERRUPTED_KEY",
    "ITEMS_PER_AGENT",
    "MAX_ITEMS",
    "MAX_JOURNAL_BATCH",
    "MAX_PLAN_BODY",
    "SUSPEND_KEY",
    "WHOLE_KEY",
    "ItemAssignment",
    "ItemBudget",
    "ItemKind",
    "ItemScope",
    "JournalBatch",
    "JournalPage",
    "PlanUpload",
    "item_job_id",
    "parse_item_job_id",
]

# statusDetails keys ------------------------------------------------------------------------------
SUSPEND_KEY = "control:suspend"  # reply: "true" when the operator suspended this item
INTERRUPTED_KEY = "agent:interrupted"  # final report: "SUSPENDED" when it stopped on a suspend
# report of item 0: "true" once it runs the whole tree itself (not split: below serve's split
# minimum, a manifest, a task report); such an execution has no items and cannot be suspended
WHOLE_KEY = "agent:whole"

# limits ------------------------------------------------------------------------------------------
MAX_ITEMS = 10_000  # items in one execution's plan (a bigger tree gets bigger items)
MAX_PLAN_BODY = 4 * 1024 * 1024  # bytes of one plan upload
MAX_JOURNAL_BATCH = 1000  # paths in one journal batch or page
DEFAULT_ITEM_FILES = 20_000  # a directory holding more than this is split further
DEFAULT_ITEM_BYTES = 8 * 1024**3  # … or more than this many bytes
ITEMS_PER_AGENT = 4  # aim for at least this many items per candidate agent (fast ones take more)
# a tree holding fewer files than this and fewer bytes than that is not split at all (runs whole
# in item 0): each item costs ~30-60 ms of fixed CPU, which a tree this small does not repay
# (`serve --split-min-files/--split-min-bytes`; 0 splits any tree, as tests of tiny trees do)
DEFAULT_SPLIT_MIN_FILES = 2_000
DEFAULT_SPLIT_MIN_BYTES = 1024**3

_ITEM_JOB = re.compile(r"^(exec-[0-9a-f]{17})-i([1-9][0-9]{0,4})$")


class ItemKind(StrEnum):
    """What an item does: plan the split (item 0), copy a part of the tree, or delete extras."""

    PREPARE = "PREPARE"
    TRANSFER = "TRANSFER"
    REMOVE = "REMOVE"


def item_job_id(execution_job_id: str, index: int) -> str:
    """The IoT job id of item `index` of an execution: item 0 is the execution's own job."""
    return execution_job_id if index == 0 else f"{execution_job_id}-i{index}"


def parse_item_job_id(job_id: str) -> tuple[str, int]:
    """(execution job id, item index) of a job id; ValueError if it names neither."""
    if re.fullmatch(r"exec-[0-9a-f]{17}", job_id):
        return job_id, 0
    match = _ITEM_JOB.match(job_id)
    if match is None:
        raise ValueError(f"{job_id!r} is not an execution's or a work item's job id")
    return match.group(1), int(match.group(2))


def _relative(path: str) -> str:
    """A plan's path: POSIX, relative to the source location, no '.'/'..' parts ('' = root)."""
    if path in ("", "."):
        return ""
    parts = path.split("/")
    if path.startswith("/") or any(p in ("", ".", "..") for p in parts) or "\0" in path:
        raise ValueError(f"{path!r} is not a relative path inside the source location")
    return path


@dataclass(frozen=True)
class ItemScope:
    """The part of the tree one TRANSFER item covers.

    `path` is relative to the source location ("" = its root). Recursive: the directory `path`
    and everything beneath it (the common case: a top-level directory). Not recursive: only the
    non-directory entries directly in `path` — the files directly under the root, or those of a
    directory that was split into its subdirectories. `files`/`bytes` are the planner's counts
    (what it saw; they bound the item, they are not counters).
    """

    path: str
    recursive: bool
    files: int = 0
    bytes: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", _relative(self.path))

    @property
    def parameter_path(self) -> str:
        """The item's path as Deadline's `parameters.path.path` shows it ("." for the root)."""
        return self.path or "."

    def to_json(self) -> dict[str, Any]:
        return {
            "Path": self.path,
            "Recursive": self.recursive,
            "Files": self.files,
            "Bytes": self.bytes,
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> ItemScope:
        """ValueError/TypeError/KeyError if `raw` is not one."""
        path, recursive = raw["Path"], raw["Recursive"]
        files, size = raw.get("Files", 0), raw.get("Bytes", 0)
        if not isinstance(path, str) or not isinstance(recursive, bool):
            raise TypeError("an item scope needs a string Path and a boolean Recursive")
        for number in (files, size):
            if isinstance(number, bool) or not isinstance(number, int) or number < 0:
                raise TypeError("an item scope's Files and Bytes are non-negative integers")
        return cls(path, recursive, files, size)


@dataclass(frozen=True)
class ItemBudget:
    """How big a TRANSFER item may be, given with item 0's job document to the planner; and
    how big a tree must be to be split at all (`min_files`/`min_bytes`: a tree below both runs
    whole; 0 = any tree is split)."""

    max_files: int = DEFAULT_ITEM_FILES
    max_bytes: int = DEFAULT_ITEM_BYTES
    agents: int = 1  # candidate agents ONLINE when the plan was asked for
    min_files: int = DEFAULT_SPLIT_MIN_FILES
    min_bytes: int = DEFAULT_SPLIT_MIN_BYTES

    def to_json(self) -> dict[str, int]:
        return {
            "MaxFiles": self.max_files,
            "MaxBytes": self.max_bytes,
            "Agents": self.agents,
            "MinFiles": self.min_files,
            "MinBytes": self.min_bytes,
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> ItemBudget:
        return cls(
            int(raw.get("MaxFiles", DEFAULT_ITEM_FILES)),
            int(raw.get("MaxBytes", DEFAULT_ITEM_BYTES)),
            max(1, int(raw.get("Agents", 1))),
            max(0, int(raw.get("MinFiles", DEFAULT_SPLIT_MIN_FILES))),
            max(0, int(raw.get("MinBytes", DEFAULT_SPLIT_MIN_BYTES))),
        )


@dataclass(frozen=True)
class PlanUpload:
    """Body of ``POST /things/{thing}/jobs/{jobId}/items``: item 0's plan, fenced."""

    execution_number: int
    items: Sequence[ItemScope]

    def to_json(self) -> dict[str, Any]:
        return {
            "executionNumber": self.execution_number,
            "items": [item.to_json() for item in self.items],
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> PlanUpload:
        """ValueError/TypeError/KeyError if `raw` is not a valid plan."""
        number = raw["executionNumber"]
        items = raw["items"]
        if isinstance(number, bool) or not isinstance(number, int):
            raise TypeError("executionNumber must be an integer")
        if not isinstance(items, list) or not 1 <= len(items) <= MAX_ITEMS:
            raise ValueError(f"a plan has between 1 and {MAX_ITEMS} items")
        scopes = [ItemScope.from_json(item) for item in items]
        keys = {(s.path, s.recursive) for s in scopes}
        if len(keys) != len(scopes):
            raise ValueError("a plan names the same part of the tree twice")
        return cls(number, scopes)


@dataclass(frozen=True)
class JournalBatch:
    """Body of ``POST /things/{thing}/jobs/{jobId}/journal``: files an item finished, fenced."""

    execution_number: int
    done: Sequence[str]

    def to_json(self) -> dict[str, Any]:
        return {"executionNumber": self.execution_number, "done": list(self.done)}

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> JournalBatch:
        number, done = raw["executionNumber"], raw["done"]
        if isinstance(number, bool) or not isinstance(number, int):
            raise TypeError("executionNumber must be an integer")
        if not isinstance(done, list) or len(done) > MAX_JOURNAL_BATCH:
            raise ValueError(f"a journal batch has at most {MAX_JOURNAL_BATCH} paths")
        for path in done:
            if not isinstance(path, str) or not path:
                raise TypeError("journal paths are non-empty strings")
            _relative(path)
        return cls(number, list(done))


@dataclass(frozen=True)
class JournalPage:
    """Reply of ``GET /things/{thing}/jobs/{jobId}/journal?nextToken=…``."""

    done: Sequence[str]
    next_token: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"done": list(self.done)}
        if self.next_token is not None:
            out["nextToken"] = self.next_token
        return out

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> JournalPage:
        done = raw.get("done") or []
        token = raw.get("nextToken")
        return cls([str(p) for p in done], None if token is None else str(token))


@dataclass(frozen=True)
class ItemAssignment:
    """Which item a job is: carried in the job document (`JobDocument.Item`).

    Item 0 (PREPARE) carries the `budget` its planner must respect; TRANSFER items carry their
    `scope`; the REMOVE item carries neither (it compares the whole trees and deletes extras).
    """

    index: int
    kind: ItemKind
    scope: ItemScope | None = None
    budget: ItemBudget | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"Index": self.index, "Kind": self.kind.value}
        if self.scope is not None:
            out["Scope"] = self.scope.to_json()
        if self.budget is not None:
            out["Budget"] = self.budget.to_json()
        return out

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> ItemAssignment:
        """A job document without an Item is item 0 (the whole execution, as before items)."""
        if not raw:
            return cls(0, ItemKind.PREPARE, budget=ItemBudget())
        scope = raw.get("Scope")
        budget = raw.get("Budget")
        return cls(
            int(raw["Index"]),
            ItemKind(raw["Kind"]),
            None if scope is None else ItemScope.from_json(scope),
            None if budget is None else ItemBudget.from_json(budget),
        )
