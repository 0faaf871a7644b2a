"""NFS and SMB locations: create, describe, update, list, delete, and the checks of their
host, subdirectory and agents. Locations are `api.domain.location.Location` values."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from api.domain import repository
from api.domain.location import Location, LocationType, SmbSettings
from api.domain.task import Task
from api.errors import InvalidRequestException
from api.listing import matches, page
from api.locations import local_path
from api.resources.base import (
    Resources,
    _hex17,
    _invalid,
)
from contract import Doc
from contract.paths import inside_roots

__all__ = ["LocationHandlers"]


class LocationHandlers(Resources):
    # locations --------------------------------------------------------------------------------
    def _check_location(self, hostname: str, subdirectory: str, agent_arns: list[str]) -> None:
        agents = [self._agent(agent_arn) for agent_arn in agent_arns]
        local = [a for a in agents if not self.is_remote(a.agent_arn)]
        if not local:
            # on-prem agents resolve hosts, mounts and roots on their own machine, where the
            # paths are; they fail the execution with the path named if it is not allowed
            if not subdirectory.startswith("/"):
                raise _invalid(
                    f"Subdirectory {subdirectory!r} must be an absolute path.",
                    "InvalidSubdirectory",
                )
            return
        path = local_path(hostname, subdirectory)
        for agent in local:
            if inside_roots(path, list(agent.roots)) is None:
                raise _invalid(
                    f"Subdirectory {subdirectory} is outside the directories agent "
                    f"{agent.agent_arn} serves ({', '.join(agent.roots) or 'none'}), after "
                    "resolving '..' and symlinks.",
                    "PathOutsideRoots",
                )

    @staticmethod
    def _mount_version(p: Doc, current: str | None = None) -> str | None:
        if "MountOptions" not in p:
            return current
        version = (p["MountOptions"] or {}).get("Version")
        return None if version is None else str(version)

    def _create_location(
        self, kind: LocationType, p: Doc, agent_arns: list[str], smb: SmbSettings | None
    ) -> Doc:
        self._check_location(p["ServerHostname"], p["Subdirectory"], agent_arns)
        location = Location(
            location_arn=self.arn(f"location/loc-{_hex17()}"),
            location_type=kind,
            creation_time=self.now(),
            server_hostname=p["ServerHostname"],
            subdirectory=p["Subdirectory"],
            agent_arns=tuple(agent_arns),
            mount_version=self._mount_version(p),
            smb=smb,
        )
        repository.put(self.store, location)
        self._tag(location.location_arn, p.get("Tags"))
        return {"LocationArn": location.location_arn}

    def create_location_nfs(self, p: Doc) -> Doc:
        agents = p["OnPremConfig"]["AgentArns"]
        return self._create_location(LocationType.NFS, p, agents, None)

    def create_location_smb(self, p: Doc) -> Doc:
        self._reject_smb_secrets(p)
        return self._create_location(
            LocationType.SMB, p, p["AgentArns"], SmbSettings.from_request(p)
        )

    def _reject_smb_secrets(self, p: Doc) -> None:
        for name in ("CmkSecretConfig", "CustomSecretConfig", "KerberosKeytab", "KerberosKrb5Conf"):
            if p.get(name):
                raise _invalid(f"{name} is not supported by this server.", "UnsupportedFeature")

    def _location_of(self, arn: str, kind: LocationType) -> Location:
        location = self._location(arn)
        if location.location_type != kind:
            raise _invalid(
                f"Location {arn} is a {location.location_type} location, not {kind}.",
                "WrongLocationType",
            )
        return location

    def describe_location_nfs(self, p: Doc) -> Doc:
        return self._location_of(p["LocationArn"], LocationType.NFS).to_wire()

    def describe_location_smb(self, p: Doc) -> Doc:
        return self._location_of(p["LocationArn"], LocationType.SMB).to_wire()

    def _update_location(self, location: Location, p: Doc, agents: list[str] | None) -> None:
        hostname: str = p.get("ServerHostname") or location.server_hostname
        subdirectory: str = p.get("Subdirectory") or location.subdirectory
        agent_arns = list(location.agent_arns) if agents is None else agents
        self._check_location(hostname, subdirectory, agent_arns)
        smb = None if location.smb is None else SmbSettings.from_request(p, location.smb)
        moved = location.moved(
            server_hostname=hostname,
            subdirectory=subdirectory,
            agent_arns=tuple(agent_arns),
            mount_version=self._mount_version(p, location.mount_version),
            smb=smb,
        )
        repository.put(self.store, moved)

    def update_location_nfs(self, p: Doc) -> Doc:
        location = self._location_of(p["LocationArn"], LocationType.NFS)
        agents = p["OnPremConfig"]["AgentArns"] if "OnPremConfig" in p else None
        self._update_location(location, p, agents)
        return {}

    def update_location_smb(self, p: Doc) -> Doc:
        self._reject_smb_secrets(p)
        location = self._location_of(p["LocationArn"], LocationType.SMB)
        self._update_location(location, p, p.get("AgentArns"))
        return {}

    def list_locations(self, p: Doc) -> Doc:
        filters = p.get("Filters", [])

        def attributes(location: Location) -> Callable[[str], list[Any]]:
            values: dict[str, list[Any]] = {
                "LocationUri": [location.location_uri],
                "LocationType": [location.location_type.value],
                "CreationTime": [location.creation_time],
            }
            return lambda name: values[name]

        found = [
            loc.list_entry()
            for loc in repository.every(self.store, Location)
            if matches(filters, attributes(loc))
        ]
        items, token = page(found, "LocationArn", p)
        return {"Locations": items, "NextToken": token}

    def delete_location(self, p: Doc) -> Doc:
        arn = self._location(p["LocationArn"]).location_arn
        for task in repository.every(self.store, Task):
            if arn in task.location_arns:
                raise _invalid(
                    f"Location {arn} is used by task {task.task_arn}; delete the task first.",
                    "ResourceInUse",
                )
        self.store.remove(arn)
        return {}

    def unsupported_location(self, operation: str) -> InvalidRequestException:
        return _invalid(
            f"{operation}: this location type needs a cloud service and is not supported by this "
            "server; use CreateLocationNfs or CreateLocationSmb with ServerHostname=localhost.",
            "UnsupportedLocationType",
        )
