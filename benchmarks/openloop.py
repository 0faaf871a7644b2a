"""Open-loop DescribeTaskExecution load during full-speed D3 copies through the API.

A closed-loop poller waits for each answer before it asks again, so a slow server slows its own
load and hides its worst latencies (coordinated omission). Here requests arrive as a Poisson
process at a fixed rate, whatever the server does, and every latency runs from the request's
*scheduled* send time: a request the generator sent late because it was itself busy counts that
delay too, so the generator can make the numbers worse but never better.

The generator must not be the bottleneck on 2 shared cores, so the rate is split over several
processes, each a dispatcher thread and a pool of sender threads with keep-alive `http.client`
connections (httpx's pool melts down with many queued requests: 20 ms of CPU per request here),
replaying a request signed once with botocore's SigV4 signer (see
`benchmarks.controlplane.describe_request`). Each process reports its own cost (CPU µs per
request) and how late it sent (scheduled → send), so a saturated generator shows.
"""

from __future__ import annotations

import http.client
import json
import os
import queue
import random
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from benchmarks import datasets
from benchmarks.controlplane import Latencies, Variant, cpu_seconds, load_average
from benchmarks.measure import percentile
from benchmarks.pollers import write_signed_request
from benchmarks.tools import ApiServer, ApiTool

__all__ = ["RATES", "openloop_process", "run_openloop"]

RATES = (200, 500)  # signed requests per second (the two loads)
PROCESSES = 2  # generator processes (one per core)
SENDERS = 32  # threads (keep-alive connections) per generator process; beyond them requests
# wait in the queue, and the wait counts


def openloop_process(
    endpoint: str, request_file: str, rate: float, duration: float, seed: int
) -> dict[str, Any]:
    """Send Poisson arrivals at `rate`/s for `duration` s; latencies from the scheduled time.

    A dispatcher thread releases each request at its scheduled time into a queue; `SENDERS`
    threads, each with its own keep-alive `http.client` connection, send them. When every sender
    is busy a request waits in the queue, and that wait is part of its latency."""
    rng = random.Random(seed)
    url = urlsplit(endpoint)
    host, port = url.hostname or "127.0.0.1", url.port or 80
    state: dict[str, Any] = {"mtime": -1, "req": None}
    lock = threading.Lock()

    def current() -> dict[str, Any]:
        with lock:
            try:
                m = os.stat(request_file).st_mtime_ns
                if m != state["mtime"]:
                    state["req"] = json.loads(Path(request_file).read_text())
                    state["mtime"] = m
            except (OSError, ValueError):
                pass
            req: dict[str, Any] = state["req"]
            return req

    todo: queue.SimpleQueue[float | None] = queue.SimpleQueue()
    lat = Latencies()
    late: list[float] = []  # dispatcher: scheduled → released (the generator's own delay)
    queued: list[float] = []  # scheduled → a sender took it (all senders busy: server slow)

    def sender() -> None:
        conn = http.client.HTTPConnection(host, port, timeout=30)
        n = 0
        req = current()
        while (when := todo.get()) is not None:
            if n % 50 == 0:
                req = current()
            n += 1
            queued.append((time.perf_counter() - when) * 1000)
            try:
                conn.request("POST", "/", body=req["body"], headers=req["headers"])
                resp = conn.getresponse()
                data = resp.read()
            except (OSError, http.client.HTTPException) as exc:
                with lock:
                    lat.error(f"{type(exc).__name__}: {exc}")
                conn.close()
                conn = http.client.HTTPConnection(host, port, timeout=30)
                continue
            took = (time.perf_counter() - when) * 1000
            if resp.status != 200:
                with lock:
                    lat.error(f"HTTP {resp.status}: {data[:160]!r}")
                continue
            lat.ms.append(took)  # list.append is atomic under the GIL
        conn.close()

    threads = [threading.Thread(target=sender, daemon=True) for _ in range(SENDERS)]
    for th in threads:
        th.start()
    cpu0 = time.process_time()
    start = time.perf_counter() + 0.05
    end = start + duration
    when = start + rng.expovariate(rate)
    scheduled = 0
    while when < end:
        delay = when - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        late.append((time.perf_counter() - when) * 1000)
        todo.put(when)
        scheduled += 1
        when += rng.expovariate(rate)
    for _ in threads:
        todo.put(None)
    for th in threads:
        th.join(60.0)
    cpu = time.process_time() - cpu0
    return {
        "latencies": list(lat.ms),
        "errors": lat.errors,
        "error_samples": lat.error_samples,
        "scheduled": scheduled,
        "late_p99_ms": percentile(late, 99) if late else 0.0,
        "queued_p99_ms": percentile(queued, 99) if queued else 0.0,
        "cpu_us_per_request": cpu / max(1, scheduled) * 1e6,
        "duration": duration,
    }


def _during_copies(
    tool: ApiTool, src: Path, fresh: Any, futures: list[Future[dict[str, Any]]], publish: Any
) -> tuple[int, list[str]]:
    """Run D3 copies back to back until every generator is done; (copies, failures)."""
    transfers, failures = 0, []
    assert tool.last is not None
    handle = tool.last
    while True:
        out = handle.wait()
        transfers += 1
        if not out.ok:
            failures.append(out.detail)
            break
        if all(f.done() for f in futures):
            break
        handle = tool.start(src, fresh("ol"), "copy")  # type: ignore[assignment]
        assert tool.last is not None
        publish(tool.last.arn)
    return transfers, failures


def run_openloop(
    ctx: Any, res: Any, variants: list[Variant], skipped: dict[str, str], duration: float
) -> None:
    """For each server variant and rate: D3 copies through the API under open-loop load."""
    src = ctx.dataset("D3")
    res.bytes = datasets.total_bytes("D3", ctx.scale, ctx.seed)
    res.files = sum(1 for _ in datasets.layout("D3", ctx.scale, ctx.seed))
    rows: list[list[str]] = []
    for label, why in skipped.items():
        for rate in RATES:
            key = f"{label} @ {rate}/s"
            res.labels[key] = key
            res.skipped[key] = why
        ctx.log(f"  skipped {label}: {why}")
    for variant in variants:
        tool = ApiTool(ctx.workdir, ctx.workdir, "NONE")
        server = ApiServer(ctx.workdir, ctx.workdir, variant.args)
        try:
            server.wait_ready()
        except Exception as exc:
            server.stop()
            for rate in RATES:
                key = f"{variant.label} @ {rate}/s"
                res.labels[key] = key
                res.failures.setdefault(key, []).append(f"server did not start: {exc}")
            continue
        tool.server = server
        try:
            for rate in RATES:
                key = f"{variant.label} @ {rate}/s"
                res.labels[key] = key
                res.ours.append(key)
                rows.append(_one_rate(ctx, res, tool, server, src, key, rate, duration))
        finally:
            tool.reset()
    res.extra.setdefault("tables", []).append(
        {
            "title": "DescribeTaskExecution, open loop (Poisson), during full-speed D3 copies",
            "header": [
                "server / rate",
                "achieved/s",
                "p50 ms",
                "p90 ms",
                "p99 ms",
                "max ms",
                "errors",
                "copies",
                "server CPU/s",
                "generator: CPU µs/req, release late p99, queued for a sender p99",
                "load",
            ],
            "rows": rows,
        }
    )
    res.notes.append(
        f"open loop: Poisson arrivals split over {PROCESSES} generator processes (a dispatcher and "
        f"{SENDERS} sender threads with keep-alive connections each, a request pre-signed with botocore's SigV4 signer), "
        f"{duration:.0f} s per rate while D3 copies (VerifyMode NONE, unthrottled) run back to back "
        "through the API; latency from the scheduled send time (no coordinated omission); the "
        "generators share the 2 cores with the server and the transfer (their cost is reported)"
    )


def _one_rate(
    ctx: Any,
    res: Any,
    tool: ApiTool,
    server: ApiServer,
    src: Path,
    key: str,
    rate: int,
    duration: float,
) -> list[str]:
    req_file = ctx.workdir / "openloop-request.json"

    def publish(arn: str) -> None:
        write_signed_request(req_file, server.endpoint, server.access_key, server.secret, arn)

    ctx.prepare(src)
    tool.start(src, ctx.fresh_dst("ol"), "copy")
    assert tool.last is not None
    publish(tool.last.arn)
    cpu0, t0 = cpu_seconds(server.proc.pid), time.monotonic()
    with ProcessPoolExecutor(PROCESSES, mp_context=get_context("spawn")) as pool:
        futures = [
            pool.submit(
                openloop_process,
                server.endpoint,
                str(req_file),
                rate / PROCESSES,
                duration,
                ctx.seed * 100 + i,
            )
            for i in range(PROCESSES)
        ]
        transfers, failures = _during_copies(tool, src, ctx.fresh_dst, futures, publish)
        parts = [f.result() for f in futures]
    server_cpu = (cpu_seconds(server.proc.pid) - cpu0) / max(1e-9, time.monotonic() - t0)
    lat = Latencies(
        ms=[x for p in parts for x in p["latencies"]],
        errors=sum(p["errors"] for p in parts),
        error_samples=[e for p in parts for e in p["error_samples"]][:5],
    )
    s = lat.summary()
    load = load_average()
    gen_cpu = sum(p["cpu_us_per_request"] for p in parts) / len(parts)
    gen_late = max(p["late_p99_ms"] for p in parts)
    queued = max(p["queued_p99_ms"] for p in parts)
    achieved = s["calls"] / duration
    for f in failures:
        res.failures.setdefault(key, []).append(f"copy failed: {f}")
    if lat.errors:
        res.failures.setdefault(key, []).append(
            f"{lat.errors} errors, e.g. {lat.error_samples[:1]}"
        )
    res.extra.setdefault("runs", {})[key] = {
        **s,
        "target_rate": rate,
        "achieved_rate": achieved,
        "copies": transfers,
        "server_cpu_per_s": server_cpu,
        "generator_cpu_us_per_request": gen_cpu,
        "generator_late_p99_ms": gen_late,
        "queued_for_a_sender_p99_ms": queued,
        "load": load,
    }
    if "p99" in s:
        res.values[key] = [s["p99"]]
    ctx.log(
        f"  {key}: {s['calls']} calls ({achieved:.0f}/s), p50 {s.get('p50', 0):.1f} p90 "
        f"{s.get('p90', 0):.1f} p99 {s.get('p99', 0):.1f} max {s.get('max', 0):.1f} ms, "
        f"{lat.errors} errors, {transfers} D3 copies; generator {gen_cpu:.0f} µs CPU/req, releases "
        f"{gen_late:.1f} ms late (p99), {queued:.1f} ms queued for a free sender (p99); {load}"
    )

    def ms(name: str) -> str:
        return f"{s[name]:.1f}" if name in s else "—"

    return [
        key,
        f"{achieved:.0f}",
        ms("p50"),
        ms("p90"),
        ms("p99"),
        ms("max"),
        str(lat.errors),
        str(transfers),
        f"{server_cpu:.2f} s",
        f"{gen_cpu:.0f} µs, {gen_late:.1f} ms, {queued:.1f} ms",
        load,
    ]
