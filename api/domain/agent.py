"""An agent as the control plane keeps it: who it is, what it serves, when it last spoke.

Two kinds share the type: the embedded agent of a `serve` process (`Roots` only) and an on-prem
agent activated with `datasync-local agent` (also `Hostname`, `Mounts`, `Concurrency`). An agent
carries no secret: activated agents' keys are `api.credentials`' records, and what a renderer
gets (`to_wire`) is built from these fields alone. Its Status is not a field: it is the
scheduler's reading of `last_connection_time` (`api.scheduler.Scheduler.agent_status`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, ClassVar

from api.auth import Credential
from api.domain.enums import PUBLIC, AgentStatus, EndpointType

__all__ = ["PLATFORM_VERSION", "Agent", "stored_credential"]

PLATFORM_VERSION = "datasync-local-0.1.0"


@dataclass(frozen=True, slots=True)
class Agent:
    """One agent. `concurrency`: how many executions it runs at once (its activation's)."""

    agent_arn: str
    creation_time: float
    last_connection_time: float
    name: str = ""
    endpoint_type: EndpointType = PUBLIC
    platform_version: str = PLATFORM_VERSION
    roots: tuple[str, ...] = ()
    mounts: tuple[str, ...] = ()
    hostname: str = ""
    concurrency: int = 1

    KIND: ClassVar[str] = "agent"

    @property
    def arn(self) -> str:
        return self.agent_arn

    @property
    def thing(self) -> str:
        """Its IoT thing name: the `agent-…` part of the ARN."""
        return self.agent_arn.rsplit("/", 1)[1]

    @property
    def slots(self) -> int:
        """How many executions the scheduler gives it at once (never fewer than one)."""
        return max(1, self.concurrency)

    # changes ------------------------------------------------------------------------------------
    def connected(self, now: float) -> Agent:
        return replace(self, last_connection_time=now)

    def renamed(self, name: str) -> Agent:
        return replace(self, name=name)

    # the store boundary -------------------------------------------------------------------------
    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Agent:
        """An agent from its stored document (any release's: absent members take defaults;
        a secret an old release kept inside it is not read here, see `stored_credential`)."""
        platform = row.get("Platform") or {}
        return cls(
            agent_arn=str(row["AgentArn"]),
            creation_time=float(row["CreationTime"]),
            last_connection_time=float(row.get("LastConnectionTime", 0.0)),
            name=str(row.get("Name") or ""),
            endpoint_type=EndpointType(row.get("EndpointType", PUBLIC)),
            platform_version=str(platform.get("Version", PLATFORM_VERSION)),
            roots=tuple(str(r) for r in row.get("Roots") or ()),
            mounts=tuple(str(m) for m in row.get("Mounts") or ()),
            hostname=str(row.get("Hostname") or ""),
            concurrency=int(row.get("Concurrency", 1)),
        )

    def to_row(self) -> dict[str, Any]:
        row: dict[str, Any] = {
            "AgentArn": self.agent_arn,
            "CreationTime": self.creation_time,
            "EndpointType": self.endpoint_type.value,
            "Platform": {"Version": self.platform_version},
            "LastConnectionTime": self.last_connection_time,
            "Roots": list(self.roots),
        }
        if self.concurrency != 1:
            row["Concurrency"] = self.concurrency
        if self.name:
            row["Name"] = self.name
        if self.mounts:
            row["Mounts"] = list(self.mounts)
        if self.hostname:
            row["Hostname"] = self.hostname
        return row

    # the wire -----------------------------------------------------------------------------------
    def to_wire(self, status: AgentStatus) -> dict[str, Any]:
        """DescribeAgent's response (ListAgents' entries are its AgentListEntry part)."""
        wire: dict[str, Any] = {
            "AgentArn": self.agent_arn,
            "Status": status.value,
            "LastConnectionTime": self.last_connection_time,
            "CreationTime": self.creation_time,
            "EndpointType": self.endpoint_type.value,
            "Platform": {"Version": self.platform_version},
        }
        if self.name:
            wire["Name"] = self.name
        return wire


def stored_credential(row: Mapping[str, Any]) -> Credential | None:
    """The secret a data dir of an early release kept inside the agent's document (moved to
    `api.credentials` at start-up, `api.resources.base`); None when the row has none."""
    raw = row.get("_Credentials")
    if not raw:
        return None
    return Credential(str(raw["AccessKeyId"]), str(raw["SecretAccessKey"]))
