"""The agent: claim a job, resolve its locations, run the engine, report until it ends.

    loop: PUT $next ──none──▶ sleep(poll_interval)
            │ job
            ▼
          resolve Source/Destination inside --roots ──fail──▶ report FAILED (ErrorCode)
            ▼
          Transfer.run()  ∥  reporter: every report_interval, and at each phase change,
            │                POST IN_PROGRESS {phase, counters, result} with expectedVersion;
            │                the reply's statusDetails carry control:bytesPerSecond / control:cancel
            ▼
          report SUCCEEDED | FAILED with the final snapshot

The agent knows the control plane only through the jobs protocol (`agents.client`); it never
imports `api`. `stop()` cancels a running transfer cleanly and waits for its final report.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from typing import Any

import anyio

from agents.client import JobsClient, JobsError
from agents.locations import resolve_location
from engine import DataSyncLocalError, FilterRules, Options
from engine.transfer import Transfer

__all__ = ["Agent", "encode_details"]

log = logging.getLogger("datasync_local.agent")

Doc = dict[str, Any]
MAX_DETAIL = 1024


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def encode_details(snapshot: Doc) -> dict[str, str]:
    """statusDetails for a snapshot: ``phase``, ``counters`` and ``result`` (each ≤ 1024 chars)."""
    counters = {k: v for k, v in snapshot.items() if k not in ("Status", "Result")}
    result = dict(snapshot.get("Result") or {})
    encoded_result = _compact(result)
    if len(encoded_result) > MAX_DETAIL and "ErrorDetail" in result:
        overflow = len(encoded_result) - MAX_DETAIL + 3
        result["ErrorDetail"] = str(result["ErrorDetail"])[: max(0, -overflow)] + "..."
        encoded_result = _compact(result)
    encoded_counters = _compact(counters)
    if len(encoded_counters) > MAX_DETAIL:  # keep the flat counters, drop the nested ones
        encoded_counters = _compact({k: v for k, v in counters.items() if isinstance(v, int)})
    return {
        "phase": str(snapshot.get("Status", "LAUNCHING")),
        "counters": encoded_counters,
        "result": encoded_result[:MAX_DETAIL],
    }


class Agent:
    def __init__(
        self,
        client: JobsClient,
        thing_name: str,
        roots: Sequence[str],
        *,
        poll_interval: float = 0.5,
        report_interval: float = 1.0,
    ) -> None:
        self.client = client
        self.thing = thing_name
        self.roots = list(roots)
        self.poll_interval = poll_interval
        self.report_interval = report_interval
        self._stopping = False
        self._wake = anyio.Event()
        self._transfer: Transfer | None = None
        self._idle = anyio.Event()
        self._idle.set()

    # lifetime ---------------------------------------------------------------------------------
    async def run(self) -> None:
        """Claim and run jobs until `stop()`."""
        failures = 0
        while not self._stopping:
            try:
                execution = await self.client.start_next(self.thing)
                failures = 0
            except Exception as exc:  # the server may be restarting: back off, keep trying
                failures += 1
                if failures in (1, 10) or failures % 100 == 0:
                    log.warning("agent %s: cannot claim work: %s", self.thing, exc)
                execution = None
            if execution is not None and not self._stopping:
                self._idle = anyio.Event()
                try:
                    await self.run_job(execution)
                except Exception as exc:  # a bug of ours: fail the job, don't re-run it forever
                    log.exception("agent %s: job %s failed", self.thing, execution.get("jobId"))
                    result = {
                        "ErrorCode": "AgentError",
                        "ErrorDetail": f"{type(exc).__name__}: {exc}",
                    }
                    await self._report(
                        str(execution.get("jobId")),
                        "FAILED",
                        {"phase": "ERROR", "result": _compact(result)[:MAX_DETAIL]},
                    )
                finally:
                    self._idle.set()
                continue
            delay = self.poll_interval * min(10, 2 ** min(failures, 4)) if failures else 0
            with anyio.move_on_after(delay or self.poll_interval):
                await self._wake.wait()
            self._wake = anyio.Event()

    async def stop(self, timeout: float = 30.0) -> None:
        """Stop claiming; cancel a running transfer and wait (bounded) for its final report."""
        self._stopping = True
        self._wake.set()
        if self._transfer is not None:
            self._transfer.cancel()
        with anyio.move_on_after(timeout):
            await self._idle.wait()

    def poke(self) -> None:
        """The control plane wants something: look for work now, or report (and so hear the
        wish in the reply) now instead of at the next interval."""
        self._wake.set()

    # one job ----------------------------------------------------------------------------------
    async def run_job(self, execution: Doc) -> None:
        job_id = str(execution["jobId"])
        version: int | None = execution.get("versionNumber")
        document = json.loads(execution.get("jobDocument") or "{}")
        try:
            source = resolve_location(document["Source"], self.roots)
            destination = resolve_location(document["Destination"], self.roots)
            options = Options.create(document.get("Options"), task_mode=document["TaskMode"])
            filters = FilterRules.from_rules(
                document.get("Includes") or None, document.get("Excludes") or None
            )
            transfer = Transfer(source, destination, options, filters)
        except (DataSyncLocalError, KeyError, ValueError) as exc:
            code = "LocationError" if "Location" in type(exc).__name__ else "InvalidJobDocument"
            result = {"ErrorCode": code, "ErrorDetail": str(exc)}
            await self._report(job_id, "FAILED", {"phase": "ERROR", "result": _compact(result)})
            return
        self._transfer = transfer
        abandoned = False
        try:
            self._apply(transfer, execution.get("statusDetails") or {})
            async with anyio.create_task_group() as tg:

                async def reporter() -> None:
                    nonlocal version, abandoned
                    last_phase, last_sent = "", 0.0
                    while True:
                        poked = False
                        with anyio.move_on_after(min(0.2, self.report_interval)):
                            await self._wake.wait()
                            poked = True
                        if poked:
                            self._wake = anyio.Event()
                        snapshot = transfer.snapshot()
                        phase = str(snapshot.get("Status"))
                        if phase in ("SUCCESS", "ERROR"):
                            continue
                        now = time.monotonic()
                        due = now - last_sent >= self.report_interval
                        if phase == last_phase and not due and not poked:
                            continue
                        last_phase, last_sent = phase, now
                        try:
                            state = await self.client.update(
                                self.thing, job_id, "IN_PROGRESS", encode_details(snapshot), version
                            )
                        except JobsError as exc:
                            state = exc.body.get("executionState") or {}
                            if exc.code != "VersionMismatch":
                                log.warning("agent %s: job %s: %s", self.thing, job_id, exc)
                                abandoned = True
                                transfer.cancel()
                                return
                        except Exception as exc:  # server unreachable: keep going, retry later
                            log.warning("agent %s: cannot report: %s", self.thing, exc)
                            continue
                        version = state.get("versionNumber", version)
                        self._apply(transfer, state.get("statusDetails") or {})

                tg.start_soon(reporter)
                final = await transfer.run()
                tg.cancel_scope.cancel()
        finally:
            self._transfer = None
        if abandoned:
            return
        status = "SUCCEEDED" if final.get("Status") == "SUCCESS" else "FAILED"
        await self._report(job_id, status, encode_details(final), version)

    def _apply(self, transfer: Transfer, details: dict[str, str]) -> None:
        """Carry out the control plane's wishes from a reply's statusDetails."""
        if details.get("control:cancel") == "true":
            transfer.cancel()
        wanted = details.get("control:bytesPerSecond")
        if wanted is not None:
            try:
                rate = int(wanted)
                if rate != transfer.bytes_per_second:
                    transfer.set_bytes_per_second(rate)
            except (ValueError, DataSyncLocalError) as exc:
                log.warning("agent %s: ignoring BytesPerSecond %r: %s", self.thing, wanted, exc)

    async def _report(
        self, job_id: str, status: str, details: dict[str, str], version: int | None = None
    ) -> None:
        for attempt in range(5):
            try:
                await self.client.update(self.thing, job_id, status, details, version)
                return
            except JobsError as exc:
                if exc.code == "VersionMismatch":
                    version = (exc.body.get("executionState") or {}).get("versionNumber")
                    continue
                log.warning("agent %s: final report of %s refused: %s", self.thing, job_id, exc)
                return
            except Exception as exc:
                log.warning(
                    "agent %s: cannot report %s (attempt %d): %s", self.thing, job_id, attempt, exc
                )
                await anyio.sleep(0.5 * (attempt + 1))
