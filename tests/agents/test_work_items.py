"""Work items over the jobs protocol (issue 12), driven by two agent identities on a real server:
boto3's own `iot-jobs-data` client for the IoT operations and SigV4-signed httpx for the plan
upload and the journal. Item 0 plans, items 1…n are claimed by either agent (lowest index
first), reports are fenced by holder and executionNumber, leases expire into a takeover, the
suspend wish is acknowledged and resumed, rate shares add up to the execution's limit, the
REMOVE item comes last, and the execution ends by the end rule over its items."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from api.store import Store
from api.workitems import get_item, list_items, set_target
from tests.agents.remote import (
    AgentProcess,
    activate,
    locations,
    same_tree,
    temporaries,
    wait_status,
)
from tests.api.harness import (
    ACCESS_KEY,
    REGION,
    SECRET_KEY,
    Server,
    make_tree,
    wait_for,
)

SCOPES = [
    {"Path": "", "Recursive": False, "Files": 1, "Bytes": 10},  # waits for a and b
    {"Path": "a", "Recursive": True, "Files": 5, "Bytes": 50},
    {"Path": "b", "Recursive": True, "Files": 7, "Bytes": 70},
]
PLAN = [*SCOPES[1:], SCOPES[0]]  # the root's files last: items 1 (a), 2 (b), 3 (the root)


@pytest.fixture
def agent_timeout() -> float:
    """The server's (tests/agents/conftest.py) agent timeout, which is also the items' lease:
    5 s lets the tests' steps between two reports of one agent take a few seconds on a loaded
    machine (parallel test workers) without the lease running out under them; the takeover
    tests wait the lease out (their waits allow 15 s)."""
    return 5.0


class Fleet:
    """Two agents bound to both locations of one task, and the clients to act as them."""

    def __init__(self, server: Server, root: Path, *, remote: bool, **options: Any) -> None:
        assert server.served is not None
        self.server = server
        self.backend = server.served.app.state.backend
        self.store: Store = self.backend.store
        self.agents = [self.backend.register_agent(n, [str(root)]) for n in ("a1", "a2")]
        self.things = [a.rsplit("/", 1)[1] for a in self.agents]
        # remote agents have their own credentials (only they may act for themselves); the
        # others are acted for with the operator's, as the embedded agent is
        self.keys = [(ACCESS_KEY, SECRET_KEY)] * 2
        if remote:
            self.keys = [_credential(self.backend, agent) for agent in self.agents]
        self.held: list[set[str]] = [set(), set()]  # the job ids each agent runs
        self.ds = server.client()
        self.connect()
        locations = [
            self.ds.create_location_nfs(
                ServerHostname="localhost",
                Subdirectory=str(root / name),
                OnPremConfig={"AgentArns": self.agents},
            )["LocationArn"]
            for name in ("src", "dst")
        ]
        self.task = self.ds.create_task(
            SourceLocationArn=locations[0], DestinationLocationArn=locations[1], **options
        )["TaskArn"]

    def connect(self) -> None:
        self.ds = self.server.client()
        self.clients = [
            self.server.client("iot-jobs-data", aws_access_key_id=k, aws_secret_access_key=s)
            for k, s in self.keys
        ]

    def signed(self, who: int, method: str, path: str, body: Any = None) -> httpx.Response:
        """A jobs call the boto3 model has no operation for (plan upload, journal)."""
        data = b"" if body is None else json.dumps(body).encode()
        url = self.server.url + path
        request = AWSRequest(method, url, data=data, headers={"Content-Type": "application/json"})
        key, secret = self.keys[who]
        SigV4Auth(Credentials(key, secret), "iot-jobs-data", REGION).add_auth(request)
        return httpx.request(method, url, content=data, headers=dict(request.headers), timeout=10)

    def start(self) -> tuple[str, str]:
        arn = self.ds.start_task_execution(TaskArn=self.task)["TaskExecutionArn"]
        return arn, arn.rsplit("/", 1)[1]

    def claim(self, who: int) -> dict[str, Any] | None:
        running = ",".join(sorted(self.held[who])) or "-"
        reply = self.clients[who].start_next_pending_job_execution(
            thingName=self.things[who],
            statusDetails={"agent:running": running, "agent:slots": "1"},
        )
        execution: dict[str, Any] | None = reply.get("execution")
        if execution is not None:
            self.held[who].add(execution["jobId"])
        return execution

    def report(
        self, who: int, job: dict[str, Any], status: str = "IN_PROGRESS", **details: Any
    ) -> dict[str, Any]:
        encoded = {k: v if isinstance(v, str) else json.dumps(v) for k, v in details.items()}
        reply = self.clients[who].update_job_execution(
            thingName=self.things[who],
            jobId=job["jobId"],
            status=status,
            statusDetails=encoded,
            executionNumber=job["executionNumber"],
            includeJobExecutionState=True,
        )
        state: dict[str, Any] = reply["executionState"]
        if status != "IN_PROGRESS":
            self.held[who].discard(job["jobId"])
        return state

    def plan(self, who: int, job: dict[str, Any], scopes: list[dict[str, Any]]) -> httpx.Response:
        return self.signed(
            who,
            "POST",
            f"/things/{self.things[who]}/jobs/{job['jobId']}/items",
            {"executionNumber": job["executionNumber"], "items": scopes},
        )

    def planned(self, scopes: list[dict[str, Any]] = SCOPES) -> tuple[str, list[str]]:
        """An execution whose item 0 (on a1) planned `scopes` and succeeded: its item job ids."""
        arn, _ = self.start()
        prepare = self.claim(0)
        assert prepare is not None
        uploaded = self.plan(0, prepare, scopes)
        assert uploaded.status_code == 200, uploaded.text
        self.report(0, prepare, "SUCCEEDED", phase="PREPARING")
        job_ids: list[str] = uploaded.json()["jobIds"]
        return arn, job_ids

    def describe(self, arn: str) -> dict[str, Any]:
        doc: dict[str, Any] = self.ds.describe_task_execution(TaskExecutionArn=arn)
        return doc


def _code(info: pytest.ExceptionInfo[ClientError]) -> tuple[str, int]:
    error = info.value.response
    return error["Error"]["Code"], error["ResponseMetadata"]["HTTPStatusCode"]


@pytest.fixture
def fleet(server: Server, root: Path) -> Fleet:
    return Fleet(server, root, remote=True, Options={"PreserveDeletedFiles": "REMOVE"})


def test_plan_claims_fencing_rate_shares_remove_last_and_the_end_rule(fleet: Fleet) -> None:
    arn, exec_id = fleet.start()
    prepare = fleet.claim(0)
    assert prepare is not None and prepare["jobId"] == exec_id
    item = json.loads(prepare["jobDocument"])["Item"]
    assert item["Index"] == 0 and item["Kind"] == "PREPARE" and item["Budget"]["Agents"] == 2
    assert fleet.claim(1) is None  # nothing to share before the plan

    # only item 0's holder, under its epoch, with a valid plan
    assert fleet.plan(1, prepare, PLAN).status_code == 404
    stale = {**prepare, "executionNumber": prepare["executionNumber"] + 1}
    refused = fleet.plan(0, stale, PLAN)
    assert refused.status_code == 409 and refused.headers["x-amzn-ErrorType"] == "VersionMismatch"
    bad = fleet.plan(0, prepare, [{"Path": "../x", "Recursive": True}])
    assert bad.status_code == 400 and "relative path" in bad.json()["message"]
    # what the planner counted before its upload is not the items' (they count their own)
    fleet.report(0, prepare, phase="PREPARING", counters={"EstimatedFilesToTransfer": 99})
    assert fleet.describe(arn)["EstimatedFilesToTransfer"] == 99
    uploaded = fleet.plan(0, prepare, PLAN)
    assert uploaded.status_code == 200
    assert fleet.describe(arn)["EstimatedFilesToTransfer"] == 0
    job_ids = uploaded.json()["jobIds"]
    assert job_ids == [f"{exec_id}-i{n}" for n in (1, 2, 3, 4)]  # 4: the REMOVE item
    assert fleet.plan(0, prepare, PLAN).json()["jobIds"] == job_ids  # idempotent
    assert fleet.plan(0, prepare, PLAN[:2]).status_code == 400  # a different plan
    fleet.report(0, prepare, "SUCCEEDED", phase="PREPARING")
    assert fleet.describe(arn)["Status"] not in ("SUCCESS", "ERROR")  # items remain

    first = fleet.claim(1)
    second = fleet.claim(0)
    assert first is not None and second is not None
    assert (first["jobId"], second["jobId"]) == (job_ids[0], job_ids[1])  # lowest index first
    assert first["executionNumber"] == 1 and first["status"] == "IN_PROGRESS"
    document = json.loads(second["jobDocument"])
    assert document["TaskExecutionArn"] == arn
    assert document["Item"] == {
        "Index": 2,
        "Kind": "TRANSFER",
        "Scope": {"Path": "b", "Recursive": True, "Files": 7, "Bytes": 70},
    }
    assert fleet.claim(0) is None  # a1 has one slot: nothing more while it runs item 2
    pending = fleet.clients[1].get_pending_job_executions(thingName=fleet.things[1])
    assert [j["jobId"] for j in pending["inProgressJobs"]] == [job_ids[0]]

    fleet.ds.update_task_execution(TaskExecutionArn=arn, Options={"BytesPerSecond": 1001})
    shares = [
        int(fleet.report(1, first)["statusDetails"]["control:bytesPerSecond"]),
        int(fleet.report(0, second)["statusDetails"]["control:bytesPerSecond"]),
    ]
    assert sorted(shares) == [500, 501] and sum(shares) == 1001

    with pytest.raises(ClientError) as info:  # a1 does not hold item 1
        fleet.report(0, first)
    assert _code(info) == ("VersionMismatch", 409)
    with pytest.raises(ClientError) as info:  # a stale epoch
        fleet.report(1, {**first, "executionNumber": 7})
    assert _code(info) == ("VersionMismatch", 409)

    counters = {"FilesTransferred": 5, "BytesWritten": 50, "EstimatedFilesToTransfer": 5}
    fleet.report(1, first, "SUCCEEDED", phase="VERIFYING", counters=counters)
    described = fleet.describe(arn)
    assert described["FilesTransferred"] == 5 and described["Status"] == "VERIFYING"
    assert described["EstimatedFilesToTransfer"] == 5
    # the root's own files wait until nothing works beneath it any more (its mtime is last)
    assert fleet.claim(1) is None and get_item(fleet.store, arn, 3).status.value == "PENDING"
    fleet.report(0, second, "SUCCEEDED", counters={"FilesTransferred": 7, "BytesWritten": 70})
    third = fleet.claim(1)
    assert third is not None and third["jobId"] == job_ids[2]
    # the one running item has the whole limit
    assert fleet.report(1, third)["statusDetails"]["control:bytesPerSecond"] == "1001"
    assert fleet.claim(0) is None  # REMOVE waits for every TRANSFER item
    fleet.report(1, third, "SUCCEEDED", counters={"FilesTransferred": 1, "BytesWritten": 10})
    remove = fleet.claim(0)
    assert remove is not None and remove["jobId"] == job_ids[3]
    assert json.loads(remove["jobDocument"])["Item"] == {"Index": 4, "Kind": "REMOVE"}
    assert fleet.describe(arn)["Status"] == "VERIFYING"
    fleet.report(0, remove, "SUCCEEDED", counters={"FilesDeleted": 2})
    final = fleet.describe(arn)
    assert final["Status"] == "SUCCESS"
    assert (final["FilesTransferred"], final["BytesWritten"], final["FilesDeleted"]) == (
        13,
        130,
        2,
    )
    with pytest.raises(ClientError) as info:  # an ended item takes no more reports
        fleet.report(0, remove)
    assert _code(info) == ("InvalidStateTransitionException", 409)


def test_a_lost_agents_item_is_taken_over_and_its_late_reports_refused(fleet: Fleet) -> None:
    arn, job_ids = fleet.planned(SCOPES[1:])
    lost = fleet.claim(0)
    busy = fleet.claim(1)
    assert lost is not None and busy is not None and lost["jobId"] == job_ids[0]
    journal = f"/things/{fleet.things[0]}/jobs/{lost['jobId']}/journal"
    deep = "a/" + "/".join(["d" * 250] * 12)  # ~3 kB: too long to be an index key
    done = ["a/1", "a/2", deep]
    posted = fleet.signed(0, "POST", journal, {"executionNumber": 1, "done": done})
    assert posted.status_code == 200 and posted.json() == {"added": 3}

    # a1 falls silent; a2 keeps reporting (it stays ONLINE) until item 1 is READY again
    def requeued() -> bool:
        fleet.report(1, busy)
        return get_item(fleet.store, arn, 1).status.value == "READY"

    wait_for(requeued, timeout=15, interval=0.3)
    fleet.report(1, busy, "SUCCEEDED")
    taken = fleet.claim(1)
    assert taken is not None and taken["jobId"] == lost["jobId"]
    assert taken["executionNumber"] > lost["executionNumber"]
    with pytest.raises(ClientError) as info:  # the lost agent's late report
        fleet.report(0, lost)
    assert _code(info) == ("VersionMismatch", 409)
    late = fleet.signed(0, "POST", journal, {"executionNumber": 1, "done": ["a/3"]})
    assert late.status_code == 409
    # the new holder reads what the lost one finished
    page = fleet.signed(1, "GET", f"/things/{fleet.things[1]}/jobs/{lost['jobId']}/journal")
    assert page.status_code == 200 and sorted(page.json()["done"]) == sorted(done)
    fleet.report(1, taken, "SUCCEEDED")
    remove = fleet.claim(1)
    assert remove is not None
    fleet.report(1, remove, "SUCCEEDED")
    assert fleet.describe(arn)["Status"] == "SUCCESS"


def test_suspend_wish_acknowledgement_and_resume(fleet: Fleet) -> None:
    arn, job_ids = fleet.planned(SCOPES[1:])
    running = fleet.claim(0)
    assert running is not None
    fleet.report(0, running, counters={"FilesTransferred": 2}, phase="TRANSFERRING")
    now = fleet.backend.now()
    items = set_target(fleet.store, arn, None, "SUSPENDED", now)
    assert [(i.status.value, i.target and i.target.value) for i in items] == [
        ("RUNNING", "SUSPENDED"),
        ("SUSPENDED", None),
        ("SUSPENDED", None),  # the REMOVE item
    ]
    state = fleet.report(0, running, counters={"FilesTransferred": 3})
    assert state["statusDetails"]["control:suspend"] == "true"
    fleet.report(0, running, "FAILED", **{"agent:interrupted": "SUSPENDED"})
    suspended = get_item(fleet.store, arn, 1)
    assert suspended.status.value == "SUSPENDED" and suspended.failure_retry_count == 0
    described = fleet.describe(arn)
    assert described["Status"] == "TRANSFERRING" and described["FilesTransferred"] == 3
    assert fleet.claim(1) is None  # nothing is offered while suspended
    time.sleep(0.2)
    assert fleet.describe(arn)["FilesTransferred"] == 3  # frozen

    set_target(fleet.store, arn, None, "READY", fleet.backend.now())
    assert [i.status.value for i in list_items(fleet.store, arn)] == [
        "SUCCEEDED",
        "READY",
        "READY",
        "PENDING",
    ]
    resumed = fleet.claim(1)
    assert resumed is not None and resumed["jobId"] == job_ids[0]
    assert resumed["executionNumber"] == running["executionNumber"] + 1
    other = fleet.claim(0)
    assert other is not None
    fleet.report(1, resumed, "SUCCEEDED", counters={"FilesTransferred": 5})
    fleet.report(0, other, "SUCCEEDED", counters={"FilesTransferred": 7})
    remove = fleet.claim(0)
    assert remove is not None
    fleet.report(0, remove, "SUCCEEDED")
    final = fleet.describe(arn)
    assert final["Status"] == "SUCCESS" and final["FilesTransferred"] == 12


def test_suspend_before_the_plan_exists_is_applied_when_it_arrives(fleet: Fleet) -> None:
    """boto3 deadline UpdateJob SUSPENDED while item 0 still plans: accepted, kept for the plan,
    whose items are created SUSPENDED; UpdateJob READY then resumes them."""
    from botocore.config import Config

    dl = fleet.server.client("deadline", config=Config(inject_host_prefix=False))
    arn, _ = fleet.start()
    prepare = fleet.claim(0)
    assert prepare is not None
    farm = dl.list_farms()["farms"][0]["farmId"]
    queue = dl.list_queues(farmId=farm)["queues"][0]["queueId"]
    ids = {"farmId": farm, "queueId": queue}
    ids["jobId"] = dl.list_jobs(**ids)["jobs"][0]["jobId"]
    dl.update_job(**ids, targetTaskRunStatus="SUSPENDED")
    assert dl.get_job(**ids)["targetTaskRunStatus"] == "SUSPENDED"
    assert list_items(fleet.store, arn) == []  # nothing planned yet
    uploaded = fleet.plan(0, prepare, PLAN)
    assert uploaded.status_code == 200, uploaded.text
    fleet.report(0, prepare, "SUCCEEDED", phase="PREPARING")
    statuses = [(i.kind.value, i.status.value) for i in list_items(fleet.store, arn)]
    assert statuses == [
        ("PREPARE", "SUCCEEDED"),
        ("TRANSFER", "SUSPENDED"),
        ("TRANSFER", "SUSPENDED"),
        ("TRANSFER", "SUSPENDED"),
        ("REMOVE", "PENDING"),  # waits for the TRANSFER items anyway
    ]
    assert fleet.claim(0) is None and fleet.claim(1) is None
    job = dl.get_job(**ids)
    assert job["taskRunStatus"] == "SUSPENDED" and job["taskRunStatusCounts"]["SUSPENDED"] == 3
    assert fleet.describe(arn)["Status"] not in ("SUCCESS", "ERROR")

    dl.update_job(**ids, targetTaskRunStatus="READY")
    first = fleet.claim(1)
    assert first is not None and first["jobId"].endswith("-i1")
    # a withdrawn wish before the plan: nothing is kept
    arn2 = fleet.ds.start_task_execution(TaskArn=_other_task(fleet))["TaskExecutionArn"]
    jobs = {j["name"]: j["jobId"] for q in dl.list_queues(farmId=farm)["queues"]
            for j in dl.list_jobs(farmId=farm, queueId=q["queueId"])["jobs"]}  # fmt: skip
    queue2 = next(
        q["queueId"] for q in dl.list_queues(farmId=farm)["queues"]
        if q["displayName"] != dl.get_queue(farmId=farm, queueId=queue)["displayName"]
    )  # fmt: skip
    ids2 = {"farmId": farm, "queueId": queue2, "jobId": jobs[arn2]}
    dl.update_job(**ids2, targetTaskRunStatus="SUSPENDED")
    dl.update_job(**ids2, targetTaskRunStatus="READY")
    assert dl.get_job(**ids2).get("targetTaskRunStatus") is None
    # what needs items to act on is still a conflict before the plan
    with pytest.raises(ClientError) as info:
        dl.update_job(**ids2, targetTaskRunStatus="CANCELED")
    assert _code(info) == ("ConflictException", 409)


def _other_task(fleet: Fleet) -> str:
    """A second task over the same locations (with other filters: it may run beside the first)."""
    task = fleet.ds.describe_task(TaskArn=fleet.task)
    arn: str = fleet.ds.create_task(
        SourceLocationArn=task["SourceLocationArn"],
        DestinationLocationArn=task["DestinationLocationArn"],
        Excludes=[{"FilterType": "SIMPLE_PATTERN", "Value": "/nothing"}],
    )["TaskArn"]
    return arn


def test_a_failed_item_is_retried_and_a_skipped_one_ends_the_execution_in_error(
    fleet: Fleet,
) -> None:
    arn, _ = fleet.planned(SCOPES[1:])
    failing = fleet.claim(0)
    other = fleet.claim(1)
    assert failing is not None and other is not None
    failure = {"ErrorCode": "PermissionDenied", "ErrorDetail": "a is immutable"}
    fleet.report(0, failing, "FAILED", result=failure)
    assert fleet.describe(arn)["Status"] not in ("SUCCESS", "ERROR")  # item 2 still runs
    (retried,) = set_target(fleet.store, arn, [1], "READY", fleet.backend.now())
    assert retried.status.value == "READY" and retried.failure_retry_count == 1
    again = fleet.claim(0)
    assert again is not None and again["jobId"] == failing["jobId"]
    fleet.report(0, again, "FAILED", result=failure)
    set_target(fleet.store, arn, [3], "CANCELED", fleet.backend.now())  # skip REMOVE
    fleet.report(1, other, "SUCCEEDED")
    ended = fleet.describe(arn)
    assert ended["Status"] == "ERROR" and ended["Result"]["ErrorCode"] == "PermissionDenied"
    detail = ended["Result"]["ErrorDetail"]
    assert "item 1 (a) FAILED: a is immutable" in detail and "item 3 (REMOVE) CANCELED" in detail


def test_cancel_reaches_every_item(fleet: Fleet) -> None:
    arn, _ = fleet.planned(SCOPES[1:])
    running = fleet.claim(0)
    assert running is not None
    fleet.ds.cancel_task_execution(TaskExecutionArn=arn)
    assert [i.status.value for i in list_items(fleet.store, arn)][1:] == [
        "RUNNING",
        "CANCELED",
        "CANCELED",
    ]
    assert fleet.claim(1) is None
    assert fleet.report(0, running)["statusDetails"]["control:cancel"] == "true"
    fleet.report(0, running, "FAILED")
    ended = fleet.describe(arn)
    assert ended["Status"] == "ERROR" and ended["Result"]["ErrorCode"] == "Cancelled"


def test_a_planner_lost_after_its_upload_leaves_the_plan_standing(fleet: Fleet) -> None:
    arn, _ = fleet.start()
    prepare = fleet.claim(0)
    assert prepare is not None
    job_ids = fleet.plan(0, prepare, SCOPES[1:]).json()["jobIds"]
    first = fleet.claim(1)  # a2 works (and stays ONLINE) while a1 falls silent
    assert first is not None and first["jobId"] == job_ids[0]

    def planner_done() -> bool:
        fleet.report(1, first)
        return get_item(fleet.store, arn, 0).status.value == "SUCCEEDED"

    wait_for(planner_done, timeout=15, interval=0.3)
    job = fleet.clients[1].describe_job_execution(thingName=fleet.things[1], jobId=job_ids[0])
    assert job["execution"]["status"] == "IN_PROGRESS"
    assert fleet.describe(arn)["Status"] not in ("SUCCESS", "ERROR")  # not re-planned, not ended


def test_a_lost_item_nobody_can_take_over_ends_the_execution_agent_timeout(fleet: Fleet) -> None:
    arn, _ = fleet.planned(SCOPES[1:])
    lost = fleet.claim(0)
    assert lost is not None
    # both agents fall silent: when the lease runs out no candidate is ONLINE
    ended = wait_for(
        lambda: (d := fleet.describe(arn))["Status"] == "ERROR" and d, timeout=15, interval=0.2
    )
    assert ended["Result"]["ErrorCode"] == "AgentTimeout"
    assert "work item 1" in ended["Result"]["ErrorDetail"]
    assert [i.status.value for i in list_items(fleet.store, arn)] == [
        "SUCCEEDED",
        "FAILED",
        "CANCELED",
        "CANCELED",
    ]


def test_items_nobody_claims_end_the_execution_agent_unavailable(fleet: Fleet) -> None:
    arn, _ = fleet.planned(SCOPES[1:])
    ended = wait_for(
        lambda: (d := fleet.describe(arn))["Status"] == "ERROR" and d, timeout=20, interval=0.2
    )
    assert ended["Result"]["ErrorCode"] == "AgentUnavailable"
    assert all(i.status.value in ("SUCCEEDED", "CANCELED") for i in list_items(fleet.store, arn))


def test_a_remote_agents_running_item_survives_a_restart_and_suspension_too(
    fleet: Fleet, server: Server
) -> None:
    arn, _ = fleet.planned(SCOPES[1:])
    running = fleet.claim(0)
    assert running is not None
    set_target(fleet.store, arn, [2], "SUSPENDED", fleet.backend.now())
    server.restart()  # the agents are remote: their work outlives the control plane
    assert server.served is not None
    backend = server.served.app.state.backend
    items = list_items(backend.store, arn)
    assert [i.status.value for i in items][1:] == ["RUNNING", "SUSPENDED", "PENDING"]
    fleet.connect()
    fleet.report(0, running, "SUCCEEDED")
    assert fleet.describe(arn)["Status"] not in ("SUCCESS", "ERROR")  # item 2 is suspended
    set_target(backend.store, arn, [2], "READY", backend.now())
    resumed = fleet.claim(1)
    assert resumed is not None
    fleet.report(1, resumed, "SUCCEEDED")
    remove = fleet.claim(1)
    assert remove is not None
    fleet.report(1, remove, "SUCCEEDED")
    assert fleet.describe(arn)["Status"] == "SUCCESS"


def test_an_embedded_agents_running_item_is_ready_again_after_a_restart(
    server: Server, root: Path
) -> None:
    # agents without their own credentials live in the control plane's process (like the
    # embedded one): what they ran died with it, and can be redone
    fleet = Fleet(server, root, remote=False)
    arn, job_ids = fleet.planned(SCOPES[1:])
    running = fleet.claim(0)
    assert running is not None and running["jobId"] == job_ids[0]
    server.restart()
    assert server.served is not None
    store = server.served.app.state.backend.store
    assert [i.status.value for i in list_items(store, arn)][1:] == ["READY", "READY"]
    fleet.connect()
    assert fleet.describe(arn)["Status"] not in ("SUCCESS", "ERROR")
    again = fleet.claim(1)
    assert again is not None and again["jobId"] == job_ids[0]
    assert again["executionNumber"] == running["executionNumber"] + 1


def _credential(backend: Any, agent_arn: str) -> tuple[str, str]:
    """Give a registered agent its own credentials, as an activation would."""
    from api.auth import Credential

    key = "AKIDAGENT" + os.urandom(6).hex().upper()
    secret = os.urandom(16).hex()
    backend.credentials.add(agent_arn, Credential(key, secret))
    return key, secret


# end to end: real agent processes sharing one execution ----------------------------------------
MiB = 1 << 20


def _shared_tree(root: Path) -> None:
    """Eight top-level directories and files directly under the root (so the plan splits),
    and an extra at the destination that REMOVE deletes."""
    for n in range(8):
        make_tree(str(root / "src" / f"d{n}"), 2, 256 * 1024, prefix=f"d{n}-")
    make_tree(str(root / "src"), 2, 64 * 1024, prefix="top-")
    (root / "dst" / "extra.txt").write_text("not at the source\n")


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[list[AgentProcess]]:
    started: list[AgentProcess] = []
    yield started
    for agent in started:
        agent.stop()


def _two_agents(
    tmp_path: Path, server: Server, root: Path, started: list[AgentProcess], rate: int
) -> tuple[list[str], str]:
    arns = []
    for name in ("p1", "p2"):
        agent = AgentProcess(server.url, tmp_path / f"state-{name}", [root], name=name)
        started.append(agent)
        arns.append(activate(server, agent, name))
    task = locations(
        server,
        arns,
        root / "src",
        root / "dst",
        Options={"PreserveDeletedFiles": "REMOVE", "BytesPerSecond": rate},
    )
    return arns, task


def _ended(server: Server, arn: str, agents: list[AgentProcess], timeout: float) -> Any:
    """The execution once it ended; on a timeout, what its items and agents were doing."""
    try:
        return wait_status(server.client(), arn, ("SUCCESS", "ERROR"), timeout=timeout)
    except AssertionError:
        assert server.served is not None
        items = list_items(server.served.app.state.backend.store, arn)
        state = [(i.index, i.status.value, i.agent_arn, i.execution_number) for i in items]
        logs = [a.log.read_text()[-2000:] for a in agents]
        raise AssertionError(f"not ended: items {state}; agents' logs {logs}") from None


def test_two_agent_processes_share_an_execution(
    tmp_path: Path, root: Path, processes: list[AgentProcess]
) -> None:
    _shared_tree(root)
    server = Server(str(tmp_path / "data"), [], embedded_agent=False, agent_timeout=3.0)
    server.start()
    try:
        arns, task = _two_agents(tmp_path, server, root, processes, 2 * MiB)
        ds = server.client()
        arn = ds.start_task_execution(TaskArn=task)["TaskExecutionArn"]
        final = _ended(server, arn, processes, timeout=60)
        assert final["Status"] == "SUCCESS", final
        assert same_tree(root / "src", root / "dst")
        assert not (root / "dst" / "extra.txt").exists() and temporaries(root) == []
        assert server.served is not None
        items = list_items(server.served.app.state.backend.store, arn)
        kinds = [i.kind.value for i in items]
        assert kinds[0] == "PREPARE" and kinds[-1] == "REMOVE"
        assert kinds.count("TRANSFER") >= 9  # each top-level directory, and the root's files
        assert {i.agent_arn for i in items if i.kind.value == "TRANSFER"} == set(arns)
        assert all(i.status.value == "SUCCEEDED" for i in items)
        files = sum(1 for p in (root / "src").rglob("*") if p.is_file())
        assert final["FilesTransferred"] == files and final["FilesDeleted"] == 1
    finally:
        server.stop()


def test_kill_9_of_one_of_two_agents_still_succeeds_with_nothing_torn(
    tmp_path: Path, root: Path, processes: list[AgentProcess]
) -> None:
    _shared_tree(root)
    server = Server(str(tmp_path / "data"), [], embedded_agent=False, agent_timeout=3.0)
    server.start()
    try:
        arns, task = _two_agents(tmp_path, server, root, processes, 512 * 1024)
        ds = server.client()
        arn = ds.start_task_execution(TaskArn=task)["TaskExecutionArn"]
        assert server.served is not None
        store = server.served.app.state.backend.store

        def victim_mid_item() -> int | None:
            for item in list_items(store, arn):
                bytes_written = json.loads(item.details.get("counters", "{}")).get("BytesWritten")
                if item.running and item.agent_arn == arns[0] and item.index > 0 and bytes_written:
                    return item.index
            return None

        victim_item = wait_for(victim_mid_item, timeout=30, interval=0.02)
        processes[0].kill()  # kill -9, mid-item
        final = _ended(server, arn, processes, timeout=90)
        assert final["Status"] == "SUCCESS", final
        # nothing torn: every real name holds the source's bytes (a temporary of the killed
        # agent may be left behind, under its hidden name only)
        assert same_tree(root / "src", root / "dst")
        taken = get_item(store, arn, victim_item)
        # the killed agent's item was taken over by the survivor under a newer epoch
        assert (taken.agent_arn, taken.status.value) == (arns[1], "SUCCEEDED"), taken
        assert taken.execution_number >= 2
    finally:
        server.stop()


def _destination_bytes(root: Path) -> int:
    """Every byte at the destination, temporaries included (what the agents wrote so far)."""
    total = 0
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except FileNotFoundError:
                continue  # a temporary renamed meanwhile
    return total


def test_two_agents_together_stay_within_the_executions_bytes_per_second(
    tmp_path: Path, root: Path, processes: list[AgentProcess]
) -> None:
    _shared_tree(root)
    (root / "dst" / "extra.txt").unlink()
    total = sum(p.stat().st_size for p in (root / "src").rglob("*") if p.is_file())
    limit = MiB
    server = Server(str(tmp_path / "data"), [], embedded_agent=False, agent_timeout=3.0)
    server.start()
    try:
        arns, task = _two_agents(tmp_path, server, root, processes, limit)
        ds = server.client()
        arn = ds.start_task_execution(TaskArn=task)["TaskExecutionArn"]
        samples: list[tuple[float, int]] = []
        deadline_at = time.monotonic() + 60
        while time.monotonic() < deadline_at:
            samples.append((time.monotonic(), _destination_bytes(root / "dst")))
            if samples[-1][1] >= total:
                break
            time.sleep(0.05)
        final = _ended(server, arn, processes, timeout=30)
        assert final["Status"] == "SUCCESS", final
        # the slope between 10% and 90% of the tree: a limit of the whole execution, not of
        # each agent (two agents at the full limit each would write twice as fast)
        low = next(s for s in samples if s[1] >= total * 0.1)
        high = next(s for s in samples if s[1] >= total * 0.9)
        rate = (high[1] - low[1]) / (high[0] - low[0])
        assert rate <= limit * 1.10, f"{rate:.0f} B/s against a limit of {limit}"
        assert server.served is not None
        items = list_items(server.served.app.state.backend.store, arn)
        assert {i.agent_arn for i in items if i.kind.value == "TRANSFER"} == set(arns)
        print(f"\naggregate of 2 agents: {rate:.0f} B/s = {rate / limit:.3f} x BytesPerSecond")
    finally:
        server.stop()
