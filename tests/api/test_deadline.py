"""The Deadline Cloud routes (api/deadline) through a real boto3 `deadline` client on a real server.

Read-only views of finished executions, pagination, ID stability across a restart, and every
error the routes answer (validation from the model, unknown resources, resources under the wrong
parent, bad signatures, operations not offered, unreadable bodies), each in Deadline's rest-json
error shape. The suspend/resume and clientToken behaviour on running executions is in
tests/api/test_deadline_control.py.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import ClientError

from contract.model import enum_values
from tests.api.harness import Server, finished, make_tree, nfs_task, serving
from tests.reliability.wire import sign

DEADLINE_CONFIG = Config(inject_host_prefix=False, retries={"max_attempts": 1, "mode": "standard"})
ID = {
    "farm": re.compile(r"farm-[0-9a-f]{32}"),
    "queue": re.compile(r"queue-[0-9a-f]{32}"),
    "job": re.compile(r"job-[0-9a-f]{32}"),
    "step": re.compile(r"step-[0-9a-f]{32}"),
    "task": re.compile(r"task-[0-9a-f]{32}-(0|[1-9][0-9]{0,9})"),
}


def deadline(server: Server, **overrides: Any) -> Any:
    overrides.setdefault("config", DEADLINE_CONFIG)
    return server.client("deadline", **overrides)


def run_task(server: Server, ds: Any, name: str, files: int = 3) -> tuple[str, str]:
    """A task copying a small tree src/NAME → dst/NAME, run to SUCCESS: (TaskArn, exec ARN)."""
    root: Path = server.root  # type: ignore[attr-defined]
    src, dst = root / "src" / name, root / "dst" / name
    make_tree(str(src / "d1"), files, 1000)
    make_tree(str(src / "d2"), 1, 10)
    dst.mkdir()
    _, _, task = nfs_task(ds, server.agent_arn, src, dst, Name=name)
    arn = ds.start_task_execution(TaskArn=task)["TaskExecutionArn"]
    assert finished(ds, arn)["Status"] == "SUCCESS"
    return task, arn


def error(exc: pytest.ExceptionInfo[ClientError]) -> dict[str, Any]:
    response: dict[str, Any] = dict(exc.value.response)
    return response


@pytest.fixture
def server(tmp_path: Path) -> Any:
    with serving(tmp_path) as srv:
        yield srv


def test_every_resource_of_a_finished_execution(server: Server) -> None:
    ds = server.client()
    task, arn = run_task(server, ds, "one")
    dl = deadline(server)

    farms = dl.list_farms()["farms"]
    assert len(farms) == 1 and ID["farm"].fullmatch(farms[0]["farmId"])
    farm_id = farms[0]["farmId"]
    farm = dl.get_farm(farmId=farm_id)
    assert farm["displayName"] == "datasync-local" and farm["createdBy"]

    queues = dl.list_queues(farmId=farm_id)["queues"]
    assert [q["displayName"] for q in queues] == [task]
    queue_id = queues[0]["queueId"]
    assert ID["queue"].fullmatch(queue_id) and queues[0]["status"] == "IDLE"
    assert dl.get_queue(farmId=farm_id, queueId=queue_id)["displayName"] == task

    ids = {"farmId": farm_id, "queueId": queue_id}
    jobs = dl.list_jobs(**ids)["jobs"]
    assert [j["name"] for j in jobs] == [arn]
    job_id = jobs[0]["jobId"]
    assert ID["job"].fullmatch(job_id)
    job = dl.get_job(**ids, jobId=job_id)
    assert job["name"] == arn and job["taskRunStatus"] == "SUCCEEDED"
    assert job["lifecycleStatus"] == "CREATE_COMPLETE"
    counts = job["taskRunStatusCounts"]
    assert set(counts) == set(enum_values("TaskRunStatus", "deadline"))
    assert counts["SUCCEEDED"] >= 1 and sum(counts.values()) == counts["SUCCEEDED"]
    assert job["startedAt"] <= job["endedAt"] and job["taskFailureRetryCount"] == 0

    ids["jobId"] = job_id
    steps = dl.list_steps(**ids)["steps"]
    assert [s["name"] for s in steps] == ["Prepare", "Transfer"]  # no Remove: PRESERVE
    total = 0
    for summary in steps:
        assert ID["step"].fullmatch(summary["stepId"])
        assert summary["taskRunStatus"] == "SUCCEEDED"
        step = dl.get_step(**ids, stepId=summary["stepId"])
        assert (
            step["name"] == summary["name"]
            and step["taskRunStatusCounts"] == (summary["taskRunStatusCounts"])
        )
        tasks = dl.list_tasks(**ids, stepId=summary["stepId"])["tasks"]
        assert len(tasks) == sum(summary["taskRunStatusCounts"].values())
        for listed in tasks:
            assert ID["task"].fullmatch(listed["taskId"])
            assert listed["taskId"].startswith("task-" + summary["stepId"][5:] + "-")
            got = dl.get_task(**ids, stepId=summary["stepId"], taskId=listed["taskId"])
            assert got["runStatus"] == "SUCCEEDED" and got["failureRetryCount"] == 0
            assert got["startedAt"] <= got["endedAt"]
            path = got["parameters"]["path"]["path"]
            assert path == "." or (server.root / "src" / "one" / path).exists()  # type: ignore[attr-defined]
            total += 1
    assert total == sum(counts.values())
    transfer = next(s["stepId"] for s in steps if s["name"] == "Transfer")
    paths = [
        dl.get_task(**ids, stepId=transfer, taskId=t["taskId"])["parameters"]["path"]["path"]
        for t in dl.list_tasks(**ids, stepId=transfer)["tasks"]
    ]
    assert sorted(paths) == ["d1", "d2"]  # each top-level directory its own item


def test_a_tree_too_small_to_split_is_one_task(server: Server) -> None:
    """One top-level entry: the agent runs the whole tree in item 0 without a plan; the
    Transfer step has no tasks and shows item 0's outcome; updates are conflicts."""
    ds = server.client()
    root: Path = server.root  # type: ignore[attr-defined]
    make_tree(str(root / "src" / "only" / "d"), 2, 100)
    (root / "dst" / "only").mkdir()
    _, _, task = nfs_task(ds, server.agent_arn, root / "src" / "only", root / "dst" / "only")
    arn = ds.start_task_execution(TaskArn=task)["TaskExecutionArn"]
    assert finished(ds, arn)["Status"] == "SUCCESS"
    dl = deadline(server)
    farm_id = dl.list_farms()["farms"][0]["farmId"]
    ids = {"farmId": farm_id, "queueId": dl.list_queues(farmId=farm_id)["queues"][0]["queueId"]}
    ids["jobId"] = dl.list_jobs(**ids)["jobs"][0]["jobId"]
    steps = {s["name"]: s for s in dl.list_steps(**ids)["steps"]}
    assert steps["Transfer"]["taskRunStatus"] == "SUCCEEDED"
    assert dl.list_tasks(**ids, stepId=steps["Transfer"]["stepId"])["tasks"] == []
    (only,) = dl.list_tasks(**ids, stepId=steps["Prepare"]["stepId"])["tasks"]
    assert only["runStatus"] == "SUCCEEDED" and only["parameters"]["path"]["path"] == "."
    assert dl.get_job(**ids)["taskRunStatusCounts"]["SUCCEEDED"] == 1
    with pytest.raises(ClientError) as caught:
        dl.update_job(**ids, targetTaskRunStatus="SUSPENDED")
    assert error(caught)["Error"]["Code"] == "ConflictException"
    with pytest.raises(ClientError) as caught:
        dl.update_step(**ids, stepId=steps["Transfer"]["stepId"], targetTaskRunStatus="READY")
    assert error(caught)["Error"]["Code"] == "ConflictException"


def test_pages_and_ids_survive_a_restart(server: Server) -> None:
    ds = server.client()
    tasks = [run_task(server, ds, f"t{i}", files=1)[0] for i in range(3)]
    dl = deadline(server)
    farm_id = dl.list_farms()["farms"][0]["farmId"]

    first = dl.list_queues(farmId=farm_id, maxResults=2)
    assert len(first["queues"]) == 2 and first["nextToken"]
    second = dl.list_queues(farmId=farm_id, maxResults=2, nextToken=first["nextToken"])
    assert "nextToken" not in second
    listed = [q["displayName"] for q in first["queues"] + second["queues"]]
    assert sorted(listed) == sorted(tasks) and len(set(listed)) == 3
    paged = [
        q["queueId"]
        for p in dl.get_paginator("list_queues").paginate(
            farmId=farm_id, PaginationConfig={"PageSize": 1}
        )
        for q in p["queues"]
    ]
    assert len(paged) == 3

    # a token from another listing is refused, not taken for a position
    queue_id = paged[0]
    with pytest.raises(ClientError) as caught:
        dl.list_jobs(farmId=farm_id, queueId=queue_id, nextToken=first["nextToken"])
    assert error(caught)["Error"]["Code"] == "ValidationException"

    job = dl.list_jobs(farmId=farm_id, queueId=queue_id)["jobs"][0]
    server.restart()
    dl = deadline(server)
    assert dl.list_farms()["farms"][0]["farmId"] == farm_id
    # resolvable at once after the restart, without listing first
    again = dl.get_job(farmId=farm_id, queueId=queue_id, jobId=job["jobId"])
    assert again["name"] == job["name"]
    assert sorted(q["queueId"] for q in dl.list_queues(farmId=farm_id)["queues"]) == sorted(paged)


def test_bad_ids_and_wrong_parents(server: Server) -> None:
    ds = server.client()
    task_a, _ = run_task(server, ds, "a", files=1)
    task_b, _ = run_task(server, ds, "b", files=1)
    dl = deadline(server)
    farm_id = dl.list_farms()["farms"][0]["farmId"]
    queues = {q["displayName"]: q["queueId"] for q in dl.list_queues(farmId=farm_id)["queues"]}
    job_a = dl.list_jobs(farmId=farm_id, queueId=queues[task_a])["jobs"][0]["jobId"]
    ids = {"farmId": farm_id, "queueId": queues[task_a], "jobId": job_a}
    step = dl.list_steps(**ids)["steps"][0]["stepId"]

    def code(call: Any, **params: Any) -> dict[str, Any]:
        with pytest.raises(ClientError) as caught:
            call(**params)
        return error(caught)

    # pattern, length or range violations: ValidationException naming the field
    bad = code(dl.get_queue, farmId=farm_id, queueId="queue-XYZ")
    assert bad["Error"]["Code"] == "ValidationException"
    assert bad["reason"] == "FIELD_VALIDATION_FAILED"
    assert bad["fieldList"][0]["name"] == "queueId"
    assert bad["ResponseMetadata"]["HTTPStatusCode"] == 400
    bad = code(dl.list_jobs, farmId=farm_id, queueId=queues[task_a], maxResults=101)
    assert bad["fieldList"][0]["name"] == "maxResults"
    bad = code(dl.get_task, **ids, stepId=step, taskId="task-1-1")
    assert bad["fieldList"][0]["name"] == "taskId"
    bad = code(dl.update_task, **ids, stepId=step, taskId=f"task-{step[5:]}-0", targetRunStatus="X")
    assert bad["fieldList"][0]["name"] == "targetRunStatus"

    # well-formed but unknown, or under the wrong parent: ResourceNotFoundException
    zeros = "0" * 32
    for call, params, kind in [
        (dl.get_farm, {"farmId": f"farm-{zeros}"}, "farm"),
        (dl.get_queue, {"farmId": farm_id, "queueId": f"queue-{zeros}"}, "queue"),
        (dl.get_job, {**ids, "jobId": f"job-{zeros}"}, "job"),
        (dl.get_job, {**ids, "queueId": queues[task_b]}, "job"),  # job of A under queue B
        (dl.get_step, {**ids, "stepId": f"step-{zeros}"}, "step"),
        (dl.get_task, {**ids, "stepId": step, "taskId": f"task-{step[5:]}-99"}, "task"),
        (dl.get_task, {**ids, "stepId": step, "taskId": f"task-{zeros}-0"}, "task"),
    ]:
        found = code(call, **params)
        assert found["Error"]["Code"] == "ResourceNotFoundException", (params, found)
        assert found["resourceType"] == kind and found["ResponseMetadata"]["HTTPStatusCode"] == 404
        assert found["resourceId"] in params.values()


def test_updates_of_an_ended_execution_conflict(server: Server) -> None:
    ds = server.client()
    run_task(server, ds, "done", files=1)
    dl = deadline(server)
    farm_id = dl.list_farms()["farms"][0]["farmId"]
    queue_id = dl.list_queues(farmId=farm_id)["queues"][0]["queueId"]
    ids = {"farmId": farm_id, "queueId": queue_id}
    ids["jobId"] = dl.list_jobs(**ids)["jobs"][0]["jobId"]
    prepare = dl.list_steps(**ids)["steps"][0]["stepId"]
    task = dl.list_tasks(**ids, stepId=prepare)["tasks"][0]["taskId"]
    for call, params in [
        (dl.update_job, {**ids, "targetTaskRunStatus": "READY"}),
        (dl.update_step, {**ids, "stepId": prepare, "targetTaskRunStatus": "PENDING"}),
        (dl.update_task, {**ids, "stepId": prepare, "taskId": task, "targetRunStatus": "READY"}),
    ]:
        with pytest.raises(ClientError) as caught:
            call(**params)
        conflict = error(caught)
        assert conflict["Error"]["Code"] == "ConflictException", conflict
        assert conflict["reason"] == "STATUS_CONFLICT" and conflict["resourceId"]
        assert conflict["ResponseMetadata"]["HTTPStatusCode"] == 409
    # members of Deadline's own scheduler are refused by name, not ignored
    with pytest.raises(ClientError) as caught:
        dl.update_job(**ids, priority=10)
    refused = error(caught)
    assert refused["Error"]["Code"] == "ValidationException"
    assert [f["name"] for f in refused["fieldList"]] == ["priority"]


def test_signatures_unsupported_operations_and_bodies(server: Server) -> None:
    wrong = deadline(server, aws_secret_access_key="not-the-secret")
    with pytest.raises(ClientError) as caught:
        wrong.list_farms()
    assert error(caught)["Error"]["Code"] == "AccessDeniedException"
    assert error(caught)["ResponseMetadata"]["HTTPStatusCode"] == 403
    unsigned = deadline(server, config=DEADLINE_CONFIG.merge(Config(signature_version=UNSIGNED)))
    with pytest.raises(ClientError) as caught:
        unsigned.list_farms()
    assert error(caught)["Error"]["Code"] == "AccessDeniedException"

    dl = deadline(server)
    farm_id = dl.list_farms()["farms"][0]["farmId"]
    for call, params in [
        (dl.list_fleets, {"farmId": farm_id}),
        (dl.create_farm, {"displayName": "another"}),
        (dl.delete_farm, {"farmId": farm_id}),
    ]:
        with pytest.raises(ClientError) as caught:
            call(**params)
        refused = error(caught)
        assert refused["Error"]["Code"] == "ValidationException"
        assert refused["reason"] == "UNKNOWN_OPERATION" and "UpdateTask" in refused["message"]

    # raw signed requests: an unknown path, a body that is not JSON, a body member of no shape
    with httpx.Client(timeout=10) as http:

        def send(method: str, path: str, body: bytes) -> httpx.Response:
            url = server.url + path
            headers = sign(
                url, body, {"Content-Type": "application/json"}, method=method, service="deadline"
            )
            return http.request(method, url, content=body, headers=headers)

        for method, path, body, reason in [
            ("GET", "/2023-10-12/nothing-here", b"", "UNKNOWN_OPERATION"),
            ("GET", "/2023-10-12", b"", "UNKNOWN_OPERATION"),
            ("OPTIONS", "/2023-10-12/farms", b"", "UNKNOWN_OPERATION"),
            ("PUT", f"/2023-10-12/farms/{farm_id}", b"{}", "UNKNOWN_OPERATION"),
            ("PATCH", f"/2023-10-12/farms/{farm_id}/queues/q/jobs/j", b"{not json", "CANNOT_PARSE"),
            ("GET", "/2023-10-12/farms", json.dumps({"x": 1}).encode(), "FIELD_VALIDATION_FAILED"),
        ]:
            answer = send(method, path, body)
            assert answer.status_code == 400, answer.text
            assert answer.headers["x-amzn-ErrorType"] == "ValidationException"
            assert answer.json()["reason"] == reason and answer.json()["message"]
        # signed for another service: AccessDenied, not a DataSync error
        url = server.url + "/2023-10-12/farms"
        headers = sign(url, b"", {}, method="GET", service="datasync")
        answer = http.get(url, headers=headers)
        assert answer.status_code == 403
        assert answer.headers["x-amzn-ErrorType"] == "AccessDeniedException"


def test_client_tokens_expire_after_a_day_and_a_claim_is_exclusive(tmp_path: Path) -> None:
    """api.deadline.tokens over a real store, with its clock set: a replay inside 24 h returns
    the first result without running the effect; after 24 h the token is new again; a token
    whose first request is still running is refused; a failed effect releases its token."""
    from api.deadline.errors import ConflictException
    from api.deadline.tokens import REPLAY_WINDOW_SECONDS, ClientTokens
    from api.store import Store

    store = Store.in_directory(str(tmp_path / "tokens"))
    now = [1_000_000.0]
    tokens = ClientTokens(store, clock=lambda: now[0])
    runs: list[str] = []

    def effect(name: str) -> Any:
        def run() -> dict[str, Any]:
            runs.append(name)
            return {"run": name}

        return run

    try:
        assert tokens.run_once("t", "request-1", effect("first")) == {"run": "first"}
        now[0] += REPLAY_WINDOW_SECONDS - 1
        assert tokens.run_once("t", "request-1", effect("again")) == {"run": "first"}
        with pytest.raises(ConflictException):
            tokens.run_once("t", "request-2", effect("other"))
        now[0] += 2  # the first use is now more than 24 h old
        assert tokens.run_once("t", "request-2", effect("new")) == {"run": "new"}
        assert runs == ["first", "new"]

        def nested() -> dict[str, Any]:  # the same token arrives while the first still runs
            with pytest.raises(ConflictException) as caught:
                tokens.run_once("u", "request-1", effect("concurrent"))
            assert caught.value.reason == "CONCURRENT_MODIFICATION"
            return {}

        tokens.run_once("u", "request-1", nested)

        def failing() -> dict[str, Any]:
            raise ValueError("the first attempt failed")

        with pytest.raises(ValueError):
            tokens.run_once("v", "request-1", failing)
        assert tokens.run_once("v", "request-1", effect("retried")) == {"run": "retried"}
        assert runs == ["first", "new", "retried"]
    finally:
        store.close()
