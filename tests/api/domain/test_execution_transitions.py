"""Execution's state machine, on the type itself: each method returns the execution after one
event and leaves the one it was called on as it was."""

from __future__ import annotations

from api.domain.execution import Execution
from contract.jobs import CANCEL_KEY, RATE_KEY, encode_report
from contract.model import shape
from contract.workitems import ItemBudget
from tests.api.domain.factory import NOW, an_execution

OTHER = "arn:aws:datasync:us-east-1:111122223333:agent/agent-0123456789abcdef1"


def _new(queued: bool = False) -> Execution:
    return an_execution(queued=queued)


def test_claim_report_and_success() -> None:
    queued = _new(queued=True)
    claimed = queued.claimed(NOW + 1, 5, 30.0)
    assert queued.status == "QUEUED" and queued.job.status == "QUEUED"  # unchanged
    assert (claimed.status, claimed.job.status) == ("LAUNCHING", "IN_PROGRESS")
    assert claimed.job.lease_expires_at == NOW + 31 and claimed.job.step_deadline == NOW + 301
    assert claimed.job.version_number == 2
    moving = claimed.reported(
        "IN_PROGRESS", encode_report({"Status": "TRANSFERRING", "FilesTransferred": 2}), NOW + 2
    )
    assert moving.status == "TRANSFERRING" and moving.counters["FilesTransferred"] == 2
    back = moving.reported("IN_PROGRESS", encode_report({"Status": "PREPARING"}), NOW + 3)
    assert back.status == "TRANSFERRING"  # phases only move forward
    done = back.reported("SUCCEEDED", encode_report({"Status": "VERIFYING"}), NOW + 4)
    assert (done.status, done.job.status, done.end_time) == ("SUCCESS", "SUCCEEDED", NOW + 4)
    assert done.job.lease_expires_at is None and done.job.step_deadline is None
    assert [s for s, _ in done.history] == ["QUEUED", "LAUNCHING", "TRANSFERRING", "SUCCESS"]
    assert done.result["TotalDuration"] == 4000


def test_a_cancel_racing_completion_stays_a_cancel() -> None:
    running = _new().claimed(NOW + 1, None, 30.0)
    cancelling = running.cancel_requested(NOW + 2)
    assert cancelling.status == "CANCELLING" and cancelling.control().cancel
    assert cancelling.control().to_details()[CANCEL_KEY] == "true"
    ended = cancelling.reported("SUCCEEDED", encode_report({"Status": "VERIFYING"}), NOW + 3)
    assert ended.status == "ERROR"
    assert ended.result["ErrorCode"] == "Cancelled"
    assert ended.result["PrepareStatus"] == "ERROR"


def test_a_queued_cancel_ends_at_once() -> None:
    cancelled = _new(queued=True).cancel_requested(NOW + 1)
    assert (cancelled.status, cancelled.job.status) == ("ERROR", "CANCELED")
    assert cancelled.end_time == NOW + 1


def test_a_new_rate_reaches_the_job_document_and_the_control_wish() -> None:
    running = _new().claimed(NOW + 1, None, 30.0)
    throttled = running.rate_set({**running.options, "BytesPerSecond": 1024})
    assert throttled.job_document().Options["BytesPerSecond"] == 1024
    assert throttled.control().to_details()[RATE_KEY] == "1024"
    assert running.job_document().Options["BytesPerSecond"] == -1


def test_a_lost_agents_job_is_offered_again_under_the_next_number() -> None:
    running = (
        _new()
        .claimed(NOW + 1, 5, 30.0)
        .reported("IN_PROGRESS", encode_report({"Status": "PREPARING"}), NOW + 2)
    )
    again = running.requeued(OTHER, NOW + 40)
    assert (again.agent_arn, again.job.status, again.job.execution_number) == (
        OTHER,
        "QUEUED",
        2,
    )
    assert again.status == "PREPARING"
    assert again.job.started_at is None and again.job.step_timeout_in_minutes is None
    timed_out = again.finished("ERROR", NOW + 50, "AgentTimeout", "lost")
    assert timed_out.job.status == "TIMED_OUT"
    unavailable = again.finished("ERROR", NOW + 50, "AgentUnavailable", "nobody")
    assert unavailable.job.status == "CANCELED"


def test_item_zero_plans_within_its_budget() -> None:
    budget = ItemBudget(agents=3).to_json()
    planned = Execution.from_row({**_new().to_row(), "_Budget": budget})
    assert planned.job_document().Item["Kind"] == "PREPARE"
    assert _new().job_document().Item == {}


def test_the_job_renderings_are_the_iot_jobs_shapes() -> None:
    running = _new().claimed(NOW + 1, 5, 30.0).rate_set({"BytesPerSecond": 2048})
    wire = running.job_execution("agent-0123456789abcdef0", NOW + 2)
    assert set(wire) <= set(shape("JobExecution", "iot-jobs-data")["members"])
    assert wire["approximateSecondsBeforeTimedOut"] == 299  # the step timer, before the lease
    assert wire["statusDetails"][RATE_KEY] == "2048"
    assert set(running.job_summary()) <= set(
        shape("JobExecutionSummary", "iot-jobs-data")["members"]
    )
    assert set(running.job_state()) <= set(shape("JobExecutionState", "iot-jobs-data")["members"])
    assert "jobDocument" not in running.job_execution("t", NOW, include_document=False)
    assert "startedAt" not in _new().job_summary()
