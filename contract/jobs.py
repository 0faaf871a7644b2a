"""The jobs protocol between the control plane and its agents (AWS IoT Jobs data plane shape).

Everything both sides must agree on lives here, once:

* the `statusDetails` keys: an agent's report carries ``phase`` (a TaskExecutionStatus),
  ``counters`` and ``result`` (compact JSON objects with the DescribeTaskExecution names) and
  ``agent:session``; its `$next` claim carries ``agent:running`` and ``agent:slots``; the control
  plane's replies carry its wishes under ``control:bytesPerSecond`` and ``control:cancel``;
* the limits: IoT Jobs caps every statusDetails value at 1024 characters (the model says only
  "min 1"), and the job document a job is offered with;
* the encodings, so that what the agent writes is exactly what the control plane reads;
* the BytesPerSecond rule (−1 = unlimited, else positive), checked here and nowhere else in
  `api` or `agents`, with one error type.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from engine.progress import counter_names

__all__ = [
    "CANCEL_KEY",
    "COUNTERS",
    "COUNTERS_KEY",
    "DEVICE_STATUSES",
    "JOB_TERMINAL",
    "MAX_DETAIL_VALUE",
    "NESTED_COUNTERS",
    "PHASES",
    "PHASE_KEY",
    "RATE_KEY",
    "REPORT_KEY",
    "RESULT_KEY",
    "RUNNING_KEY",
    "SESSION_KEY",
    "SLOTS_KEY",
    "Control",
    "InvalidBytesPerSecond",
    "JobDocument",
    "Report",
    "check_bytes_per_second",
    "compact",
    "decode_report",
    "encode_report",
]

# statusDetails keys -----------------------------------------------------------------------------
PHASE_KEY = "phase"
COUNTERS_KEY = "counters"
RESULT_KEY = "result"
SESSION_KEY = "agent:session"  # which run of the job wrote the state (a restarted agent's differs)
RUNNING_KEY = "agent:running"  # $next: the job ids the agent runs now ("-": none)
SLOTS_KEY = "agent:slots"  # $next: how many jobs the agent runs at once
RATE_KEY = "control:bytesPerSecond"  # reply: the BytesPerSecond the control plane wants
CANCEL_KEY = "control:cancel"  # reply: "true" when the execution was cancelled
REPORT_KEY = "report"  # final report: the task report's ReportResult (compact JSON)

# limits -----------------------------------------------------------------------------------------
MAX_DETAIL_VALUE = 1024  # IoT Jobs' documented limit for one statusDetails value

# job statuses (IoT Jobs JobExecutionStatus) ------------------------------------------------------
DEVICE_STATUSES = ("IN_PROGRESS", "SUCCEEDED", "FAILED", "REJECTED")  # what an agent may report
JOB_TERMINAL = ("SUCCEEDED", "FAILED", "REJECTED", "TIMED_OUT", "CANCELED", "REMOVED")

# DataSync phases an agent reports, in order (they only move forward)
PHASES = ("QUEUED", "LAUNCHING", "PREPARING", "TRANSFERRING", "VERIFYING")
COUNTERS = (
    "EstimatedFilesToTransfer",
    "EstimatedBytesToTransfer",
    "EstimatedFilesToDelete",
    "FilesTransferred",
    "BytesWritten",
    "BytesTransferred",
    "BytesCompressed",
    "FilesSkipped",
    "FilesVerified",
    "FilesDeleted",
    # the Folders* twins, in models that carry them (engine/progress.py counts them apart)
    *(n for n in counter_names()[0] if "Folders" in n),
)
NESTED_COUNTERS = ("FilesListed", "FilesFailed", "FilesPrepared", *counter_names()[1])


class InvalidBytesPerSecond(ValueError):
    """A BytesPerSecond that is neither −1 (unlimited) nor a positive integer."""


def check_bytes_per_second(value: object) -> int:
    """The one BytesPerSecond rule of the control plane and the agents: −1 or positive."""
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or (value != -1 and value <= 0):
        raise InvalidBytesPerSecond(
            "Options.BytesPerSecond must be -1 (unlimited) or a positive number of bytes per "
            f"second; got {value!r}."
        )
    return value


def compact(value: Any) -> str:
    """JSON as statusDetails carry it: no spaces, sorted keys."""
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


# the job document ------------------------------------------------------------------------------
@dataclass(frozen=True)
class JobDocument:
    """What an agent is given with a job: everything it needs to run one execution.

    Derived from the execution whenever it is offered (never stored beside it), so a rate change
    is one write to the execution.
    """

    TaskExecutionArn: str
    TaskArn: str
    TaskMode: str
    Options: Mapping[str, Any]
    Includes: list[Any] = field(default_factory=list)
    Excludes: list[Any] = field(default_factory=list)
    Source: Mapping[str, Any] = field(default_factory=dict)
    Destination: Mapping[str, Any] = field(default_factory=dict)
    # issue 13: the execution's TaskReportConfig / ManifestConfig (empty: none); the agent
    # resolves their buckets through its own --bucket map
    TaskReportConfig: Mapping[str, Any] = field(default_factory=dict)
    ManifestConfig: Mapping[str, Any] = field(default_factory=dict)
    # issue 12: which work item this job is (contract.workitems.ItemAssignment.to_json());
    # empty: item 0 of an execution (see contract/workitems.py)
    Item: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> JobDocument:
        """Parse a `jobDocument`; KeyError/ValueError/TypeError if it is not one."""
        raw = json.loads(text)
        if not isinstance(raw, dict):
            raise ValueError("the job document is not a JSON object")
        return cls(
            TaskExecutionArn=str(raw["TaskExecutionArn"]),
            TaskArn=str(raw["TaskArn"]),
            TaskMode=str(raw["TaskMode"]),
            Options=dict(raw.get("Options") or {}),
            Includes=list(raw.get("Includes") or []),
            Excludes=list(raw.get("Excludes") or []),
            Source=dict(raw["Source"]),
            Destination=dict(raw["Destination"]),
            TaskReportConfig=dict(raw.get("TaskReportConfig") or {}),
            ManifestConfig=dict(raw.get("ManifestConfig") or {}),
            Item=dict(raw.get("Item") or {}),
        )


# an agent's report -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Report:
    """What an agent's statusDetails say: the phase, counters and Result members it reported."""

    phase: str | None
    counters: dict[str, Any]
    result: dict[str, Any]


def encode_report(snapshot: Mapping[str, Any]) -> dict[str, str]:
    """statusDetails for an engine snapshot: phase, counters and result, each ≤ 1024 chars.

    An over-long ErrorDetail is cut (with "..."); over-long counters keep the flat ones.
    """
    counters = {k: v for k, v in snapshot.items() if k not in ("Status", "Result")}
    result = dict(snapshot.get("Result") or {})
    encoded_result = compact(result)
    detail = str(result.get("ErrorDetail", ""))
    while len(encoded_result) > MAX_DETAIL_VALUE and detail:  # keep the start: count, failures
        overflow = len(encoded_result) - MAX_DETAIL_VALUE + 3
        detail = detail[: max(0, len(detail) - overflow)]
        result["ErrorDetail"] = detail + "..."
        encoded_result = compact(result)
    encoded_counters = compact(counters)
    if len(encoded_counters) > MAX_DETAIL_VALUE:
        encoded_counters = compact({k: v for k, v in counters.items() if isinstance(v, int)})
    return {
        PHASE_KEY: str(snapshot.get("Status", "LAUNCHING")),
        COUNTERS_KEY: encoded_counters,
        RESULT_KEY: encoded_result[:MAX_DETAIL_VALUE],
    }


def _object(raw: str | None) -> dict[str, Any]:
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def decode_report(details: Mapping[str, str]) -> Report:
    """The control plane's reading of a report: unknown or ill-typed counters are ignored."""
    counters: dict[str, Any] = {}
    for name, value in _object(details.get(COUNTERS_KEY)).items():
        if (name in COUNTERS and isinstance(value, int) and not isinstance(value, bool)) or (
            name in NESTED_COUNTERS and isinstance(value, dict | int)
        ):
            counters[name] = value
    phase = details.get(PHASE_KEY)
    return Report(phase, counters, _object(details.get(RESULT_KEY)))


# the control plane's wishes --------------------------------------------------------------------
@dataclass(frozen=True)
class Control:
    """What the control plane wants of a running job, carried in every reply's statusDetails."""

    bytes_per_second: int | None
    cancel: bool = False

    def to_details(self) -> dict[str, str]:
        out = {} if self.bytes_per_second is None else {RATE_KEY: str(self.bytes_per_second)}
        if self.cancel:
            out[CANCEL_KEY] = "true"
        return out

    @classmethod
    def from_details(cls, details: Mapping[str, str]) -> Control | None:
        """The wishes in a reply (None if it has none); InvalidBytesPerSecond if the rate is bad."""
        rate = details.get(RATE_KEY)
        cancel = details.get(CANCEL_KEY) == "true"
        if rate is None and not cancel:
            return None
        return cls(None if rate is None else check_bytes_per_second(rate), cancel)
