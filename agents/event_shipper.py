"""Carries one job's per-file events to the control plane's execution log, in bounded batches
(contract/log_events.py): the engine's sink only appends the event and its time to a bounded
deque (cheap, any thread); `run` posts what has gathered every `interval` seconds, `flush` the
rest before the final report. A failed post keeps the events queued (bounded), so a server
restart loses none but the overflow, which is counted and reported as dropped.

The sink runs inside each file's critical path in the engine's worker threads, so everything
that costs is done later, on the agent's event loop, a batch at a time: the wire encoding
(`encode_batch`: one list per field, no object per event) and its JSON, made once: a batch
over `MAX_BATCH_BYTES` (very long paths) is split in halves until each fits, so the size costs
nothing per event (a bound computed per event was a fifth of the shipper's cost).

Batches are few and big (up to `MAX_BATCH_EVENTS`, posted every `interval`, 1 s): each post is
signed, verified and looked up once, whatever it holds, and `aws logs tail --follow` (which
polls every second or so) still sees a file's line within about two seconds.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque

import anyio

from agents.client import JobsClient
from contract.log_events import (
    MAX_BATCH_BYTES,
    MAX_BATCH_EVENTS,
    MAX_QUEUED_EVENTS,
    encode_batch,
    wanted,
)
from engine.events import FileEvent

__all__ = ["EventShipper"]

log = logging.getLogger("datasync_local.agent")


class EventShipper:
    def __init__(self, client: JobsClient, thing: str, job_id: str, log_level: str) -> None:
        self.client, self.thing, self.job_id, self.log_level = client, thing, job_id, log_level
        self._queue: deque[tuple[float, FileEvent]] = deque()
        self._lock = threading.Lock()
        self.dropped = 0

    @property
    def active(self) -> bool:
        return self.log_level in ("BASIC", "TRANSFER")

    def sink(self, event: FileEvent) -> None:
        """The engine's sink (any worker thread). `deque.append` is atomic, so the common case
        takes no lock; the bound is checked without one too (it may be passed by as many events
        as there are workers, never more), and counting a drop takes the lock."""
        if not wanted(self.log_level, event):
            return
        if len(self._queue) >= MAX_QUEUED_EVENTS:
            with self._lock:
                self.dropped += 1
            return
        self._queue.append((time.time(), event))

    def take(self, events: list[tuple[float, FileEvent]]) -> None:
        """A batch of (time.time(), event) from another consumer of the engine's events (the
        task report's writer thread, agents/unattended.py): the ones `wanted`, within the
        queue's bound (the rest counted as dropped)."""
        if self.log_level != "TRANSFER":
            events = [item for item in events if wanted(self.log_level, item[1])]
        room = max(0, MAX_QUEUED_EVENTS - len(self._queue))
        if len(events) > room:
            with self._lock:
                self.dropped += len(events) - room
            events = events[:room]
        self._queue.extend(events)

    def _batch(self, dropped: int) -> tuple[list[tuple[float, FileEvent]], bytes]:
        """The next batch from the left of the queue (only the event loop takes from it) and
        its body: at most MAX_BATCH_EVENTS events, halved (the rest put back) while its JSON
        is over MAX_BATCH_BYTES."""
        queue = self._queue
        out = [queue.popleft() for _ in range(min(len(queue), MAX_BATCH_EVENTS))]
        while True:
            body = json.dumps(encode_batch(out, dropped).to_json(), separators=(",", ":"))
            if len(body) <= MAX_BATCH_BYTES or len(out) <= 1:  # ASCII: characters are bytes
                return out, body.encode()
            half = len(out) // 2
            queue.extendleft(reversed(out[half:]))
            del out[half:]

    async def flush(self) -> bool:
        """Post everything queued; False (events kept) if the server did not take a batch."""
        while True:
            with self._lock:
                dropped, self.dropped = self.dropped, 0
            if not self._queue and not dropped:
                return True
            batch, body = self._batch(dropped)
            try:
                await self.client.post_events(self.thing, self.job_id, body)
            except Exception as exc:
                with self._lock:
                    self._queue.extendleft(reversed(batch))
                    while len(self._queue) > MAX_QUEUED_EVENTS:
                        self._queue.pop()  # the newest go: the log keeps its beginning
                        self.dropped += 1
                    self.dropped += dropped
                log.warning("agent %s: cannot send log events: %s", self.thing, exc)
                return False

    async def run(self, interval: float = 1.0) -> None:
        while True:
            await anyio.sleep(interval)
            await self.flush()
