"""DataSync's enums as the domain uses them, built from botocore's model at import (never
retyped). mypy cannot see the members of an enum built from data, so the values the code names
are constants here, checked against the model when this module loads (`AgentStatus("ONLINE")`
raises ValueError if the model ever drops ONLINE)."""

from __future__ import annotations

from enum import StrEnum

from contract.model import enum_values

__all__ = [
    "AVAILABLE",
    "DISABLED",
    "ENABLED",
    "OFFLINE",
    "ONLINE",
    "PUBLIC",
    "QUEUED_TASK",
    "RUNNING_TASK",
    "UNAVAILABLE",
    "AgentStatus",
    "EndpointType",
    "ScheduleStatus",
    "TaskMode",
    "TaskStatus",
]


def _members(name: str) -> dict[str, str]:
    return {value: value for value in enum_values(name)}


# each call is written out (not made in a loop) so that mypy knows the names as enum types
AgentStatus = StrEnum("AgentStatus", _members("AgentStatus"))  # type: ignore[misc]
EndpointType = StrEnum("EndpointType", _members("EndpointType"))  # type: ignore[misc]
TaskStatus = StrEnum("TaskStatus", _members("TaskStatus"))  # type: ignore[misc]
TaskMode = StrEnum("TaskMode", _members("TaskMode"))  # type: ignore[misc]
ScheduleStatus = StrEnum("ScheduleStatus", _members("ScheduleStatus"))  # type: ignore[misc]
for _enum in (AgentStatus, EndpointType, TaskStatus, TaskMode, ScheduleStatus):
    _enum.__doc__ = f"DataSync's {_enum.__name__}, from botocore's datasync model."

ONLINE = AgentStatus("ONLINE")
OFFLINE = AgentStatus("OFFLINE")
PUBLIC = EndpointType("PUBLIC")
AVAILABLE = TaskStatus("AVAILABLE")
QUEUED_TASK = TaskStatus("QUEUED")
RUNNING_TASK = TaskStatus("RUNNING")
UNAVAILABLE = TaskStatus("UNAVAILABLE")
ENABLED = ScheduleStatus("ENABLED")
DISABLED = ScheduleStatus("DISABLED")
