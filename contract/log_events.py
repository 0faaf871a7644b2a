"""Per-file events on their way from an agent to the control plane's execution log.

The agent posts them in batches to ``POST /things/{thing}/jobs/{jobId}/events`` (this project's
extension beside the IoT Jobs calls, signed the same way) with the body
``{"events": [event, ...], "dropped": N}``; an event is the engine's `FileEvent` as compact JSON
plus ``t``, when it happened (epoch milliseconds). A batch holds at most `MAX_BATCH_EVENTS`
events and about `MAX_BATCH_BYTES` of JSON, well inside the server's 1 MiB body limit. The agent
keeps at most `MAX_QUEUED_EVENTS` unsent events; beyond that it counts them as dropped (the
control plane logs how many), so a slow or unreachable server costs bounded memory.

Which events travel depends on `Options.LogLevel`: none at OFF, failures at BASIC, every one at
TRANSFER (`wanted`): the control plane decides again, this only saves the bytes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine.events import FileEvent, FileEventKind, FileFacts

__all__ = [
    "MAX_BATCH_BYTES",
    "MAX_BATCH_EVENTS",
    "MAX_QUEUED_EVENTS",
    "decode_event",
    "encode_event",
    "wanted",
]

MAX_BATCH_EVENTS = 2000  # ~1,700 fit in MAX_BATCH_BYTES for typical paths: fewer, cheaper posts
MAX_BATCH_BYTES = 512 * 1024
MAX_QUEUED_EVENTS = 50_000


def wanted(log_level: str, event: FileEvent) -> bool:
    if log_level == "TRANSFER":
        return True
    return log_level == "BASIC" and event.kind is FileEventKind.FAILED


def _facts(facts: FileFacts | None) -> dict[str, Any] | None:
    if facts is None:
        return None
    return {
        "size": facts.size,
        "mtime_ns": facts.mtime_ns,
        "mode": facts.mode,
        "uid": facts.uid,
        "gid": facts.gid,
        "checksum": facts.checksum,
    }


def encode_event(event: FileEvent, timestamp_ms: int) -> dict[str, Any]:
    out: dict[str, Any] = {"t": timestamp_ms, "k": event.kind.value, "p": event.path}
    for key, value in (
        ("f", event.folder or None),
        ("s", event.size),
        ("c", event.checksum),
        ("ph", event.phase),
        ("r", event.reason),
        ("src", _facts(event.source)),
        ("dst", _facts(event.destination)),
    ):
        if value is not None:
            out[key] = value
    return out


def _decode_facts(raw: Any) -> FileFacts | None:
    if not isinstance(raw, Mapping):
        return None
    try:
        return FileFacts(
            size=int(raw["size"]),
            mtime_ns=int(raw["mtime_ns"]),
            mode=int(raw["mode"]),
            uid=int(raw["uid"]),
            gid=int(raw["gid"]),
            checksum=str(raw["checksum"]) if raw.get("checksum") else None,
        )
    except (KeyError, TypeError, ValueError):
        return None


def decode_event(raw: Any) -> tuple[int, FileEvent]:
    """(timestamp ms, event); ValueError if `raw` is not an encoded event."""
    if not isinstance(raw, Mapping):
        raise ValueError("an event is a JSON object")
    try:
        timestamp = int(raw["t"])
        kind = FileEventKind(raw["k"])
        path = str(raw["p"])
        size = raw.get("s")
        event = FileEvent(
            kind=kind,
            path=path,
            folder=bool(raw.get("f", False)),
            size=int(size) if size is not None else None,
            checksum=str(raw["c"]) if raw.get("c") else None,
            phase=str(raw["ph"]) if raw.get("ph") else None,
            reason=str(raw["r"]) if raw.get("r") else None,
            source=_decode_facts(raw.get("src")),
            destination=_decode_facts(raw.get("dst")),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"not an encoded event: {exc}") from exc
    return timestamp, event
