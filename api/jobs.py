"""The agents' protocol: the AWS IoT Jobs data plane (rest-json), over the executions.

    GET  /things/{thing}/jobs            GetPendingJobExecutions
    PUT  /things/{thing}/jobs/$next      StartNextPendingJobExecution (claim, FIFO per agent)
    GET  /things/{thing}/jobs/{jobId}    DescribeJobExecution
    POST /things/{thing}/jobs/{jobId}    UpdateJobExecution (phase + counters, expectedVersion)

A thing is an agent (`agent-<17 hex>`), a job is one task execution (`exec-<17 hex>`). This
module speaks the protocol; which job an agent gets, leases, step timers and takeovers are decided
by `api.scheduler` alone. `$next` is the one way to claim a job; `UpdateJobExecution` reports on a
claimed one (a QUEUED job is refused) and is a heartbeat. `executionNumber`, when given, must be the
job's current one (a job taken over from a lost agent has the next). Replies carry the control
plane's wishes in `statusDetails` (`contract.jobs.Control`).
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
from api.scheduler import CANCEL_GRACE_SECONDS, change_execution
from api.validation import validate_input
from contract import Doc
from contract.jobs import DEVICE_STATUSES, MAX_DETAIL_VALUE, RUNNING_KEY, SLOTS_KEY

__all__ = ["CANCEL_GRACE_SECONDS", "RUNNING_KEY", "SLOTS_KEY", "Jobs"]
_DEVICE_STATUSES = DEVICE_STATUSES


_job_id = lifecycle.job_id


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

    def _job(self, thing: str, job_id: str, execution_number: int | None = None) -> Doc:
        agent = self._agent(thing)
        doc = self.store.execution_by_id(agent, job_id)
        if doc is None or _job_id(doc) != job_id:
            raise ResourceNotFoundException(f"Job {job_id} is not found for thing {thing}.")
        current = doc["Job"]["executionNumber"]
        if execution_number is not None and execution_number != current:
            # an earlier run of this job (its agent was lost and it was offered again)
            raise ResourceNotFoundException(
                f"Job {job_id} of thing {thing} has no execution number {execution_number}; "
                f"its current execution number is {current}."
            )
        return doc

    def job(self, thing: str, job_id: str) -> Doc:
        """The execution behind `thing`'s job (ResourceNotFoundException if not its own)."""
        return self._job(thing, job_id)

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
        deadline = job.get("stepDeadline", job.get("leaseExpiresAt"))
        if deadline is not None:
            out["approximateSecondsBeforeTimedOut"] = max(0, int(deadline - self.backend.now()))
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
        details = dict(body.get("statusDetails") or {})
        # An agent running several jobs says which it runs and how many it may (`agent:running`,
        # `agent:slots`); without these, one job at a time. The scheduler decides the rest.
        running_ids = set(details.pop(RUNNING_KEY, "").replace(",", " ").split()) - {"-"}
        try:
            slots = max(1, int(details.pop(SLOTS_KEY, "1")))
        except ValueError:
            raise InvalidRequestException(
                f"statusDetails.{SLOTS_KEY} must be an integer."
            ) from None
        doc = self.backend.scheduler.claim(
            agent, running_ids, slots, body.get("stepTimeoutInMinutes"), details
        )
        return {} if doc is None else {"execution": self.execution(thing, doc)}

    def describe(
        self,
        thing: str,
        job_id: str,
        include_document: bool,
        execution_number: int | None = None,
    ) -> Doc:
        if job_id == "$next":
            pending = self.get_pending(thing)
            first = (pending["inProgressJobs"] or pending["queuedJobs"] or [None])[0]
            if first is None:
                raise ResourceNotFoundException(f"Thing {thing} has no pending job.")
            job_id = first["jobId"]
        request: Doc = {"thingName": thing, "jobId": job_id}
        if execution_number is not None:
            request["executionNumber"] = execution_number
        validate_input("DescribeJobExecution", request, "iot-jobs-data")
        doc = self._job(thing, job_id, execution_number)
        return {"execution": self.execution(thing, doc, include_document)}

    def update(self, thing: str, job_id: str, body: Doc) -> Doc:
        validate_input(
            "UpdateJobExecution", {"thingName": thing, "jobId": job_id, **body}, "iot-jobs-data"
        )
        for key, value in (body.get("statusDetails") or {}).items():
            if len(value) > MAX_DETAIL_VALUE:
                raise InvalidRequestException(
                    f"statusDetails.{key} must have at most {MAX_DETAIL_VALUE} characters."
                )
        status = body["status"]
        if status not in _DEVICE_STATUSES:
            raise InvalidRequestException(
                f"status must be one of {', '.join(_DEVICE_STATUSES)}; {status} is set by the "
                "service."
            )
        found = self._job(thing, job_id, body.get("executionNumber"))
        owner = found["AgentArn"]
        now = self.backend.now()

        def report(doc: Doc) -> bool:
            # checked again on the copy being written: another process may have moved it
            job = doc["Job"]
            if doc["AgentArn"] != owner:
                raise ResourceNotFoundException(f"Job {job_id} is not found for thing {thing}.")
            if job["status"] in lifecycle.JOB_TERMINAL:
                raise InvalidStateTransitionException(
                    f"Job {job_id} is {job['status']}, a terminal state; it cannot become "
                    f"{status}.",
                    self._state(doc),
                )
            expected = body.get("expectedVersion")
            if expected is not None and expected != job["versionNumber"]:
                raise VersionConflictException(
                    f"expectedVersion {expected} does not match the current version "
                    f"{job['versionNumber']}.",
                    self._state(doc),
                )
            if job["status"] == "QUEUED":
                # claims go through the scheduler alone (it honours agent:slots and takeovers)
                raise InvalidStateTransitionException(
                    f"Job {job_id} is QUEUED: claim it with StartNextPendingJobExecution "
                    "(PUT /things/{thing}/jobs/$next) before reporting on it.",
                    self._state(doc),
                )
            lifecycle.renew_lease(
                doc, now, body.get("stepTimeoutInMinutes"), self.backend.config.agent_timeout
            )
            details = {**job["statusDetails"], **body.get("statusDetails", {})}
            lifecycle.apply_report(doc, status, details, now)
            return True

        changed = change_execution(self.store, found["TaskExecutionArn"], report)
        if changed is None:
            raise ResourceNotFoundException(f"Job {job_id} is not found for thing {thing}.")
        doc = changed[0]
        out: Doc = {}
        if body.get("includeJobExecutionState"):
            out["executionState"] = self._state(doc)
        if body.get("includeJobDocument"):
            out["jobDocument"] = lifecycle.job_document(doc).to_json()
        return out

    # housekeeping -----------------------------------------------------------------------------
    def reap(self) -> int:
        """Leases, step timers, forgotten cancels, unclaimable executions: see `api.scheduler`."""
        return self.backend.scheduler.reap()
