"""Work items of executions (issue 12): the domain over the store's `work_items` rows.

An execution with a plan is split into items (see `contract.workitems`): item 0 is its own job
(PREPARE), items 1…n copy parts of the tree (TRANSFER), and an optional last item deletes the
destination's extras (REMOVE). Each item carries a Deadline Cloud `TaskRunStatus` (the enum is
read from botocore's `deadline` model, never retyped) and the operator's wish, a
`TaskTargetRunStatus` (`target`), which the control plane carries out:

* SUSPENDED pauses: an item nobody runs is SUSPENDED at once; a RUNNING item keeps running with
  target SUSPENDED until its agent acknowledges (`agent:interrupted`), then it is SUSPENDED.
* READY / PENDING resume or requeue: a SUSPENDED item is offered again, a FAILED one is retried
  (its failureRetryCount grows), a CANCELED one is offered again; a SUCCEEDED one stays done
  (a new execution skips what is already there). A pending wish on a RUNNING item is withdrawn.
* CANCELED skips the item (the execution then ends ERROR, naming it); SUCCEEDED / FAILED mark it
  without running it (a RUNNING item is stopped first, then marked).

An execution that has ended cannot change any more: `ConflictEnded` (Deadline's
ConflictException: start a new execution instead).

After every change `settle` rolls the items up into the execution: the DataSync counters are the
sum over the items, the phase only moves forward, the REMOVE item becomes READY once every
TRANSFER item SUCCEEDED, and the execution ends once no item is waiting, running or suspended:
SUCCESS if all SUCCEEDED, else ERROR naming the items that did not. The agents holding running
items are poked through the store (channel ``agent:<arn>``, the existing poke path), so a
suspend or a new rate share reaches them within a second.

`ItemStatus` is a StrEnum built from the model at import: name members by value,
``ItemStatus("READY")``, or use the constants below (mypy cannot see members of an enum built
from data).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from api import item_pacing
from api.cas import CAS_ATTEMPTS, update_execution
from api.domain.execution import Execution
from api.errors import InternalException
from api.store import TERMINAL_STATUSES, ItemRow, Store
from contract.jobs import COUNTERS, NESTED_COUNTERS, PHASES, REPORT_KEY, decode_report
from contract.model import enum_values
from contract.workitems import INTERRUPTED_KEY, ItemKind, ItemScope

__all__ = [
    "ACTIVE",
    "ENDED",
    "PLAN_TARGET_KEY",
    "TARGETS",
    "WHOLE",
    "WITHDRAWN_KEY",
    "ConflictEnded",
    "ItemNotFound",
    "ItemStatus",
    "Progress",
    "WorkItem",
    "change_item",
    "claim_item",
    "execution_counters",
    "get_item",
    "list_items",
    "new_row",
    "poke_running",
    "rate_share",
    "release_item",
    "report_item",
    "running_indexes",
    "set_target",
    "settle",
    "sum_counters",
    "waits",
    "whole_reason",
    "wish_before_plan",
]

ItemStatus = StrEnum(  # type: ignore[misc]
    "ItemStatus", {value: value for value in enum_values("TaskRunStatus", "deadline")}
)
ItemStatus.__doc__ = "Deadline Cloud's TaskRunStatus, from botocore's deadline model."
TARGETS: tuple[str, ...] = enum_values("TaskTargetRunStatus", "deadline")

PENDING = ItemStatus("PENDING")
READY = ItemStatus("READY")
RUNNING = ItemStatus("RUNNING")
SUSPENDED = ItemStatus("SUSPENDED")
CANCELED = ItemStatus("CANCELED")
FAILED = ItemStatus("FAILED")
SUCCEEDED = ItemStatus("SUCCEEDED")
NOT_COMPATIBLE = ItemStatus("NOT_COMPATIBLE")
# an item in one of these keeps its execution alive; the others are final for this run
ENDED = frozenset({CANCELED, FAILED, SUCCEEDED, NOT_COMPATIBLE})
ACTIVE = frozenset(s for s in ItemStatus if s not in ENDED)
# a claimed item, whatever stage of running it is in
HELD = frozenset(ItemStatus(s) for s in ("ASSIGNED", "STARTING", "SCHEDULED", "INTERRUPTING"))


class ItemNotFound(LookupError):
    """No such execution, or no such item in it."""


class ConflictEnded(RuntimeError):
    """The execution has ended: its items can no longer change (start a new execution)."""


@dataclass(frozen=True)
class WorkItem:
    """One item of an execution, as the control plane and the Deadline routes see it."""

    execution_arn: str
    index: int
    kind: ItemKind
    scope: ItemScope | None
    status: ItemStatus
    target: ItemStatus | None
    agent_arn: str | None
    execution_number: int
    started_at: float | None
    ended_at: float | None
    failure_retry_count: int
    counters: Mapping[str, Any]
    result: Mapping[str, str]
    updated_at: float
    # the holder's lease, its last statusDetails, and the row version (compare-and-swap)
    lease_expires: float | None = None
    details: Mapping[str, str] = field(default_factory=dict)
    version: int = 1

    @property
    def running(self) -> bool:
        return self.status == RUNNING or self.status in HELD

    @classmethod
    def from_row(cls, row: ItemRow) -> WorkItem:
        kind = ItemKind(row.kind)
        scope = ItemScope(row.path, row.recursive, row.files, row.bytes)
        return cls(
            execution_arn=row.execution_arn,
            index=row.item,
            kind=kind,
            scope=scope if kind == ItemKind.TRANSFER else None,
            status=ItemStatus(row.status),
            target=None if row.target is None else ItemStatus(row.target),
            agent_arn=row.agent_arn,
            execution_number=row.execution_number,
            started_at=row.started_at,
            ended_at=row.ended_at,
            failure_retry_count=row.failure_retry_count,
            counters=_json(row.counters),
            result={str(k): str(v) for k, v in _json(row.result).items()},
            updated_at=row.updated_at,
            lease_expires=row.lease_expires,
            details={str(k): str(v) for k, v in _json(row.details).items()},
            version=row.version,
        )

    def to_row(self) -> ItemRow:
        scope = self.scope or ItemScope("", True)
        return ItemRow(
            execution_arn=self.execution_arn,
            item=self.index,
            kind=self.kind.value,
            path=scope.path,
            recursive=scope.recursive,
            files=scope.files,
            bytes=scope.bytes,
            status=self.status.value,
            target=None if self.target is None else self.target.value,
            agent_arn=self.agent_arn,
            execution_number=self.execution_number,
            lease_expires=self.lease_expires,
            started_at=self.started_at,
            ended_at=self.ended_at,
            failure_retry_count=self.failure_retry_count,
            counters=_dump(self.counters),
            result=_dump(self.result),
            details=_dump(self.details),
            version=self.version,
            updated_at=self.updated_at,
        )

    def label(self) -> str:
        """How an error detail names the item: its index and its path."""
        if self.scope is None:
            return f"item {self.index} ({self.kind.value})"
        return f"item {self.index} ({self.scope.parameter_path})"


def _json(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _dump(value: Mapping[str, Any]) -> str:
    return json.dumps(dict(value), separators=(",", ":"), sort_keys=True)


def new_row(
    execution_arn: str,
    index: int,
    kind: ItemKind,
    scope: ItemScope | None,
    status: ItemStatus,
    now: float,
) -> ItemRow:
    """A fresh item as the plan upload creates it."""
    return WorkItem(
        execution_arn=execution_arn,
        index=index,
        kind=kind,
        scope=scope,
        status=status,
        target=None,
        agent_arn=None,
        execution_number=0,
        started_at=None,
        ended_at=None,
        failure_retry_count=0,
        counters={},
        result={},
        updated_at=now,
    ).to_row()


# reading ---------------------------------------------------------------------------------------
def list_items(store: Store, execution_arn: str) -> list[WorkItem]:
    """The execution's items in index order ([] for an execution without a plan)."""
    return [WorkItem.from_row(row) for row in store.items(execution_arn)]


def get_item(store: Store, execution_arn: str, index: int) -> WorkItem:
    row = store.item(execution_arn, index)
    if row is None:
        raise ItemNotFound(f"Task execution {execution_arn} has no work item {index}.")
    return WorkItem.from_row(row)


def change_item(
    store: Store, execution_arn: str, index: int, apply: Callable[[WorkItem], WorkItem | None]
) -> WorkItem | None:
    """Read-modify-write one item by compare-and-swap: `apply` returns the new item, or None
    for "nothing to write" (it may raise to refuse). Returns the item as written (None if
    nothing was). ItemNotFound if the item does not exist."""
    for _ in range(CAS_ATTEMPTS):
        current = get_item(store, execution_arn, index)
        changed = apply(current)
        if changed is None:
            return None
        written = replace(changed, version=current.version + 1)
        if store.update_item(written.to_row(), current.version):
            return written
    raise InternalException(f"Work item {index} of {execution_arn} is changing too fast; retry.")


# the operator's wishes -------------------------------------------------------------------------
def _retarget(item: WorkItem, target: ItemStatus, now: float) -> WorkItem | None:
    """The item after the operator's `target`, or None when it does not change."""
    status = item.status
    if item.kind == ItemKind.PREPARE and target not in (SUSPENDED, CANCELED):
        return None  # planning is redone by suspending/resuming its job, never marked
    if item.running:
        # the agent stops it first (suspend, cancel, mark): a wish carried in its replies;
        # READY/PENDING withdraw a wish not yet acted on
        wish = None if target in (READY, PENDING) else target
        return None if wish == item.target else replace(item, target=wish, updated_at=now)
    if target == SUSPENDED:
        if status not in (PENDING, READY):
            return None
        return replace(item, status=SUSPENDED, target=None, updated_at=now)
    if target in (READY, PENDING):
        if status not in (SUSPENDED, FAILED, CANCELED, NOT_COMPATIBLE):
            return None
        # REMOVE, and the files of a directory, wait for their turn (PENDING): settle() decides
        resumed = PENDING if item.kind == ItemKind.REMOVE or _held_back(item) else READY
        return replace(
            item,
            status=resumed,
            target=None,
            ended_at=None,
            failure_retry_count=item.failure_retry_count + (status == FAILED),
            updated_at=now,
        )
    if target == CANCELED:
        if status in (CANCELED, SUCCEEDED):
            return None
    elif status == target:
        return None
    return replace(item, status=target, target=None, ended_at=now, updated_at=now)


def set_target(
    store: Store,
    execution_arn: str,
    indexes: Sequence[int] | None,
    target: str,
    now: float,
) -> list[WorkItem]:
    """Apply the operator's `target` (a TaskTargetRunStatus) to some items of an execution
    (`indexes` None: every item but the PREPARE one, as UpdateJob does), settle the execution
    and poke the agents concerned. Returns the items named, as they are afterwards.

    ValueError for a target outside the model's enum; ItemNotFound for an unknown execution or
    index; ConflictEnded when the execution has ended and anything would change.
    """
    if target not in TARGETS:
        raise ValueError(f"targetRunStatus must be one of {', '.join(TARGETS)}, not {target!r}.")
    wish = ItemStatus(target)
    doc = store.execution(execution_arn)
    if doc is None:
        raise ItemNotFound(f"Task execution {execution_arn} is not found.")
    if indexes is None:
        items = {item.index: item for item in list_items(store, execution_arn)}
        chosen = [i for i, item in items.items() if item.kind != ItemKind.PREPARE]
    else:
        # the items named, each by its key (UpdateTask costs O(1) whatever the plan's size)
        chosen = sorted(set(indexes))
        rows = {i: store.item(execution_arn, i) for i in chosen}
        missing = [i for i, row in rows.items() if row is None]
        if missing:
            raise ItemNotFound(
                f"Task execution {execution_arn} has no work item {', '.join(map(str, missing))}."
            )
        items = {i: WorkItem.from_row(row) for i, row in rows.items() if row is not None}
    ended = doc["Status"] in TERMINAL_STATUSES
    if ended and any(_retarget(items[i], wish, now) is not None for i in chosen):
        raise ConflictEnded(
            f"Task execution {execution_arn} has ended ({doc['Status']}): its work items can no "
            "longer change. Start a new execution; it skips what is already at the destination."
        )

    def apply(item: WorkItem) -> WorkItem | None:
        return _retarget(item, wish, now)

    for index in chosen:
        change_item(store, execution_arn, index, apply)
    # an operator's change moves no counter: settled as a report that changed none (the sums
    # stay, the end rule and the waiting items' turn are decided on counts per status)
    settle(store, execution_arn, now, Progress({}, {}, None, final=True, by_agent=False))
    after = {i: get_item(store, execution_arn, i) for i in chosen}  # as settled
    # running items' agents hear their wish; the agents running the execution's other items
    # and its own agent hear of READY items (a resume)
    holders = {i.agent_arn for i in after.values() if i.agent_arn} | {doc["AgentArn"]}
    holders |= {
        row.agent_arn
        for row in store.items_with_status(tuple(sorted(s.value for s in HELD | {RUNNING})))
        if row.execution_arn == execution_arn and row.agent_arn
    }
    for agent in sorted(holders):
        store.notify(f"agent:{agent}")
    return [after[i] for i in chosen]


PLAN_TARGET_KEY = "_PlanTarget"  # on the execution: the operator's wish before its plan exists
# the wishes an execution without items keeps for its plan (the others need items to act on)
BEFORE_PLAN = frozenset({SUSPENDED, READY, PENDING})


def wish_before_plan(store: Store, execution_arn: str, target: str) -> bool:
    """UpdateJob on an execution whose plan has not arrived yet: keep the wish on the execution,
    so that its items are created SUSPENDED (`Scheduler.accept_plan`); READY/PENDING withdraw
    it. False when it cannot be kept: the plan arrived meanwhile (then the items take it, by
    `set_target`), the execution has ended or runs whole (`Execution.whole_reported`: the
    caller refuses), or `target` needs items to act on."""
    wish = ItemStatus(target) if target in TARGETS else None
    if wish not in BEFORE_PLAN:
        return False

    def keep(current: Execution) -> Execution | None:
        if current.plan or current.whole or current.status in TERMINAL_STATUSES:
            return None  # planned meanwhile, running whole, or over: nothing kept (see below)
        if wish == SUSPENDED:
            if current.plan_target == SUSPENDED.value:
                return None
            return replace(current, plan_target=SUSPENDED.value)
        return None if current.plan_target is None else replace(current, plan_target=None)

    done = update_execution(store, execution_arn, keep)
    if done is None:
        return False
    execution = done[0]
    return not (execution.plan or execution.whole or execution.status in TERMINAL_STATUSES)


WHOLE = "_Whole"  # on the execution: item 0 runs the whole tree itself (no items, no suspend)
WITHDRAWN_KEY = "_PlanTargetWithdrawn"  # on the execution: why a kept suspend wish was dropped


def whole_reason(min_files: int, min_bytes: int) -> str:
    """Why an execution running whole cannot be suspended (the operator's ConflictException and
    the note GetJob shows for a withdrawn wish)."""
    return (
        "the execution runs as one part (its tree is below serve's split minimum, "
        f"--split-min-files {min_files} / --split-min-bytes {min_bytes} or 60 s of its "
        "BytesPerSecond, or it has a manifest or a task report), so it has no work items and "
        "cannot be suspended; cancel it with "
        "CancelTaskExecution, or serve with a lower --split-min-files to split small trees"
    )


def poke_running(store: Store, execution_arn: str, but: str | None = None) -> None:
    """Poke the agents running items of one execution (their rate shares changed), `but` the
    one that caused it (it hears its own reply)."""
    holders = {
        row.agent_arn
        for row in store.items_with_status(tuple(sorted(s.value for s in HELD | {RUNNING})))
        if row.execution_arn == execution_arn and row.agent_arn and row.agent_arn != but
    }
    for agent in sorted(holders):
        store.notify(f"agent:{agent}")


# rolling items up into the execution -----------------------------------------------------------
def execution_counters(items: Sequence[WorkItem]) -> dict[str, Any]:
    """DescribeTaskExecution's counters of an execution with a plan: the sum over its items
    (item 0's own counters count only as long as there is nothing else: they are its planner's)."""
    counted = [i for i in items if i.kind != ItemKind.PREPARE] or list(items)
    return sum_counters([i.counters for i in counted])


def sum_counters(reports: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The sum of several reports' counters: flat ones added, nested ones (FilesListed …) added
    member by member; unknown or ill-typed ones ignored."""
    total: dict[str, Any] = dict.fromkeys(COUNTERS, 0)
    for counters in reports:
        for name, value in counters.items():
            if name in COUNTERS and isinstance(value, int) and not isinstance(value, bool):
                total[name] = total.get(name, 0) + value
            elif name in NESTED_COUNTERS and isinstance(value, dict):
                nested = total.setdefault(name, {})
                if isinstance(nested, dict):
                    for key, number in value.items():
                        if isinstance(number, int) and not isinstance(number, bool):
                            nested[key] = nested.get(key, 0) + number
            elif name in NESTED_COUNTERS and isinstance(value, int):
                total[name] = total.get(name, 0) + value
    return total


def _phase(items: Sequence[WorkItem]) -> str | None:
    """The furthest DataSync phase an item reported."""
    phases = [str(i.details.get("phase")) for i in items]
    known = [PHASES.index(p) for p in phases if p in PHASES]
    return PHASES[max(known)] if known else None


def _outcome(items: Sequence[WorkItem]) -> tuple[str, str, str] | None:
    """(status, ErrorCode, ErrorDetail) once no item keeps the execution alive, else None."""
    if any(i.status in ACTIVE for i in items):
        return None
    bad = [i for i in items if i.status != SUCCEEDED]
    if not bad:
        return "SUCCESS", "", ""
    failed = [i for i in bad if i.status == FAILED]
    code = next((i.result.get("ErrorCode") for i in failed if i.result.get("ErrorCode")), None)
    code = code or ("WorkItemFailed" if failed else "WorkItemCanceled")
    parts = []
    for item in bad:
        detail = item.result.get("ErrorDetail") if item.status == FAILED else None
        parts.append(f"{item.label()} {item.status.value}" + (f": {detail}" if detail else ""))
    text = f"{len(bad)} of {len(items)} work items did not succeed: " + "; ".join(parts)
    return "ERROR", code, text[:4000]


@dataclass(frozen=True)
class Progress:
    """One item's report as `settle` needs it: its counters before and after, its phase, and
    whether it ended the item (then waiting items may get their turn)."""

    before: Mapping[str, Any]
    after: Mapping[str, Any]
    phase: str | None
    final: bool = False
    by_agent: bool = True  # False: an operator's change (no counter moved, nothing observed)


def _beneath(scope: ItemScope, other: ItemScope) -> bool:
    """Does `other` (another item) create entries inside `scope`'s directory?"""
    if other == scope:
        return False
    if scope.path == "":
        return other.path != "" or other.recursive
    return other.path.startswith(scope.path + "/")


def waits(scope: ItemScope, plan: Sequence[ItemScope]) -> bool:
    """A non-recursive item (the files directly in a directory) waits while other items of the
    plan work beneath that directory."""
    return not scope.recursive and any(_beneath(scope, other) for other in plan)


def _held_back(item: WorkItem) -> bool:
    return item.kind == ItemKind.TRANSFER and item.scope is not None and not item.scope.recursive


def _release_waiting(store: Store, execution_arn: str, now: float) -> None:
    """Give the waiting non-recursive TRANSFER items their turn once nothing beneath their
    directory is still to run (whatever its outcome: the execution must not wait forever)."""
    items = list_items(store, execution_arn)
    transfers = [i for i in items if i.kind == ItemKind.TRANSFER and i.scope is not None]
    for item in transfers:
        if item.status != PENDING or item.scope is None:
            continue
        scope = item.scope
        if any(
            o.scope is not None and _beneath(scope, o.scope) and o.status in ACTIVE
            for o in transfers
            if o.index != item.index
        ):
            continue

        def ready(current: WorkItem) -> WorkItem | None:
            return (
                replace(current, status=READY, updated_at=now)
                if current.status == PENDING
                else None
            )

        change_item(store, execution_arn, item.index, ready)


def _delta(progress: Progress) -> dict[str, Any]:
    """What one report adds to the execution's sums (negative when a rerun restarts a count)."""
    before = sum_counters([progress.before])
    after = sum_counters([progress.after])
    out: dict[str, Any] = {}
    for name, value in after.items():
        old = before.get(name, 0)
        if isinstance(value, dict):
            olds = old if isinstance(old, dict) else {}
            out[name] = {k: v - olds.get(k, 0) for k, v in value.items()}
        elif isinstance(value, int) and isinstance(old, int):
            out[name] = value - old
    return out


def _add(counters: dict[str, Any], delta: Mapping[str, Any]) -> bool:
    """Add one report's `delta` to an execution's counters in place; True if one moved."""
    changed = False
    for name, value in delta.items():
        if isinstance(value, dict):
            current = counters.get(name)
            nested = dict(current) if isinstance(current, dict) else {}
            for key, number in value.items():
                if number:
                    nested[key] = nested.get(key, 0) + number
                    changed = True
            counters[name] = nested
        elif value:
            current = counters.get(name, 0)
            counters[name] = (current if isinstance(current, int) else 0) + value
            changed = True
    return changed


def settle(
    store: Store, execution_arn: str, now: float, progress: Progress | None = None
) -> Execution | None:
    """Roll the items up into the execution (counters, phase, the REMOVE item, the end rule).

    With `progress` (one item's report) the execution's sums move by what that report changed,
    so a report costs a few indexed reads whatever the number of items; without it the sums are
    recomputed from every item (operator changes, the reaper: rare). The end rule and the REMOVE
    item's turn are decided on counts per status; only an execution that ends reads its items
    to name those that did not succeed. Idempotent. Returns the execution as it is stored now
    (None when it has no items or is gone); an execution without items is left as it is.
    """
    counts = store.item_counts(execution_arn)
    if not counts:
        return None
    if counts.get(("TRANSFER", PENDING.value)) and (progress is None or progress.final):
        _release_waiting(store, execution_arn, now)
        counts = store.item_counts(execution_arn)
    transfers_left = sum(
        n for (kind, status), n in counts.items() if kind == "TRANSFER" and status != "SUCCEEDED"
    )
    transfers_active = sum(
        n
        for (kind, status), n in counts.items()
        if kind == "TRANSFER" and ItemStatus(status) in ACTIVE
    )
    if counts.get(("REMOVE", PENDING.value)) and not transfers_active:
        # every TRANSFER item ended: REMOVE runs once if all succeeded, else it is skipped
        # (the execution ends ERROR instead of waiting for an item nobody will run)
        turn = READY if not transfers_left else CANCELED

        def next_turn(current: WorkItem) -> WorkItem | None:
            if current.status != PENDING:
                return None
            if turn == READY:
                return replace(current, status=READY, updated_at=now)
            skipped = {
                "ErrorCode": "Skipped",
                "ErrorDetail": "not every TRANSFER item succeeded, so extras were not deleted",
            }
            return replace(current, status=CANCELED, result=skipped, ended_at=now, updated_at=now)

        for index in store.item_indexes(execution_arn, (PENDING.value,), ("REMOVE",)):
            change_item(store, execution_arn, index, next_turn)
        counts = store.item_counts(execution_arn)
    active = any(n and ItemStatus(status) in ACTIVE for (_k, status), n in counts.items())
    items = None if active and progress is not None else list_items(store, execution_arn)
    outcome = None if items is None else _outcome(items)
    counters = None if items is None else execution_counters(items)
    delta = None if progress is None or items is not None else _delta(progress)
    phase = progress.phase if progress is not None else (_phase(items) if items else None)

    def roll_up(current: Execution) -> Execution | None:
        if current.status in TERMINAL_STATUSES:
            return None
        changed = False
        execution = current
        if counters is not None:
            before = {name: current.counters.get(name) for name in counters}
            execution = replace(execution, counters={**current.counters, **counters})
            changed = before != {name: execution.counters.get(name) for name in counters}
        elif delta is not None:
            totals = dict(current.counters)
            changed = _add(totals, delta)
            execution = replace(execution, counters=totals)
        if phase is not None:
            advanced = execution.phase_advanced(phase, now)
            changed = advanced.status != execution.status or changed
            execution = advanced
        if progress is not None and progress.by_agent:  # the execution's pace (its shares)
            paced = item_pacing.observed(execution, now)
            if paced is not None:
                execution, changed = paced, True
        if outcome is not None and items is not None:
            reports = [i.details[REPORT_KEY] for i in items if i.details.get(REPORT_KEY)]
            result = items_result(items)
            execution = execution.items_ended(
                outcome[0], now, outcome[1], outcome[2], result, reports
            )
            changed = True
        return execution if changed else None

    done = update_execution(store, execution_arn, roll_up)
    return None if done is None else done[0]


def items_result(items: Sequence[WorkItem]) -> dict[str, Any]:
    """The execution's Result members from its items': a phase's status is SUCCESS when every
    item that reported it did, ERROR if one did not; its duration the longest item's."""
    out: dict[str, Any] = {}
    for phase in ("Prepare", "Transfer", "Verify"):
        statuses = [i.result.get(f"{phase}Status") for i in items if i.kind != ItemKind.PREPARE]
        reported = [s for s in statuses if s and s != "PENDING"]
        if reported:
            out[f"{phase}Status"] = (
                "SUCCESS" if all(s in ("SUCCESS", "SKIPPED") for s in reported) else "ERROR"
            )
        durations = []
        for item in items:
            value = item.result.get(f"{phase}Duration")
            if value is not None and str(value).isdigit():
                durations.append(int(value))
        if durations:
            out[f"{phase}Duration"] = max(durations)
    return out


# an item's life on an agent (the transitions `api.scheduler` and `api.jobs` apply) ------------
def claim_item(item: WorkItem, agent_arn: str, now: float, lease_seconds: float) -> WorkItem:
    """An agent takes a READY item: RUNNING, held by it under the next fencing epoch."""
    return replace(
        item,
        status=RUNNING,
        target=None,
        agent_arn=agent_arn,
        execution_number=item.execution_number + 1,
        lease_expires=now + lease_seconds,
        started_at=item.started_at if item.started_at is not None else now,
        ended_at=None,
        details={},
        updated_at=now,
    )


def release_item(item: WorkItem, now: float) -> WorkItem:
    """Its holder is gone (lease expired, or the control plane restarted under the embedded
    agent): READY again, so that a candidate takes it under the next epoch. The journal keeps
    what it finished; its counters stay until the next holder reports."""
    return replace(item, status=READY, lease_expires=None, details={}, updated_at=now)


def report_item(
    item: WorkItem,
    status: str,
    details: Mapping[str, str],
    now: float,
    lease_seconds: float,
    cancelled: bool,
) -> WorkItem:
    """The holder's UpdateJobExecution: counters and result taken, the lease renewed; a final
    status ends the item — SUSPENDED when it acknowledges a suspend (``agent:interrupted``),
    the operator's mark when it stopped for one, CANCELED when its execution was cancelled."""
    report = decode_report(details)
    counters = {**item.counters, **report.counters}
    result = {**item.result, **{str(k): str(v) for k, v in report.result.items()}}
    merged = {**item.details, **details}
    if status == "IN_PROGRESS":
        return replace(
            item,
            counters=counters,
            result=result,
            details=merged,
            lease_expires=now + lease_seconds,
            updated_at=now,
        )
    final: ItemStatus
    if status == "SUCCEEDED":
        final = FAILED if item.target == FAILED else SUCCEEDED
    elif cancelled:
        final = CANCELED
    elif item.target in (CANCELED, SUCCEEDED, FAILED):
        final = item.target
    elif details.get(INTERRUPTED_KEY) == SUSPENDED.value:
        # held SUSPENDED; if the operator withdrew the wish meanwhile, offered again at once
        final = SUSPENDED if item.target == SUSPENDED else READY
    else:
        final = FAILED
    if final == FAILED and not result.get("ErrorCode"):
        result["ErrorCode"] = "AgentError" if status == "FAILED" else "AgentRejected"
        result.setdefault("ErrorDetail", f"The agent reported the item as {status}.")
    return replace(
        item,
        status=final,
        target=None,
        counters=counters,
        result=result,
        details=merged,
        lease_expires=None,
        ended_at=now if final in ENDED else None,
        updated_at=now,
    )


def running_indexes(store: Store, execution_arn: str) -> list[int]:
    """The indexes of the execution's items an agent runs (item 0, the planner, aside)."""
    held = tuple(sorted(s.value for s in (HELD | {RUNNING})))
    return store.item_indexes(execution_arn, held, (ItemKind.TRANSFER.value, ItemKind.REMOVE.value))


def rate_share(limit: int, running: Sequence[int], index: int) -> int:
    """This item's share of the execution's BytesPerSecond: the limit split evenly among the
    running items (`running`: their indexes, in order; the first ones take the remainder, so
    the shares add up to the limit); −1 stays −1, and an item that is not running would get
    the whole limit."""
    if limit < 0:
        return limit
    if index not in running:
        return limit
    base, extra = divmod(limit, len(running))
    return max(1, base + (1 if running.index(index) < extra else 0))
