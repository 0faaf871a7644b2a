"""The CloudWatch Logs JSON 1.1 subset on the DataSync port (`X-Amz-Target: Logs_20140328.*`,
SigV4 service `logs`): DescribeLogGroups, DescribeLogStreams, GetLogEvents, FilterLogEvents,
enough for boto3's `logs` client and `aws logs tail GROUP --follow` to read execution logs.

Requests are validated against botocore's `logs` model (api.validation); the query semantics are
api.logs_query's; the events come from api.store_logs. Any error is a `LogsError` with a shape of
the `logs` model.

The two Describe calls page as botocore's `logs` paginators expect (`limit`, default and most
50; `nextToken` in and out): the matches are sorted (by name, or for DescribeLogStreams with
`orderBy=LastEventTime` by the last event's time then name; `descending` reverses either), and
a token holds the sort key of the page's last item, signed and bound to the query like the
event tokens (api.logs_query.PageTokens), so a page starts strictly after it even when groups
or streams appear meanwhile. A token comes back only when another match exists.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import Any

from api.domain import repository
from api.domain.task import Task
from api.errors import InvalidRequestException
from api.execution_log import DEFAULT_GROUP, group_name
from api.logs_query import (
    Cursor,
    LogQuery,
    LogsError,
    PageTokens,
    filter_log_events,
    get_log_events,
)
from api.store import Store
from api.store_logs import LogStore
from api.validation import validate_input

__all__ = ["TARGET_PREFIX", "LogsApi"]

TARGET_PREFIX = "Logs_20140328."
DESCRIBE_LIMIT = 50  # DescribeLogGroups' and DescribeLogStreams' default and maximum `limit`
Doc = dict[str, Any]


class LogsApi:
    def __init__(self, store: Store, logs: LogStore, region: str, account_id: str) -> None:
        self.store, self.logs = store, logs
        self.region, self.account_id = region, account_id
        self._ops: dict[str, Callable[[Doc], Doc]] = {
            "DescribeLogGroups": self.describe_log_groups,
            "DescribeLogStreams": self.describe_log_streams,
            "GetLogEvents": self.get_log_events,
            "FilterLogEvents": self.filter_log_events,
        }

    def handle(self, target: str, params: Doc) -> Doc:
        operation = target[len(TARGET_PREFIX) :]
        handler = self._ops.get(operation)
        if handler is None:
            raise LogsError(
                "InvalidOperationException",
                f"{operation} is not supported here; this server offers "
                f"{', '.join(sorted(self._ops))}.",
            )
        try:
            validate_input(operation, params, service="logs")
        except InvalidRequestException as exc:
            raise LogsError("InvalidParameterException", str(exc)) from None
        return handler(params)

    # helpers ----------------------------------------------------------------------------------
    def _arn(self, group: str) -> str:
        return f"arn:aws:logs:{self.region}:{self.account_id}:log-group:{group}"

    def _known_groups(self) -> dict[str, tuple[int, int]]:
        groups = {g: (created, size) for g, created, size in self.logs.groups()}
        groups.setdefault(DEFAULT_GROUP, (0, 0))
        for task in repository.every(self.store, Task):
            if task.cloud_watch_log_group_arn:
                created = int(task.creation_time * 1000)
                groups.setdefault(group_name(task.cloud_watch_log_group_arn), (created, 0))
        return groups

    def _group(self, params: Doc) -> str:
        raw = params.get("logGroupName") or params.get("logGroupIdentifier")
        if not raw:
            raise LogsError("InvalidParameterException", "logGroupName is required.")
        name = group_name(raw) if str(raw).startswith("arn:") else str(raw)
        if name not in self._known_groups():
            raise LogsError("ResourceNotFoundException", "The specified log group does not exist.")
        return name

    def _tokens(self) -> PageTokens:
        return PageTokens(self.logs.token_key())

    def _page(
        self,
        p: Doc,
        items: Sequence[tuple[tuple[int, str], Doc]],
        query: str,
        descending: bool = False,
    ) -> tuple[list[Doc], str | None]:
        """One page of `items` (each with its sort key), after `p`'s nextToken if any."""
        fingerprint = hashlib.sha256(query.encode()).hexdigest()[:32]
        ordered = sorted(items, key=lambda item: item[0], reverse=descending)
        token = p.get("nextToken")
        if token:
            cursor = self._tokens().open(str(token), fingerprint)
            mark = (cursor.timestamp, cursor.event_id)
            ordered = [i for i in ordered if (i[0] < mark if descending else i[0] > mark)]
        limit = int(p.get("limit", DESCRIBE_LIMIT))
        page = ordered[:limit]
        next_token = None
        if len(ordered) > limit:
            last = page[-1][0]
            next_token = self._tokens().issue(Cursor(last[0], last[1]), fingerprint)
        return [doc for _, doc in page], next_token

    # operations -------------------------------------------------------------------------------
    def describe_log_groups(self, p: Doc) -> Doc:
        prefix = p.get("logGroupNamePrefix") or ""
        pattern = p.get("logGroupNamePattern")
        if pattern is not None and prefix:
            raise LogsError(
                "InvalidParameterException",
                "logGroupNamePrefix and logGroupNamePattern cannot both be given.",
            )
        found = [
            (
                (0, name),
                {
                    "logGroupName": name,
                    "creationTime": created,
                    "retentionInDays": int(self.logs.retention_days),
                    "metricFilterCount": 0,
                    "storedBytes": size,
                    "arn": self._arn(name) + ":*",
                    "logGroupArn": self._arn(name),
                    "logGroupClass": "STANDARD",
                },
            )
            for name, (created, size) in self._known_groups().items()
            if name.startswith(prefix) and (pattern is None or pattern in name)
        ]
        groups, token = self._page(p, found, f"groups\x1f{prefix}\x1f{pattern or ''}")
        out: Doc = {"logGroups": groups}
        if token is not None:
            out["nextToken"] = token
        return out

    def describe_log_streams(self, p: Doc) -> Doc:
        group = self._group(p)
        prefix = p.get("logStreamNamePrefix")
        by_time = p.get("orderBy") == "LastEventTime"
        if by_time and prefix is not None:
            raise LogsError(
                "InvalidParameterException",
                "Cannot order by LastEventTime with a logStreamNamePrefix.",
            )
        streams = [
            (
                (last if by_time else 0, name),
                {
                    "logStreamName": name,
                    "creationTime": created,
                    "firstEventTimestamp": first,
                    "lastEventTimestamp": last,
                    "lastIngestionTime": ingested,
                    "arn": f"{self._arn(group)}:log-stream:{name}",
                    "storedBytes": 0,
                },
            )
            for name, created, first, last, ingested in self.logs.streams(group)
            if name.startswith(prefix or "")
        ]
        descending = bool(p.get("descending", False))
        query = f"streams\x1f{group}\x1f{prefix or ''}\x1f{by_time}\x1f{descending}"
        page, token = self._page(p, streams, query, descending)
        out: Doc = {"logStreams": page}
        if token is not None:
            out["nextToken"] = token
        return out

    def _query(self, p: Doc, group: str, streams: tuple[str, ...]) -> LogQuery:
        return LogQuery(
            log_group_name=group,
            log_stream_names=streams,
            log_stream_name_prefix=p.get("logStreamNamePrefix"),
            start_time=p.get("startTime"),
            end_time=p.get("endTime"),
            filter_pattern=p.get("filterPattern"),
            limit=int(p.get("limit", 10_000)),
        )

    def get_log_events(self, p: Doc) -> Doc:
        group = self._group(p)
        stream = str(p["logStreamName"])
        query = self._query(p, group, (stream,))
        events = self.logs.events(group, (stream,), query.start_time, query.end_time)
        page = get_log_events(
            events,
            query,
            self._tokens(),
            next_token=p.get("nextToken"),
            start_from_head=bool(p.get("startFromHead", False)),
        )
        return page.to_response()

    def filter_log_events(self, p: Doc) -> Doc:
        group = self._group(p)
        streams = tuple(p.get("logStreamNames") or ())
        query = self._query(p, group, streams)
        events = self.logs.events(group, streams, query.start_time, query.end_time)
        page = filter_log_events(events, query, self._tokens(), p.get("nextToken"))
        return page.to_response()
