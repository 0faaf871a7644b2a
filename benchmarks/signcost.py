"""CPU cost of one signed DescribeTaskExecution against an idle server, and where it goes.

Two measurements over the wire, so they hold whatever the server's insides become:
1. N sequential calls (one keep-alive connection, a request pre-signed by botocore's signer):
   the client's wall time per call, and the server's CPU time per call from /proc (user +
   system of `serve` and its children) — the CPU a request really costs the control plane.
2. The same calls again with py-spy sampling the server process (`--nonblocking`, so the
   sampler never pauses it), and each sample charged to the innermost frame of a known layer:
   uvicorn/h11/httptools (HTTP), Starlette (routing, request/response), SigV4 verification
   (botocore's signer and our `api/auth.py`), JSON, the store (SQLAlchemy, sqlite3, `api/store`),
   the rest of `api/`, the asyncio loop, other.
"""

from __future__ import annotations

import http.client
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.controlplane import Variant, cpu_split, describe_request, load_average
from benchmarks.measure import percentile
from benchmarks.tools import ApiServer, ApiTool

__all__ = ["LAYERS", "attribute", "py_spy", "run_signcost"]

SOCKET_WRITE = "socket write (kernel loopback send; a server preempted after waking its client)"
EPOLL_WAIT = "waiting in epoll (idle; py-spy sometimes samples it as active)"
OTHER = "other (logging, stdlib, agent threads)"
# (layer, path fragments): a frame belongs to the first layer one of whose fragments is in its
# file name; a sample goes to the innermost frame that belongs to any layer.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    (SOCKET_WRITE, ("_SelectorSocketTransport.write", "sock_sendall", "socket.send")),
    (EPOLL_WAIT, ("EpollSelector.select",)),
    ("SigV4 verification (botocore signer, api/auth)", ("/botocore/", "/api/auth.py", "/hmac.py")),
    ("JSON encode/decode", ("/json/",)),
    ("store (SQLAlchemy, sqlite3, api store)", ("/sqlalchemy/", "/sqlite3/", "/api/store")),
    ("Starlette (routing, request, response)", ("/starlette/", "/fastapi/")),
    ("uvicorn / HTTP parsing", ("/uvicorn/", "/h11/", "/httptools/")),
    ("DataSync API handlers (rest of api/)", ("/api/",)),
    ("asyncio event loop", ("/asyncio/", "/selectors.py", "/anyio/")),
]


def py_spy() -> str | None:
    """The py-spy binary beside this interpreter, else on PATH."""
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy")


def _layer(frame: str) -> str | None:
    for name, parts in LAYERS:
        if any(p in frame for p in parts):
            return name
    return None


def attribute(collapsed: str) -> Counter[str]:
    """Samples per layer from py-spy's raw (collapsed-stack) output: `f1;f2;…;leaf COUNT`."""
    out: Counter[str] = Counter()
    for line in collapsed.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        layer = next((lay for f in reversed(frames) if (lay := _layer(f))), OTHER)
        out[layer] += int(count)
    return out


def _calls(endpoint: str, req: dict[str, Any], n: int) -> tuple[list[float], int]:
    """n sequential calls on one keep-alive connection; (latencies in µs, errors)."""
    host, port = endpoint.rsplit("//", 1)[1].split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    lat: list[float] = []
    errors = 0
    body, headers = str(req["body"]), dict(req["headers"])
    for _ in range(n):
        t = time.perf_counter()
        try:
            conn.request("POST", "/", body=body, headers=headers)
            resp = conn.getresponse()
            resp.read()
        except (OSError, http.client.HTTPException):
            errors += 1
            conn.close()
            conn = http.client.HTTPConnection(host, int(port), timeout=30)
            continue
        if resp.status != 200:
            errors += 1
            continue
        lat.append((time.perf_counter() - t) * 1e6)
    conn.close()
    return lat, errors


def _profile(
    server: ApiServer, req: dict[str, Any], n: int, workdir: Path, log: Callable[[str], None]
) -> tuple[Counter[str], str]:
    spy = py_spy()
    if spy is None:
        return Counter(), "py-spy not installed (pip install py-spy)"
    raw = Path(tempfile.mkdtemp(prefix="pyspy-", dir=workdir)) / "profile.txt"
    cmd = [spy, "record", "--pid", str(server.proc.pid), "--rate", "500", "--nonblocking"]
    proc = subprocess.Popen(
        [*cmd, "--format", "raw", "--full-filenames", "--output", str(raw), "--subprocesses"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    time.sleep(1.0)  # py-spy attaches
    if proc.poll() is not None:
        err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
        return Counter(), f"py-spy could not attach: {err.strip()[-200:]}"
    th = threading.Thread(target=_calls, args=(server.endpoint, req, n), daemon=True)
    th.start()
    th.join(600)
    proc.send_signal(2)  # SIGINT: py-spy writes its output and exits
    try:
        _, err_b = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return Counter(), "py-spy did not stop"
    if not raw.exists():
        return Counter(), f"py-spy wrote nothing: {err_b.decode(errors='replace')[-200:]}"
    log(f"  py-spy: {raw.stat().st_size} bytes of collapsed stacks")
    return attribute(raw.read_text()), ""


def run_signcost(ctx: Any, res: Any, variant: Variant, n: int) -> None:
    src = ctx.workdir / "signcost-src"
    src.mkdir(exist_ok=True)
    (src / "one").write_bytes(b"x" * 1024)
    server = ApiServer(ctx.workdir, ctx.workdir, variant.args)
    tool = ApiTool(ctx.workdir, ctx.workdir, "NONE")
    key = variant.label
    res.labels[key] = key
    res.ours.append(key)
    try:
        server.wait_ready()
        tool.server = server
        out = tool.start(src, ctx.fresh_dst("sc"), "copy").wait()
        if not out.ok or tool.last is None:
            res.failures.setdefault(key, []).append(f"setup copy failed: {out.detail}")
            return
        req = describe_request(server.endpoint, server.access_key, server.secret, tool.last.arn)
        _calls(server.endpoint, req, min(n, 200))  # warm: imports, caches, connection
        time.sleep(1.0)  # let the embedded agent's post-run work settle: the server is idle
        (user0, sys0), t0 = cpu_split(server.proc.pid), time.perf_counter()
        lat, errors = _calls(server.endpoint, req, n)
        wall = time.perf_counter() - t0
        user1, sys1 = cpu_split(server.proc.pid)
        cpu = (user1 - user0) + (sys1 - sys0)
        load = load_average()
        if not lat:
            res.failures.setdefault(key, []).append(f"all {n} calls failed")
            return
        per_cpu = cpu / n * 1e6
        stats: dict[str, Any] = {
            "calls": n,
            "errors": errors,
            "server_cpu_us_per_request": per_cpu,
            "server_user_us_per_request": (user1 - user0) / n * 1e6,
            "server_system_us_per_request": (sys1 - sys0) / n * 1e6,
            "client_wall_us_p50": percentile(lat, 50),
            "client_wall_us_p99": percentile(lat, 99),
            "requests_per_s": n / wall,
            "load": load,
        }
        res.values[key] = [per_cpu]
        ctx.log(
            f"  {n} sequential signed DescribeTaskExecution: server {per_cpu:.0f} µs CPU each "
            f"({stats['server_user_us_per_request']:.0f} user, "
            f"{stats['server_system_us_per_request']:.0f} system), "
            f"client p50 {stats['client_wall_us_p50']:.0f} µs p99 "
            f"{stats['client_wall_us_p99']:.0f} µs, {n / wall:.0f}/s, {errors} errors; {load}"
        )
        layers, why = _profile(server, req, n, ctx.workdir, ctx.log)
        total = sum(layers.values())
        python = total - layers[SOCKET_WRITE] - layers[EPOLL_WAIT]
        user_us = float(stats["server_user_us_per_request"])
        rows = [
            [
                name,
                str(count),
                f"{100 * count / total:.1f}%",
                "—"
                if name in (SOCKET_WRITE, EPOLL_WAIT) or not python
                else f"{user_us * count / python:.0f}",
            ]
            for name, count in layers.most_common()
        ]
        stats["profile"] = dict(layers)
        if why:
            stats["profile_skipped"] = why
            ctx.log(f"  profile skipped: {why}")
        res.extra.setdefault("runs", {})[key] = stats
        res.extra.setdefault("tables", []).append(
            {
                "title": f"CPU of one signed DescribeTaskExecution ({key}): {per_cpu:.0f} µs "
                f"({user_us:.0f} user + {stats['server_system_us_per_request']:.0f} system), "
                f"where it goes (py-spy samples of the idle server, {load})",
                "header": [
                    "layer",
                    "samples",
                    "share of samples",
                    "user µs per request (share of the Python samples × user CPU)",
                ],
                "rows": rows or [["(no profile)", why, "", ""]],
            }
        )
        res.notes.append(
            f"{n} sequential DescribeTaskExecution calls on one keep-alive connection against an "
            "idle server (one finished 1-file execution), the request pre-signed by botocore; "
            "server CPU from /proc utime+stime of `serve` and its children; then the same calls "
            "again under `py-spy record --nonblocking --rate 500`, each sample charged to the "
            "innermost frame of a known layer (JSON inside the store counts as JSON); py-spy "
            "counts a runnable thread as busy, so on a loaded machine the socket write (where "
            "the server wakes its client and may be preempted) holds wall time, not only CPU: "
            "the user CPU is therefore split over the other layers' samples (epoll waits, which "
            "py-spy at times reads as active, are left out too)"
        )
    finally:
        tool.reset()
        server.stop()
