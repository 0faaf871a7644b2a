"""CPU per file event of each stage that execution logs and task reports add (issue 13), apart
from the copy: what `unattended_overhead` measures end to end, taken apart, and steady where the
end-to-end wall and CPU times are not (a machine shared with other work stretches them).

For `--files N` files (a D2-like tree: a TRANSFERRED and a VERIFIED event each, with size and
checksum), each stage is run `--repeat` times and its least process CPU time (user + system,
every thread: the report's writer thread counts) is kept:

* `report`: TaskReport.on_event for every event, then finish (a STANDARD report at
  SUCCESSES_AND_ERRORS into a temporary bucket);
* `ship`: EventShipper.sink for every event (LogLevel TRANSFER), then flush, through a client
  that only serialises each batch as the real one does (its HTTP and SigV4 are not counted);
* `both`: the agent's side with both on, as agents/agent.py wires them: TaskReport.on_event
  for every event, its writer forwarding each batch to EventShipper.take, then drain, flush
  and finish (one record per file, two consumers);
* `ingest`: the server's side of those batches: api.execution_log.parse_batch of each body,
  then ExecutionLog.ingest into a real SQLite store.

    .venv/bin/python -m benchmarks.unattended_stages [--files 10000] [--repeat 5]

The sum, times the events of a run, over the plain run's CPU time (`unattended_overhead`'s
`cpu plain`), estimates the overhead a run pays in CPU.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agents.event_shipper import EventShipper
from agents.unattended import TaskReport
from api.execution_log import ExecutionLog, parse_batch
from api.store import Store
from api.store_logs import LogStore
from engine.events import FileEvent, FileEventKind

TASK = "arn:aws:datasync:us-east-1:111122223333:task/task-0123456789abcdef0"
EXECUTION = f"{TASK}/execution/exec-0123456789abcdef0"


def _events(files: int) -> list[FileEvent]:
    out: list[FileEvent] = []
    for i in range(files):
        path = f"/d{i // 100:03d}/file{i:06d}.bin"
        checksum = f"{i:032x}"
        out.append(FileEvent(FileEventKind.TRANSFERRED, path, False, 4096 + i, checksum))
        out.append(FileEvent(FileEventKind.VERIFIED, path, False, 4096 + i, checksum))
    return out


class _Serialising:
    """Stands in for agents.client.JobsClient's post_events: the body (serialised by the
    shipper) is kept for the ingest stage; no network."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    async def post_events(self, thing: str, job_id: str, body: bytes) -> dict[str, Any]:
        self.bodies.append(body)
        return {"stored": 0}


def _cpu(run: Callable[[], object]) -> float:
    start = time.process_time()
    run()
    return time.process_time() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    events = _events(args.files)
    base = Path(tempfile.mkdtemp(prefix="dsl-stages-"))
    best = dict.fromkeys(("report", "ship", "both", "ingest"), float("inf"))
    try:
        document: dict[str, Any] = {
            "TaskArn": TASK,
            "TaskExecutionArn": EXECUTION,
            "Options": {"LogLevel": "TRANSFER"},
            "TaskReportConfig": {
                "Destination": {"S3": {"S3BucketArn": "arn:aws:s3:::reports"}},
                "OutputType": "STANDARD",
                "ReportLevel": "SUCCESSES_AND_ERRORS",
            },
        }
        final = {"Status": "SUCCESS", "FilesTransferred": args.files, "Result": {}}
        store = Store.in_directory(str(base / "data"))
        ingest_log = ExecutionLog(store, LogStore(store))
        execution = {**document, "_LogGroup": "/datasync/stages"}
        for round_ in range(args.repeat):
            bucket = base / f"bucket{round_}"
            bucket.mkdir()

            def report(bucket: Path = bucket) -> None:
                task_report = TaskReport(document, {"reports": str(bucket)})
                for event in events:
                    task_report.on_event(event)
                assert task_report.finish(final) == {"Status": "SUCCESS"}

            client = _Serialising()

            def ship(client: _Serialising = client) -> None:
                shipper = EventShipper(client, "thing", "job", "TRANSFER")  # type: ignore[arg-type]
                for event in events:
                    shipper.sink(event)
                assert asyncio.run(shipper.flush())

            both_bucket = base / f"both{round_}"
            both_bucket.mkdir()

            def both(bucket: Path = both_bucket) -> None:
                task_report = TaskReport(document, {"reports": str(bucket)})
                shipper = EventShipper(_Serialising(), "thing", "job", "TRANSFER")  # type: ignore[arg-type]
                task_report.forward = shipper.take
                for event in events:
                    task_report.on_event(event)
                task_report.drain()
                assert asyncio.run(shipper.flush())
                assert task_report.finish(final) == {"Status": "SUCCESS"}

            best["report"] = min(best["report"], _cpu(report))
            best["ship"] = min(best["ship"], _cpu(ship))
            best["both"] = min(best["both"], _cpu(both))

            def ingest(bodies: list[bytes] = client.bodies) -> None:
                stored = 0
                for body in bodies:
                    stored += ingest_log.ingest(execution, parse_batch(body))
                assert stored == len(events), stored

            best["ingest"] = min(best["ingest"], _cpu(ingest))
        store.close()
    finally:
        shutil.rmtree(base, ignore_errors=True)
    n = len(events)
    print(f"{args.files} files, {n} events, least CPU of {args.repeat} rounds per stage")
    for stage, seconds in best.items():
        print(f"  {stage:7s} {seconds:6.3f} s  {seconds / n * 1e6:6.2f} us/event")
    total = best["report"] + best["ship"] + best["ingest"]
    print(f"  total   {total:6.3f} s  {total / n * 1e6:6.2f} us/event  (report + ship + ingest)")
    total = best["both"] + best["ingest"]
    print(f"  logged  {total:6.3f} s  {total / n * 1e6:6.2f} us/event  (both + ingest: as an agent")
    print("                                    with TRANSFER logs and a report runs them)")


if __name__ == "__main__":
    main()
