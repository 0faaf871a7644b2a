"""Agents: activation approval (CreateAgent), describe/list/update/delete, and the agent
served by this process (register, heartbeat)."""

from __future__ import annotations

import json

from api.auth import new_agent_credential
from api.listing import page
from api.resources.base import (
    _PLATFORM_VERSION,
    Resources,
    _hex17,
    _invalid,
)
from contract import Doc

__all__ = ["AgentHandlers"]


class AgentHandlers(Resources):
    # agents -----------------------------------------------------------------------------------
    def register_agent(self, name: str, roots: list[str], meta_key: str | None = None) -> str:
        """Register (or refresh) an agent served by this process; returns its ARN."""
        arn = self.store.meta(meta_key) if meta_key else None
        doc = self.store.get("agent", arn) if arn else None
        now = self.now()
        if doc is None:
            arn = self.arn(f"agent/agent-{_hex17()}")
            doc = {"AgentArn": arn, "Name": name, "CreationTime": now}
        assert arn is not None
        doc.update(
            {
                "EndpointType": "PUBLIC",
                "Platform": {"Version": _PLATFORM_VERSION},
                "LastConnectionTime": now,
                "Roots": [str(r) for r in roots],
            }
        )
        self.store.put("agent", arn, doc["CreationTime"], doc)
        if meta_key:
            self.store.set_meta(meta_key, arn)
        return arn

    def touch_agent(self, agent_arn: str) -> None:
        doc = self.store.get("agent", agent_arn)
        granularity = min(2.0, self.config.agent_timeout / 4)
        if doc is not None and self.now() - doc.get("LastConnectionTime", 0.0) > granularity:
            doc["LastConnectionTime"] = self.now()
            self.store.put("agent", agent_arn, doc["CreationTime"], doc)

    def create_agent(self, p: Doc) -> Doc:
        """Approve a pending agent by the key it showed; it collects its credentials by polling."""
        key = p["ActivationKey"]
        pending = self.store.meta(f"activation:{key}")
        info = json.loads(pending) if pending else None
        if info is None:
            raise _invalid(
                f"Activation key {key} is not recognised: start an agent with "
                "`datasync-local agent --server URL` and use the key it shows.",
                "InvalidActivationKey",
            )
        if info.get("AgentArn"):
            raise _invalid(
                f"Activation key {key} was already used for agent {info['AgentArn']}.",
                "InvalidActivationKey",
            )
        if info.get("ExpiresAt", 0) < self.now():
            raise _invalid(
                f"Activation key {key} has expired (keys are valid for "
                f"{int(self.config.activation_ttl // 60)} minutes); restart the agent for a new "
                "one.",
                "ActivationKeyExpired",
            )
        now = self.now()
        arn = self.arn(f"agent/agent-{_hex17()}")
        credential = new_agent_credential()
        doc: Doc = {
            "AgentArn": arn,
            "Name": p.get("AgentName") or info.get("Name") or "",
            "CreationTime": now,
            "EndpointType": "PUBLIC",
            "Platform": {"Version": _PLATFORM_VERSION},
            "LastConnectionTime": now,
            "Roots": info.get("Roots", []),
            "Mounts": info.get("Mounts", []),
            "Hostname": info.get("Hostname", ""),
            "Concurrency": info.get("Concurrency", 1),
        }
        if not doc["Name"]:
            del doc["Name"]
        self.store.put("agent", arn, now, doc)
        self.credentials.add(arn, credential)
        self.store.set_meta(f"activation:{key}", json.dumps({**info, "AgentArn": arn}))
        self._tag(arn, p.get("Tags"))
        return {"AgentArn": arn}

    def describe_agent(self, p: Doc) -> Doc:
        doc = self._get("agent", p["AgentArn"], "Agent")
        return {**doc, "Status": self.agent_status(doc)}

    def list_agents(self, p: Doc) -> Doc:
        agents = [{**a, "Status": self.agent_status(a)} for a in self.store.all("agent")]
        items, token = page(agents, "AgentArn", p)
        return {"Agents": items, "NextToken": token}

    def update_agent(self, p: Doc) -> Doc:
        doc = self._get("agent", p["AgentArn"], "Agent")
        if "Name" in p:
            doc["Name"] = p["Name"]
        self.store.put("agent", doc["AgentArn"], doc["CreationTime"], doc)
        return {}

    def delete_agent(self, p: Doc) -> Doc:
        arn = p["AgentArn"]
        self._get("agent", arn, "Agent")
        users = [loc["LocationArn"] for loc in self.store.all("location") if arn in loc["_Agents"]]
        if users:
            raise _invalid(
                f"Agent {arn} is used by location {users[0]}; delete its locations first.",
                "ResourceInUse",
            )
        self.credentials.remove(arn)
        self.store.remove(arn)
        return {}
