"""NFS and SMB locations: create, describe, update, list, delete, and the checks of their
host, subdirectory and agents."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from api.errors import InvalidRequestException
from api.listing import matches, page
from api.locations import local_path, location_uri
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
        for agent_arn in agent_arns:
            self._get("agent", agent_arn, "Agent")
        local = [a for a in agent_arns if not self.is_remote(a)]
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
        for agent_arn in local:
            agent = self._get("agent", agent_arn, "Agent")
            roots = agent.get("Roots", [])
            if inside_roots(path, roots) is None:
                raise _invalid(
                    f"Subdirectory {subdirectory} is outside the directories agent {agent_arn} "
                    f"serves ({', '.join(roots) or 'none'}), after resolving '..' and symlinks.",
                    "PathOutsideRoots",
                )

    def _create_location(self, kind: str, p: Doc, agent_arns: list[str], extra: Doc) -> Doc:
        self._check_location(p["ServerHostname"], p["Subdirectory"], agent_arns)
        arn = self.arn(f"location/loc-{_hex17()}")
        now = self.now()
        doc = {
            "LocationArn": arn,
            "LocationUri": location_uri(kind, p["ServerHostname"], p["Subdirectory"]),
            "LocationType": kind,
            "CreationTime": now,
            "ServerHostname": p["ServerHostname"],
            "Subdirectory": p["Subdirectory"],
            "_Agents": agent_arns,
            **extra,
        }
        self.store.put("location", arn, now, doc)
        self._tag(arn, p.get("Tags"))
        return {"LocationArn": arn}

    def create_location_nfs(self, p: Doc) -> Doc:
        agents = p["OnPremConfig"]["AgentArns"]
        extra = {"OnPremConfig": {"AgentArns": agents}}
        if "MountOptions" in p:
            extra["MountOptions"] = p["MountOptions"]
        return self._create_location("NFS", p, agents, extra)

    _SMB_KEEP = ("User", "Domain", "MountOptions", "AuthenticationType", "DnsIpAddresses")

    def create_location_smb(self, p: Doc) -> Doc:
        self._reject_smb_secrets(p)
        extra = {k: p[k] for k in self._SMB_KEEP if k in p}
        return self._create_location(
            "SMB", p, p["AgentArns"], {"AgentArns": p["AgentArns"], **extra}
        )

    def _reject_smb_secrets(self, p: Doc) -> None:
        for name in ("CmkSecretConfig", "CustomSecretConfig", "KerberosKeytab", "KerberosKrb5Conf"):
            if p.get(name):
                raise _invalid(f"{name} is not supported by this server.", "UnsupportedFeature")

    def _location(self, arn: str, kind: str | None = None) -> Doc:
        doc = self._get("location", arn, "Location")
        if kind is not None and doc["LocationType"] != kind:
            raise _invalid(
                f"Location {arn} is a {doc['LocationType']} location, not {kind}.",
                "WrongLocationType",
            )
        return doc

    def describe_location_nfs(self, p: Doc) -> Doc:
        doc = self._location(p["LocationArn"], "NFS")
        return {"MountOptions": {"Version": "AUTOMATIC"}, **doc}

    def describe_location_smb(self, p: Doc) -> Doc:
        doc = self._location(p["LocationArn"], "SMB")
        return {"MountOptions": {"Version": "AUTOMATIC"}, "AuthenticationType": "NTLM", **doc}

    def _update_location(self, doc: Doc, p: Doc, agents_key: str | None) -> Doc:
        hostname: str = p.get("ServerHostname") or doc["ServerHostname"]
        subdirectory: str = p.get("Subdirectory") or doc["Subdirectory"]
        agents = doc["_Agents"]
        if agents_key == "OnPremConfig" and "OnPremConfig" in p:
            agents = p["OnPremConfig"]["AgentArns"]
            doc["OnPremConfig"] = {"AgentArns": agents}
        elif agents_key == "AgentArns" and "AgentArns" in p:
            agents = p["AgentArns"]
            doc["AgentArns"] = agents
        self._check_location(hostname, subdirectory, agents)
        doc.update(
            ServerHostname=hostname,
            Subdirectory=subdirectory,
            _Agents=agents,
            LocationUri=location_uri(doc["LocationType"], hostname, subdirectory),
        )
        return doc

    def update_location_nfs(self, p: Doc) -> Doc:
        doc = self._update_location(self._location(p["LocationArn"], "NFS"), p, "OnPremConfig")
        if "MountOptions" in p:
            doc["MountOptions"] = p["MountOptions"]
        self.store.put("location", doc["LocationArn"], doc["CreationTime"], doc)
        return {}

    def update_location_smb(self, p: Doc) -> Doc:
        self._reject_smb_secrets(p)
        doc = self._update_location(self._location(p["LocationArn"], "SMB"), p, "AgentArns")
        doc.update({k: p[k] for k in self._SMB_KEEP if k in p})
        self.store.put("location", doc["LocationArn"], doc["CreationTime"], doc)
        return {}

    def list_locations(self, p: Doc) -> Doc:
        filters = p.get("Filters", [])

        def attributes(doc: Doc) -> Callable[[str], list[Any]]:
            return lambda name: {
                "LocationUri": [doc["LocationUri"]],
                "LocationType": [doc["LocationType"]],
                "CreationTime": [doc["CreationTime"]],
            }[name]

        found = [d for d in self.store.all("location") if matches(filters, attributes(d))]
        items, token = page(found, "LocationArn", p)
        return {"Locations": items, "NextToken": token}

    def delete_location(self, p: Doc) -> Doc:
        arn = p["LocationArn"]
        self._location(arn)
        for task in self.store.all("task"):
            if arn in (task["SourceLocationArn"], task["DestinationLocationArn"]):
                raise _invalid(
                    f"Location {arn} is used by task {task['TaskArn']}; delete the task first.",
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
