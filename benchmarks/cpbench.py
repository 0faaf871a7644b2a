"""The control-plane scenarios as the harness runs them: sizes from `--scale`, variants from
`serve --help`, the server command line from `--serve-arg` / `--store-url` (see `Context`).

| scenario | measures |
|---|---|
| `describe-openloop` | DescribeTaskExecution p50/p90/p99/max at 200 and 500 req/s (Poisson) during D3 copies |
| `sign-cost` | server CPU µs of one signed DescribeTaskExecution, and the layers it goes to |
| `fleet` | claim/report p50/p99 and errors of a simulated agent fleet at ~200 calls/s |
"""

from __future__ import annotations

import os
from typing import Any

from benchmarks.controlplane import Variant, serve_flags, variants
from benchmarks.fleet import run_fleet
from benchmarks.openloop import run_openloop
from benchmarks.signcost import run_signcost

__all__ = ["describe_openloop", "fleet", "sign_cost"]

FLEET_AGENTS = 1000
FLEET_RATE = 200.0  # calls per second, the whole fleet


def _store_url(ctx: Any) -> str | None:
    url: str | None = getattr(ctx, "store_url", None) or os.environ.get(
        "DATASYNC_LOCAL_BENCH_STORE"
    )
    return url


def _variants(ctx: Any) -> tuple[list[Variant], dict[str, str]]:
    return variants(list(getattr(ctx, "serve_args", [])), _store_url(ctx), serve_flags())


def describe_openloop(ctx: Any, res: Any) -> None:
    run, skipped = _variants(ctx)
    run_openloop(ctx, res, run, skipped, duration=10.0 if ctx.scale >= 0.2 else 4.0)


def sign_cost(ctx: Any, res: Any) -> None:
    base, _ = _variants(ctx)
    n = max(50, min(5000, int(5000 * ctx.scale)))
    run_signcost(ctx, res, base[0], n)


def fleet(ctx: Any, res: Any) -> None:
    """The first variant, and the PostgreSQL one where the server has it (the issue's target)."""
    run, skipped = _variants(ctx)
    wanted = max(3, int(FLEET_AGENTS * min(1.0, ctx.scale)))
    duration = 30.0 if ctx.scale >= 0.5 else 3.0
    budget = 90.0 if ctx.scale >= 0.5 else 30.0
    chosen = [run[0], *[v for v in run if "postgresql" in v.label and "workers" not in v.label]]
    for label, why in skipped.items():
        if "postgresql" in label:
            res.labels[label] = label
            res.skipped[label] = why
            ctx.log(f"  skipped {label}: {why}")
    for v in chosen:
        run_fleet(ctx, res, v, wanted, FLEET_RATE, duration, budget)
