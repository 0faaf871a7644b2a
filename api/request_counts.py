"""API requests counted by protocol, operation and error code, with a latency histogram, kept in
the store (table `request_counts`, migration 0005) so that every `serve` process answers the
same whole picture.

Why the store and not prometheus_client's multiprocess mode: a control plane is several `serve`
processes over one store, `--workers N` on one host *or separate hosts on one PostgreSQL*
(DESIGN: "act as one control plane"). Multiprocess mode's mmap files sum the processes of one
host only, and must be configured (PROMETHEUS_MULTIPROC_DIR) before prometheus_client is first
imported, i.e. before our own modules load. Counting in the store is correct for both layouts,
like every other value of `/metrics` (api/metrics.py), and costs a request nothing but a dict
update under a lock: each process accumulates deltas in memory and adds them to the store in
one transaction at most once a second (`FLUSH_SECONDS`), never on a request's path. A scrape
first adds its own process's deltas, so what a process just served is in its own answer; other
processes' last second may lag by up to `FLUSH_SECONDS`. A process killed with SIGKILL loses at
most its last unflushed second; a clean stop flushes.

Labels are bounded: `operation` is a name from the protocol's model or route table (anything
else is `unknown`), `code` is `OK` or an error code this server answers with.
"""

from __future__ import annotations

import bisect
import logging
import threading
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.to_thread
from sqlalchemy import Column, Float, MetaData, String, Table, select
from sqlalchemy.dialects import postgresql, sqlite

from api.store import Store

__all__ = [
    "BUCKETS",
    "FLUSH_SECONDS",
    "OK",
    "UNKNOWN",
    "Histogram",
    "RequestCounts",
    "RequestMeter",
]

log = logging.getLogger("datasync_local.api")

FLUSH_SECONDS = 1.0
OK = "OK"  # the `code` of a request answered 200
UNKNOWN = "unknown"  # the `operation` of a request that named none this server knows
# prometheus_client's default latency buckets (seconds): a DescribeTaskExecution takes a few ms,
# a CreateAgent or a cold SQLite write can take hundreds
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
_LE = (*(repr(b) for b in BUCKETS), "+Inf")  # as prometheus_client writes `le`

# the rows: one per (metric, protocol, operation, label); values are added, never set
_REQUESTS = "requests"  # label: the code
_BUCKET = "bucket"  # label: the bucket's upper bound (non-cumulative counts)
_SUM = "sum"  # label: ""
_COUNT = "count"  # label: ""

_metadata = MetaData()
_counts = Table(
    "request_counts",
    _metadata,
    Column("metric", String(16), primary_key=True),
    Column("protocol", String(32), primary_key=True),
    Column("operation", String(64), primary_key=True),
    Column("label", String(64), primary_key=True),
    Column("value", Float, nullable=False),
)

_Key = tuple[str, str, str, str]  # (metric, protocol, operation, label)


@dataclass(frozen=True)
class Histogram:
    """One (protocol, operation)'s latency histogram: cumulative buckets ending with +Inf."""

    protocol: str
    operation: str
    buckets: tuple[tuple[str, float], ...]
    total: float  # the sum of the observed seconds


@dataclass(frozen=True)
class RequestCounts:
    """Everything the store holds, as `/metrics` renders it."""

    requests: tuple[tuple[str, str, str, float], ...]  # (protocol, operation, code, count)
    histograms: tuple[Histogram, ...]


class RequestMeter:
    """One process's counting: `observe` on every request, `flush` once a second (`run`)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._pending: defaultdict[_Key, float] = defaultdict(float)
        self._lock = threading.Lock()

    def observe(self, protocol: str, operation: str, code: str, seconds: float) -> None:
        """Count one answered request (no I/O: called on the request's path)."""
        le = _LE[bisect.bisect_left(BUCKETS, seconds)]
        with self._lock:
            pending = self._pending
            pending[(_REQUESTS, protocol, operation, code)] += 1
            pending[(_BUCKET, protocol, operation, le)] += 1
            pending[(_COUNT, protocol, operation, "")] += 1
            pending[(_SUM, protocol, operation, "")] += seconds

    def flush(self) -> None:
        """Add the pending deltas to the store in one transaction (rows in key order, so two
        processes flushing at once lock them in the same order); on failure they stay pending."""
        with self._lock:
            pending, self._pending = self._pending, defaultdict(float)
        if not pending:
            return
        rows = [
            {"metric": m, "protocol": p, "operation": o, "label": label, "value": float(v)}
            for (m, p, o, label), v in sorted(pending.items())
        ]
        dialect: Any = sqlite if self.store.dialect == "sqlite" else postgresql
        statement = dialect.insert(_counts).values(rows)
        statement = statement.on_conflict_do_update(
            index_elements=["metric", "protocol", "operation", "label"],
            set_={"value": _counts.c.value + statement.excluded.value},
        )
        try:
            with self.store.transaction() as conn:
                conn.execute(statement)
        except Exception:
            with self._lock:
                for key, value in pending.items():  # counted at the next flush
                    self._pending[key] += value
            raise

    async def run(self) -> None:
        """Flush every `FLUSH_SECONDS` for the app's lifetime, and once more when it stops."""
        try:
            while True:
                await anyio.sleep(FLUSH_SECONDS)
                try:
                    await anyio.to_thread.run_sync(self.flush)
                except Exception:
                    log.exception("request counts: flush failed (kept for the next one)")
        finally:
            with anyio.CancelScope(shield=True):
                try:
                    await anyio.to_thread.run_sync(self.flush)
                except Exception:
                    log.exception("request counts: last flush failed")

    def read(self) -> RequestCounts:
        """This process's deltas flushed, then every process's totals from the store."""
        self.flush()
        with self.store.engine.connect() as conn:
            rows = conn.execute(
                select(_counts.c.metric, _counts.c.protocol, _counts.c.operation,
                       _counts.c.label, _counts.c.value)
            ).all()  # fmt: skip
        requests: list[tuple[str, str, str, float]] = []
        buckets: dict[tuple[str, str], dict[str, float]] = {}
        sums: dict[tuple[str, str], float] = {}
        counts: dict[tuple[str, str], float] = {}
        for metric, protocol, operation, label, value in rows:
            series = (str(protocol), str(operation))
            if metric == _REQUESTS:
                requests.append((*series, str(label), float(value)))
            elif metric == _BUCKET:
                buckets.setdefault(series, {})[str(label)] = float(value)
            elif metric == _SUM:
                sums[series] = float(value)
            elif metric == _COUNT:
                counts[series] = float(value)
        return RequestCounts(
            tuple(sorted(requests)),
            tuple(_histograms(buckets, sums, counts)),
        )


def _histograms(
    buckets: dict[tuple[str, str], dict[str, float]],
    sums: dict[tuple[str, str], float],
    counts: dict[tuple[str, str], float],
) -> Iterator[Histogram]:
    for series in sorted(counts):
        own = buckets.get(series, {})
        cumulative, running = [], 0.0
        for le in _LE[:-1]:
            running += own.get(le, 0.0)
            cumulative.append((le, running))
        cumulative.append(("+Inf", counts[series]))  # every observation, whatever its bucket
        yield Histogram(*series, tuple(cumulative), sums.get(series, 0.0))
