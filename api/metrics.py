"""`GET /metrics`: Prometheus exposition of the control plane's state, read from the store.

Why store-derived rather than in-process counters: `serve --workers N` runs N processes over one
store, and a scrape lands on any one of them. Every number here is computed at scrape time from
the shared store by a custom collector, so each process answers the same whole picture without
`PROMETHEUS_MULTIPROC_DIR` files to manage. Counters that are not state are kept in the store
too, for the same reason: schedule runs (`api.schedule_runner.record_schedule_run`) and API requests by protocol,
operation and code with their latency histogram (`api.request_counts`, flushed by each process
once a second and by the scraping process before it reads).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from api.domain import repository
from api.domain.agent import Agent
from api.domain.enums import AgentStatus
from api.domain.execution import Execution
from api.request_counts import RequestCounts, RequestMeter
from api.schedule_runner import schedule_runs
from api.store import Store

if TYPE_CHECKING:  # api.models → resources/tasks → schedule_runner → here: no cycle at run time
    from api.models import Backend

__all__ = [
    "CONTENT_TYPE_LATEST",
    "StoreCollector",
    "render",
]

PREFIX = "datasync_local"
# the per-task totals summed over its executions (the DataSync counter names, snake-cased)
_TASK_COUNTERS = {
    "FilesTransferred": "files_transferred",
    "BytesTransferred": "bytes_transferred",
    "BytesWritten": "bytes_written",
    "FilesVerified": "files_verified",
    "FilesDeleted": "files_deleted",
    "FilesSkipped": "files_skipped",
}


class StoreCollector(Collector):
    """Every metric family, computed from the store when scraped."""

    def __init__(self, backend: Backend, requests: RequestMeter | None = None) -> None:
        self.backend = backend
        self.requests = requests

    def collect(self) -> Iterator[Metric]:
        store = self.backend.store
        executions = repository.executions(store)
        yield self._executions_by_status(executions)
        yield self._agents_by_status(repository.every(store, Agent))
        yield self._queue_depth(executions)
        yield self._rate_limit(executions)
        yield self._rate(executions)
        yield from self._task_counters(executions)
        yield self._schedule_runs(store)
        if self.requests is not None:
            yield from _requests(self.requests.read())

    def _executions_by_status(self, executions: Iterable[Execution]) -> Metric:
        family = GaugeMetricFamily(
            f"{PREFIX}_executions", "Task executions by DataSync status.", labels=["status"]
        )
        for status, count in sorted(Counter(e.status.value for e in executions).items()):
            family.add_metric([status], count)
        return family

    def _agents_by_status(self, agents: Iterable[Agent]) -> Metric:
        family = GaugeMetricFamily(
            f"{PREFIX}_agents", "Agents by status (ONLINE/OFFLINE).", labels=["status"]
        )
        counts = Counter(self.backend.agent_status(a) for a in agents)
        for status in AgentStatus:
            family.add_metric([status.value], counts.get(status, 0))
        return family

    def _queue_depth(self, executions: Iterable[Execution]) -> Metric:
        family = GaugeMetricFamily(
            f"{PREFIX}_queue_depth",
            "Executions QUEUED behind another on the same agent.",
            labels=["agent_arn"],
        )
        depth = Counter(e.agent_arn for e in executions if e.status == "QUEUED")
        for agent_arn, count in sorted(depth.items()):
            family.add_metric([agent_arn], count)
        return family

    def _rate_limit(self, executions: Iterable[Execution]) -> Metric:
        family = GaugeMetricFamily(
            f"{PREFIX}_execution_bytes_per_second_limit",
            "Options.BytesPerSecond of each running execution (-1: unlimited).",
            labels=["task_execution_arn"],
        )
        for e in executions:
            if e.status in ("LAUNCHING", "PREPARING", "TRANSFERRING", "VERIFYING"):
                limit = e.options.get("BytesPerSecond", -1)
                family.add_metric([e.arn], float(limit))
        return family

    def _rate(self, executions: Iterable[Execution]) -> Metric:
        """The store holds counters, not a speedometer: the rate is BytesTransferred over the
        time since the execution entered TRANSFERRING (its average so far)."""
        family = GaugeMetricFamily(
            f"{PREFIX}_execution_bytes_per_second",
            "Average transfer rate of each TRANSFERRING execution since its transfer began.",
            labels=["task_execution_arn"],
        )
        now = self.backend.now()
        for e in executions:
            if e.status != "TRANSFERRING":
                continue
            since = [t for s, t in e.history if s == "TRANSFERRING"]
            moved = e.counters.get("BytesTransferred", 0)
            if since and isinstance(moved, int) and now > since[-1]:
                family.add_metric([e.arn], moved / (now - since[-1]))
        return family

    def _task_counters(self, executions: Iterable[Execution]) -> Iterator[Metric]:
        totals: dict[str, Counter[str]] = {name: Counter() for name in _TASK_COUNTERS}
        failed: Counter[str] = Counter()
        for e in executions:
            for name in _TASK_COUNTERS:
                value = e.counters.get(name, 0)
                totals[name][e.task_arn] += int(value) if isinstance(value, int) else 0
            by_phase = e.counters.get("FilesFailed")  # nested: {"Prepare": n, "Transfer": n, ...}
            phases = by_phase.values() if isinstance(by_phase, dict) else ()
            # += even of 0: every task gets a sample, so a rate() over it starts at zero
            failed[e.task_arn] += sum(v for v in phases if isinstance(v, int))
        for name, snake in _TASK_COUNTERS.items():
            family = CounterMetricFamily(
                f"{PREFIX}_task_{snake}",
                f"{name} summed over the task's executions.",
                labels=["task_arn"],
            )
            for task_arn, total in sorted(totals[name].items()):
                family.add_metric([task_arn], total)
            yield family
        family = CounterMetricFamily(
            f"{PREFIX}_task_files_failed",
            "FilesFailed (all phases) summed over the task's executions.",
            labels=["task_arn"],
        )
        for task_arn, total in sorted(failed.items()):
            family.add_metric([task_arn], total)
        yield family

    def _schedule_runs(self, store: Store) -> Metric:
        family = CounterMetricFamily(
            f"{PREFIX}_schedule_runs",
            "Executions started by a task's schedule.",
            labels=["task_arn"],
        )
        for task_arn, runs in schedule_runs(store):
            family.add_metric([task_arn], runs)
        return family


def _requests(counts: RequestCounts) -> Iterator[Metric]:
    family = CounterMetricFamily(
        f"{PREFIX}_api_requests",
        "API requests answered, by protocol, operation and error code (OK: answered 200).",
        labels=["protocol", "operation", "code"],
    )
    for protocol, operation, code, count in counts.requests:
        family.add_metric([protocol, operation, code], count)
    yield family
    histogram = HistogramMetricFamily(
        f"{PREFIX}_api_request_duration_seconds",
        "Time from a request's headers to its answer, by protocol and operation.",
        labels=["protocol", "operation"],
    )
    for h in counts.histograms:
        histogram.add_metric([h.protocol, h.operation], list(h.buckets), h.total)
    yield histogram


def render(backend: Backend, requests: RequestMeter | None = None) -> bytes:
    """The exposition text of one scrape (a fresh registry: nothing process-local leaks in)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StoreCollector(backend, requests))
    return generate_latest(registry)
