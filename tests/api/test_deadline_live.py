"""Suspend and resume running executions through the Deadline routes, with the real embedded
agent copying real files under a throttle (boto3 `deadline` and `datasync` clients).

What is checked is behaviour, not speed: once suspended, no more bytes are written (the counters
freeze and the destination does not grow), the execution keeps its phase and is not terminal,
no file is ever torn under its real name, and after resuming the execution ends SUCCESS with the
trees identical. Every wait is bounded.
"""

from __future__ import annotations

import filecmp
import os
import time
from pathlib import Path
from typing import Any

import pytest

from tests.api.harness import Server, finished, make_tree, nfs_task, serving, wait_for
from tests.api.test_deadline import deadline

DIRS = ("a", "b", "c")
FILE_BYTES = 384 * 1024
RATE = 192 * 1024  # bytes per second for the whole execution: ~6 s of copying


@pytest.fixture
def server(tmp_path: Path) -> Any:
    with serving(tmp_path) as srv:
        yield srv


def _start(server: Server) -> tuple[Any, str, Path, Path]:
    ds = server.client()
    root: Path = server.root  # type: ignore[attr-defined]
    src, dst = root / "src", root / "dst"
    for name in DIRS:
        make_tree(str(src / name), 1, FILE_BYTES, prefix=name)
    _, _, task = nfs_task(
        ds, server.agent_arn, src, dst, Options={"BytesPerSecond": RATE, "VerifyMode": "NONE"}
    )
    arn = ds.start_task_execution(TaskArn=task)["TaskExecutionArn"]
    return ds, arn, src, dst


def _ids(server: Server, arn: str) -> dict[str, str]:
    dl = deadline(server)
    farm = dl.list_farms()["farms"][0]["farmId"]
    ids = {"farmId": farm, "queueId": dl.list_queues(farmId=farm)["queues"][0]["queueId"]}
    ids["jobId"] = next(j["jobId"] for j in dl.list_jobs(**ids)["jobs"] if j["name"] == arn)
    return ids


def _transfer_tasks(dl: Any, ids: dict[str, str]) -> tuple[str, list[dict[str, Any]]]:
    step = next(s["stepId"] for s in dl.list_steps(**ids)["steps"] if s["name"] == "Transfer")
    tasks = [
        dl.get_task(**ids, stepId=step, taskId=t["taskId"])
        for t in dl.list_tasks(**ids, stepId=step)["tasks"]
    ]
    return step, tasks


def _nothing_torn(src: Path, dst: Path) -> None:
    """Every file under its real name at the destination is whole (temporaries may exist)."""
    for directory, _subdirs, files in os.walk(dst):
        for name in files:
            path = Path(directory) / name
            source = src / path.relative_to(dst)
            if source.exists():
                assert filecmp.cmp(source, path, shallow=False), f"{path} is torn"


def _written(dst: Path) -> int:
    return sum(p.stat().st_size for p in dst.rglob("*") if p.is_file())


def test_suspend_and_resume_a_whole_execution(server: Server) -> None:
    ds, arn, src, dst = _start(server)
    wait_for(lambda: ds.describe_task_execution(TaskExecutionArn=arn)["BytesWritten"] > 0, 30)
    ids = _ids(server, arn)
    dl = deadline(server)
    _step, tasks = _transfer_tasks(dl, ids)
    assert sorted(t["parameters"]["path"]["path"] for t in tasks) == list(DIRS)

    dl.update_job(**ids, targetTaskRunStatus="SUSPENDED")

    def suspended() -> bool:
        job = dl.get_job(**ids)
        return bool(job["taskRunStatus"] == "SUSPENDED")

    wait_for(suspended, 20)
    before = ds.describe_task_execution(TaskExecutionArn=arn)
    assert before["Status"] == "TRANSFERRING"  # the phase stays; not terminal
    on_disk = _written(dst)
    time.sleep(1.5)
    after = ds.describe_task_execution(TaskExecutionArn=arn)
    assert after["Status"] == "TRANSFERRING"
    assert after["BytesWritten"] == before["BytesWritten"]  # frozen
    assert after["FilesTransferred"] == before["FilesTransferred"]
    assert _written(dst) == on_disk  # no byte moves while suspended
    assert after["BytesWritten"] < FILE_BYTES * len(DIRS)
    _nothing_torn(src, dst)
    counts = dl.get_job(**ids)["taskRunStatusCounts"]
    assert counts["SUSPENDED"] >= 1 and counts["RUNNING"] == 0

    dl.update_job(**ids, targetTaskRunStatus="READY")
    done = finished(ds, arn, timeout=60)
    assert done["Status"] == "SUCCESS", done["Result"]
    assert done["FilesTransferred"] >= len(DIRS)
    for name in DIRS:
        assert filecmp.cmp(src / name / f"{name}0000.bin", dst / name / f"{name}0000.bin", False)
    _step, tasks = _transfer_tasks(dl, ids)
    assert {t["runStatus"] for t in tasks} == {"SUCCEEDED"}
    assert all(t["failureRetryCount"] == 0 for t in tasks)  # a suspension is not a failure
    assert dl.get_job(**ids)["taskRunStatus"] == "SUCCEEDED"


def test_suspend_one_item_while_the_others_finish(server: Server) -> None:
    ds, arn, src, dst = _start(server)
    wait_for(lambda: ds.describe_task_execution(TaskExecutionArn=arn)["BytesWritten"] > 0, 30)
    ids = _ids(server, arn)
    dl = deadline(server)
    step, tasks = _transfer_tasks(dl, ids)
    waiting = [t for t in tasks if t["runStatus"] != "SUCCEEDED"]
    assert waiting, "the throttle should leave an item unfinished"
    chosen = waiting[-1]
    dl.update_task(**ids, stepId=step, taskId=chosen["taskId"], targetRunStatus="SUSPENDED")

    def others_done() -> bool:
        _s, now = _transfer_tasks(dl, ids)
        mine = next(t for t in now if t["taskId"] == chosen["taskId"])
        rest = [t["runStatus"] for t in now if t["taskId"] != chosen["taskId"]]
        return mine["runStatus"] == "SUSPENDED" and set(rest) == {"SUCCEEDED"}

    wait_for(others_done, 60)
    described = ds.describe_task_execution(TaskExecutionArn=arn)
    assert described["Status"] not in ("SUCCESS", "ERROR")  # a suspended item holds it open
    _nothing_torn(src, dst)
    path = chosen["parameters"]["path"]["path"]
    assert not (dst / path / f"{path}0000.bin").exists() or filecmp.cmp(
        src / path / f"{path}0000.bin", dst / path / f"{path}0000.bin", False
    )

    dl.update_task(**ids, stepId=step, taskId=chosen["taskId"], targetRunStatus="READY")
    done = finished(ds, arn, timeout=60)
    assert done["Status"] == "SUCCESS", done["Result"]
    assert filecmp.cmp(src / path / f"{path}0000.bin", dst / path / f"{path}0000.bin", False)
    resumed = dl.get_task(**ids, stepId=step, taskId=chosen["taskId"])
    assert resumed["runStatus"] == "SUCCEEDED" and resumed["failureRetryCount"] == 0
