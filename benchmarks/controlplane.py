"""What the control-plane benchmarks share: the server command line, its variants, signing, CPU.

The control plane is being rewritten (typed domain, scheduler, PostgreSQL store, several worker
processes), so these benchmarks speak only its wire protocols (DataSync JSON 1.1 and the IoT-Jobs
agent protocol, SigV4-signed) and take the `serve` command line as a parameter. The variants
(`--workers 2`, `--store postgresql://…`) are decided at run time from what `serve --help` lists,
and a variant the server cannot run is skipped with the reason, never silently dropped.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.measure import percentile
from benchmarks.tools import _datasync_local_cmd

__all__ = [
    "Latencies",
    "Variant",
    "cpu_seconds",
    "cpu_split",
    "describe_request",
    "load_average",
    "serve_flags",
    "sign",
    "variants",
]


@dataclass(frozen=True)
class Variant:
    """One server command line to measure: a label and the arguments added to `serve`."""

    label: str
    args: tuple[str, ...]


@dataclass
class Latencies:
    """Latencies (ms) of one kind of call, and its errors, rendered as one table row."""

    ms: list[float] = field(default_factory=list)
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)

    def error(self, what: str) -> None:
        self.errors += 1
        if len(self.error_samples) < 5:
            self.error_samples.append(what[:200])

    def summary(self) -> dict[str, float]:
        if not self.ms:
            return {"calls": 0, "errors": self.errors}
        return {
            "calls": len(self.ms),
            "errors": self.errors,
            "p50": percentile(self.ms, 50),
            "p90": percentile(self.ms, 90),
            "p99": percentile(self.ms, 99),
            "max": max(self.ms),
        }


def serve_flags() -> set[str]:
    """The long options `datasync-local serve --help` lists (e.g. {"--workers", "--store"})."""
    out = subprocess.run(
        [*_datasync_local_cmd(), "serve", "--help"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    words = (out.stdout + out.stderr).replace(",", " ").replace("[", " ").replace("]", " ")
    return {w.split("=", 1)[0] for w in words.split() if w.startswith("--")}


def variants(
    base: Sequence[str], store_url: str | None, flags: set[str]
) -> tuple[list[Variant], dict[str, str]]:
    """The base command line, then `--workers 2` and `--store URL` where the server has them.

    Returns the variants to run and, for each one that cannot run, why."""
    run = [Variant("serve " + " ".join(base) if base else "serve", tuple(base))]
    skipped: dict[str, str] = {}
    if "--workers" in flags:
        run.append(Variant("serve --workers 2", (*base, "--workers", "2")))
    else:
        skipped["serve --workers 2"] = "`serve --help` lists no --workers (not built yet)"
    pg_label = "serve --store postgresql://…"
    if "--store" not in flags:
        skipped[pg_label] = "`serve --help` lists no --store (not built yet)"
    elif not store_url:
        skipped[pg_label] = "no PostgreSQL URL given (--store-url or DATASYNC_LOCAL_BENCH_STORE)"
    else:
        run.append(Variant(pg_label, (*base, "--store", store_url)))
        if "--workers" in flags:
            run.append(
                Variant(pg_label + " --workers 2", (*base, "--store", store_url, "--workers", "2"))
            )
    return run, skipped


def sign(
    endpoint: str,
    access_key: str,
    secret: str,
    *,
    method: str = "POST",
    path: str = "/",
    body: str = "",
    headers: dict[str, str] | None = None,
    service: str = "datasync",
    region: str = "us-east-1",
) -> dict[str, str]:
    """SigV4 headers for one request, computed by botocore's signer (never by hand)."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    req = AWSRequest(
        method=method, url=endpoint.rstrip("/") + path, data=body, headers=headers or {}
    )
    SigV4Auth(Credentials(access_key, secret), service, region).add_auth(req)
    return dict(req.headers.items())


def describe_request(endpoint: str, access_key: str, secret: str, arn: str) -> dict[str, object]:
    """A signed DescribeTaskExecution (body and headers) that a generator may replay: a
    signature stays valid for 15 minutes and the server keeps no nonce, so replaying it is what
    a client re-sending the same call would do, without paying for signing in the generator."""
    body = json.dumps({"TaskExecutionArn": arn})
    headers = sign(
        endpoint,
        access_key,
        secret,
        body=body,
        headers={
            "Content-Type": "application/x-amz-json-1.1",
            "X-Amz-Target": "FmrsService.DescribeTaskExecution",
        },
    )
    return {"body": body, "headers": headers}


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    kids = [int(p) for p in text.split()]
    return kids + [g for k in kids for g in _children(k)]


def cpu_split(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of a process and its live descendants (`--workers N`)."""
    tick = os.sysconf("SC_CLK_TCK")
    user = system = 0.0
    for p in [pid, *_children(pid)]:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        user += int(fields[11]) / tick
        system += int(fields[12]) / tick
    return user, system


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process and its live descendants."""
    return sum(cpu_split(pid))


def load_average() -> str:
    """`uptime`'s load averages, printed with every result: the machine is shared."""
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f}, {five:.2f}, {fifteen:.2f} ({os.cpu_count()} CPUs)"
