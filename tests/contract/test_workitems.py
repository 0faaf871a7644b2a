"""The work-item contract: job ids, scopes, plans and journal batches round-trip and refuse
what is not one."""

from __future__ import annotations

import pytest

from contract.workitems import (
    DEFAULT_SPLIT_MIN_BYTES,
    DEFAULT_SPLIT_MIN_FILES,
    MAX_JOURNAL_BATCH,
    ItemAssignment,
    ItemBudget,
    ItemKind,
    ItemScope,
    JournalBatch,
    PlanUpload,
    item_job_id,
    parse_item_job_id,
)

EXEC = "exec-0123456789abcdef0"


def test_item_job_ids_round_trip_and_item_zero_is_the_execution_job() -> None:
    assert item_job_id(EXEC, 0) == EXEC
    assert parse_item_job_id(EXEC) == (EXEC, 0)
    assert parse_item_job_id(item_job_id(EXEC, 42)) == (EXEC, 42)
    for bad in ("exec-1", f"{EXEC}-i0", f"{EXEC}-i01", f"{EXEC}-x3", "task-0123456789abcdef0"):
        with pytest.raises(ValueError):
            parse_item_job_id(bad)


@pytest.mark.parametrize("path", ["/abs", "a/../b", "a//b", "./a", "a/", "..", "a\0b"])
def test_a_scope_path_stays_inside_the_source(path: str) -> None:
    with pytest.raises(ValueError):
        ItemScope(path, True)


def test_scopes_and_assignments_round_trip() -> None:
    scope = ItemScope("photos/2024", True, files=3, bytes=10)
    assert ItemScope.from_json(scope.to_json()) == scope
    assert ItemScope(".", False).path == "" and ItemScope("", False).parameter_path == "."
    assignment = ItemAssignment(3, ItemKind.TRANSFER, scope)
    assert ItemAssignment.from_json(assignment.to_json()) == assignment
    first = ItemAssignment(0, ItemKind.PREPARE, budget=ItemBudget(10, 20, 2))
    assert ItemAssignment.from_json(first.to_json()) == first
    assert ItemAssignment.from_json({}).kind is ItemKind.PREPARE
    tiny = ItemAssignment(0, ItemKind.PREPARE, budget=ItemBudget(10, 20, 2, 0, 0))
    assert ItemAssignment.from_json(tiny.to_json()) == tiny
    # a budget without a minimum (a control plane from before it) gets the default one
    old = ItemBudget.from_json({"MaxFiles": 10, "MaxBytes": 20, "Agents": 1})
    assert (old.min_files, old.min_bytes) == (DEFAULT_SPLIT_MIN_FILES, DEFAULT_SPLIT_MIN_BYTES)


def test_a_plan_refuses_duplicates_bad_numbers_and_emptiness() -> None:
    plan = PlanUpload(2, [ItemScope("a", True), ItemScope("", False)])
    assert PlanUpload.from_json(plan.to_json()) == plan
    with pytest.raises(ValueError):
        PlanUpload.from_json({"executionNumber": 1, "items": []})
    with pytest.raises(ValueError):
        PlanUpload(1, [ItemScope("a", True)] * 2).from_json(
            PlanUpload(1, [ItemScope("a", True)] * 2).to_json()
        )
    with pytest.raises(TypeError):
        PlanUpload.from_json({"executionNumber": True, "items": [{"Path": "", "Recursive": 1}]})
    with pytest.raises(TypeError):
        ItemScope.from_json({"Path": "a", "Recursive": True, "Files": -1})


def test_journal_batches_are_bounded_and_relative() -> None:
    batch = JournalBatch(1, ["a/b", "c"])
    assert JournalBatch.from_json(batch.to_json()) == batch
    with pytest.raises(ValueError):
        JournalBatch.from_json({"executionNumber": 1, "done": ["x"] * (MAX_JOURNAL_BATCH + 1)})
    with pytest.raises(ValueError):
        JournalBatch.from_json({"executionNumber": 1, "done": ["../x"]})
