"""A location: a directory on the host of the agents it lists (NFS or SMB, DataSync's shapes).

`agent_arns` are the agents that may serve it, in the order the request gave them; the
scheduler picks among the agents two locations share. A location keeps no secret: an SMB
`Password` is never stored, and the secret-manager members are refused at creation
(`api.resources.locations`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any, ClassVar

from api.locations import location_uri

__all__ = ["Location", "LocationType", "SmbSettings"]


class LocationType(StrEnum):
    """The location kinds this server serves (the model has no enum of them: DataSync names
    the kind in the operation, `CreateLocationNfs`, and in the URI's scheme)."""

    NFS = "NFS"
    SMB = "SMB"


@dataclass(frozen=True, slots=True)
class SmbSettings:
    """What an SMB location adds to an NFS one (the members given, None when absent)."""

    user: str | None = None
    domain: str | None = None
    authentication_type: str | None = None
    dns_ip_addresses: tuple[str, ...] | None = None

    @classmethod
    def from_request(cls, p: Mapping[str, Any], base: SmbSettings | None = None) -> SmbSettings:
        """The request's members over `base` (UpdateLocationSmb changes only what it names)."""
        old = base or cls()
        dns = p.get("DnsIpAddresses")
        return cls(
            user=str(p["User"]) if "User" in p else old.user,
            domain=str(p["Domain"]) if "Domain" in p else old.domain,
            authentication_type=(
                str(p["AuthenticationType"])
                if "AuthenticationType" in p
                else old.authentication_type
            ),
            dns_ip_addresses=tuple(str(a) for a in dns)
            if dns is not None
            else old.dns_ip_addresses,
        )

    def to_members(self) -> dict[str, Any]:
        members: dict[str, Any] = {
            "User": self.user,
            "Domain": self.domain,
            "AuthenticationType": self.authentication_type,
            "DnsIpAddresses": None
            if self.dns_ip_addresses is None
            else list(self.dns_ip_addresses),
        }
        return {k: v for k, v in members.items() if v is not None}


@dataclass(frozen=True, slots=True)
class Location:
    """One NFS or SMB location. `mount_version`: MountOptions.Version as given (None: not
    given, DataSync shows AUTOMATIC); `smb` is set for SMB locations only."""

    location_arn: str
    location_type: LocationType
    creation_time: float
    server_hostname: str
    subdirectory: str
    agent_arns: tuple[str, ...]
    mount_version: str | None = None
    smb: SmbSettings | None = None

    KIND: ClassVar[str] = "location"

    @property
    def arn(self) -> str:
        return self.location_arn

    @property
    def location_uri(self) -> str:
        return location_uri(self.location_type.value, self.server_hostname, self.subdirectory)

    def moved(
        self,
        *,
        server_hostname: str,
        subdirectory: str,
        agent_arns: tuple[str, ...],
        mount_version: str | None,
        smb: SmbSettings | None,
    ) -> Location:
        """The location after an Update: its URI follows the host and the subdirectory."""
        return replace(
            self,
            server_hostname=server_hostname,
            subdirectory=subdirectory,
            agent_arns=agent_arns,
            mount_version=mount_version,
            smb=smb,
        )

    def for_agent(self) -> dict[str, str]:
        """What an agent is told of a location to find its directory (in the job document)."""
        return {
            "LocationArn": self.location_arn,
            "LocationType": self.location_type.value,
            "LocationUri": self.location_uri,
            "ServerHostname": self.server_hostname,
            "Subdirectory": self.subdirectory,
        }

    # the store boundary -------------------------------------------------------------------------
    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Location:
        kind = LocationType(row["LocationType"])
        mount = row.get("MountOptions") or {}
        return cls(
            location_arn=str(row["LocationArn"]),
            location_type=kind,
            creation_time=float(row["CreationTime"]),
            server_hostname=str(row["ServerHostname"]),
            subdirectory=str(row["Subdirectory"]),
            agent_arns=tuple(str(a) for a in row.get("_Agents") or ()),
            mount_version=str(mount["Version"]) if "Version" in mount else None,
            smb=SmbSettings.from_request(row) if kind == LocationType.SMB else None,
        )

    def to_row(self) -> dict[str, Any]:
        """The stored document: the release-0.1 format (the agents under `_Agents` and under the
        kind's own member, the URI kept for readers of the raw rows)."""
        row = {**self._members(), "ServerHostname": self.server_hostname}
        row.update(
            LocationType=self.location_type.value,
            Subdirectory=self.subdirectory,
            _Agents=list(self.agent_arns),
        )
        if self.mount_version is not None:
            row["MountOptions"] = {"Version": self.mount_version}
        return row

    def _members(self) -> dict[str, Any]:
        members: dict[str, Any] = {
            "LocationArn": self.location_arn,
            "LocationUri": self.location_uri,
            "CreationTime": self.creation_time,
        }
        if self.location_type == LocationType.NFS:
            members["OnPremConfig"] = {"AgentArns": list(self.agent_arns)}
        else:
            members["AgentArns"] = list(self.agent_arns)
            members.update((self.smb or SmbSettings()).to_members())
        return members

    # the wire -----------------------------------------------------------------------------------
    def to_wire(self) -> dict[str, Any]:
        """DescribeLocationNfs / DescribeLocationSmb's response."""
        wire = {**self._members(), "MountOptions": {"Version": self.mount_version or "AUTOMATIC"}}
        if self.location_type == LocationType.SMB:
            wire.setdefault("AuthenticationType", "NTLM")
        return wire

    def list_entry(self) -> dict[str, str]:
        """ListLocations' LocationListEntry."""
        return {"LocationArn": self.location_arn, "LocationUri": self.location_uri}
