"""Carries one job's per-file events to the control plane's execution log, in bounded batches
(contract/log_events.py): the engine's sink only appends to a bounded deque (cheap, any thread);
`run` posts what has gathered every `interval` seconds, `flush` the rest before the final
report. A failed post keeps the events queued (bounded), so a server restart loses none but
the overflow, which is counted and reported as dropped."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from typing import Any

import anyio

from agents.client import JobsClient
from contract.log_events import (
    MAX_BATCH_BYTES,
    MAX_BATCH_EVENTS,
    MAX_QUEUED_EVENTS,
    encode_event,
    wanted,
)
from engine.events import FileEvent

__all__ = ["EventShipper"]

log = logging.getLogger("datasync_local.agent")


class EventShipper:
    def __init__(self, client: JobsClient, thing: str, job_id: str, log_level: str) -> None:
        self.client, self.thing, self.job_id, self.log_level = client, thing, job_id, log_level
        self._queue: deque[dict[str, Any]] = deque()
        self._lock = threading.Lock()
        self.dropped = 0

    @property
    def active(self) -> bool:
        return self.log_level in ("BASIC", "TRANSFER")

    def sink(self, event: FileEvent) -> None:
        if not wanted(self.log_level, event):
            return
        encoded = encode_event(event, int(time.time() * 1000))
        with self._lock:
            if len(self._queue) >= MAX_QUEUED_EVENTS:
                self.dropped += 1
                return
            self._queue.append(encoded)

    def _batch(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        size = 0
        with self._lock:
            while self._queue and len(out) < MAX_BATCH_EVENTS:
                item_size = len(json.dumps(self._queue[0])) + 1
                if out and size + item_size > MAX_BATCH_BYTES:
                    break
                out.append(self._queue.popleft())
                size += item_size
        return out

    async def flush(self) -> bool:
        """Post everything queued; False (events kept) if the server did not take a batch."""
        while True:
            batch = self._batch()
            dropped, self.dropped = self.dropped, 0
            if not batch and not dropped:
                return True
            try:
                await self.client.post_events(self.thing, self.job_id, batch, dropped)
            except Exception as exc:
                with self._lock:
                    self._queue.extendleft(reversed(batch))
                    while len(self._queue) > MAX_QUEUED_EVENTS:
                        self._queue.pop()
                        self.dropped += 1
                self.dropped += dropped
                log.warning("agent %s: cannot send log events: %s", self.thing, exc)
                return False

    async def run(self, interval: float = 0.5) -> None:
        while True:
            await anyio.sleep(interval)
            await self.flush()
