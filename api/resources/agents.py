"""Agents: activation approval (CreateAgent), describe/list/update/delete, and the agent
served by this process (register, heartbeat). Agents are `api.domain.agent.Agent` values;
their secrets are `api.credentials`' records, never part of what is rendered."""

from __future__ import annotations

import json
from dataclasses import replace

from api.auth import new_agent_credential
from api.domain import repository
from api.domain.agent import PLATFORM_VERSION, Agent
from api.domain.location import Location
from api.listing import page
from api.resources.base import (
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
        known = repository.get(self.store, Agent, arn) if arn else None
        now = self.now()
        if known is None:
            known = Agent(self.arn(f"agent/agent-{_hex17()}"), now, now, name=name)
        agent = replace(
            known,
            last_connection_time=now,
            platform_version=PLATFORM_VERSION,
            roots=tuple(str(r) for r in roots),
        )
        repository.put(self.store, agent)
        if meta_key:
            self.store.set_meta(meta_key, agent.agent_arn)
        return agent.agent_arn

    def touch_agent(self, agent_arn: str) -> None:
        """A heartbeat: LastConnectionTime moves (written at most every couple of seconds)."""
        agent = repository.get(self.store, Agent, agent_arn)
        granularity = min(2.0, self.config.agent_timeout / 4)
        if agent is not None and self.now() - agent.last_connection_time > granularity:
            repository.put(self.store, agent.connected(self.now()))

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
        agent = Agent(
            agent_arn=self.arn(f"agent/agent-{_hex17()}"),
            creation_time=now,
            last_connection_time=now,
            name=p.get("AgentName") or info.get("Name") or "",
            roots=tuple(info.get("Roots", [])),
            mounts=tuple(info.get("Mounts", [])),
            hostname=info.get("Hostname", ""),
            concurrency=int(info.get("Concurrency", 1)),
        )
        repository.put(self.store, agent)
        self.credentials.add(agent.agent_arn, new_agent_credential())
        self.store.set_meta(f"activation:{key}", json.dumps({**info, "AgentArn": agent.agent_arn}))
        self._tag(agent.agent_arn, p.get("Tags"))
        return {"AgentArn": agent.agent_arn}

    def describe_agent(self, p: Doc) -> Doc:
        agent = self._agent(p["AgentArn"])
        return agent.to_wire(self.agent_status(agent))

    def list_agents(self, p: Doc) -> Doc:
        agents = [a.to_wire(self.agent_status(a)) for a in repository.every(self.store, Agent)]
        items, token = page(agents, "AgentArn", p)
        return {"Agents": items, "NextToken": token}

    def update_agent(self, p: Doc) -> Doc:
        agent = self._agent(p["AgentArn"])
        if "Name" in p:
            repository.put(self.store, agent.renamed(p["Name"]))
        return {}

    def delete_agent(self, p: Doc) -> Doc:
        arn = self._agent(p["AgentArn"]).agent_arn
        users = [
            loc.location_arn
            for loc in repository.every(self.store, Location)
            if arn in loc.agent_arns
        ]
        if users:
            raise _invalid(
                f"Agent {arn} is used by location {users[0]}; delete its locations first.",
                "ResourceInUse",
            )
        self.credentials.remove(arn)
        self.store.remove(arn)
        return {}
