"""Activated agents' own credentials, kept in the store only (never in a resource document).

    meta "credential:<AccessKeyId>"  → {"Thing": …, "AgentArn": …, "SecretAccessKey": …}
    meta "credentialed:<thing>"      → the AccessKeyId of that agent

Every process of a shared store sees an activation or a deletion at the next request: nothing
is indexed in one process's memory. The agent document handed to renderers has no secret in it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping

from api.auth import AgentKey, Credential
from api.store import Store

__all__ = ["AgentCredentials", "CredentialedThings"]

_KEY = "credential:"
_THING = "credentialed:"


class AgentCredentials(Mapping[str, AgentKey]):
    """Access key id → the agent's key, read from the store on every lookup."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def __getitem__(self, access_key: str) -> AgentKey:
        raw = self.store.meta(_KEY + access_key)
        if raw is None:
            raise KeyError(access_key)
        record = json.loads(raw)
        return AgentKey(str(record["Thing"]), str(record["SecretAccessKey"]))

    def __iter__(self) -> Iterator[str]:
        return (key[len(_KEY) :] for key, _ in self.store.meta_items(_KEY))

    def __len__(self) -> int:
        return len(self.store.meta_items(_KEY))

    def secret_of(self, agent_arn: str) -> Credential | None:
        """The credential an activated agent collects when its activation is approved."""
        access_key = self.store.meta(_THING + agent_arn.rsplit("/", 1)[1])
        if access_key is None:
            return None
        try:
            return Credential(access_key, self[access_key].secret_access_key)
        except KeyError:
            return None

    def add(self, agent_arn: str, credential: Credential) -> None:
        thing = agent_arn.rsplit("/", 1)[1]
        record = {
            "Thing": thing,
            "AgentArn": agent_arn,
            "SecretAccessKey": credential.secret_access_key,
        }
        self.store.set_meta(_KEY + credential.access_key_id, json.dumps(record))
        self.store.set_meta(_THING + thing, credential.access_key_id)

    def remove(self, agent_arn: str) -> None:
        thing = agent_arn.rsplit("/", 1)[1]
        access_key = self.store.meta(_THING + thing)
        if access_key is not None:
            self.store.delete_meta(_KEY + access_key)
        self.store.delete_meta(_THING + thing)


class CredentialedThings:
    """`thing in things`: is it an activated agent (its own credentials, its own process)?"""

    def __init__(self, store: Store) -> None:
        self.store = store

    def __contains__(self, thing: object) -> bool:
        return isinstance(thing, str) and self.store.meta(_THING + thing) is not None
