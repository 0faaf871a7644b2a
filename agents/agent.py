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

Work items (issue 12, agents/workitems.py): a job is an execution's item 0 or one of its items.
Item 0 plans the split (reporting PREPARING while it walks) and uploads it, or runs the whole
tree as above when it is small; a TRANSFER item runs the engine on its scope and journals the
files it finished; the REMOVE item only deletes. Every report of an item carries its
`executionNumber`; a refusal means it was taken over, and the job is abandoned quietly (the
engine's cancel removes its temporaries). `control:suspend` in a reply cancels the transfer and
the final report acknowledges it (FAILED, `agent:interrupted=SUSPENDED`, the counters so far).

The agent knows the control plane only through the jobs protocol (`agents.client`); it never
imports `api`. `stop()` cancels a running transfer cleanly and waits for its final report.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import anyio

from agents.client import JobsClient, JobsError
from agents.event_shipper import EventShipper
from agents.locations import Mount, resolve_location
from agents.unattended import TaskReport, manifest_filters
from agents.workitems import (
    Journal,
    Work,
    plan_scopes,
    read_journal,
    splittable,
    upload_plan,
    work_for,
)
from contract import Doc
from contract.jobs import (
    COUNTERS_KEY,
    MAX_DETAIL_VALUE,
    PHASE_KEY,
    REPORT_KEY,
    RESULT_KEY,
    SESSION_KEY,
    Control,
    InvalidBytesPerSecond,
    compact,
    encode_report,
)
from contract.workitems import INTERRUPTED_KEY, SUSPEND_KEY, WHOLE_KEY, ItemKind
from engine import DataSyncLocalError, FilterRules, Options
from engine.events import EventSink, FileEvent
from engine.transfer import Transfer

__all__ = ["SESSION_KEY", "Agent", "AgentRevoked", "encode_details"]

log = logging.getLogger("datasync_local.agent")

# the protocol's encoding of a snapshot (kept under its old name for callers of this module)
encode_details = encode_report
_compact = compact
MAX_DETAIL = MAX_DETAIL_VALUE


class AgentRevoked(Exception):
    """The control plane no longer accepts this agent's credentials (deleted, or a new store)."""


@dataclass(frozen=True)
class EngineSettings:
    """How this agent runs the engine, whatever the job: the operator's choices, not the task's.

    `allow_empty_source` lets REMOVE empty a destination whose source root is empty; `fsync`
    flushes data and directory entries around each placement; `hash_cache_dir` keeps
    POINT_IN_TIME_CONSISTENT digests between runs (None: no cache). See engine.Transfer.
    """

    allow_empty_source: bool = False
    fsync: bool = False
    hash_cache_dir: str | None = None


class Agent:
    def __init__(
        self,
        client: JobsClient,
        thing_name: str,
        roots: Sequence[str],
        *,
        mounts: Sequence[Mount] = (),
        buckets: Mapping[str, str] | None = None,
        concurrency: int = 1,
        poll_interval: float = 0.5,
        report_interval: float = 1.0,
        final_report_timeout: float = 120.0,
        stopped_code: str | None = None,
        transfer_niceness: int = 0,
        engine: EngineSettings = EngineSettings(),
    ) -> None:
        self.client = client
        self.thing = thing_name
        self.roots = list(roots)
        self.mounts = list(mounts)
        self.buckets = dict(buckets or {})  # bucket name → directory (contract/buckets.py)
        self.concurrency = max(1, concurrency)
        self.poll_interval = poll_interval
        self.report_interval = report_interval
        self.final_report_timeout = final_report_timeout
        # ErrorCode for a job cut short by stop() rather than by the control plane (None: the
        # engine's own "Cancelled")
        self.stopped_code = stopped_code
        self.transfer_niceness = transfer_niceness  # see engine.Transfer's `niceness`
        self.engine = engine
        self.revoked: AgentRevoked | None = None
        self._stopping = False
        self._wake = anyio.Event()  # set and replaced by _signal(): wakes whoever waits now
        self._pokes = 0  # poke() calls so far: a reporter busy when one came still sees it
        self._transfers: dict[str, Transfer] = {}
        self._cancel_wished: set[int] = set()  # id() of transfers the control plane cancelled
        # id() of transfers the control plane suspended → the phase they were in then
        self._suspended: dict[int, str] = {}
        self._running: set[str] = set()
        self._idle = anyio.Event()
        self._idle.set()

    # lifetime ---------------------------------------------------------------------------------
    async def run(self) -> None:
        """Claim and run jobs (up to `concurrency` at once) until `stop()` or revocation."""
        failures = 0
        async with anyio.create_task_group() as tg:
            while not self._stopping:
                execution = None
                if len(self._running) < self.concurrency:
                    try:
                        execution = await self.client.start_next(
                            self.thing, running=sorted(self._running), slots=self.concurrency
                        )
                        failures = 0
                    except JobsError as exc:
                        if exc.status == 403:
                            log.error("agent %s: credentials refused: %s", self.thing, exc)
                            self.revoked = AgentRevoked(str(exc))
                            self._stopping = True
                            break
                        failures += 1
                        if failures in (1, 10) or failures % 100 == 0:
                            log.warning("agent %s: cannot claim work: %s", self.thing, exc)
                    except Exception as exc:  # the server may be restarting: back off, retry
                        failures += 1
                        if failures in (1, 10) or failures % 100 == 0:
                            log.warning("agent %s: cannot claim work: %s", self.thing, exc)
                if execution is not None and not self._stopping:
                    job_id = str(execution.get("jobId"))
                    self._running.add(job_id)
                    self._idle = anyio.Event()
                    tg.start_soon(self._guarded, execution)
                    continue
                delay = self.poll_interval * min(10, 2 ** min(failures, 4)) if failures else 0
                with anyio.move_on_after(delay or self.poll_interval):
                    await self._wake.wait()
            for transfer in list(self._transfers.values()):
                transfer.cancel()

    async def _guarded(self, execution: Doc) -> None:
        job_id = str(execution.get("jobId"))
        try:
            await self.run_job(execution)
        except Exception as exc:  # a bug of ours: fail the job, don't re-run it forever
            log.exception("agent %s: job %s failed", self.thing, job_id)
            result = {"ErrorCode": "AgentError", "ErrorDetail": f"{type(exc).__name__}: {exc}"}
            await self._report(
                job_id, "FAILED", {"phase": "ERROR", "result": _compact(result)[:MAX_DETAIL]}
            )
        finally:
            self._running.discard(job_id)
            if not self._running:
                self._idle.set()
            self._signal()  # a slot is free: look for more work now

    async def stop(self, timeout: float = 30.0) -> None:
        """Stop claiming; cancel running transfers and wait (bounded) for their final reports."""
        self._stopping = True
        self._signal()
        for transfer in list(self._transfers.values()):
            transfer.cancel()
        with anyio.move_on_after(timeout):
            await self._idle.wait()

    def poke(self) -> None:
        """The control plane wants something: look for work now, or read the running jobs'
        state (and so hear the wish) now instead of at the next report."""
        self._pokes += 1
        self._signal()

    def _signal(self) -> None:
        """Wake every task waiting now. The event is replaced here, and only here: a waiter
        replacing it could swallow a poke meant for another one (a rate change then waited
        for the next periodic report, ~0.7 s)."""
        self._wake.set()
        self._wake = anyio.Event()

    # one job ----------------------------------------------------------------------------------
    async def run_job(self, execution: Doc) -> None:
        job_id = str(execution["jobId"])
        version: int | None = execution.get("versionNumber")
        raw_number = execution.get("executionNumber")
        # the claim's fencing epoch (contract/workitems.py), sent with every report
        number = raw_number if isinstance(raw_number, int) else None
        document = json.loads(execution.get("jobDocument") or "{}")
        # who runs this job now: a restarted or partitioned copy of this agent that finds
        # another session in the state abandons the job instead of overwriting newer state
        session = secrets.token_hex(8)
        try:
            source = resolve_location(document["Source"], self.roots, self.mounts)
            destination = resolve_location(document["Destination"], self.roots, self.mounts)
            options = Options.create(document.get("Options"), task_mode=document["TaskMode"])
            filters = FilterRules.from_rules(
                document.get("Includes") or None, document.get("Excludes") or None
            )
            filters = manifest_filters(document.get("ManifestConfig") or {}, self.buckets, filters)
            shipper = EventShipper(
                self.client, self.thing, job_id, str(options.to_dict().get("LogLevel", "OFF"))
            )
            work = work_for(document, options)
            report = (
                await anyio.to_thread.run_sync(TaskReport, document, self.buckets)
                if document.get("TaskReportConfig")
                else None
            )
        except (DataSyncLocalError, KeyError, ValueError, TypeError) as exc:
            code = "LocationError" if "Location" in type(exc).__name__ else "InvalidJobDocument"
            result = {"ErrorCode": code, "ErrorDetail": str(exc)}
            await self._report(
                job_id,
                "FAILED",
                {"phase": "ERROR", "result": _compact(result)},
                version,
                session,
                number,
            )
            return
        if work.assignment.kind is ItemKind.PREPARE:
            if splittable(document):
                planned = await self._prepare(job_id, source, work, version, number, session)
                if planned is None:
                    return  # the plan is uploaded and item 0 reported (or the job was lost)
                version = planned
            version = await self._mark_whole(job_id, version, session, number)
        # A work item is fenced by its executionNumber alone: a version conflict on it means it
        # was taken over (never that the control plane lost our reports), so no expectedVersion
        fenced = work.assignment.index > 0 and number is not None
        if fenced:
            version = None
        journal: Journal | None = None
        done: set[str] = set()
        if work.journaled and number is not None:
            if number > 1:  # a resume or a takeover: what earlier claims finished
                try:
                    done = await read_journal(self.client, self.thing, job_id)
                except JobsError as exc:
                    if not exc.transient:
                        log.warning("agent %s: job %s: %s; abandoning it", self.thing, job_id, exc)
                        return
                    log.warning("agent %s: no journal for %s: %s", self.thing, job_id, exc)
                except Exception as exc:  # unreachable: the files are compared instead
                    log.warning("agent %s: no journal for %s: %s", self.thing, job_id, exc)
            journal = Journal(self.client, self.thing, job_id, number, done)
        # one record per file for the report and the log: the report's writer thread hands
        # the shipper each batch it wrote (agents/unattended.py), the engine appends once
        forwarded = report is not None and shipper.active
        if forwarded and report is not None:
            report.forward = shipper.take
        transfer = Transfer(
            source,
            destination,
            work.options,
            filters,
            niceness=self.transfer_niceness,
            allow_empty_source=self.engine.allow_empty_source,
            fsync=self.engine.fsync,
            hash_cache_dir=self.engine.hash_cache_dir,
            on_event=_sinks(
                report.on_event if report else None,
                shipper.sink if shipper.active and not forwarded else None,
                journal.sink if journal else None,
            ),
            scope=work.scope,
            done=done,
            deletes_only=work.deletes_only,
        )
        self._transfers[job_id] = transfer
        abandoned = False
        try:
            self._apply(transfer, execution.get("statusDetails") or {})
            async with anyio.create_task_group() as tg:

                async def reporter() -> None:
                    nonlocal version, abandoned
                    # A work item's claim renewed its lease and its phase changes are no news
                    # worth a request of their own (the execution's phase moves with the first
                    # item's), so an item reports when due: a short item (most of a tree of
                    # many small top-level directories) costs its claim and its final report.
                    last_phase, last_sent = "", time.monotonic() if fenced else 0.0
                    seen = self._pokes
                    while True:
                        if self._pokes == seen:
                            with anyio.move_on_after(min(0.2, self.report_interval)):
                                await self._wake.wait()
                        poked, seen = self._pokes != seen, self._pokes
                        snapshot = transfer.snapshot()
                        phase = str(snapshot.get("Status"))
                        if phase in ("SUCCESS", "ERROR"):
                            continue
                        now = time.monotonic()
                        due = now - last_sent >= self.report_interval
                        news = phase != last_phase and not fenced
                        if not news and not due and not poked:
                            continue
                        if not news and not due:
                            # poked: the control plane has news (a rate, a cancel). Read the
                            # job's state to learn it; nothing new to report, so write nothing.
                            try:
                                state = await self.client.describe(self.thing, job_id)
                            except Exception as exc:  # the next report hears it instead
                                log.warning("agent %s: cannot read job state: %s", self.thing, exc)
                                continue
                            execution = state.get("execution") or {}
                            self._apply(transfer, execution.get("statusDetails") or {})
                            continue
                        last_phase, last_sent = phase, now
                        details = {**encode_details(snapshot), SESSION_KEY: session}
                        try:
                            state = await self.client.update(
                                self.thing, job_id, "IN_PROGRESS", details, version, number
                            )
                        except JobsError as exc:
                            if exc.transient:
                                log.warning("agent %s: cannot report: %s", self.thing, exc)
                                continue
                            state = exc.body.get("executionState") or {}
                            if exc.code != "VersionMismatch" or _foreign(state, session) or fenced:
                                log.warning(
                                    "agent %s: job %s: %s; abandoning it", self.thing, job_id, exc
                                )
                                abandoned = True
                                transfer.cancel()
                                return
                            # the control plane lost our last reports (a restart): carry on
                        except Exception as exc:  # server unreachable: keep going, retry later
                            log.warning("agent %s: cannot report: %s", self.thing, exc)
                            continue
                        if not fenced:
                            version = state.get("versionNumber", version)
                        self._apply(transfer, state.get("statusDetails") or {})

                tg.start_soon(reporter)
                if shipper.active:
                    tg.start_soon(shipper.run)
                if journal is not None:
                    tg.start_soon(journal.run, self.report_interval)
                final = await transfer.run()
                tg.cancel_scope.cancel()
            if shipper.active and not abandoned:  # the log's file events before the end
                if forwarded and report is not None:
                    await anyio.to_thread.run_sync(report.drain)  # the last ones it holds
                await shipper.flush()
            if journal is not None and not abandoned and final.get("Status") != "SUCCESS":
                for attempt in range(3):  # what a resume or a retry will not redo
                    if await journal.flush(everything=True) or journal.stopped:
                        break
                    await anyio.sleep(0.2 * (attempt + 1))
        finally:
            self._transfers.pop(job_id, None)
            wished = id(transfer) in self._cancel_wished
            self._cancel_wished.discard(id(transfer))
            suspended_in = self._suspended.pop(id(transfer), None)
        if abandoned:
            if report is not None:
                report.discard()
            return
        if suspended_in and final.get("Status") != "SUCCESS":
            # the acknowledgement of a suspend: the counters so far, the phase it stopped in,
            # no error (the control plane holds the item SUSPENDED, not failed)
            details = {**encode_details(final), SESSION_KEY: session}
            details[PHASE_KEY] = suspended_in
            result = {
                k: v
                for k, v in (final.get("Result") or {}).items()
                if k not in ("ErrorCode", "ErrorDetail")
            }
            details[RESULT_KEY] = _compact(result)[:MAX_DETAIL]
            details[INTERRUPTED_KEY] = "SUSPENDED"
            if report is not None:
                report.discard()
            await self._report(job_id, "FAILED", details, version, session, number)
            return
        status = "SUCCEEDED" if final.get("Status") == "SUCCESS" else "FAILED"
        if status == "FAILED" and self._stopping and not wished and self.stopped_code:
            final = {
                **final,
                "Result": {
                    **(final.get("Result") or {}),
                    "ErrorCode": self.stopped_code,
                    "ErrorDetail": f"Agent {self.thing} was stopped during this execution "
                    "(temporaries removed); start the execution again.",
                },
            }
        details = {**encode_details(final), SESSION_KEY: session}
        if report is not None:
            report_result = await anyio.to_thread.run_sync(report.finish, final)
            details[REPORT_KEY] = _compact(report_result)[:MAX_DETAIL]
        await self._report(job_id, status, details, version, session, number)

    async def _prepare(
        self,
        job_id: str,
        source: str,
        work: Work,
        version: int | None,
        number: int | None,
        session: str,
    ) -> int | None:
        """Item 0: plan the split (on a thread, reporting PREPARING meanwhile so the claim stays
        alive), upload it and report item 0 SUCCEEDED. None when item 0 is over (planned, or
        lost to a takeover); else the job's version, to run the whole tree in item 0 as before
        items (a small tree, or a control plane without the plan route)."""
        details = {PHASE_KEY: "PREPARING", COUNTERS_KEY: "{}", SESSION_KEY: session}
        lost = False

        async def heartbeat() -> None:
            nonlocal version, lost
            for _ in range(1_000_000):  # until planned: a tree of any size, bounded anyway
                # a small tree is planned long before the first beat: it costs no request
                await anyio.sleep(self.report_interval)
                try:
                    state = await self.client.update(
                        self.thing, job_id, "IN_PROGRESS", details, version, number
                    )
                    version = state.get("versionNumber", version)
                except JobsError as exc:
                    state = exc.body.get("executionState") or {}
                    if exc.code == "VersionMismatch" and not _foreign(state, session):
                        version = state.get("versionNumber", version)
                        continue
                    if not exc.transient:
                        log.warning("agent %s: job %s: %s; abandoning it", self.thing, job_id, exc)
                        lost = True
                        return
                except Exception as exc:
                    log.warning("agent %s: cannot report: %s", self.thing, exc)

        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(heartbeat)
                scopes = await anyio.to_thread.run_sync(plan_scopes, source, work.assignment)
                tg.cancel_scope.cancel()
        except OSError as exc:  # the source cannot be read: the engine reports it, as before
            log.info("agent %s: cannot plan %s: %s", self.thing, job_id, exc)
            return version if not lost else None
        if lost:
            return None
        if scopes is None or number is None:
            return version
        for attempt in range(1, 11):  # the server may be restarting: bounded retries
            try:
                if not await upload_plan(self.client, self.thing, job_id, number, scopes):
                    return version
                break
            except JobsError as exc:
                if not exc.transient or attempt == 10:
                    log.warning("agent %s: plan of %s refused: %s", self.thing, job_id, exc)
                    return None
            except Exception as exc:
                if attempt == 10:
                    log.warning(
                        "agent %s: cannot upload the plan of %s: %s", self.thing, job_id, exc
                    )
                    return None
            await anyio.sleep(min(5.0, 0.25 * attempt))
        log.info("agent %s: %s split into %d items", self.thing, job_id, len(scopes))
        await self._report(job_id, "SUCCEEDED", details, version, session, number)
        return None

    async def _mark_whole(
        self, job_id: str, version: int | None, session: str, number: int | None
    ) -> int | None:
        """Tell the control plane that item 0 runs the whole tree itself (`WHOLE_KEY`), before
        it copies anything: such a run cannot be suspended, so an operator's suspend wish kept
        for the plan is withdrawn with its reason, and later ones are refused, instead of
        being accepted and never applied. One request; a failure only leaves the wish to the
        control plane's fallback (the phase moving past PREPARING)."""
        details = {
            PHASE_KEY: "PREPARING",
            COUNTERS_KEY: "{}",
            SESSION_KEY: session,
            WHOLE_KEY: "true",
        }
        for _ in range(3):
            try:
                state = await self.client.update(
                    self.thing, job_id, "IN_PROGRESS", details, version, number
                )
                new: int | None = state.get("versionNumber", version)
                return new
            except JobsError as exc:
                state = exc.body.get("executionState") or {}
                if exc.code == "VersionMismatch" and not _foreign(state, session):
                    version = state.get("versionNumber", version)
                    continue
                log.warning(
                    "agent %s: job %s: cannot say it runs whole: %s", self.thing, job_id, exc
                )
                return version
            except Exception as exc:
                log.warning("agent %s: cannot report: %s", self.thing, exc)
                return version
        return version

    def _apply(self, transfer: Transfer, details: dict[str, str]) -> None:
        """Carry out the control plane's wishes from a reply's statusDetails."""
        try:
            control = Control.from_details(details)
        except InvalidBytesPerSecond as exc:
            log.warning("agent %s: ignoring the control plane's wish: %s", self.thing, exc)
            return
        if details.get(SUSPEND_KEY) == "true" and id(transfer) not in self._suspended:
            phase = str(transfer.snapshot().get("Status"))
            self._suspended[id(transfer)] = phase if phase not in ("SUCCESS", "ERROR") else ""
            transfer.cancel()  # files in flight go back to temporaries, removed
        if control is None:
            return
        if control.cancel:
            self._cancel_wished.add(id(transfer))
            transfer.cancel()
        rate = control.bytes_per_second
        if rate is not None and rate != transfer.bytes_per_second:
            try:
                transfer.set_bytes_per_second(rate)
            except (ValueError, DataSyncLocalError) as exc:
                log.warning("agent %s: ignoring BytesPerSecond %r: %s", self.thing, rate, exc)

    async def _report(
        self,
        job_id: str,
        status: str,
        details: dict[str, str],
        version: int | None = None,
        session: str | None = None,
        number: int | None = None,
    ) -> None:
        """The final report, retried (bounded in time) while the server is unreachable."""
        deadline = time.monotonic() + self.final_report_timeout
        attempt = 0
        while True:
            attempt += 1
            try:
                await self.client.update(self.thing, job_id, status, details, version, number)
                return
            except JobsError as exc:
                state = exc.body.get("executionState") or {}
                fenced = version is None and number is not None and "-i" in job_id
                if (
                    exc.code == "VersionMismatch"
                    and attempt < 10
                    and not _foreign(state, session)
                    and not fenced
                ):
                    version = state.get("versionNumber")
                    continue
                if not exc.transient:
                    log.warning("agent %s: final report of %s refused: %s", self.thing, job_id, exc)
                    return
                error: Exception = exc
            except Exception as exc:
                error = exc
            if time.monotonic() > deadline or (self._stopping and attempt >= 5):
                log.warning("agent %s: gave up reporting %s: %s", self.thing, job_id, error)
                return
            if attempt in (1, 10) or attempt % 50 == 0:
                log.warning("agent %s: cannot report %s yet: %s", self.thing, job_id, error)
            await anyio.sleep(min(5.0, 0.25 * attempt))


def _sinks(*candidates: EventSink | None) -> EventSink | None:
    """The engine's one sink: the task report, the execution log and the work item's journal,
    whichever want events."""
    sinks = [s for s in candidates if s is not None]
    if not sinks:
        return None
    if len(sinks) == 1:
        return sinks[0]

    def both(event: FileEvent) -> None:
        for sink in sinks:
            sink(event)

    return both


def _foreign(state: Doc, session: str | None) -> bool:
    """Does the server's state show another run of this job (another session) than ours?"""
    theirs = (state.get("statusDetails") or {}).get(SESSION_KEY)
    return session is not None and theirs is not None and theirs != session
