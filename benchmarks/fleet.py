"""A simulated fleet: many agents, each with its own credentials, claiming and reporting.

Every agent is activated through the real flow (DESIGN.md, `api/activation.py`): it registers
(`POST /agent-activation`), the operator approves it with `CreateAgent(ActivationKey=…)` (boto3),
and it collects its own key pair (`POST /agent-activation/{key}` with its poll token). The
operator then gives each agent a task (two NFS locations on it) and starts one execution.

During the measured window every agent is an asyncio task that, once per period, claims
(`PUT /things/{thing}/jobs/$next`: the first call takes its job, later ones re-attach, as a
heartbeat) and reports (`POST /things/{thing}/jobs/{jobId}`, IN_PROGRESS with TRANSFERRING
counters and the `expectedVersion` it was given), each request SigV4-signed with that agent's
own credentials (service `iot-jobs-data`). The period is chosen so the whole fleet makes the
target rate (2 calls per agent per period); phases are spread at random. At the end each agent
reports SUCCEEDED. Nothing runs the engine: the fleet measures the control plane alone.

Activation is rate-limited by the server (a token bucket for unauthenticated registrations), so
it is bounded by a time budget: the fleet is scaled down to the agents activated within it, and
the result says so, with the measured activation rate and the projected time for the full fleet.
"""

from __future__ import annotations

import asyncio
import json
import random
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from benchmarks.controlplane import Latencies, Variant, cpu_seconds, load_average, sign
from benchmarks.tools import ApiServer

__all__ = ["FleetAgent", "activate_fleet", "run_fleet"]


@dataclass
class FleetAgent:
    arn: str
    thing: str
    access_key: str
    secret: str
    region: str
    job: str = ""
    version: int = 0


async def _activate_one(
    http: Any, server: ApiServer, root: Path, i: int
) -> tuple[FleetAgent | None, str]:
    """(agent, "") or (None, why): one registration, the operator's approval, the collection."""
    info = {
        "Name": f"fleet-{i}",
        "Hostname": socket.gethostname(),
        "Roots": [str(root)],
        "Mounts": [],
        "Concurrency": 1,
    }
    r = await http.post("/agent-activation", json=info)
    if r.status_code == 429:
        return None, "throttled"
    if r.status_code != 200:
        return None, f"register: HTTP {r.status_code} {r.text[:160]}"
    pending = r.json()
    key, token = pending["ActivationKey"], pending["PollToken"]
    await asyncio.to_thread(server.client.create_agent, ActivationKey=key, AgentName=f"fleet-{i}")
    r = await http.post(f"/agent-activation/{quote(key)}", json={"PollToken": token})
    answer = r.json() if r.status_code == 200 else {}
    if answer.get("Status") != "ACTIVATED":
        return None, f"poll: HTTP {r.status_code} {r.text[:160]}"
    return FleetAgent(
        arn=str(answer["AgentArn"]),
        thing=str(answer["ThingName"]),
        access_key=str(answer["AccessKeyId"]),
        secret=str(answer["SecretAccessKey"]),
        region=str(answer.get("Region", "us-east-1")),
    ), ""


async def activate_fleet(
    server: ApiServer, root: Path, wanted: int, budget: float
) -> tuple[list[FleetAgent], float, list[str]]:
    """Activate up to `wanted` agents within `budget` s; (agents, seconds, problems)."""
    import httpx

    agents: list[FleetAgent] = []
    problems: list[str] = []
    t0 = time.monotonic()
    async with httpx.AsyncClient(base_url=server.endpoint, timeout=30.0) as http:
        i = 0
        while len(agents) < wanted and time.monotonic() - t0 < budget:
            agent, why = await _activate_one(http, server, root, i)
            i += 1
            if agent is not None:
                agents.append(agent)
            elif why == "throttled":
                await asyncio.sleep(0.5)
            elif len(problems) < 5:
                problems.append(why)
            if len(problems) >= 5:
                break
    return agents, time.monotonic() - t0, problems


def _give_work(server: ApiServer, root: Path, agents: list[FleetAgent]) -> None:
    """Per agent: two NFS locations on it, a task, one started execution (operator, boto3)."""
    ds = server.client
    for n, agent in enumerate(agents):
        arns = []
        for side in ("src", "dst"):
            path = root / f"fleet-{n}-{side}"
            path.mkdir(parents=True, exist_ok=True)
            arns.append(
                ds.create_location_nfs(
                    ServerHostname="localhost",
                    Subdirectory=str(path),
                    OnPremConfig={"AgentArns": [agent.arn]},
                )["LocationArn"]
            )
        task = ds.create_task(
            SourceLocationArn=arns[0], DestinationLocationArn=arns[1], Name=f"fleet-{n}"
        )["TaskArn"]
        ds.start_task_execution(TaskArn=task)


async def _call(
    http: Any, endpoint: str, agent: FleetAgent, method: str, path: str, body: dict[str, Any]
) -> tuple[int, dict[str, Any]]:
    url_path = quote(path, safe="/")
    data = json.dumps(body, separators=(",", ":"))
    headers = sign(
        endpoint,
        agent.access_key,
        agent.secret,
        method=method,
        path=url_path,
        body=data,
        headers={"Content-Type": "application/json"},
        service="iot-jobs-data",
        region=agent.region,
    )
    r = await http.request(method, url_path, content=data, headers=headers)
    try:
        payload = r.json() if r.content else {}
    except ValueError:
        payload = {}
    return r.status_code, payload if isinstance(payload, dict) else {}


async def _agent_loop(
    http: Any,
    endpoint: str,
    agent: FleetAgent,
    period: float,
    end: float,
    rng: random.Random,
    claim: Latencies,
    report: Latencies,
) -> None:
    loop = asyncio.get_running_loop()
    await asyncio.sleep(rng.uniform(0, period))
    transferred = 0
    while loop.time() < end:
        tick = loop.time()
        t = loop.time()
        try:
            status, payload = await _call(
                http, endpoint, agent, "PUT", f"/things/{agent.thing}/jobs/$next", {}
            )
        except Exception as exc:
            claim.error(f"{type(exc).__name__}: {exc}")
            status, payload = 0, {}
        if status == 200:
            claim.ms.append((loop.time() - t) * 1000)
            execution = payload.get("execution") or {}
            if execution and not agent.job:
                agent.job, agent.version = execution["jobId"], int(execution["versionNumber"])
        elif status:
            claim.error(f"HTTP {status}: {json.dumps(payload)[:160]}")
        if agent.job:
            transferred += 1
            await _report(http, endpoint, agent, "IN_PROGRESS", transferred, report)
        await asyncio.sleep(max(0.0, tick + period - loop.time()))
    if agent.job:
        await _report(http, endpoint, agent, "SUCCEEDED", transferred, report)


async def _report(
    http: Any, endpoint: str, agent: FleetAgent, status: str, files: int, lat: Latencies
) -> None:
    loop = asyncio.get_running_loop()
    counters = {"EstimatedFilesToTransfer": 1_000_000, "FilesTransferred": files}
    details = {"phase": "TRANSFERRING" if status == "IN_PROGRESS" else "SUCCESS"}
    details["counters"] = json.dumps(counters)
    if status == "SUCCEEDED":
        details["result"] = json.dumps({"TransferStatus": "SUCCESS", "VerifyStatus": "SUCCESS"})
    body = {
        "status": status,
        "statusDetails": details,
        "expectedVersion": agent.version,
        "includeJobExecutionState": True,
    }
    t = loop.time()
    try:
        code, payload = await _call(
            http, endpoint, agent, "POST", f"/things/{agent.thing}/jobs/{agent.job}", body
        )
    except Exception as exc:
        lat.error(f"{type(exc).__name__}: {exc}")
        return
    if code == 200:
        lat.ms.append((loop.time() - t) * 1000)
        agent.version = int(payload.get("executionState", {}).get("versionNumber", agent.version))
    else:
        lat.error(f"HTTP {code}: {json.dumps(payload)[:160]}")


async def _drive(
    endpoint: str, agents: list[FleetAgent], rate: float, duration: float, seed: int
) -> tuple[Latencies, Latencies, float]:
    import httpx

    claim, report = Latencies(), Latencies()
    period = 2 * len(agents) / rate
    loop = asyncio.get_running_loop()
    rng = random.Random(seed)
    end = loop.time() + duration

    async def one(agent: FleetAgent) -> None:
        # each agent its own connection, as a real fleet has: one shared pool of 100 made the
        # harness the bottleneck (httpcore scans every connection for every queued request:
        # 70% of the harness's CPU with 1,000 agents, whose latencies were then its queue)
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        async with httpx.AsyncClient(base_url=endpoint, limits=limits, timeout=30.0) as http:
            await _agent_loop(http, endpoint, agent, period, end, rng, claim, report)

    await asyncio.wait_for(
        asyncio.gather(*(one(a) for a in agents)), timeout=duration + period + 120
    )
    return claim, report, period


def _wait_answering(server: ApiServer, timeout: float = 60.0) -> None:
    """`ApiServer.wait_ready` waits for the embedded agent; this server has none."""
    server.client = server.make_client()
    deadline, last = time.monotonic() + timeout, ""
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"`serve` exited: {server.log_tail()}")
        try:
            server.client.list_agents()
            return
        except Exception as exc:
            last = f"{type(exc).__name__}: {exc}"
            time.sleep(0.2)
    raise RuntimeError(f"`serve` did not answer within {timeout:.0f} s ({last})")


def run_fleet(
    ctx: Any,
    res: Any,
    variant: Variant,
    wanted: int,
    rate: float,
    duration: float,
    activation_budget: float,
) -> None:
    key = variant.label
    res.labels[key] = key
    res.ours.append(key)
    root = ctx.workdir / "fleet-root"
    root.mkdir(exist_ok=True)
    # the whole fleet registers at once, as in a rollout: the operator raises the throttle
    throttle = ("--registration-burst", str(wanted), "--registration-rate", str(wanted))
    server = ApiServer(root, ctx.workdir, (*variant.args, "--no-embedded-agent", *throttle))
    try:
        _wait_answering(server)
        agents, took, problems = asyncio.run(
            activate_fleet(server, root, wanted, activation_budget)
        )
        per = took / max(1, len(agents))
        scaled = ""
        if len(agents) < wanted:
            scaled = (
                f"activated {len(agents)} of {wanted} agents in the {activation_budget:.0f} s "
                f"budget ({per * 1000:.0f} ms each, the server's registration throttle included; "
                f"{wanted} would take ≈ {per * wanted:.0f} s): the fleet is scaled down to "
                f"{len(agents)} agents at the same total rate"
            )
            ctx.log(f"  {scaled}")
        if problems:
            res.failures.setdefault(key, []).append(f"activation: {problems[0]}")
        if not agents:
            return
        _give_work(server, root, agents)
        cpu0, t0 = cpu_seconds(server.proc.pid), time.monotonic()
        harness0 = time.process_time()
        claim, report, period = asyncio.run(
            _drive(server.endpoint, agents, rate, duration, ctx.seed)
        )
        wall = time.monotonic() - t0
        server_cpu = (cpu_seconds(server.proc.pid) - cpu0) / wall
        harness_cpu = (time.process_time() - harness0) / wall
        load = load_average()
        c, r = claim.summary(), report.summary()
        achieved = (c["calls"] + r["calls"] + c["errors"] + r["errors"]) / wall
        errors = claim.errors + report.errors
        res.extra.setdefault("runs", {})[key] = {
            "agents": len(agents),
            "wanted": wanted,
            "activation_seconds": took,
            "scaled_down": scaled,
            "period_s": period,
            "target_rate": rate,
            "achieved_rate": achieved,
            "claim": c,
            "report": r,
            "error_samples": (claim.error_samples + report.error_samples)[:5],
            "server_cpu_per_s": server_cpu,
            "harness_cpu_per_s": harness_cpu,
            "load": load,
        }
        if "p99" in c and "p99" in r:
            res.values[key] = [max(c["p99"], r["p99"])]
        if errors:
            sample = (claim.error_samples + report.error_samples)[:1]
            res.failures.setdefault(key, []).append(f"{errors} errors, e.g. {sample}")

        def row(name: str, s: dict[str, float]) -> list[str]:
            ms = [f"{s[k]:.1f}" if k in s else "—" for k in ("p50", "p90", "p99", "max")]
            return [name, str(int(s["calls"])), *ms, str(int(s["errors"]))]

        res.extra.setdefault("tables", []).append(
            {
                "title": f"Simulated fleet ({key}): {len(agents)} agents, one claim + one report "
                f"each every {period:.2f} s, target {rate:.0f} calls/s, achieved {achieved:.0f}/s, "
                f"{duration:.0f} s; server CPU {server_cpu:.2f} s/s, harness CPU "
                f"{harness_cpu:.2f} s/s; {load}",
                "header": ["call", "calls", "p50 ms", "p90 ms", "p99 ms", "max ms", "errors"],
                "rows": [row("claim (PUT $next)", c), row("report (POST jobs/{jobId})", r)],
            }
        )
        ctx.log(
            f"  fleet of {len(agents)}: {achieved:.0f} calls/s; claim p50 {c.get('p50', 0):.1f} "
            f"p99 {c.get('p99', 0):.1f} ms; report p50 {r.get('p50', 0):.1f} p99 "
            f"{r.get('p99', 0):.1f} ms; {errors} errors; server CPU {server_cpu:.2f} s/s, "
            f"harness {harness_cpu:.2f} s/s; {load}"
        )
        res.notes.append(
            "agents activated through the real flow (register, CreateAgent, collect), each "
            "signing with its own credentials; one asyncio process drives them all over ≤ 100 "
            "keep-alive connections; the server runs with --no-embedded-agent"
            + (f"; {scaled}" if scaled else "")
        )
    finally:
        server.stop()
