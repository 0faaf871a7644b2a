"""The agents' protocol: the AWS IoT Jobs data plane (rest-json), over the executions.

    GET  /things/{thing}/jobs            GetPendingJobExecutions
    PUT  /things/{thing}/jobs/$next      StartNextPendingJobExecution (claim, FIFO per agent)
    GET  /things/{thing}/jobs/{jobId}    DescribeJobExecution
    POST /things/{thing}/jobs/{jobId}    UpdateJobExecution (phase + counters, expectedVersion)

A thing is an agent (`agent-<17 hex>`), a job is one task execution (`exec-<17 hex>`). An agent
runs one job at a time: `$next` hands back its IN_PROGRESS job if it has one (re-attach), else
claims the oldest QUEUED one. An agent allowed several (`--concurrency`) names the jobs it runs
and its slots in the `$next` statusDetails (`agent:running`, `agent:slots`). Every call is a heartbeat. The lease of an IN_PROGRESS job is the
agent timeout or `stepTimeoutInMinutes`, whichever is longer; when it runs out the job is
TIMED_OUT and the execution ends in ERROR (`AgentTimeout`). Replies carry the control plane's
wishes in `statusDetails` (see `api.lifecycle`).
"""

from __future__ import annotations

from api import lifecycle
from api.errors import (
    InvalidRequestException,
    InvalidStateTransitionException,
    ResourceNotFoundException,
    VersionConflictException,
)
from api.models import Backend
from api.validation import validate_input
from contract import Doc
from contract.jobs import DEVICE_STATUSES, MAX_DETAIL_VALUE, RUNNING_KEY, SLOTS_KEY

__all__ = ["CANCEL_GRACE_SECONDS", "RUNNING_KEY", "SLOTS_KEY", "Jobs"]

CANCEL_GRACE_SECONDS = 30.0
_DEVICE_STATUSES = DEVICE_STATUSES


def _job_id(doc: Doc) -> str:
    return str(doc["TaskExecutionArn"].rsplit("/", 1)[1])


class Jobs:
    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.store = backend.store

    def _agent(self, thing: str) -> str:
        arn = self.backend.arn(f"agent/{thing}")
        if self.store.get("agent", arn) is None:
            # registered under another region or account (the server's flags changed since)
            suffix = f":agent/{thing}"
            found = [
                a["AgentArn"] for a in self.store.all("agent") if a["AgentArn"].endswith(suffix)
            ]
            if not found:
                raise ResourceNotFoundException(f"Thing {thing} is not a registered agent.")
            arn = found[0]
        self.backend.touch_agent(arn)
        return arn

    def _job(self, thing: str, job_id: str) -> Doc:
        agent = self._agent(thing)
        doc = self.store.execution_by_id(agent, job_id)
        if doc is None or _job_id(doc) != job_id:
            raise ResourceNotFoundException(f"Job {job_id} is not found for thing {thing}.")
        return doc

    def _details(self, doc: Doc) -> dict[str, str]:
        return {**doc["Job"]["statusDetails"], **lifecycle.control_details(doc)}

    def _state(self, doc: Doc) -> Doc:
        job = doc["Job"]
        return {
            "status": job["status"],
            "statusDetails": self._details(doc),
            "versionNumber": job["versionNumber"],
        }

    @staticmethod
    def _summary(doc: Doc) -> Doc:
        """The JobExecutionSummary members; a JobExecution has these and more."""
        job = doc["Job"]
        out: Doc = {
            "jobId": _job_id(doc),
            "queuedAt": job["queuedAt"],
            "lastUpdatedAt": job["lastUpdatedAt"],
            "versionNumber": job["versionNumber"],
            "executionNumber": job["executionNumber"],
        }
        if "startedAt" in job:
            out["startedAt"] = job["startedAt"]
        return out

    def execution(self, thing: str, doc: Doc, include_document: bool = True) -> Doc:
        job = doc["Job"]
        out: Doc = {
            **self._summary(doc),
            "thingName": thing,
            "status": job["status"],
            "statusDetails": self._details(doc),
        }
        if "leaseExpiresAt" in job:
            out["approximateSecondsBeforeTimedOut"] = max(
                0, int(job["leaseExpiresAt"] - self.backend.now())
            )
        if include_document:
            out["jobDocument"] = lifecycle.job_document(doc).to_json()
        return out

    # operations -------------------------------------------------------------------------------
    def get_pending(self, thing: str) -> Doc:
        validate_input("GetPendingJobExecutions", {"thingName": thing}, "iot-jobs-data")
        agent = self._agent(thing)
        summaries: dict[str, list[Doc]] = {"inProgressJobs": [], "queuedJobs": []}
        for doc in self.store.executions(agent_arn=agent, active=True):
            job = doc["Job"]
            key = {"IN_PROGRESS": "inProgressJobs", "QUEUED": "queuedJobs"}.get(job["status"])
            if key is None:
                continue
            summaries[key].append(self._summary(doc))
        return summaries

    def start_next(self, thing: str, body: Doc) -> Doc:
        validate_input(
            "StartNextPendingJobExecution", {"thingName": thing, **body}, "iot-jobs-data"
        )
        agent = self._agent(thing)
        now = self.backend.now()
        lease = self.backend.config.agent_timeout
        details = dict(body.get("statusDetails") or {})
        # An agent running several jobs says which it runs and how many it may: then $next hands
        # back an IN_PROGRESS job it does not run (re-attach after its restart), else claims a
        # QUEUED one while it has a free slot. Without these, one job at a time.
        running_ids = set(details.pop(RUNNING_KEY, "").replace(",", " ").split()) - {"-"}
        try:
            slots = max(1, int(details.pop(SLOTS_KEY, "1")))
        except ValueError:
            raise InvalidRequestException(
                f"statusDetails.{SLOTS_KEY} must be an integer."
            ) from None
        running = self.store.executions(agent_arn=agent, active=True, job_status="IN_PROGRESS")
        orphans = [d for d in running if _job_id(d) not in running_ids]
        if orphans:
            doc = orphans[0]
            lifecycle.renew_lease(doc, now, body.get("stepTimeoutInMinutes"), lease)
            self.store.save_execution(doc)
            return {"execution": self.execution(thing, doc)}
        if len(running) >= slots:
            return {}
        queued = self.store.executions(agent_arn=agent, active=True, job_status="QUEUED")
        if not queued:
            return {}
        doc = queued[0]
        lifecycle.claim(doc, now, body.get("stepTimeoutInMinutes"), lease)
        if details:
            doc["Job"]["statusDetails"] = details
        self.store.save_execution(doc)
        return {"execution": self.execution(thing, doc)}

    def describe(self, thing: str, job_id: str, include_document: bool) -> Doc:
        if job_id == "$next":
            pending = self.get_pending(thing)
            first = (pending["inProgressJobs"] or pending["queuedJobs"] or [None])[0]
            if first is None:
                raise ResourceNotFoundException(f"Thing {thing} has no pending job.")
            job_id = first["jobId"]
        validate_input(
            "DescribeJobExecution", {"thingName": thing, "jobId": job_id}, "iot-jobs-data"
        )
        return {"execution": self.execution(thing, self._job(thing, job_id), include_document)}

    def update(self, thing: str, job_id: str, body: Doc) -> Doc:
        validate_input(
            "UpdateJobExecution", {"thingName": thing, "jobId": job_id, **body}, "iot-jobs-data"
        )
        for key, value in (body.get("statusDetails") or {}).items():
            if len(value) > MAX_DETAIL_VALUE:
                raise InvalidRequestException(
                    f"statusDetails.{key} must have at most {MAX_DETAIL_VALUE} characters."
                )
        doc = self._job(thing, job_id)
        job = doc["Job"]
        status = body["status"]
        if status not in _DEVICE_STATUSES:
            raise InvalidRequestException(
                f"status must be one of {', '.join(_DEVICE_STATUSES)}; {status} is set by the "
                "service."
            )
        if job["status"] in lifecycle.JOB_TERMINAL:
            raise InvalidStateTransitionException(
                f"Job {job_id} is {job['status']}, a terminal state; it cannot become {status}.",
                self._state(doc),
            )
        expected = body.get("expectedVersion")
        if expected is not None and expected != job["versionNumber"]:
            raise VersionConflictException(
                f"expectedVersion {expected} does not match the current version "
                f"{job['versionNumber']}.",
                self._state(doc),
            )
        now = self.backend.now()
        if job["status"] == "QUEUED":
            busy = self.store.executions(
                agent_arn=doc["AgentArn"], active=True, job_status="IN_PROGRESS"
            )
            if busy:
                raise InvalidStateTransitionException(
                    f"Thing {thing} already runs job {_job_id(busy[0])}.", self._state(doc)
                )
            lifecycle.claim(
                doc, now, body.get("stepTimeoutInMinutes"), self.backend.config.agent_timeout
            )
        else:
            lifecycle.renew_lease(
                doc, now, body.get("stepTimeoutInMinutes"), self.backend.config.agent_timeout
            )
        details = {**job["statusDetails"], **body.get("statusDetails", {})}
        lifecycle.apply_report(doc, status, details, now)
        self.store.save_execution(doc)
        out: Doc = {}
        if body.get("includeJobExecutionState"):
            out["executionState"] = self._state(doc)
        if body.get("includeJobDocument"):
            out["jobDocument"] = lifecycle.job_document(doc).to_json()
        return out

    # housekeeping -----------------------------------------------------------------------------
    def reap(self) -> int:
        """Time out lost agents' jobs and force-end cancels nobody acted on; returns how many."""
        now = self.backend.now()
        ended = 0
        for doc in self.store.executions(active=True, job_status="IN_PROGRESS"):
            job = doc["Job"]
            cancelled_at = doc.get("CancelRequestedAt")
            if cancelled_at is not None and now - cancelled_at > CANCEL_GRACE_SECONDS:
                lifecycle.finish(
                    doc, "ERROR", now, "Cancelled", "The task execution was cancelled."
                )
            elif job.get("leaseExpiresAt", now + 1) < now:
                silent = now - job.get("lastUpdatedAt", now)
                lifecycle.finish(
                    doc,
                    "ERROR",
                    now,
                    "AgentTimeout",
                    f"The agent was lost: {doc['AgentArn']} sent no report for this execution "
                    f"for {silent:.0f} s (the agent timeout is "
                    f"{self.backend.config.agent_timeout:g} s).",
                )
            else:
                continue
            self.store.save_execution(doc)
            ended += 1
        return ended
