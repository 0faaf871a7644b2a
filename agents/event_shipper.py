"""Carries one job's per-file events to the control plane's execution log, in bounded batches
(contract/log_events.py): the engine's sink only appends the event and its time to a bounded
deque (cheap, any thread); `run` posts what has gathered every `interval` seconds, `flush` the
rest before the final report. A failed post keeps the events queued (bounded), so a server
restart loses none but the overflow, which is counted and reported as dropped.

The sink runs inside each file's critical path in the engine's worker threads, so everything
that costs is done later, on the agent's event loop, a batch at a time: the wire encoding
(`encode_event`) and the batch's size. The size is a bound computed from the strings' lengths
(`_size_bound`), never a `json.dumps` per event: that second serialisation was a third of the
shipper's cost per file.
"""

from __future__ import annotations

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
    encode_event,
    wanted,
)
from engine.events import FileEvent

__all__ = ["EventShipper"]

log = logging.getLogger("datasync_local.agent")

_FIXED_BYTES = 160  # the keys, punctuation, timestamp, size and flags of one encoded event
_FACTS_BYTES = 240  # one side's metadata of a verification failure, numbers at their longest


def _text_bound(text: str | None) -> int:
    """The most JSON characters `text` can take: printable ASCII at most doubles (`\\"`, `\\\\`);
    anything else may become `\\uXXXX` escapes, two for a character outside the BMP."""
    if text is None:
        return 0
    if text.isascii() and text.isprintable():
        return 2 * len(text) + 2
    return 12 * len(text) + 2


def _size_bound(event: FileEvent) -> int:
    """An upper bound on the bytes of `encode_event(event)` as JSON, plus its separator."""
    size = _FIXED_BYTES + _text_bound(event.path) + _text_bound(event.reason)
    size += _text_bound(event.checksum) + _text_bound(event.phase)
    for facts in (event.source, event.destination):
        if facts is not None:
            size += _FACTS_BYTES + _text_bound(facts.checksum)
    return size


class EventShipper:
    def __init__(self, client: JobsClient, thing: str, job_id: str, log_level: str) -> None:
        self.client, self.thing, self.job_id, self.log_level = client, thing, job_id, log_level
        self._queue: deque[tuple[int, FileEvent]] = deque()
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
        self._queue.append((int(time.time() * 1000), event))

    def _batch(self) -> list[tuple[int, FileEvent]]:
        """The next batch from the left of the queue (only the event loop takes from it)."""
        out: list[tuple[int, FileEvent]] = []
        size = 0
        queue = self._queue
        while queue and len(out) < MAX_BATCH_EVENTS:
            item_size = _size_bound(queue[0][1])
            if out and size + item_size > MAX_BATCH_BYTES:
                break
            out.append(queue.popleft())
            size += item_size
        return out

    async def flush(self) -> bool:
        """Post everything queued; False (events kept) if the server did not take a batch."""
        while True:
            batch = self._batch()
            with self._lock:
                dropped, self.dropped = self.dropped, 0
            if not batch and not dropped:
                return True
            encoded = [encode_event(event, at) for at, event in batch]
            try:
                await self.client.post_events(self.thing, self.job_id, encoded, dropped)
            except Exception as exc:
                with self._lock:
                    self._queue.extendleft(reversed(batch))
                    while len(self._queue) > MAX_QUEUED_EVENTS:
                        self._queue.pop()  # the newest go: the log keeps its beginning
                        self.dropped += 1
                    self.dropped += dropped
                log.warning("agent %s: cannot send log events: %s", self.thing, exc)
                return False

    async def run(self, interval: float = 0.5) -> None:
        while True:
            await anyio.sleep(interval)
            await self.flush()
