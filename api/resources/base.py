"""What every resource handler shares: the store, the settings, the scheduler, ARNs, lookups
that raise DataSync's not-found errors, tags on create. One mixin per resource builds on it
(`api.resources.agents`, `.locations`, `.tasks`, `.executions`, `.tags`); `api.models.Backend`
composes them and `api.dispatch` maps each operation to its handler."""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Mapping
from typing import Any

from api.auth import KeyRing
from api.config import ServerConfig
from api.credentials import AgentCredentials, CredentialedThings
from api.domain import repository
from api.domain.agent import Agent, stored_credential
from api.domain.enums import AgentStatus
from api.domain.location import Location
from api.errors import InvalidRequestException
from api.scheduler import Scheduler
from api.store import Store
from contract import Doc
from engine import InvalidOptionsError

__all__ = [
    "Resources",
    "execution_not_found",
    "filters_key",
    "hex17",
    "invalid",
    "options_error",
]


def _hex17() -> str:
    return secrets.token_hex(9)[:17]


def _invalid(message: str, code: str | None = None) -> InvalidRequestException:
    return InvalidRequestException(message, code)


def _execution_not_found(arn: str) -> InvalidRequestException:
    return _invalid(f"Task execution {arn} is not found.", "ResourceNotFound")


def _options_error(exc: InvalidOptionsError) -> InvalidRequestException:
    return InvalidRequestException(str(exc), "InvalidOptions")


def _filters_key(includes: Any, excludes: Any) -> str:
    return json.dumps([includes or [], excludes or []], sort_keys=True)


hex17 = _hex17
invalid = _invalid
execution_not_found = _execution_not_found
options_error = _options_error
filters_key = _filters_key


class Resources:
    """The shared part of the backend. Runs on one event loop per process; executions are
    changed by compare-and-swap, so processes sharing a store do not lose each other's writes."""

    def __init__(self, store: Store, config: ServerConfig) -> None:
        self.store = store
        self.config = config
        # Called with an agent's ARN when there is news for it (work queued, a cancel, a new
        # rate), so an agent in this process can ask now instead of at its next poll or report.
        # Remote agents hear the same news in the reply to their next report. Must not block.
        self.work_listeners: list[Callable[[str], None]] = []
        # activated agents' own credentials live in the store alone (api.credentials)
        self.credentials = AgentCredentials(store)
        self.credentialed_things = CredentialedThings(store)
        for row in store.all("agent"):
            self._move_credentials(row)
        self.scheduler = Scheduler(store, config, notify=self._notify, is_remote=self.is_remote)

    def _move_credentials(self, row: Doc) -> None:
        """A data dir of an earlier release kept the secret inside the agent document: move it
        to the credentials records (idempotent), so no resource document carries a secret."""
        credential = stored_credential(row)
        if credential is not None:
            agent = Agent.from_row(row)
            self.credentials.add(agent.agent_arn, credential)
            repository.put(self.store, agent)  # rewritten without the secret

    def keyring(self, operator: Mapping[str, str]) -> KeyRing:
        """The secrets the app checks signatures against, with who may call what."""
        return KeyRing(operator, self.credentials, self.credentialed_things)

    def _notify(self, agent_arn: str) -> None:
        for listener in self.work_listeners:
            listener(agent_arn)

    # helpers ----------------------------------------------------------------------------------
    def now(self) -> float:
        return self.config.clock()

    def arn(self, resource: str) -> str:
        return f"arn:aws:datasync:{self.config.region}:{self.config.account_id}:{resource}"

    def _agent(self, arn: str) -> Agent:
        agent = repository.get(self.store, Agent, arn)
        if agent is None:
            raise _invalid(f"Agent {arn} is not found.", "ResourceNotFound")
        return agent

    def _location(self, arn: str) -> Location:
        location = repository.get(self.store, Location, arn)
        if location is None:
            raise _invalid(f"Location {arn} is not found.", "ResourceNotFound")
        return location

    def _execution(self, arn: str) -> Doc:
        doc = self.store.execution(arn)
        if doc is None:
            raise _execution_not_found(arn)
        return doc

    def is_remote(self, agent_arn: str) -> bool:
        """An activated (on-prem) agent: its own process, its own credentials."""
        return agent_arn.rsplit("/", 1)[1] in self.credentialed_things

    def agent_status(self, agent: Agent) -> AgentStatus:
        return self.scheduler.agent_status(agent)

    def _tag(self, arn: str, tags: list[Doc] | None) -> None:
        if tags:
            self.store.set_tags(arn, {t["Key"]: t.get("Value", "") for t in tags})
