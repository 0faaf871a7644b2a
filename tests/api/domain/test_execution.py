"""Execution: every document its transitions write (and the first release's) round-trips through
the type unchanged, and its wire rendering is what the renderer made of the raw document, member
for member, with no internal member."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from api.domain.execution import Execution, JobExecutionStatus, TaskExecutionStatus
from api.responses import render
from contract.jobs import encode_report
from contract.model import shape
from tests.api.domain.factory import AGENT, NOW, an_execution
from tests.api.domain.released import released_execution


def _new(n: int, queued: bool = False) -> dict[str, Any]:
    doc = an_execution(
        n,
        queued=queued,
        options={"BytesPerSecond": -1, "VerifyMode": "ONLY_FILES_TRANSFERRED"},
        includes=[{"FilterType": "SIMPLE_PATTERN", "Value": "/a"}],
    ).to_row()
    doc["TaskReportConfig"] = {"Destination": {"S3": {"S3BucketArn": "arn:aws:s3:::b"}}}
    doc["ReportResult"] = {"Status": "PENDING"}
    return doc


def _step(doc: dict[str, Any], change: Callable[[Execution], Execution]) -> None:
    """One transition applied to a stored document in place, as a writer's compare-and-swap
    writes it back (members the type does not know are kept)."""
    after = change(Execution.from_row(doc)).to_row()
    kept = {k: v for k, v in doc.items() if k not in Execution.ROW_MEMBERS}
    doc.clear()
    doc.update(after)
    doc.update(kept)


def _lives() -> Iterator[dict[str, Any]]:
    """Documents at every step of a few executions' lives, as the control plane's writers leave them."""
    done = _new(1)
    yield dict(done)
    _step(done, lambda e: e.claimed(NOW + 1, 5, 30.0))
    yield dict(done)
    snapshot = {"Status": "TRANSFERRING", "FilesTransferred": 3, "FilesListed": {"AtSource": 4}}
    _step(done, lambda e: e.reported("IN_PROGRESS", encode_report(snapshot), NOW + 2))
    yield dict(done)
    final = {"Status": "VERIFYING", "Result": {"TransferStatus": "SUCCESS"}}
    details = {**encode_report(final), "report": '{"Status":"SUCCESS"}'}
    _step(done, lambda e: e.reported("SUCCEEDED", details, NOW + 3))
    yield dict(done)
    cancelled = _new(2, queued=True)
    _step(cancelled, lambda e: e.cancel_requested(NOW + 1))
    yield dict(cancelled)
    running = _new(3)
    _step(running, lambda e: e.claimed(NOW + 1, None, 30.0))
    _step(running, lambda e: e.cancel_requested(NOW + 2))
    yield dict(running)
    _step(running, lambda e: e.requeued(AGENT, NOW + 3))
    yield dict(running)
    _step(running, lambda e: e.finished("ERROR", NOW + 4, "AgentTimeout", "lost"))
    yield dict(running)
    yield released_execution()


def test_every_document_round_trips_unchanged() -> None:
    for doc in _lives():
        execution = Execution.from_row(doc)
        assert execution.to_row() == doc
        assert Execution.from_row(execution.to_row()) == execution


def test_the_wire_is_what_the_renderer_made_of_the_document() -> None:
    for doc in _lives():
        wire = Execution.from_row(doc).to_wire()
        assert set(wire) <= set(shape("DescribeTaskExecutionResponse")["members"])
        assert render("DescribeTaskExecutionResponse", wire) == render(
            "DescribeTaskExecutionResponse", doc
        )
        entry = Execution.from_row(doc).list_entry()
        assert entry == render("TaskExecutionListEntry", doc)


def test_states_are_the_models_enums() -> None:
    assert [s.value for s in TaskExecutionStatus] == shape("TaskExecutionStatus")["enum"]
    assert {s.value for s in JobExecutionStatus} == set(
        shape("JobExecutionStatus", "iot-jobs-data")["enum"]
    )
    cancelled = Execution.from_row(list(_lives())[4])
    assert cancelled.status == TaskExecutionStatus("ERROR")
    assert cancelled.job.status == JobExecutionStatus("CANCELED")
    assert cancelled.result["ErrorCode"] == "Cancelled"
