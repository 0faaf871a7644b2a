"""The wire form of an agent's log events: a columnar batch carries every field of every event
there and back, an older agent's per-event list is still read, and a malformed batch is refused
saying what is wrong."""

from __future__ import annotations

import json

import pytest

from contract.log_events import (
    MAX_BATCH_EVENTS,
    decode_batch,
    encode_batch,
    encode_event,
)
from engine.events import FileEvent, FileEventKind, FileFacts

EVENTS = [
    FileEvent(FileEventKind.TRANSFERRED, "/a.txt", False, 12, "0" * 32),
    FileEvent(FileEventKind.VERIFIED, "/a.txt", False, 12, "0" * 32),
    FileEvent(FileEventKind.TRANSFERRED, "/dir", True),
    FileEvent(FileEventKind.SKIPPED, "/dir/c", False, 3, reason="UNCHANGED"),
    FileEvent(FileEventKind.DELETED, '/quote"back\\slash\x01\n', False, 0),
    FileEvent(FileEventKind.TRANSFERRED, "/é/日本/🙂", False, 2**63),
    FileEvent(FileEventKind.FAILED, "/b", False, phase="Transfer", reason="EACCES"),
    FileEvent(
        FileEventKind.FAILED,
        "/v/🙂.bin",
        False,
        phase="Verify",
        reason="checksum mismatch",
        source=FileFacts(2**62, 2**62, 0o7777, 2**32 - 1, 2**32 - 1, "f" * 32),
        destination=FileFacts(0, -(2**62), 0, 0, 0, None),
    ),
]


def _body(batch: dict[str, object]) -> bytes:
    return json.dumps(batch, separators=(",", ":")).encode()


def test_a_batch_carries_every_field_there_and_back() -> None:
    timed = [(1_767_261_600.25 + i, e) for i, e in enumerate(EVENTS)]
    batch = decode_batch(_body(encode_batch(timed, dropped=4).to_json()))
    assert len(batch) == len(EVENTS) and batch.dropped == 4
    assert list(batch.timestamps) == [1_767_261_600_250 + 1000 * i for i in range(len(EVENTS))]
    assert [batch.event(i) for i in range(len(batch))] == EVENTS
    assert set(batch.extras) == {2, 6, 7}  # only the folder and the failures carry extras


def test_an_older_agents_list_of_events_is_read() -> None:
    raw = [encode_event(e, 1000 + i) for i, e in enumerate(EVENTS)]
    raw.insert(3, {"t": "soon", "k": "TRANSFERRED", "p": "/bad"})  # left out, not the batch
    batch = decode_batch(_body({"events": raw, "dropped": 1}))
    assert list(batch.timestamps) == [1000 + i for i in range(len(EVENTS))]
    assert [batch.event(i) for i in range(len(batch))] == EVENTS
    assert batch.dropped == 1


def _good() -> dict[str, object]:
    return encode_batch([(1.0, EVENTS[0]), (2.0, EVENTS[2])]).to_json()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"v": 3}, "version"),
        ({"t": [1, True]}, "'t' must be int"),
        ({"t": list(range(MAX_BATCH_EVENTS + 1))}, "at most"),
        ({"k": "TX"}, "'k' must hold 2 letters"),
        ({"k": "T"}, "'k' must hold 2 letters"),
        ({"p": ["/a"]}, "'p' must be a list of 2"),
        ({"p": ["/a", ["/nested"]]}, "'p' must be str"),
        ({"s": [1, "2"]}, "'s' must be int or null"),
        ({"c": [None, 5]}, "'c' must be str or null"),
        ({"r": "none"}, "'r' must be a list"),
        ({"x": [[7, {"f": True}]]}, "'x' must be"),
        ({"x": [{"f": True}]}, "'x' must be"),
        ({"dropped": -1}, "dropped"),
        ({"dropped": True}, "dropped"),
    ],
)
def test_a_malformed_batch_is_refused_saying_why(change: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        decode_batch(_body({**_good(), **change}))


@pytest.mark.parametrize(
    "body",
    [
        b"{",
        b"[1, 2]",
        b'{"v": 2, "t": [NaN]}',
        b"[" * 100_000,
        "\udcff".encode("utf-8", "surrogatepass"),
    ],
)
def test_a_body_that_is_no_json_object_is_refused(body: bytes) -> None:
    with pytest.raises(ValueError, match="JSON"):
        decode_batch(body)
