"""Execution logs, query side: the event model, DataSync's log lines, and the CloudWatch Logs
`FilterLogEvents` / `GetLogEvents` semantics as pure functions over events from the store.

**Events** (`LogEvent`) carry what CloudWatch Logs returns: `timestamp` and `ingestionTime` in
epoch milliseconds, the `message`, the `logStreamName` and an `eventId`. Events are ordered by
`(timestamp, event_id)`; the store hands them over in that order (its index), and every function
here streams over them, keeping at most `limit` events.

**Messages** follow DataSync's Basic-mode logs. The verification failure is the documented one
(user guide, "Troubleshooting data verification issues"): five events,

    [NOTICE] Verification failed <> /dir/file1.txt
    [NOTICE] /dir/file1.txt srcMeta: type=R mode=0755 uid=65534 gid=65534 size=534528 atime=1633100003/684349800 mtime=1602647222/222919600 extAttrsHash=0
    [NOTICE]   srcHash: 0c506c26...
    [NOTICE] /dir/file1.txt dstMeta: type=R mode=0755 ...
    [NOTICE]   dstHash: dbd79892...

(the hash here is this engine's xxh3-128, 32 hex digits, where DataSync prints 64). Per-file lines
at `TRANSFER` level (`[INFO] Transferred file /a.txt, 12 bytes`, `[INFO] Verified file /a.txt`,
`[INFO] Deleted file /b.txt`, `[INFO] Skipped file /c.txt (UNCHANGED)`) and the execution's start,
end and summary lines are this project's wording in the same style; the execution lines name the
execution ARN. `OFF` logs nothing, `BASIC` the execution lines and every error, `TRANSFER` also
one line per file (`should_log`).

**filterPattern**: the documented term syntax for unstructured events — `""` matches everything;
`ERROR Exception` (every term), `?ERROR ?WARN` (any of the `?` terms), `-DEBUG` (none of the `-`
terms), `"quoted phrase"` (a term with spaces or symbols, `\\"` for a quote). Matching is
case-sensitive substring matching. JSON (`{ $.x = 1 }`), space-delimited (`[a, b]`) and regex
(`%...%`) patterns are refused with InvalidParameterException rather than half-matched.

**Pagination tokens** are opaque and tamper-evident: the cursor (the last event's timestamp and
id, the direction) plus a fingerprint of the query, as base64url JSON, then an HMAC-SHA256 of that
under a server key. A forged or altered token, or one issued for another query, is refused with
InvalidParameterException. Servers sharing a store must share the key (it lives in the store).
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import hmac
import json
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from contract.model import load_service_model

__all__ = [
    "Cursor",
    "FileMeta",
    "FilterPage",
    "FilterPattern",
    "GetPage",
    "LogCategory",
    "LogEvent",
    "LogQuery",
    "LogsError",
    "PageTokens",
    "execution_finished",
    "execution_started",
    "file_deleted",
    "file_failed",
    "file_skipped",
    "file_transferred",
    "file_verified",
    "filter_log_events",
    "get_log_events",
    "should_log",
    "verification_failed",
]

DEFAULT_LIMIT = 10_000  # FilterLogEvents' and GetLogEvents' documented default and maximum


class LogsError(Exception):
    """A CloudWatch Logs error: `code` is an exception shape of botocore's `logs` model."""

    def __init__(self, code: str, message: str) -> None:
        shapes = load_service_model("logs")["shapes"]
        if not shapes.get(code, {}).get("exception"):
            raise ValueError(f"{code} is not an error of the CloudWatch Logs model")
        super().__init__(message)
        self.code, self.message = code, message

    def to_body(self) -> dict[str, str]:
        """The JSON 1.1 error body botocore turns into `client.exceptions.<code>` (HTTP 400)."""
        return {"__type": self.code, "message": self.message}


def _invalid(message: str) -> LogsError:
    return LogsError("InvalidParameterException", message)


@dataclass(frozen=True, order=True)
class LogEvent:
    """One stored event; the order is CloudWatch's: by timestamp, then event id."""

    timestamp: int  # epoch milliseconds, when it happened
    event_id: str
    message: str
    ingestion_time: int  # epoch milliseconds, when it was stored
    log_stream_name: str

    def to_output(self) -> dict[str, object]:
        """The `OutputLogEvent` shape (GetLogEvents)."""
        return {
            "timestamp": self.timestamp,
            "message": self.message,
            "ingestionTime": self.ingestion_time,
        }

    def to_filtered(self) -> dict[str, object]:
        """The `FilteredLogEvent` shape (FilterLogEvents)."""
        return {
            "logStreamName": self.log_stream_name,
            "timestamp": self.timestamp,
            "message": self.message,
            "ingestionTime": self.ingestion_time,
            "eventId": self.event_id,
        }


# --- DataSync's messages -------------------------------------------------------------------


class LogCategory(enum.Enum):
    EXECUTION = "EXECUTION"  # start, end, summary: BASIC and TRANSFER
    ERROR = "ERROR"  # a failed file, a verification failure: BASIC and TRANSFER
    FILE = "FILE"  # one line per file transferred/verified/deleted/skipped: TRANSFER only


def should_log(log_level: str, category: LogCategory) -> bool:
    """Whether `Options.LogLevel` publishes events of `category`."""
    if log_level == "OFF":
        return False
    if log_level == "BASIC":
        return category is not LogCategory.FILE
    if log_level == "TRANSFER":
        return True
    raise ValueError(f"LogLevel {log_level!r} is not OFF, BASIC or TRANSFER")


def _p(path: str) -> str:
    return "/" + path.lstrip("/")


def execution_started(execution_arn: str, source_uri: str, destination_uri: str) -> str:
    return f"[INFO] Execution {execution_arn} started: {source_uri} -> {destination_uri}"


def execution_finished(
    execution_arn: str,
    status: str,
    files_transferred: int,
    bytes_written: int,
    files_failed: int,
    error_detail: str | None = None,
) -> str:
    tail = f": {error_detail}" if error_detail else ""
    return (
        f"[INFO] Execution {execution_arn} ended with status {status}: "
        f"{files_transferred} files transferred, {bytes_written} bytes written, "
        f"{files_failed} files failed{tail}"
    )


def file_transferred(path: str, size: int, checksum: str | None = None) -> str:
    suffix = f", checksum {checksum}" if checksum else ""
    return f"[INFO] Transferred file {_p(path)}, {size} bytes{suffix}"


def file_verified(path: str, checksum: str | None = None) -> str:
    return f"[INFO] Verified file {_p(path)}" + (f", checksum {checksum}" if checksum else "")


def file_deleted(path: str) -> str:
    return f"[INFO] Deleted file {_p(path)}"


def file_skipped(path: str, reason: str) -> str:
    return f"[INFO] Skipped file {_p(path)} ({reason})"


def file_failed(path: str, phase: str, detail: str) -> str:
    return f"[ERROR] Failed to {phase.lower()} file {_p(path)}: {detail}"


@dataclass(frozen=True)
class FileMeta:
    """The metadata DataSync prints for each side of a verification failure."""

    type: str  # R regular, D directory, L link, ...
    mode: int
    uid: int
    gid: int
    size: int
    atime_ns: int
    mtime_ns: int
    ext_attrs_hash: int = 0

    def render(self) -> str:
        a, m = divmod(self.atime_ns, 10**9), divmod(self.mtime_ns, 10**9)
        return (
            f"type={self.type} mode={self.mode & 0o7777:04o} uid={self.uid} gid={self.gid} "
            f"size={self.size} atime={a[0]}/{a[1]} mtime={m[0]}/{m[1]} "
            f"extAttrsHash={self.ext_attrs_hash}"
        )


def verification_failed(
    path: str, src: FileMeta, dst: FileMeta | None, src_hash: str, dst_hash: str | None
) -> list[str]:
    """The five events of a Basic-mode verification failure (a missing destination prints
    `dstMeta: missing`)."""
    p = _p(path)
    return [
        f"[NOTICE] Verification failed <> {p}",
        f"[NOTICE] {p} srcMeta: {src.render()}",
        f"[NOTICE]   srcHash: {src_hash}",
        f"[NOTICE] {p} dstMeta: {dst.render() if dst else 'missing'}",
        f"[NOTICE]   dstHash: {dst_hash or 'missing'}",
    ]


# --- filterPattern -------------------------------------------------------------------------


@dataclass(frozen=True)
class FilterPattern:
    """A parsed term pattern: all `required`, at least one of `optional` (if any), no `excluded`."""

    required: tuple[str, ...] = ()
    optional: tuple[str, ...] = ()
    excluded: tuple[str, ...] = ()

    @classmethod
    def parse(cls, text: str | None) -> FilterPattern:
        if text is None or not text.strip():
            return cls()
        if len(text) > 1024:
            raise _invalid("filterPattern is longer than 1024 characters")
        first = text.lstrip()[0]
        if first in "{[%":
            kind = {"{": "JSON", "[": "space-delimited", "%": "regular-expression"}[first]
            raise _invalid(
                f"{kind} filter patterns are not supported by this server; use terms, "
                '"quoted phrases", ?optional and -excluded terms'
            )
        required: list[str] = []
        optional: list[str] = []
        excluded: list[str] = []
        for sign, term in _tokens(text):
            {"": required, "?": optional, "-": excluded}[sign].append(term)
        return cls(tuple(required), tuple(optional), tuple(excluded))

    def matches(self, message: str) -> bool:
        if any(term in message for term in self.excluded):
            return False
        if not all(term in message for term in self.required):
            return False
        return not self.optional or any(term in message for term in self.optional)


def _tokens(text: str) -> Iterator[tuple[str, str]]:
    i, n = 0, len(text)
    while i < n:
        if text[i].isspace():
            i += 1
            continue
        sign = ""
        if text[i] in "?-" and i + 1 < n and not text[i + 1].isspace():
            sign, i = text[i], i + 1
        if text[i] == '"':
            i += 1
            term: list[str] = []
            while i < n and text[i] != '"':
                if text[i] == "\\" and i + 1 < n:
                    i += 1
                term.append(text[i])
                i += 1
            if i >= n:
                raise _invalid(f"filterPattern {text!r} has an unterminated quoted phrase")
            i += 1
            if not term:
                raise _invalid(f"filterPattern {text!r} has an empty quoted phrase")
            yield sign, "".join(term)
        else:
            start = i
            while i < n and not text[i].isspace():
                if text[i] == '"':
                    raise _invalid(f"filterPattern {text!r}: a quote inside a term")
                i += 1
            yield sign, text[start:i]


# --- tokens --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cursor:
    """Where a page ended: after (forward) or before (backward) the event (timestamp, event_id)."""

    timestamp: int
    event_id: str
    forward: bool = True

    def admits(self, event: LogEvent) -> bool:
        key = (event.timestamp, event.event_id)
        mark = (self.timestamp, self.event_id)
        return key > mark if self.forward else key < mark


class PageTokens:
    """Issues and opens signed pagination tokens (HMAC-SHA256 under `key`)."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("the token key needs at least 16 bytes")
        self._key = key

    def _mac(self, payload: bytes) -> str:
        digest = hmac.new(self._key, payload, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")

    def issue(self, cursor: Cursor, fingerprint: str) -> str:
        body = {"t": cursor.timestamp, "e": cursor.event_id, "q": fingerprint}
        payload = base64.urlsafe_b64encode(json.dumps(body, separators=(",", ":")).encode())
        prefix = "f/" if cursor.forward else "b/"
        return prefix + payload.decode().rstrip("=") + "." + self._mac(payload.rstrip(b"="))

    def open(self, token: str, fingerprint: str) -> Cursor:
        """The cursor inside `token`, or InvalidParameterException if it was not issued here for
        this very query."""
        bad = _invalid("The specified nextToken is invalid.")
        direction, _, rest = token.partition("/")
        payload, _, mac = rest.partition(".")
        if direction not in ("f", "b") or not payload or not mac:
            raise bad
        if not hmac.compare_digest(mac, self._mac(payload.encode())):
            raise bad
        try:
            raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
            body = json.loads(raw)
            timestamp, event_id, query = body["t"], body["e"], body["q"]
        except (binascii.Error, ValueError, KeyError, TypeError) as exc:
            raise bad from exc
        if query != fingerprint or not isinstance(timestamp, int) or not isinstance(event_id, str):
            raise bad
        return Cursor(timestamp, event_id, forward=direction == "f")


# --- queries -------------------------------------------------------------------------------


@dataclass(frozen=True)
class LogQuery:
    """The filtering parameters of one FilterLogEvents / GetLogEvents call."""

    log_group_name: str
    log_stream_names: tuple[str, ...] = ()
    log_stream_name_prefix: str | None = None
    start_time: int | None = None  # inclusive, epoch ms
    end_time: int | None = None  # inclusive, epoch ms
    filter_pattern: str | None = None
    limit: int = DEFAULT_LIMIT

    def __post_init__(self) -> None:
        if self.log_stream_names and self.log_stream_name_prefix is not None:
            raise _invalid("logStreamNames and logStreamNamePrefix cannot both be given")
        if not 1 <= self.limit <= DEFAULT_LIMIT:
            raise _invalid(f"limit must be between 1 and {DEFAULT_LIMIT}")
        for name, value in (("startTime", self.start_time), ("endTime", self.end_time)):
            if value is not None and value < 0:
                raise _invalid(f"{name} must not be negative")
        if (
            self.start_time is not None
            and self.end_time is not None
            and self.end_time < self.start_time
        ):
            raise _invalid("endTime is before startTime")

    def fingerprint(self) -> str:
        """What a token is bound to: every parameter but the limit (a client may change it)."""
        parts = [
            self.log_group_name,
            "\x1f".join(self.log_stream_names),
            self.log_stream_name_prefix or "",
            str(self.start_time),
            str(self.end_time),
            self.filter_pattern or "",
        ]
        return hashlib.sha256("\x1e".join(parts).encode()).hexdigest()[:32]

    def admits(self, event: LogEvent, pattern: FilterPattern) -> bool:
        if self.start_time is not None and event.timestamp < self.start_time:
            return False
        if self.end_time is not None and event.timestamp > self.end_time:
            return False
        if self.log_stream_names and event.log_stream_name not in self.log_stream_names:
            return False
        if self.log_stream_name_prefix is not None and not event.log_stream_name.startswith(
            self.log_stream_name_prefix
        ):
            return False
        return pattern.matches(event.message)


@dataclass(frozen=True)
class FilterPage:
    events: tuple[LogEvent, ...]
    next_token: str | None
    searched_streams: tuple[str, ...]

    def to_response(self) -> dict[str, object]:
        out: dict[str, object] = {
            "events": [e.to_filtered() for e in self.events],
            "searchedLogStreams": [
                {"logStreamName": s, "searchedCompletely": self.next_token is None}
                for s in self.searched_streams
            ],
        }
        if self.next_token is not None:
            out["nextToken"] = self.next_token
        return out


def filter_log_events(
    events: Iterable[LogEvent],
    query: LogQuery,
    tokens: PageTokens,
    next_token: str | None = None,
) -> FilterPage:
    """One FilterLogEvents page over `events` (ascending by timestamp, event id).

    A `nextToken` is returned only when at least one more matching event exists, so a client
    paging until no token comes ends exactly after the last event (`aws logs tail --follow`
    then polls again with a new startTime).
    """
    pattern = FilterPattern.parse(query.filter_pattern)
    fingerprint = query.fingerprint()
    cursor = tokens.open(next_token, fingerprint) if next_token else None
    if cursor is not None and not cursor.forward:
        raise _invalid("The specified nextToken is invalid.")
    page: list[LogEvent] = []
    streams: dict[str, None] = {}
    more = False
    for event in events:
        if cursor is not None and not cursor.admits(event):
            continue
        if not query.admits(event, pattern):
            continue
        if len(page) == query.limit:
            more = True
            break
        page.append(event)
        streams.setdefault(event.log_stream_name, None)
    token = None
    if more:
        last = page[-1]
        token = tokens.issue(Cursor(last.timestamp, last.event_id), fingerprint)
    return FilterPage(tuple(page), token, tuple(streams))


@dataclass(frozen=True)
class GetPage:
    events: tuple[LogEvent, ...]
    next_forward_token: str
    next_backward_token: str

    def to_response(self) -> dict[str, object]:
        return {
            "events": [e.to_output() for e in self.events],
            "nextForwardToken": self.next_forward_token,
            "nextBackwardToken": self.next_backward_token,
        }


def get_log_events(
    events: Iterable[LogEvent],
    query: LogQuery,
    tokens: PageTokens,
    *,
    next_token: str | None = None,
    start_from_head: bool = False,
) -> GetPage:
    """One GetLogEvents page for one stream (`query.log_stream_names` holds exactly it).

    As CloudWatch does: without a token, `startFromHead=False` returns the *latest* `limit`
    events; a forward token reads on after the page, a backward token before it; at either end
    the token handed in comes back unchanged, which is how clients (and boto3's paginator) know
    to stop. Only the page itself is held: a deque of `limit` events for a backward read.
    """
    if len(query.log_stream_names) != 1:
        raise _invalid("GetLogEvents reads exactly one logStreamName")
    pattern = FilterPattern()  # GetLogEvents has no filterPattern
    fingerprint = query.fingerprint()
    cursor = tokens.open(next_token, fingerprint) if next_token else None
    forward = cursor.forward if cursor is not None else start_from_head
    selected = (
        e for e in events if query.admits(e, pattern) and (cursor is None or cursor.admits(e))
    )
    page: list[LogEvent]
    if forward:
        page = []
        for event in selected:
            page.append(event)
            if len(page) == query.limit:
                break
    else:
        page = list(deque(selected, maxlen=query.limit))
    if page:
        first, last = page[0], page[-1]
        fwd = tokens.issue(Cursor(last.timestamp, last.event_id, forward=True), fingerprint)
        back = tokens.issue(Cursor(first.timestamp, first.event_id, forward=False), fingerprint)
    elif cursor is not None:
        fwd = back = next_token or ""
    else:  # an empty stream: both tokens point at its start
        origin = Cursor(-1, "", forward=True)
        fwd = tokens.issue(origin, fingerprint)
        back = tokens.issue(Cursor(-1, "", forward=False), fingerprint)
    return GetPage(tuple(page), fwd, back)
