"""`Execution.claimed`: LaunchTime never precedes StartTime."""

from __future__ import annotations

from typing import Any

from api.domain.execution import Execution
from tests.api.domain.factory import an_execution


def _queued(start: float) -> dict[str, Any]:
    location = {"LocationArn": "arn:loc", "LocationUri": "nfs://h/x/", "ServerHostname": "h",
                "Subdirectory": "/x"}  # fmt: skip
    return an_execution(
        task_arn="arn:aws:datasync:us-east-1:111122223333:task/task-1",
        arn="arn:aws:datasync:us-east-1:111122223333:task/task-1/execution/exec-1",
        agent_arn="arn:aws:datasync:us-east-1:111122223333:agent/agent-1",
        options={},
        filters_key="[[], []]",
        source=location,
        destination=location,
        queued=True,
        now=start,
    ).to_row()


def test_a_claim_read_before_the_start_never_launches_before_it() -> None:
    """An agent's poll reads its clock, then finds an execution started after that instant:
    LaunchTime (and the LAUNCHING entry of History) is not earlier than StartTime."""
    doc = _queued(1000.0)
    doc = Execution.from_row(doc).claimed(999.997, None, 30.0).to_row()
    assert doc["StartTime"] <= doc["LaunchTime"] == 1000.0
    assert doc["History"][-1] == ["LAUNCHING", 1000.0]
    assert doc["Job"]["leaseExpiresAt"] == 1030.0


def test_a_claim_after_the_start_launches_at_its_own_time() -> None:
    doc = _queued(1000.0)
    doc = Execution.from_row(doc).claimed(1002.5, None, 30.0).to_row()
    assert doc["LaunchTime"] == 1002.5 and doc["History"][-1] == ["LAUNCHING", 1002.5]
