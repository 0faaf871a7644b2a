"""The agent's side of work items (issue 12, contract/workitems.py): what a job asks it to do.

* **Item 0** (kind PREPARE, or a job document without an Item: a control plane from before
  items) plans the split with `engine.split.plan` under the job's `ItemBudget`. A plan of one
  whole-tree part, or an execution the split cannot serve (a manifest, a task report: both
  speak for the execution as one run), is run in item 0's own job exactly as before items.
  Otherwise the plan is uploaded and item 0 is done. A control plane without the plan route
  (404/405) gets the whole execution run in item 0, as before.
* **A TRANSFER item** runs the engine on its `ItemScope` (engine `scope`) with
  PreserveDeletedFiles forced to PRESERVE: deleting destination extras is the REMOVE item's job,
  once, after every part is in place (a part cannot tell another part's files from extras).
* **The REMOVE item** compares the whole trees and only deletes (engine `deletes_only`).
* **The journal** (`Journal`): the files an item finished are posted in batches; a claim with
  executionNumber > 1 (a resume or a takeover) reads them first and hands them to the engine as
  `done`: counted once more in this claim's counters (an item's counters are those of its
  current claim, so they must cover the item's whole work) but neither copied nor read again.
  A file is journaled once it is placed under its real name. Big files (≥ `EAGER_SIZE`) are
  posted every report interval, so that a takeover after a crash copies them once; the others
  are posted only when the item ends in anything but success (a suspend, a failure, the agent
  stopping): a journal row costs the control plane ~40 µs of CPU and a re-copy of a small file
  costs about as much, so journaling them all the time would cost a D2 copy ~6% for nothing
  (a succeeded item's journal is never read). A later claim verifies journaled files again
  where the VerifyMode asks (the engine hashes its source for ONLY_FILES_TRANSFERRED), since
  the earlier claim may have stopped before its verification. A suspend flushes the journal
  before its acknowledgement, so a resume counts every finished file once, exactly. A takeover
  after a crash cannot know the small files the lost agent placed, nor the big ones after its
  last batch (at most one report interval's worth): they are found unchanged, not copied again
  (TransferMode=CHANGED; ALL copies them again) and, as in a re-run, not counted again.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import anyio

from agents.client import JobsClient, JobsError
from contract.workitems import (
    ITEMS_PER_AGENT,
    MAX_ITEMS,
    MAX_JOURNAL_BATCH,
    ItemAssignment,
    ItemKind,
    ItemScope,
    JournalBatch,
    PlanUpload,
)
from engine import Options
from engine.events import FileEvent, FileEventKind
from engine.split import Scope, plan

__all__ = ["Journal", "Work", "plan_scopes", "read_journal", "work_for"]

log = logging.getLogger("datasync_local.agent")

MAX_JOURNAL_QUEUE = 200_000  # paths waiting to be posted; beyond it a resume redoes a few more
MAX_JOURNAL_PAGES = 10_000  # pages read on a resume (a bound, not a limit anyone reaches)
EAGER_SIZE = 1 << 20  # files this big are journaled as they finish; smaller ones at a stop


@dataclass(frozen=True)
class Work:
    """How the engine runs one item: its options, part of the tree and journal."""

    assignment: ItemAssignment
    options: Options
    scope: Scope | None = None
    deletes_only: bool = False

    @property
    def journaled(self) -> bool:
        """Does this item keep a journal (a part of a split execution)?"""
        return self.assignment.kind is ItemKind.TRANSFER


def work_for(document: Mapping[str, Any], options: Options) -> Work:
    """The `Work` of a job document (ValueError/KeyError/TypeError if its Item is malformed)."""
    assignment = ItemAssignment.from_json(document.get("Item") or {})
    if assignment.kind is ItemKind.TRANSFER:
        if assignment.scope is None:
            raise ValueError("a TRANSFER item's job document carries no Scope")
        keep = options.merged({"PreserveDeletedFiles": "PRESERVE"})
        return Work(assignment, keep, Scope(assignment.scope.path, assignment.scope.recursive))
    if assignment.kind is ItemKind.REMOVE:
        return Work(assignment, options, deletes_only=True)
    return Work(assignment, options)


def splittable(document: Mapping[str, Any]) -> bool:
    """May this execution be split at all? A manifest names files of the whole execution and a
    task report speaks for it as one run: those run whole in item 0."""
    return not document.get("ManifestConfig") and not document.get("TaskReportConfig")


def plan_scopes(source: str, assignment: ItemAssignment) -> list[ItemScope] | None:
    """Item 0's plan of `source` under its budget; None: run the whole tree in item 0."""
    budget = assignment.budget
    if budget is None:
        return None
    parts = plan(
        source,
        budget.max_files,
        budget.max_bytes,
        min_items=ITEMS_PER_AGENT * max(1, budget.agents),
        max_items=MAX_ITEMS,
        min_files=budget.min_files,
        min_bytes=budget.min_bytes,
    )
    if len(parts) == 1 and parts[0].path == "" and parts[0].recursive:
        return None
    return [ItemScope(p.path, p.recursive, p.files, p.bytes) for p in parts]


async def upload_plan(
    client: JobsClient, thing: str, job_id: str, number: int, scopes: list[ItemScope]
) -> bool:
    """Upload item 0's plan; False if this control plane has no plan route (run whole)."""
    try:
        await client.upload_plan(thing, job_id, PlanUpload(number, scopes))
    except JobsError as exc:
        # no such route (a plain 404/405, no protocol error type): a control plane from before
        # items. A protocol error (the job is gone, or no longer ours) is the caller's.
        if exc.status == 405 or (exc.status == 404 and "Exception" not in exc.code):
            log.info("agent %s: the control plane takes no plan (%s): running whole", thing, exc)
            return False
        raise
    return True


async def read_journal(client: JobsClient, thing: str, job_id: str) -> set[str]:
    """The files earlier claims of an item finished, as engine paths ("/a/b")."""
    done: set[str] = set()
    token: str | None = None
    for _ in range(MAX_JOURNAL_PAGES):
        page = await client.journal(thing, job_id, token)
        done.update("/" + path for path in page.done)
        token = page.next_token
        if not token:
            break
    return done


class Journal:
    """Ships the finished files of one claim of an item, at most `MAX_JOURNAL_BATCH` a post.

    `sink` is the engine's (any thread, cheap); `flush` posts what gathered: the big files, or
    with `everything` the small ones too (see the module's docstring). A post refused as stale
    (the item was taken over) stops the shipping: the new claim keeps its own journal.
    """

    def __init__(
        self,
        client: JobsClient,
        thing: str,
        job_id: str,
        number: int,
        known: set[str],
        eager_size: int = EAGER_SIZE,
    ) -> None:
        self.client, self.thing, self.job_id, self.number = client, thing, job_id, number
        self._known = known  # already journaled by an earlier claim: not posted again
        self._eager_size = eager_size
        self._queue: list[str] = []  # posted every interval
        self._held: list[str] = []  # posted when the item stops short of success
        self._lock = threading.Lock()
        self.posted = 0
        self.stopped = False

    def sink(self, event: FileEvent) -> None:
        if event.kind is not FileEventKind.TRANSFERRED or event.folder or event.path in self._known:
            return
        eager = event.size is not None and event.size >= self._eager_size
        with self._lock:
            queue = self._queue if eager else self._held
            if len(self._queue) + len(self._held) < MAX_JOURNAL_QUEUE:
                queue.append(event.path.lstrip("/"))

    async def flush(self, everything: bool = False) -> bool:
        """Post what is queued (with `everything`, the small files too); False if a post
        failed (what it held is kept for the next flush)."""
        if everything:
            with self._lock:
                self._queue.extend(self._held)
                self._held = []
        while not self.stopped:
            with self._lock:
                batch, self._queue = (
                    self._queue[:MAX_JOURNAL_BATCH],
                    self._queue[MAX_JOURNAL_BATCH:],
                )
            if not batch:
                return True
            try:
                await self.client.post_journal(
                    self.thing, self.job_id, JournalBatch(self.number, batch)
                )
                self.posted += len(batch)
            except JobsError as exc:
                if not exc.transient:
                    log.warning("agent %s: journal of %s refused: %s", self.thing, self.job_id, exc)
                    self.stopped = True
                    return False
                self._requeue(batch)
                return False
            except Exception as exc:  # unreachable: keep them for the next interval
                log.warning("agent %s: cannot post the journal: %s", self.thing, exc)
                self._requeue(batch)
                return False
        return False

    def _requeue(self, batch: list[str]) -> None:
        with self._lock:
            self._queue[:0] = batch

    async def run(self, interval: float) -> None:
        while not self.stopped:
            await anyio.sleep(interval)
            await self.flush()
