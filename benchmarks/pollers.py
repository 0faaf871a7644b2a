"""Load generator for DescribeTaskExecution: many pollers with a light client.

boto3 costs a few milliseconds of CPU per call in the caller (serialise, sign, parse), and 50 boto3
threads in the harness process would mostly measure the harness's own GIL. So the request is
signed once with botocore's SigV4 signer (a signature stays valid for 15 minutes) and replayed
over keep-alive connections by plain `http.client` threads in separate worker processes.
The current request lives in a small JSON file the main process rewrites (atomically) whenever a
new execution starts.
"""

from __future__ import annotations

import http.client
import json
import os
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

__all__ = ["poller_process", "write_signed_request"]


def write_signed_request(path: Path, endpoint: str, access_key: str, secret: str, arn: str) -> None:
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    body = json.dumps({"TaskExecutionArn": arn})
    req = AWSRequest(
        method="POST",
        url=endpoint.rstrip("/") + "/",
        data=body,
        headers={
            "Content-Type": "application/x-amz-json-1.1",
            "X-Amz-Target": "FmrsService.DescribeTaskExecution",
        },
    )
    SigV4Auth(Credentials(access_key, secret), "datasync", "us-east-1").add_auth(req)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"body": body, "headers": dict(req.headers.items())}))
    os.replace(tmp, path)


def poller_process(
    endpoint: str, request_file: str, threads: int, duration: float
) -> dict[str, Any]:
    """Run `threads` pollers for `duration` s; return their latencies (s) and errors."""
    url = urlsplit(endpoint)
    host, port = url.hostname or "127.0.0.1", url.port or 80
    state: dict[str, Any] = {"mtime": 0, "req": None}
    lock = threading.Lock()
    deadline = time.monotonic() + duration
    lat: list[float] = []
    errors: list[str] = []

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

    def run() -> None:
        conn = http.client.HTTPConnection(host, port, timeout=30)
        mine: list[float] = []
        errs: list[str] = []
        n = 0
        req = current()
        while time.monotonic() < deadline:
            if n % 20 == 0:
                req = current()
            n += 1
            t = time.perf_counter()
            try:
                conn.request("POST", "/", body=req["body"], headers=req["headers"])
                resp = conn.getresponse()
                data = resp.read()
            except (OSError, http.client.HTTPException) as exc:
                errs.append(f"{type(exc).__name__}: {exc}")
                conn.close()
                conn = http.client.HTTPConnection(host, port, timeout=30)
                continue
            dt = time.perf_counter() - t
            if resp.status != 200:
                errs.append(f"HTTP {resp.status}: {data[:200]!r}")
                continue
            mine.append(dt)
        conn.close()
        with lock:
            lat.extend(mine)
            errors.extend(errs)

    ths = [threading.Thread(target=run, daemon=True) for _ in range(threads)]
    for th in ths:
        th.start()
    for th in ths:
        th.join(duration + 60)
    return {"latencies": lat, "errors": errors[:5], "error_count": len(errors)}
