"""What the status page shows, as one JSON-able snapshot read from the store.

Only display fields are copied out: no credentials, no internal (`_`-prefixed) members.
Running executions carry their work items (`api.ui.items`): the page lists them and says how
many are SUSPENDED, which the DataSync status (it keeps its phase) cannot say.
"""

from __future__ import annotations

from typing import Any

from api.domain import repository
from api.domain.agent import Agent
from api.domain.execution import Execution
from api.domain.task import Task
from api.models import Backend
from api.ui.failures import FailureIndex
from api.ui.items import summarize
from api.workitems import list_items
from contract.jobs import COUNTERS, NESTED_COUNTERS

__all__ = ["RECENT", "snapshot"]

RECENT = 10  # finished executions listed
_RUNNING = ("LAUNCHING", "PREPARING", "TRANSFERRING", "VERIFYING", "CANCELLING")


def _execution(execution: Execution) -> dict[str, Any]:
    counters = execution.counters
    out: dict[str, Any] = {
        "TaskExecutionArn": execution.task_execution_arn,
        "TaskArn": execution.task_arn,
        "Status": execution.status.value,
        "StartTime": execution.start_time,
        "BytesPerSecond": execution.options.get("BytesPerSecond", -1),
        "Result": {k: v for k, v in execution.result.items() if not k.startswith("_")},
    }
    for name in COUNTERS:
        out[name] = counters.get(name, 0)
    for name in NESTED_COUNTERS:  # e.g. FilesFailed: {"Transfer": n, ...}
        if name in counters:
            out[name] = counters[name]
    return out


def _running(backend: Backend, execution: Execution) -> dict[str, Any]:
    shown = _execution(execution)
    shown.update(summarize(list_items(backend.store, execution.arn)).to_json())
    return shown


def snapshot(backend: Backend, failures: FailureIndex) -> dict[str, Any]:
    """Everything the page shows; recent executions with their failed files (`FailedFiles`)."""
    store = backend.store
    executions = repository.executions(store)
    tasks = [
        {
            "TaskArn": t.task_arn,
            "Name": t.name,
            "Status": backend.task_status(t).value,
            "ScheduleExpression": "" if t.schedule is None else t.schedule.schedule_expression,
        }
        for t in repository.every(store, Task)
    ]
    agents = [
        {
            "AgentArn": a.agent_arn,
            "Name": a.name,
            "Status": backend.agent_status(a).value,
            "LastConnectionTime": a.last_connection_time,
        }
        for a in repository.every(store, Agent)
    ]
    finished = [e for e in executions if e.ended]
    now = backend.now()
    recent = []
    for execution in finished[-RECENT:][::-1]:
        shown = _execution(execution)
        shown["FailedFiles"] = failures.of(execution, now).to_json()
        recent.append(shown)
    return {
        "now": now,
        "tasks": tasks,
        "agents": agents,
        "running": [_running(backend, e) for e in executions if e.status.value in _RUNNING],
        "queued": [_execution(e) for e in executions if e.status.value == "QUEUED"],
        "recent": recent,
    }
