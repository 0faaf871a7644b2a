"""The control plane's settings, shared by the scheduler and the resource handlers."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from contract.workitems import DEFAULT_SPLIT_MIN_BYTES, DEFAULT_SPLIT_MIN_FILES

__all__ = ["ServerConfig"]


@dataclass
class ServerConfig:
    region: str = "us-east-1"
    account_id: str = "000000000000"
    # an agent silent this long is OFFLINE, and a job it runs is lost
    agent_timeout: float = 300.0
    # how long an unclaimed execution waits while every agent that could run it is OFFLINE
    # (None: the agent timeout) before it ends in ERROR / AgentUnavailable; see api.scheduler
    unclaimed_timeout: float | None = None
    # how long an agent's activation key stays valid (DataSync: 30 minutes); the environment
    # variable exists for tests that watch a key expire
    activation_ttl: float = field(
        default_factory=lambda: float(os.environ.get("DATASYNC_LOCAL_ACTIVATION_TTL", "1800"))
    )
    # unauthenticated agent registrations (`POST /agent-activation`): a token bucket of this
    # burst refilled at this rate per second, over all callers (`serve --registration-rate/-burst`;
    # a fleet rollout raises them); and the most keys pending at once
    registration_rate: float = 0.5
    registration_burst: float = 30.0
    max_pending_registrations: int = 200
    clock: Callable[[], float] = field(default=time.time)
    # local buckets (`serve --bucket NAME=DIR`): bucket name → directory, for task reports and
    # manifests (contract/buckets.py)
    buckets: dict[str, str] = field(default_factory=dict)
    # execution log events older than this are deleted (`serve --log-retention-days`)
    log_retention_days: float = 30.0
    # the shortest interval a task schedule may have, seconds (`serve --min-schedule-interval`)
    min_schedule_interval: float = 60.0
    # a tree holding fewer files and fewer bytes than these is not split into work items
    # (`serve --split-min-files/--split-min-bytes`; see contract.workitems)
    split_min_files: int = DEFAULT_SPLIT_MIN_FILES
    split_min_bytes: int = DEFAULT_SPLIT_MIN_BYTES

    @property
    def unclaimed_wait(self) -> float:
        return self.agent_timeout if self.unclaimed_timeout is None else self.unclaimed_timeout
