"""The agent's work-item runner (agents/workitems.py) end to end: real `datasync-local agent`
processes against a real server, driven by real boto3 `datasync` and `deadline` clients.

A tree of several top-level directories is planned by item 0, run as several items by two
agents and ends SUCCESS with every file; a suspended execution stops writing, keeps every file
it finished and, resumed, copies only what was in flight (TransferMode=ALL, so nothing is
skipped as unchanged: only the journal spares the finished files); kill -9 of one of two agents
leaves nothing torn and the other finishes the execution; an item failed by an immutable
destination directory (`chattr +i`) is retried once that is lifted."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from api.scheduler import THROTTLED_WHOLE_SECONDS
from api.store import Store
from api.workitems import list_items
from contract.workitems import DEFAULT_SPLIT_MIN_BYTES, DEFAULT_SPLIT_MIN_FILES, ItemKind
from engine.scan import is_temporary
from tests.agents.remote import AgentProcess, activate
from tests.api.harness import Server, finished, location_root, wait_for

LEASE = 3.0  # the server's --agent-timeout: a lost agent's items go back to READY after it
FILE = 64 * 1024


def _tree(src: Path, dirs: int, files: int, seed: int = 3) -> dict[str, bytes]:
    """`dirs` top-level directories of `files` files (one nested), and two files at the root."""
    rng = random.Random(seed)
    out: dict[str, bytes] = {}
    for d in range(dirs):
        for f in range(files):
            rel = f"d{d}/sub/f{f}" if f % 4 == 0 else f"d{d}/f{f}"
            out[rel] = rng.randbytes(FILE)
    out["root1.txt"] = b"one"
    out["root2.txt"] = b"two" * 100
    for rel, data in out.items():
        path = src / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return out


def _real_files(dst: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(dst)): p.read_bytes()
        for p in dst.rglob("*")
        if p.is_file() and not is_temporary(p.name)
    }


def _torn(dst: Path, files: dict[str, bytes]) -> list[str]:
    """Files under a real name whose content is not the source's (the destination was empty)."""
    return [rel for rel, data in _real_files(dst).items() if files.get(rel) != data]


def _temporaries(dst: Path) -> list[str]:
    return [str(p) for p in dst.rglob("*") if is_temporary(p.name)]


@dataclass
class Fleet:
    server: Server
    root: Path
    agents: list[AgentProcess] = field(default_factory=list)
    arns: list[str] = field(default_factory=list)

    @property
    def ds(self) -> Any:
        return self.server.client()

    @property
    def dl(self) -> Any:
        return self.server.client("deadline", config=Config(inject_host_prefix=False))

    @property
    def store(self) -> Store:
        assert self.server.served is not None
        store: Store = self.server.served.extras["backend"].store
        return store

    def add_agent(self, name: str, concurrency: int = 1) -> str:
        state = self.root.parent / f"state-{name}"
        agent = AgentProcess(
            self.server.url, state, [self.root], name=name, concurrency=concurrency
        )
        self.agents.append(agent)
        arn = activate(self.server, agent)
        self.arns.append(arn)
        return arn

    def task(self, **task: Any) -> str:
        ds = self.ds
        source, destination = (
            ds.create_location_nfs(
                ServerHostname="localhost",
                Subdirectory=str(self.root / name),
                OnPremConfig={"AgentArns": self.arns},
            )["LocationArn"]
            for name in ("src", "dst")
        )
        arn: str = ds.create_task(
            SourceLocationArn=source, DestinationLocationArn=destination, **task
        )["TaskArn"]
        return arn

    def planned(self, arn: str, timeout: float = 30.0) -> list[Any]:
        """The execution's items once item 0 uploaded its plan."""

        def items() -> list[Any]:
            found = list_items(self.store, arn)
            return found if any(i.kind == ItemKind.TRANSFER for i in found) else []

        result: list[Any] = wait_for(items, timeout=timeout, interval=0.1)
        return result

    def job_ids(self, arn: str) -> dict[str, str]:
        dl = self.dl
        farm = dl.list_farms()["farms"][0]["farmId"]
        for queue in dl.list_queues(farmId=farm)["queues"]:
            ids = {"farmId": farm, "queueId": queue["queueId"]}
            for job in dl.list_jobs(**ids)["jobs"]:
                if job["name"] == arn:
                    return {**ids, "jobId": job["jobId"]}
        raise AssertionError(f"no Deadline job for {arn}")

    def tasks(self, ids: dict[str, str]) -> dict[str, dict[str, Any]]:
        """The Transfer step's tasks by their path, with the step's id under "stepId"."""
        dl = self.dl
        steps = {s["name"]: s["stepId"] for s in dl.list_steps(**ids)["steps"]}
        step = steps["Transfer"]
        return {
            t["parameters"]["path"]["path"]: {**t, "stepId": step}
            for t in dl.list_tasks(**ids, stepId=step)["tasks"]
        }


@contextmanager
def _fleet_of(tmp_path: Path, split_min: tuple[int, int] = (0, 0)) -> Iterator[Fleet]:
    """A server without an embedded agent (`split_min`: serve's split minimum) and the fleet
    of agent processes the test adds; all stopped at the end."""
    server = Server(
        str(tmp_path / "data"), [], embedded_agent=False, agent_timeout=LEASE, split_min=split_min
    ).start()
    fleet = Fleet(server, location_root(tmp_path))
    try:
        yield fleet
    finally:
        for agent in fleet.agents:
            agent.stop()
        server.stop()


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    with _fleet_of(tmp_path) as fleet:
        yield fleet


def test_several_top_level_directories_run_as_several_items_on_two_agents(fleet: Fleet) -> None:
    files = _tree(fleet.root / "src", dirs=6, files=12)
    fleet.add_agent("one")
    fleet.add_agent("two")
    task = fleet.task(Options={"VerifyMode": "ONLY_FILES_TRANSFERRED"})
    arn = fleet.ds.start_task_execution(TaskArn=task)["TaskExecutionArn"]
    done = finished(fleet.ds, arn, timeout=90)
    assert done["Status"] == "SUCCESS", done.get("Result")
    assert _real_files(fleet.root / "dst") == files
    assert _temporaries(fleet.root / "dst") == []
    items = list_items(fleet.store, arn)
    transfers = [i for i in items if i.kind == ItemKind.TRANSFER]
    # the root's files, and each top-level directory at least its own item
    assert {i.scope.path for i in transfers if i.scope} >= {"", *(f"d{d}" for d in range(6))}
    assert all(i.status.value == "SUCCEEDED" for i in items)
    # DescribeTaskExecution is the sum over items: each file counted once
    assert done["FilesTransferred"] == len(files) and done["FilesVerified"] == len(files)
    assert done["BytesTransferred"] == sum(len(d) for d in files.values())


def test_suspend_stops_writing_and_resume_recopies_only_what_was_in_flight(fleet: Fleet) -> None:
    files = _tree(fleet.root / "src", dirs=4, files=16)
    total = sum(len(d) for d in files.values())
    dst = fleet.root / "dst"
    fleet.add_agent("solo", concurrency=2)
    rate = 400 * 1024
    task = fleet.task(Options={"BytesPerSecond": rate, "TransferMode": "ALL", "VerifyMode": "NONE"})
    ds = fleet.ds
    arn = ds.start_task_execution(TaskArn=task)["TaskExecutionArn"]
    fleet.planned(arn)
    wait_for(lambda: len(_real_files(dst)) >= 12, timeout=60, interval=0.1)
    ids = fleet.job_ids(arn)
    asked = time.monotonic()
    fleet.dl.update_job(**ids, targetTaskRunStatus="SUSPENDED")

    def acknowledged() -> bool:
        items = list_items(fleet.store, arn)
        return not any(i.running for i in items if i.kind == ItemKind.TRANSFER)

    wait_for(acknowledged, timeout=10, interval=0.05)
    assert time.monotonic() - asked < 5
    suspended = ds.describe_task_execution(TaskExecutionArn=arn)
    assert suspended["Status"] not in ("SUCCESS", "ERROR")
    placed = {rel: os.stat(dst / rel).st_ino for rel in _real_files(dst)}
    assert _torn(dst, files) == []
    assert _temporaries(dst) == []  # files in flight went back to temporaries, then went
    time.sleep(1.5)  # nothing more is written while suspended; the counters freeze
    assert {rel: os.stat(dst / rel).st_ino for rel in _real_files(dst)} == placed
    again = ds.describe_task_execution(TaskExecutionArn=arn)
    assert again["BytesWritten"] == suspended["BytesWritten"]
    assert again["Status"] == suspended["Status"]
    assert 0 < len(placed) < len(files)

    fleet.dl.update_job(**ids, targetTaskRunStatus="READY")
    done = finished(ds, arn, timeout=90)
    assert done["Status"] == "SUCCESS", done.get("Result")
    assert _real_files(dst) == files
    # TransferMode=ALL copies everything again, unless the journal says it is done: every
    # file finished before the suspension keeps its inode (it was not copied again)
    recopied = [rel for rel, ino in placed.items() if os.stat(dst / rel).st_ino != ino]
    assert recopied == []
    assert done["FilesTransferred"] == len(files)
    assert done["BytesTransferred"] == total


def test_kill_9_of_one_of_two_agents_the_other_finishes_nothing_torn(fleet: Fleet) -> None:
    files = _tree(fleet.root / "src", dirs=6, files=10)
    dst = fleet.root / "dst"
    fleet.add_agent("stays")
    fleet.add_agent("dies")
    task = fleet.task(
        Options={"BytesPerSecond": 600 * 1024, "VerifyMode": "ONLY_FILES_TRANSFERRED"}
    )
    ds = fleet.ds
    arn = ds.start_task_execution(TaskArn=task)["TaskExecutionArn"]
    victim = fleet.arns[1]

    def victim_mid_item() -> bool:
        """The victim runs an item and has reported some of its bytes, under half of them: the
        kill then falls mid-item even when the machine is slow between this look and the kill
        (a fixed sleep after the item started sometimes let the item finish first)."""
        for item in list_items(fleet.store, arn):
            if item.running and item.agent_arn == victim and item.kind == ItemKind.TRANSFER:
                written = json.loads(item.details.get("counters", "{}")).get("BytesWritten", 0)
                if 0 < written < 5 * FILE:  # an item of a directory holds 10 files
                    return True
        return False

    process = fleet.agents[1].proc
    assert process is not None
    for _ in range(20):  # bounded: each try waits for the victim's next item
        wait_for(victim_mid_item, timeout=60, interval=0.02)
        # frozen first, then looked at again: the stored counters may lag the agent (its report
        # in flight), so the item may have ended between the look and a kill
        os.kill(process.pid, signal.SIGSTOP)
        time.sleep(0.5)  # a report the victim already sent is served meanwhile
        if victim_mid_item():
            break
        os.kill(process.pid, signal.SIGCONT)
    else:
        raise AssertionError("the victim never stayed mid-item long enough to be killed there")
    fleet.agents[1].kill()
    assert _torn(dst, files) == []
    done = finished(ds, arn, timeout=120)
    assert done["Status"] == "SUCCESS", done.get("Result")
    assert _real_files(dst) == files
    assert _temporaries(dst) == []
    items = list_items(fleet.store, arn)
    assert any(i.execution_number > 1 for i in items), "no item was taken over"
    assert all(i.agent_arn == fleet.arns[0] for i in items if i.execution_number > 1)
    # each file counted at most once; the taken-over item counts what the journal said was
    # done, less the small files the lost agent placed (journaled only at a graceful stop:
    # found unchanged, as a re-run finds them): at most the files of the one item it held
    assert len(files) - 10 <= done["FilesTransferred"] <= len(files)
    assert done["FilesVerified"] == done["FilesTransferred"]


def test_a_failed_item_is_retried_once_its_immutable_directory_is_freed(fleet: Fleet) -> None:
    files = _tree(fleet.root / "src", dirs=3, files=8)
    dst = fleet.root / "dst"
    locked = dst / "d1"
    locked.mkdir(parents=True)
    subprocess.run(["chattr", "+i", str(locked)], check=True)
    try:
        fleet.add_agent("solo", concurrency=3)
        task = fleet.task(Options={"BytesPerSecond": 200 * 1024, "VerifyMode": "NONE"})
        ds = fleet.ds
        arn = ds.start_task_execution(TaskArn=task)["TaskExecutionArn"]
        fleet.planned(arn)
        ids = fleet.job_ids(arn)

        def failed() -> dict[str, Any] | None:
            task = fleet.tasks(ids).get("d1")
            return task if task and task["runStatus"] == "FAILED" else None

        wait_for(failed, timeout=60, interval=0.1)
        # hold the others so that the execution cannot end before the retry
        fleet.dl.update_job(**ids, targetTaskRunStatus="SUSPENDED")
        assert ds.describe_task_execution(TaskExecutionArn=arn)["Status"] != "ERROR"
    finally:
        subprocess.run(["chattr", "-i", str(locked)], check=True)
    d1 = fleet.tasks(ids)["d1"]
    fleet.dl.update_task(**ids, stepId=d1["stepId"], taskId=d1["taskId"], targetRunStatus="READY")

    def retried() -> dict[str, Any] | None:
        task = fleet.tasks(ids)["d1"]
        return task if task["runStatus"] == "SUCCEEDED" else None

    assert wait_for(retried, timeout=60, interval=0.1)["failureRetryCount"] == 1
    fleet.dl.update_job(**ids, targetTaskRunStatus="READY")
    done = finished(ds, arn, timeout=90)
    assert done["Status"] == "SUCCESS", done.get("Result")
    assert _real_files(dst) == files


def test_remove_deletes_extras_once_after_every_item(fleet: Fleet) -> None:
    files = _tree(fleet.root / "src", dirs=4, files=6)
    dst = fleet.root / "dst"
    extras = ["d0/extra.txt", "d2/sub/old.bin", "gone/a", "gone/b", "stray.txt"]
    for rel in extras:
        (dst / rel).parent.mkdir(parents=True, exist_ok=True)
        (dst / rel).write_bytes(b"extra")
    fleet.add_agent("one")
    fleet.add_agent("two")
    task = fleet.task(
        Options={"PreserveDeletedFiles": "REMOVE", "VerifyMode": "POINT_IN_TIME_CONSISTENT"}
    )
    arn = fleet.ds.start_task_execution(TaskArn=task)["TaskExecutionArn"]
    done = finished(fleet.ds, arn, timeout=90)
    assert done["Status"] == "SUCCESS", done.get("Result")
    assert _real_files(dst) == files
    assert not (dst / "gone").exists()
    items = list_items(fleet.store, arn)
    assert [i.kind for i in items].count(ItemKind.REMOVE) == 1 and items[-1].kind == ItemKind.REMOVE
    assert done["FilesDeleted"] == len(extras)
    assert done["FilesTransferred"] == len(files) and done["FilesVerified"] == len(files)


def test_a_whole_run_refuses_a_suspend_and_withdraws_one_kept_while_planning(
    tmp_path: Path,
) -> None:
    """A tree below serve's default split minimum runs as one part and cannot be suspended:
    boto3 deadline UpdateJob SUSPENDED kept while the execution waited for its plan is
    withdrawn once the agent says it runs whole (GetJob's description says why), and one sent
    while it runs is a ConflictException naming --split-min-files; nothing is dropped silently."""
    with _fleet_of(tmp_path, split_min=(DEFAULT_SPLIT_MIN_FILES, DEFAULT_SPLIT_MIN_BYTES)) as fleet:
        root = fleet.root
        files = _tree(root / "src", dirs=6, files=4)
        fleet.add_agent("one")
        task = fleet.task()
        agent = fleet.agents[0]
        agent.stop()  # nobody claims the execution: it waits for its plan
        arn = fleet.ds.start_task_execution(TaskArn=task)["TaskExecutionArn"]
        ids = fleet.job_ids(arn)
        dl = fleet.dl
        dl.update_job(**ids, targetTaskRunStatus="SUSPENDED")
        assert dl.get_job(**ids)["targetTaskRunStatus"] == "SUSPENDED"  # kept for the plan
        agent.start()
        done = finished(fleet.ds, arn, timeout=60)
        assert done["Status"] == "SUCCESS", done.get("Result")
        assert _real_files(root / "dst") == files and list_items(fleet.store, arn) == []
        job = dl.get_job(**ids)
        assert job.get("targetTaskRunStatus") is None  # withdrawn, and the reason is shown
        assert "UpdateJob SUSPENDED was withdrawn" in job["description"]
        assert "--split-min-files 2000" in job["description"]

        # while a whole run is under way, a suspend is refused (it would never be applied)
        (root / "src" / "later.bin").write_bytes(os.urandom(4 << 20))
        arn2 = fleet.ds.start_task_execution(
            TaskArn=task, OverrideOptions={"BytesPerSecond": 1 << 20}
        )["TaskExecutionArn"]
        wait_for(
            lambda: (
                fleet.ds.describe_task_execution(TaskExecutionArn=arn2)["Status"]
                in ("TRANSFERRING", "VERIFYING", "SUCCESS")
            ),
            timeout=60,
            interval=0.1,
        )
        ids2 = fleet.job_ids(arn2)
        with pytest.raises(ClientError) as info:
            dl.update_job(**ids2, targetTaskRunStatus="SUSPENDED")
        error = info.value.response
        assert error["Error"]["Code"] == "ConflictException", error
        assert error["ResponseMetadata"]["HTTPStatusCode"] == 409
        assert "runs as one part" in error["Error"]["Message"]
        assert "--split-min-files 2000" in error["Error"]["Message"]
        assert dl.get_job(**ids2).get("targetTaskRunStatus") is None
        fleet.ds.cancel_task_execution(TaskExecutionArn=arn2)
        assert finished(fleet.ds, arn2, timeout=60)["Status"] in ("ERROR", "SUCCESS")


def test_a_throttled_run_longer_than_a_minute_is_split_and_can_be_suspended(
    tmp_path: Path,
) -> None:
    """Below serve's default split minimum, but throttled so that it would run for more than
    a minute (api.scheduler.THROTTLED_WHOLE_SECONDS): the tree is split into work items, so
    UpdateJob SUSPENDED is applied instead of refused; a cancel then ends it."""
    with _fleet_of(tmp_path, split_min=(DEFAULT_SPLIT_MIN_FILES, DEFAULT_SPLIT_MIN_BYTES)) as fleet:
        root = fleet.root
        files = _tree(root / "src", dirs=3, files=4)
        rate = 1024  # sum(sizes) is far beyond 60 s of it
        assert sum(map(len, files.values())) > rate * THROTTLED_WHOLE_SECONDS
        fleet.add_agent("one")
        arn = fleet.ds.start_task_execution(
            TaskArn=fleet.task(), OverrideOptions={"BytesPerSecond": rate}
        )["TaskExecutionArn"]
        ids = fleet.job_ids(arn)
        wait_for(lambda: len(list_items(fleet.store, arn)) > 1, timeout=60, interval=0.1)
        fleet.dl.update_job(**ids, targetTaskRunStatus="SUSPENDED")  # not a ConflictException

        def suspended() -> bool:
            items = list_items(fleet.store, arn)[1:]
            return all(i.status.value in ("SUSPENDED", "SUCCEEDED") for i in items)

        wait_for(suspended, timeout=30, interval=0.1)
        assert any(i.status.value == "SUSPENDED" for i in list_items(fleet.store, arn))
        fleet.ds.cancel_task_execution(TaskExecutionArn=arn)
        assert finished(fleet.ds, arn, timeout=60)["Status"] == "ERROR"
        assert not [p for p in (root / "dst").rglob("*") if is_temporary(p.name)]


def test_a_tree_below_the_split_minimum_runs_whole_without_items(tmp_path: Path) -> None:
    """serve's split minimum (--split-min-files/--split-min-bytes): a small tree of several
    top-level directories is not split (each item would cost more than it copies)."""
    with _fleet_of(tmp_path, split_min=(1000, 1 << 30)) as fleet:
        root = fleet.root
        files = _tree(root / "src", dirs=6, files=4)
        fleet.add_agent("one")
        arn = fleet.ds.start_task_execution(TaskArn=fleet.task())["TaskExecutionArn"]
        done = finished(fleet.ds, arn, timeout=60)
        assert done["Status"] == "SUCCESS", done.get("Result")
        assert _real_files(root / "dst") == files
        assert list_items(fleet.store, arn) == []  # ran whole in the execution's own job
        assert done["FilesTransferred"] == len(files)
