"""A started execution with the fewest members a test needs: one place that calls
`Execution.new`, so a change to its signature is made here, not in every test module."""

from __future__ import annotations

from typing import Any

from api.domain.execution import Execution

TASK = "arn:aws:datasync:us-east-1:111122223333:task/task-0123456789abcdef0"
AGENT = "arn:aws:datasync:us-east-1:111122223333:agent/agent-0123456789abcdef0"
NOW = 1_800_000_000.0


def an_execution(
    n: int = 0x0123456789ABCDEF0,
    *,
    queued: bool = False,
    now: float = NOW,
    task_arn: str = TASK,
    agent_arn: str = AGENT,
    arn: str | None = None,
    options: dict[str, Any] | None = None,
    includes: list[dict[str, str]] | None = None,
    filters_key: str = "[]",
    source: dict[str, Any] | None = None,
    destination: dict[str, Any] | None = None,
) -> Execution:
    """Execution `exec-{n:017x}` of `task_arn`, BASIC, no filters unless given, unthrottled."""
    return Execution.new(
        arn=arn or f"{task_arn}/execution/exec-{n:017x}",
        task_arn=task_arn,
        task_mode="BASIC",
        agent_arn=agent_arn,
        options={"BytesPerSecond": -1} if options is None else options,
        includes=includes or [],
        excludes=[],
        filters_key=filters_key,
        source={"LocationArn": "s"} if source is None else source,
        destination={"LocationArn": "d"} if destination is None else destination,
        queued=queued,
        now=now,
    )
