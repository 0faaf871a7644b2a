"""Per-file events on their way from an agent to the control plane's execution log.

The agent posts them in batches to ``POST /things/{thing}/jobs/{jobId}/events`` (this project's
extension beside the IoT Jobs calls, signed the same way). A batch is columnar (`EventBatch`,
version 2): one JSON array per field, so the server decodes a batch with one `json.loads` and
a few type checks per column, never a JSON object (nor a `FileEvent`) per event::

    {"v": 2, "t": [ms, ...], "k": "TVTV...", "p": [path, ...], "s": [size|null, ...],
     "c": [checksum|null, ...], "r": [reason|null, ...], "x": [[i, {extra}], ...], "dropped": N}

``t`` is when each event happened (epoch milliseconds), ``k`` one letter per event (`KIND_LETTERS`),
and ``x`` the rare fields of the few events that have them (``f`` a folder, ``ph`` the phase of
a failure, ``src``/``dst`` both sides of a verification failure), by index. Version 1, a list of
one object per event (``{"events": [...], "dropped": N}``, `encode_event`), is still accepted
from older agents.

A batch holds at most `MAX_BATCH_EVENTS` events and about `MAX_BATCH_BYTES` of JSON, well inside
the server's 1 MiB body limit. The agent keeps at most `MAX_QUEUED_EVENTS` unsent events; beyond
that it counts them as dropped (the control plane logs how many), so a slow or unreachable
server costs bounded memory.

Which events travel depends on `Options.LogLevel`: none at OFF, failures at BASIC, every one at
TRANSFER (`wanted`): the control plane decides again, this only saves the bytes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from engine.events import FileEvent, FileEventKind, FileFacts

__all__ = [
    "KIND_LETTERS",
    "MAX_BATCH_BYTES",
    "MAX_BATCH_EVENTS",
    "MAX_QUEUED_EVENTS",
    "BatchNotJson",
    "EventBatch",
    "decode_batch",
    "decode_event",
    "encode_batch",
    "encode_event",
    "wanted",
]

# a batch is posted per SigV4-signed request, verified and looked up per request on the server:
# ~5,000 events (about 350 KB for D2's paths) keep that cost per event negligible
MAX_BATCH_EVENTS = 5000
MAX_BATCH_BYTES = 768 * 1024
MAX_QUEUED_EVENTS = 50_000


class BatchNotJson(ValueError):
    """The body is not JSON at all (the server answers SerializationException), as opposed to
    JSON that is not a batch (a plain ValueError: InvalidRequestException)."""


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


KIND_LETTERS: dict[FileEventKind, str] = {
    FileEventKind.TRANSFERRED: "T",
    FileEventKind.VERIFIED: "V",
    FileEventKind.DELETED: "D",
    FileEventKind.SKIPPED: "S",
    FileEventKind.FAILED: "F",
}
_KINDS = {letter: kind for kind, letter in KIND_LETTERS.items()}


def _extra(event: FileEvent) -> dict[str, Any]:
    """The rare fields of `event` (a folder's flag; a failure's phase, and both sides of a
    verification failure)."""
    out: dict[str, Any] = {}
    for key, value in (
        ("f", event.folder or None),
        ("ph", event.phase),
        ("src", _facts(event.source)),
        ("dst", _facts(event.destination)),
    ):
        if value is not None:
            out[key] = value
    return out


@dataclass(frozen=True, slots=True)
class EventBatch:
    """One batch of file events, by column (all columns as long as `timestamps`)."""

    timestamps: Sequence[int]
    kinds: str  # one of KIND_LETTERS per event
    paths: Sequence[str]
    sizes: Sequence[int | None]
    checksums: Sequence[str | None]
    reasons: Sequence[str | None]
    extras: Mapping[int, Mapping[str, Any]] = field(default_factory=dict)
    dropped: int = 0

    def __len__(self) -> int:
        return len(self.timestamps)

    def event(self, index: int) -> FileEvent:
        """Event `index` as the engine's `FileEvent` (the slow way, for the rare kinds)."""
        extra = self.extras.get(index) or {}
        return FileEvent(
            kind=_KINDS[self.kinds[index]],
            path=self.paths[index],
            folder=bool(extra.get("f", False)),
            size=self.sizes[index],
            checksum=self.checksums[index] or None,
            phase=str(extra["ph"]) if extra.get("ph") else None,
            reason=self.reasons[index] or None,
            source=_decode_facts(extra.get("src")),
            destination=_decode_facts(extra.get("dst")),
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "v": 2,
            "t": list(self.timestamps),
            "k": self.kinds,
            "p": list(self.paths),
            "s": list(self.sizes),
            "c": list(self.checksums),
            "r": list(self.reasons),
            "dropped": self.dropped,
        }
        if self.extras:
            out["x"] = [[i, dict(extra)] for i, extra in sorted(self.extras.items())]
        return out


def encode_batch(events: Sequence[tuple[float, FileEvent]], dropped: int = 0) -> EventBatch:
    """A batch of (time.time() seconds, event), by column: one pass per column, each a list
    comprehension (this runs once per event shipped, on the agent)."""
    extras = {i: _extra(e) for i, (_, e) in enumerate(events) if e.folder or e.phase is not None}
    letters = KIND_LETTERS
    return EventBatch(
        timestamps=[int(at * 1000) for at, _ in events],
        kinds="".join([letters[e.kind] for _, e in events]),
        paths=[e.path for _, e in events],
        sizes=[e.size for _, e in events],
        checksums=[e.checksum for _, e in events],
        reasons=[e.reason for _, e in events],
        extras=extras,
        dropped=dropped,
    )


def _column(raw: Mapping[str, Any], key: str, n: int, kinds: tuple[type, ...]) -> list[Any]:
    value = raw.get(key)
    if not isinstance(value, list) or len(value) != n:
        raise ValueError(f"{key!r} must be a list of {n} values, one per event")
    if not all(type(v) in kinds for v in value):  # type(), not isinstance: bool is no int
        names = " or ".join("null" if k is type(None) else k.__name__ for k in kinds)
        raise ValueError(f"every value of {key!r} must be {names}")
    return value


def decode_batch(body: bytes) -> EventBatch:
    """The batch in a request body, of either version; ValueError saying what is wrong.

    Strict JSON (no NaN or Infinity); nesting needs no walk of its own: every column is checked
    to hold scalars, and the extras are read by key."""
    try:
        raw = json.loads(body, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise BatchNotJson("the body is not valid JSON") from None
    if not isinstance(raw, dict):
        raise ValueError("the body must be a JSON object")
    dropped = raw.get("dropped") or 0
    if type(dropped) is not int or dropped < 0:
        raise ValueError("dropped must be a non-negative integer")
    if "events" in raw:
        return _from_events(raw["events"], dropped)
    if raw.get("v") != 2:
        raise ValueError("an event batch has version 'v' 2 (or a list of 'events')")
    timestamps = raw.get("t")
    if not isinstance(timestamps, list) or len(timestamps) > MAX_BATCH_EVENTS:
        raise ValueError(f"'t' must be a list of at most {MAX_BATCH_EVENTS} timestamps")
    n = len(timestamps)
    _column(raw, "t", n, (int,))
    kinds = raw.get("k")
    if not isinstance(kinds, str) or len(kinds) != n or kinds.strip("TVDSF"):
        raise ValueError(f"'k' must hold {n} letters of {''.join(_KINDS)}, one per event")
    extras: dict[int, Mapping[str, Any]] = {}
    for entry in raw.get("x") or ():
        if (
            not isinstance(entry, list)
            or len(entry) != 2
            or type(entry[0]) is not int
            or not 0 <= entry[0] < n
            or not isinstance(entry[1], dict)
        ):
            raise ValueError("every entry of 'x' must be [index of an event, object]")
        extras[entry[0]] = entry[1]
    return EventBatch(
        timestamps=timestamps,
        kinds=kinds,
        paths=_column(raw, "p", n, (str,)),
        sizes=_column(raw, "s", n, (int, type(None))),
        checksums=_column(raw, "c", n, (str, type(None))),
        reasons=_column(raw, "r", n, (str, type(None))),
        extras=extras,
        dropped=dropped,
    )


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _from_events(events: Any, dropped: int) -> EventBatch:
    """A version-1 batch (a list of `encode_event` objects) by column; a malformed event is
    left out, not the batch (as before)."""
    if not isinstance(events, list) or len(events) > MAX_BATCH_EVENTS:
        raise ValueError(f"events must be a list of at most {MAX_BATCH_EVENTS} events")
    decoded: list[tuple[int, FileEvent]] = []
    for raw in events:
        try:
            decoded.append(decode_event(raw))
        except ValueError:
            continue
    batch = encode_batch([(0.0, event) for _, event in decoded], dropped)
    return replace(batch, timestamps=[ts for ts, _ in decoded])
