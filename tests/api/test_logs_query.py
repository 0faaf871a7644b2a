"""The query side of execution logs: filter patterns, time ranges, signed pagination, formats."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator

import botocore.parsers
import botocore.session
import pytest

from api.logs_query import (
    Cursor,
    FileMeta,
    FilterPattern,
    LogCategory,
    LogEvent,
    LogQuery,
    LogsError,
    PageTokens,
    execution_finished,
    execution_started,
    file_deleted,
    file_failed,
    file_skipped,
    file_transferred,
    file_verified,
    filter_log_events,
    get_log_events,
    should_log,
    verification_failed,
)

KEY = b"k" * 32
EXEC = "arn:aws:datasync:us-east-1:111122223333:task/task-0123456789abcdef0/execution/exec-0123456789abcdef0"
GROUP = "/aws/datasync"


def event(ts: int, message: str, stream: str = "exec-a", n: int = 0) -> LogEvent:
    return LogEvent(
        timestamp=ts,
        event_id=f"{ts:013d}-{n:04d}",
        message=message,
        ingestion_time=ts + 5,
        log_stream_name=stream,
    )


EVENTS = sorted(
    [
        event(1000, execution_started(EXEC, "nfs://localhost/src/", "nfs://localhost/dst/")),
        event(1001, file_transferred("a.txt", 12, "00ff" * 8)),
        event(1001, file_transferred("b.log", 3), n=1),
        event(1002, file_failed("c.txt", "Transfer", "Permission denied")),
        event(1003, file_verified("a.txt")),
        event(1004, file_skipped("d.txt", "UNCHANGED")),
        event(1005, file_deleted("old.txt"), stream="exec-b"),
        event(1006, execution_finished(EXEC, "ERROR", 2, 15, 1, "1 file failed")),
    ]
)


def messages(events: tuple[LogEvent, ...]) -> list[str]:
    return [e.message for e in events]


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("", 8),
        (None, 8),
        ("Transferred", 2),
        ("Transferred file", 2),  # two terms, both present
        ('"Transferred file /a.txt"', 1),
        ("?ERROR ?Skipped", 3),  # [ERROR], "status ERROR", Skipped
        ("?Deleted ?Verified", 2),
        ("file -Transferred", 5),  # Failed, Verified, Skipped, Deleted, "files transferred"
        ("-INFO", 1),
        ("transferred", 1),  # case-sensitive: only "2 files transferred"
        ('"status ERROR"', 1),
        ('?"Deleted file" ?"Skipped file" -old', 1),
        ('"say \\"hi\\""', 0),
    ],
)
def test_filter_patterns(pattern: str | None, expected: int) -> None:
    query = LogQuery(log_group_name=GROUP, filter_pattern=pattern)
    page = filter_log_events(EVENTS, query, PageTokens(KEY))
    assert len(page.events) == expected, messages(page.events)
    assert page.next_token is None


def test_quoted_phrase_with_escaped_quote() -> None:
    pattern = FilterPattern.parse('"say \\"hi\\"" -"no way"')
    assert pattern.required == ('say "hi"',)
    assert pattern.excluded == ("no way",)
    assert pattern.matches('they say "hi" there')
    assert not pattern.matches('they say "hi" no way')


@pytest.mark.parametrize(
    ("pattern", "words"),
    [
        ('{ $.level = "ERROR" }', "JSON filter patterns are not supported"),
        ("[ip, user, ...]", "space-delimited"),
        ("%ERR.*%", "regular-expression"),
        ('"unterminated', "unterminated quoted phrase"),
        ('""', "empty quoted phrase"),
        ('ab"c', "a quote inside a term"),
        ("x" * 1025, "longer than 1024"),
    ],
)
def test_unsupported_or_broken_patterns_are_invalid_parameters(pattern: str, words: str) -> None:
    with pytest.raises(LogsError) as info:
        FilterPattern.parse(pattern)
    assert info.value.code == "InvalidParameterException"
    assert words in info.value.message


def test_time_range_is_inclusive_and_streams_filter() -> None:
    tokens = PageTokens(KEY)
    page = filter_log_events(EVENTS, LogQuery(GROUP, start_time=1001, end_time=1003), tokens)
    assert [e.timestamp for e in page.events] == [1001, 1001, 1002, 1003]
    page = filter_log_events(EVENTS, LogQuery(GROUP, log_stream_names=("exec-b",)), tokens)
    assert messages(page.events) == ["[INFO] Deleted file /old.txt"]
    page = filter_log_events(EVENTS, LogQuery(GROUP, log_stream_name_prefix="exec-"), tokens)
    assert len(page.events) == 8
    assert page.to_response()["searchedLogStreams"] == [
        {"logStreamName": "exec-a", "searchedCompletely": True},
        {"logStreamName": "exec-b", "searchedCompletely": True},
    ]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"log_stream_names": ("a",), "log_stream_name_prefix": "a"},
        {"limit": 0},
        {"limit": 10_001},
        {"start_time": 5, "end_time": 4},
        {"start_time": -1},
    ],
)
def test_bad_queries_are_invalid_parameters(kwargs: dict[str, object]) -> None:
    with pytest.raises(LogsError):
        LogQuery(GROUP, **kwargs)  # type: ignore[arg-type]


def test_pagination_visits_every_event_once() -> None:
    tokens = PageTokens(KEY)
    query = LogQuery(GROUP, limit=3)
    seen: list[LogEvent] = []
    token: str | None = None
    for _ in range(10):  # bounded: 8 events in pages of 3
        page = filter_log_events(EVENTS, query, tokens, token)
        seen.extend(page.events)
        token = page.next_token
        if token is None:
            break
    assert seen == EVENTS
    # the same-millisecond pair (1001) straddling nothing is still ordered by event id
    assert [e.event_id for e in seen[1:3]] == ["0000000001001-0000", "0000000001001-0001"]
    assert "nextToken" not in page.to_response()


def test_exactly_full_last_page_has_no_token() -> None:
    page = filter_log_events(EVENTS, LogQuery(GROUP, limit=8), PageTokens(KEY))
    assert len(page.events) == 8 and page.next_token is None


def test_forged_altered_and_foreign_tokens_are_refused() -> None:
    tokens = PageTokens(KEY)
    query = LogQuery(GROUP, limit=2)
    token = filter_log_events(EVENTS, query, tokens).next_token
    assert token is not None
    # a client may change the limit between pages
    assert filter_log_events(EVENTS, LogQuery(GROUP, limit=5), tokens, token).events
    direction, rest = token.split("/", 1)
    payload, mac = rest.split(".")
    body = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    body["t"] = 0  # rewind the cursor
    forged_payload = base64.urlsafe_b64encode(json.dumps(body).encode()).decode().rstrip("=")
    bad = [
        f"{direction}/{forged_payload}.{mac}",
        token[:-2] + ("AA" if not token.endswith("AA") else "BB"),
        "garbage",
        "f/.",
        PageTokens(b"other-key-" * 4).issue(Cursor(1000, "x"), query.fingerprint()),
    ]
    for forged in bad:
        with pytest.raises(LogsError) as info:
            filter_log_events(EVENTS, query, tokens, forged)
        assert info.value.code == "InvalidParameterException"
        assert info.value.message == "The specified nextToken is invalid."
    # a token of one query does not page another
    with pytest.raises(LogsError):
        filter_log_events(EVENTS, LogQuery(GROUP, filter_pattern="INFO", limit=2), tokens, token)


def test_get_log_events_latest_first_then_backward_and_forward() -> None:
    tokens = PageTokens(KEY)
    stream = [e for e in EVENTS if e.log_stream_name == "exec-a"]  # 7 events
    query = LogQuery(GROUP, log_stream_names=("exec-a",), limit=3)
    page = get_log_events(stream, query, tokens)  # startFromHead=False: the latest 3
    assert page.events == tuple(stream[-3:])
    back = get_log_events(stream, query, tokens, next_token=page.next_backward_token)
    assert back.events == tuple(stream[1:4])
    oldest = get_log_events(stream, query, tokens, next_token=back.next_backward_token)
    assert oldest.events == tuple(stream[:1])
    end = get_log_events(stream, query, tokens, next_token=oldest.next_backward_token)
    assert end.events == () and end.next_backward_token == oldest.next_backward_token
    # and forward from the head, until the token comes back unchanged
    seen: list[LogEvent] = []
    token: str | None = None
    for _ in range(10):
        page = get_log_events(stream, query, tokens, next_token=token, start_from_head=True)
        seen.extend(page.events)
        if page.next_forward_token == token:
            break
        token = page.next_forward_token
    assert seen == stream
    assert set(page.to_response()) == {"events", "nextForwardToken", "nextBackwardToken"}
    assert page.to_response()["events"] == []


def test_get_log_events_on_an_empty_stream_and_new_events_after() -> None:
    tokens = PageTokens(KEY)
    query = LogQuery(GROUP, log_stream_names=("exec-a",))
    empty = get_log_events([], query, tokens, start_from_head=True)
    assert empty.events == ()
    later = get_log_events(EVENTS[:2], query, tokens, next_token=empty.next_forward_token)
    assert len(later.events) == 2
    with pytest.raises(LogsError, match="exactly one"):
        get_log_events(EVENTS, LogQuery(GROUP), tokens)


def test_event_shapes_use_the_model_names() -> None:
    e = EVENTS[0]
    assert e.to_output() == {"timestamp": 1000, "message": e.message, "ingestionTime": 1005}
    assert e.to_filtered() == {
        "logStreamName": "exec-a",
        "timestamp": 1000,
        "message": e.message,
        "ingestionTime": 1005,
        "eventId": e.event_id,
    }


def test_log_levels() -> None:
    assert not any(should_log("OFF", c) for c in LogCategory)
    assert should_log("BASIC", LogCategory.EXECUTION) and should_log("BASIC", LogCategory.ERROR)
    assert not should_log("BASIC", LogCategory.FILE)
    assert all(should_log("TRANSFER", c) for c in LogCategory)
    with pytest.raises(ValueError, match="LogLevel"):
        should_log("DEBUG", LogCategory.FILE)


def test_message_formats() -> None:
    assert file_transferred("dir/a.txt", 12) == "[INFO] Transferred file /dir/a.txt, 12 bytes"
    assert (
        file_verified("/dir/a.txt", "ab" * 16)
        == f"[INFO] Verified file /dir/a.txt, checksum {'ab' * 16}"
    )
    assert execution_started(EXEC, "nfs://h/s/", "nfs://h/d/").startswith(
        f"[INFO] Execution {EXEC} started"
    )
    assert EXEC in execution_finished(EXEC, "SUCCESS", 1, 2, 0)
    src = FileMeta(
        type="R",
        mode=0o100755,
        uid=65534,
        gid=65534,
        size=534528,
        atime_ns=1633100003_684349800,
        mtime_ns=1602647222_222919600,
    )
    dst = FileMeta(
        type="R",
        mode=0o100755,
        uid=65534,
        gid=65534,
        size=511001,
        atime_ns=1633100003_684349800,
        mtime_ns=1633106855_859227500,
    )
    assert verification_failed("directory1/directory2/file1.txt", src, dst, "0c50", "dbd7") == [
        "[NOTICE] Verification failed <> /directory1/directory2/file1.txt",
        "[NOTICE] /directory1/directory2/file1.txt srcMeta: type=R mode=0755 uid=65534 gid=65534 "
        "size=534528 atime=1633100003/684349800 mtime=1602647222/222919600 extAttrsHash=0",
        "[NOTICE]   srcHash: 0c50",
        "[NOTICE] /directory1/directory2/file1.txt dstMeta: type=R mode=0755 uid=65534 gid=65534 "
        "size=511001 atime=1633100003/684349800 mtime=1633106855/859227500 extAttrsHash=0",
        "[NOTICE]   dstHash: dbd7",
    ]
    assert verification_failed("x", src, None, "0c50", None)[3:] == [
        "[NOTICE] /x dstMeta: missing",
        "[NOTICE]   dstHash: missing",
    ]


def test_errors_must_be_logs_model_errors() -> None:
    assert (
        LogsError("ResourceNotFoundException", "no such group").code == "ResourceNotFoundException"
    )
    with pytest.raises(ValueError, match="not an error"):
        LogsError("NoSuchThing", "x")


def test_paging_a_large_stream_holds_only_a_page() -> None:
    """100,000 events from a generator: pages of 1,000 never need the whole list."""
    tokens = PageTokens(KEY)
    query = LogQuery(GROUP, filter_pattern="Transferred", limit=1000)

    def stream() -> Iterator[LogEvent]:
        return (event(i, file_transferred(f"f{i}", i)) for i in range(100_000))

    page = filter_log_events(stream(), query, tokens)
    assert len(page.events) == 1000 and page.next_token
    page = filter_log_events(stream(), query, tokens, page.next_token)
    assert page.events[0].timestamp == 1000


def _parse(operation: str, body: dict[str, object], status: int = 200) -> dict[str, object]:
    """Run a response body through botocore's own parser for the `logs` model."""
    model = botocore.session.get_session().get_service_model("logs")
    parser = botocore.parsers.create_parser(model.metadata["protocol"])
    response = {"body": json.dumps(body).encode(), "headers": {}, "status_code": status}
    parsed: dict[str, object] = parser.parse(
        response, model.operation_model(operation).output_shape
    )
    parsed.pop("ResponseMetadata")
    return parsed


def test_pages_and_errors_parse_with_botocore() -> None:
    tokens = PageTokens(KEY)
    page = filter_log_events(EVENTS, LogQuery(GROUP, limit=2), tokens)
    parsed = _parse("FilterLogEvents", page.to_response())
    assert parsed["events"] == [e.to_filtered() for e in EVENTS[:2]]
    assert parsed["nextToken"] == page.next_token
    stream = [e for e in EVENTS if e.log_stream_name == "exec-a"]
    got = get_log_events(stream, LogQuery(GROUP, log_stream_names=("exec-a",)), tokens)
    parsed = _parse("GetLogEvents", got.to_response())
    assert len(parsed["events"]) == 7  # type: ignore[arg-type]
    assert parsed["nextForwardToken"] == got.next_forward_token
    with pytest.raises(LogsError) as info:
        filter_log_events(EVENTS, LogQuery(GROUP), tokens, "forged")
    error = _parse("FilterLogEvents", dict(info.value.to_body()), status=400)
    assert error["Error"] == {
        "Code": "InvalidParameterException",
        "Message": "The specified nextToken is invalid.",
    }
