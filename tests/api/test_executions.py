"""Task executions end to end: boto3 → API → jobs protocol → embedded agent → engine → files."""

from __future__ import annotations

import filecmp
import os
import time
from pathlib import Path
from typing import Any

import pytest

from tests.api.harness import Server, make_tree, wait_for

SLOW = 64 * 1024  # bytes per second: slow enough to act on a running execution


def status_of(ds: Any, arn: str) -> str:
    return str(ds.describe_task_execution(TaskExecutionArn=arn)["Status"])


def wait_status(ds: Any, arn: str, *wanted: str, timeout: float = 20.0) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        doc: dict[str, Any] = ds.describe_task_execution(TaskExecutionArn=arn)
        return doc if doc["Status"] in wanted else None

    result: dict[str, Any] = wait_for(check, timeout)
    return result


def test_transfer_moves_files(ds: Any, root: Path, locations: tuple[str, str]) -> None:
    make_tree(os.fspath(root / "src"), 12, 50_000)
    (root / "src" / "sub").mkdir()
    (root / "src" / "sub" / "note.txt").write_text("hello")
    src, dst = locations
    task = ds.create_task(SourceLocationArn=src, DestinationLocationArn=dst, Name="copy")["TaskArn"]
    arn = ds.start_task_execution(
        TaskArn=task,
        OverrideOptions={"VerifyMode": "ONLY_FILES_TRANSFERRED"},
        Tags=[{"Key": "run", "Value": "1"}],
    )["TaskExecutionArn"]
    assert arn.startswith(task + "/execution/exec-")
    assert ds.describe_task(TaskArn=task)["CurrentTaskExecutionArn"] == arn
    final = wait_status(ds, arn, "SUCCESS", "ERROR")
    assert final["Status"] == "SUCCESS", final.get("Result")
    assert (root / "dst" / "sub" / "note.txt").read_text() == "hello"
    assert filecmp.dircmp(root / "src", root / "dst").diff_files == []
    assert sorted(os.listdir(root / "dst")) == sorted(os.listdir(root / "src"))
    assert final["FilesTransferred"] >= 13 and final["BytesWritten"] == 12 * 50_000 + 5
    assert final["FilesVerified"] >= 13
    assert final["Result"]["TransferStatus"] == "SUCCESS"
    assert final["Result"]["VerifyStatus"] == "SUCCESS"
    assert final["Options"]["VerifyMode"] == "ONLY_FILES_TRANSFERRED"
    assert final["StartTime"] <= final["LaunchTime"] <= final["EndTime"]
    described = ds.describe_task(TaskArn=task)
    assert described["Status"] == "AVAILABLE" and described["CurrentTaskExecutionArn"] == arn
    listed = ds.list_task_executions(TaskArn=task)["TaskExecutions"]
    assert listed == [{"TaskExecutionArn": arn, "Status": "SUCCESS", "TaskMode": "BASIC"}]
    assert ds.list_tags_for_resource(ResourceArn=arn)["Tags"] == [{"Key": "run", "Value": "1"}]

    again = ds.start_task_execution(TaskArn=task)["TaskExecutionArn"]  # nothing changed
    second = wait_status(ds, again, "SUCCESS", "ERROR")
    assert second["Status"] == "SUCCESS" and second["FilesTransferred"] <= 1  # only the root dir


def test_overrides_merge_field_by_field(ds: Any, root: Path, locations: tuple[str, str]) -> None:
    src, dst = locations
    task = ds.create_task(
        SourceLocationArn=src, DestinationLocationArn=dst, Options={"LogLevel": "BASIC"}
    )["TaskArn"]
    arn = ds.start_task_execution(TaskArn=task, OverrideOptions={"VerifyMode": "NONE"})[
        "TaskExecutionArn"
    ]
    options = ds.describe_task_execution(TaskExecutionArn=arn)["Options"]
    assert options["VerifyMode"] == "NONE" and options["LogLevel"] == "BASIC"
    assert ds.describe_task(TaskArn=task)["Options"]["VerifyMode"] == "POINT_IN_TIME_CONSISTENT"
    final = wait_status(ds, arn, "SUCCESS", "ERROR")
    assert final["Status"] == "SUCCESS"
    assert final["Result"]["VerifyStatus"] in ("SUCCESS", "PENDING")


def test_one_running_per_task_queueing_and_cancel(
    ds: Any, root: Path, locations: tuple[str, str]
) -> None:
    make_tree(os.fspath(root / "src"), 4, 256 * 1024)
    src, dst = locations
    task = ds.create_task(
        SourceLocationArn=src, DestinationLocationArn=dst, Options={"BytesPerSecond": SLOW}
    )["TaskArn"]
    first = ds.start_task_execution(TaskArn=task)["TaskExecutionArn"]
    wait_status(ds, first, "TRANSFERRING")
    assert ds.describe_task(TaskArn=task)["Status"] == "RUNNING"
    with pytest.raises(ds.exceptions.InvalidRequestException, match="same filters"):
        ds.start_task_execution(TaskArn=task)
    queued = ds.start_task_execution(
        TaskArn=task, Includes=[{"FilterType": "SIMPLE_PATTERN", "Value": "/f0000.bin"}]
    )["TaskExecutionArn"]
    assert status_of(ds, queued) == "QUEUED"
    with pytest.raises(ds.exceptions.InvalidRequestException, match="TaskQueueing"):
        ds.start_task_execution(
            TaskArn=task,
            OverrideOptions={"TaskQueueing": "DISABLED"},
            Excludes=[{"FilterType": "SIMPLE_PATTERN", "Value": "*.tmp"}],
        )

    ds.update_task_execution(TaskExecutionArn=queued, Options={"BytesPerSecond": -1})
    ds.cancel_task_execution(TaskExecutionArn=first)
    assert status_of(ds, first) in ("CANCELLING", "ERROR")
    ended = wait_status(ds, first, "ERROR", timeout=10)
    assert ended["Result"]["ErrorCode"] == "Cancelled"
    with pytest.raises(ds.exceptions.InvalidRequestException, match="cannot be cancelled"):
        ds.cancel_task_execution(TaskExecutionArn=first)
    with pytest.raises(ds.exceptions.InvalidRequestException, match="only a queued or running"):
        ds.update_task_execution(TaskExecutionArn=first, Options={"BytesPerSecond": 1000})

    done = wait_status(ds, queued, "SUCCESS", "ERROR")
    assert done["Status"] == "SUCCESS", done["Result"]
    assert done["Options"]["BytesPerSecond"] == -1
    assert done["LaunchTime"] > done["StartTime"]
    assert (root / "dst" / "f0000.bin").stat().st_size == 256 * 1024
    statuses = {
        e["TaskExecutionArn"]: e["Status"] for e in ds.list_task_executions()["TaskExecutions"]
    }
    assert statuses == {first: "ERROR", queued: "SUCCESS"}


def test_cancel_a_queued_execution_and_fifo_across_tasks(
    server: Server, ds: Any, root: Path, locations: tuple[str, str]
) -> None:
    make_tree(os.fspath(root / "src"), 2, 256 * 1024)
    src, dst = locations
    (root / "dst2").mkdir()
    dst2 = ds.create_location_nfs(
        ServerHostname="localhost",
        Subdirectory=os.fspath(root / "dst2"),
        OnPremConfig={"AgentArns": [server.agent_arn]},
    )["LocationArn"]
    slow = ds.create_task(
        SourceLocationArn=src, DestinationLocationArn=dst, Options={"BytesPerSecond": SLOW}
    )["TaskArn"]
    other = ds.create_task(SourceLocationArn=src, DestinationLocationArn=dst2)["TaskArn"]
    running = ds.start_task_execution(TaskArn=slow)["TaskExecutionArn"]
    wait_status(ds, running, "PREPARING", "TRANSFERRING")
    waiting = ds.start_task_execution(TaskArn=other)["TaskExecutionArn"]
    assert status_of(ds, waiting) == "QUEUED"
    assert ds.describe_task(TaskArn=other)["Status"] == "QUEUED"
    ds.cancel_task_execution(TaskExecutionArn=waiting)
    cancelled = ds.describe_task_execution(TaskExecutionArn=waiting)
    assert cancelled["Status"] == "ERROR" and cancelled["Result"]["ErrorCode"] == "Cancelled"
    assert ds.describe_task(TaskArn=other)["Status"] == "AVAILABLE"

    waiting = ds.start_task_execution(TaskArn=other)["TaskExecutionArn"]
    ds.update_task_execution(TaskExecutionArn=running, Options={"BytesPerSecond": -1})
    assert wait_status(ds, running, "SUCCESS", "ERROR")["Status"] == "SUCCESS"
    assert wait_status(ds, waiting, "SUCCESS", "ERROR")["Status"] == "SUCCESS"
    assert sorted(os.listdir(root / "dst2")) == sorted(os.listdir(root / "src"))


def test_update_task_execution_rules(ds: Any, root: Path, locations: tuple[str, str]) -> None:
    make_tree(os.fspath(root / "src"), 2, 128 * 1024)
    src, dst = locations
    task = ds.create_task(SourceLocationArn=src, DestinationLocationArn=dst)["TaskArn"]
    arn = ds.start_task_execution(TaskArn=task, OverrideOptions={"BytesPerSecond": SLOW})[
        "TaskExecutionArn"
    ]
    with pytest.raises(
        ds.exceptions.InvalidRequestException, match=r"only Options\.BytesPerSecond"
    ):
        ds.update_task_execution(TaskExecutionArn=arn, Options={"VerifyMode": "NONE"})
    with pytest.raises(ds.exceptions.InvalidRequestException, match="BytesPerSecond"):
        ds.update_task_execution(TaskExecutionArn=arn, Options={"BytesPerSecond": 0})
    ds.update_task_execution(TaskExecutionArn=arn, Options={"BytesPerSecond": -1})
    assert wait_status(ds, arn, "SUCCESS", "ERROR")["Status"] == "SUCCESS"
    with pytest.raises(ds.exceptions.InvalidRequestException, match="only a queued or running"):
        ds.update_task_execution(TaskExecutionArn=arn, Options={"BytesPerSecond": 1000})
    with pytest.raises(ds.exceptions.InvalidRequestException, match="not found"):
        ds.describe_task_execution(TaskExecutionArn=task + "/execution/exec-0123456789abcdef0")


def test_live_rate_change_is_visible(ds: Any, root: Path, locations: tuple[str, str]) -> None:
    make_tree(os.fspath(root / "src"), 16, 1024 * 1024)
    src, dst = locations
    task = ds.create_task(
        SourceLocationArn=src,
        DestinationLocationArn=dst,
        Options={"BytesPerSecond": 128 * 1024, "VerifyMode": "NONE"},
    )["TaskArn"]
    arn = ds.start_task_execution(TaskArn=task)["TaskExecutionArn"]
    wait_status(ds, arn, "TRANSFERRING")

    def rate(seconds: float) -> float:
        before = ds.describe_task_execution(TaskExecutionArn=arn)["BytesWritten"]
        time.sleep(seconds)
        after = ds.describe_task_execution(TaskExecutionArn=arn)["BytesWritten"]
        return float(after - before) / seconds

    # counters arrive with the agent's reports (about every second), so each window of 2 s
    # sees between 1 and 3 s of progress: 32x apart rates stay well apart through that
    slow = rate(2.0)
    ds.update_task_execution(TaskExecutionArn=arn, Options={"BytesPerSecond": 4 * 1024 * 1024})
    assert ds.describe_task_execution(TaskExecutionArn=arn)["Options"]["BytesPerSecond"] == 4194304
    time.sleep(0.5)  # the agent is woken, reports, and hears the new rate in the reply
    fast = rate(2.0)
    print(f"\nrate before {slow / 1024:.0f} KiB/s, after {fast / 1024:.0f} KiB/s")
    assert slow < 256 * 1024
    assert fast > 4 * slow
    ds.update_task_execution(TaskExecutionArn=arn, Options={"BytesPerSecond": -1})
    assert wait_status(ds, arn, "SUCCESS", "ERROR")["Status"] == "SUCCESS"


def test_cancel_leaves_no_half_written_file(
    ds: Any, root: Path, locations: tuple[str, str]
) -> None:
    make_tree(os.fspath(root / "src"), 3, 2 * 1024 * 1024)
    src, dst = locations
    task = ds.create_task(
        SourceLocationArn=src, DestinationLocationArn=dst, Options={"BytesPerSecond": 512 * 1024}
    )["TaskArn"]
    arn = ds.start_task_execution(TaskArn=task)["TaskExecutionArn"]
    wait_for(lambda: ds.describe_task_execution(TaskExecutionArn=arn)["BytesWritten"] > 0)
    ds.cancel_task_execution(TaskExecutionArn=arn)
    started = time.monotonic()
    final = wait_status(ds, arn, "ERROR", timeout=10)
    print(f"\ncancel took {time.monotonic() - started:.2f}s")
    assert final["Result"]["ErrorCode"] == "Cancelled"
    leftovers = sorted(os.listdir(root / "dst"))
    assert set(leftovers) <= set(os.listdir(root / "src")), leftovers  # no temporaries
    for name in leftovers:
        assert filecmp.cmp(root / "src" / name, root / "dst" / name, shallow=False), name


def test_state_survives_restart_and_graceful_stop(
    server: Server, root: Path, locations: tuple[str, str]
) -> None:
    ds = server.client()
    make_tree(os.fspath(root / "src"), 2, 256 * 1024)
    src, dst = locations
    task = ds.create_task(
        SourceLocationArn=src,
        DestinationLocationArn=dst,
        Options={"BytesPerSecond": SLOW},
        Tags=[{"Key": "keep", "Value": "me"}],
    )["TaskArn"]
    running = ds.start_task_execution(TaskArn=task)["TaskExecutionArn"]
    wait_status(ds, running, "TRANSFERRING")
    agent = server.agent_arn
    server.restart()  # graceful: the embedded agent cancels its transfer and reports it
    ds = server.client()
    assert server.agent_arn == agent
    ended = ds.describe_task_execution(TaskExecutionArn=running)
    assert ended["Status"] == "ERROR"
    assert ended["Result"]["ErrorCode"] == "Cancelled", ended["Result"]
    described = ds.describe_task(TaskArn=task)
    assert described["Status"] == "AVAILABLE" and described["Options"]["BytesPerSecond"] == SLOW
    assert ds.list_tags_for_resource(ResourceArn=task)["Tags"] == [{"Key": "keep", "Value": "me"}]
    assert sorted(loc["LocationArn"] for loc in ds.list_locations()["Locations"]) == sorted(
        [src, dst]
    )
    again = ds.start_task_execution(TaskArn=task, OverrideOptions={"BytesPerSecond": -1})
    final = wait_status(ds, again["TaskExecutionArn"], "SUCCESS", "ERROR")
    assert final["Status"] == "SUCCESS"


def test_crash_leftovers_end_in_error_on_start(tmp_path: Path, root: Path) -> None:
    from api.domain.execution import Execution
    from api.models import Backend, ServerConfig
    from api.store import Store

    data = tmp_path / "crash"
    server = Server(str(data), [str(root)], embedded_agent=False).start()
    ds = server.client()
    server.stop()
    backend = Backend(Store.in_directory(str(data)), ServerConfig(account_id="111122223333"))
    agent = backend.register_agent("remote", [str(root)])
    src = backend.create_location_nfs(
        {
            "ServerHostname": "localhost",
            "Subdirectory": str(root / "src"),
            "OnPremConfig": {"AgentArns": [agent]},
        }
    )["LocationArn"]
    task = backend.create_task({"SourceLocationArn": src, "DestinationLocationArn": src})["TaskArn"]
    arn = backend.start_task_execution({"TaskArn": task})["TaskExecutionArn"]
    doc = backend.store.execution(arn)
    assert doc is not None
    backend.store.save_execution(Execution.from_row(doc).claimed(backend.now(), None, 300).to_row())
    backend.store.close()

    server = Server(str(data), [str(root)], embedded_agent=False).start()
    try:
        ds = server.client()
        ended = ds.describe_task_execution(TaskExecutionArn=arn)
        assert ended["Status"] == "ERROR"
        assert ended["Result"]["ErrorCode"] == "ServiceRestarted"
        assert ds.describe_task(TaskArn=task)["Status"] in ("AVAILABLE", "UNAVAILABLE")
    finally:
        server.stop()


def test_engine_failure_ends_in_error_with_its_code(
    ds: Any, root: Path, locations: tuple[str, str]
) -> None:
    src, dst = locations
    task = ds.create_task(SourceLocationArn=src, DestinationLocationArn=dst)["TaskArn"]
    (root / "src").rmdir()  # the source vanished after the location was created
    arn = ds.start_task_execution(TaskArn=task)["TaskExecutionArn"]
    final = wait_status(ds, arn, "SUCCESS", "ERROR")
    assert final["Status"] == "ERROR"
    assert final["Result"]["ErrorCode"] and final["Result"]["ErrorDetail"]
    assert ds.describe_task(TaskArn=task)["Status"] == "AVAILABLE"


def test_layering() -> None:
    """agents never import api, api never imports agents (they talk through the jobs protocol)."""
    here = Path(__file__).resolve().parents[2]
    for package, forbidden in (("agents", "api"), ("api", "agents"), ("engine", "api")):
        for path in (here / package).glob("*.py"):
            text = path.read_text()
            assert f"from {forbidden}" not in text and f"import {forbidden}" not in text, path


def test_region_change_keeps_the_embedded_agent_working(tmp_path: Path, root: Path) -> None:
    make_tree(os.fspath(root / "src"), 2, 1000)
    server = Server(str(tmp_path / "data"), [str(root)]).start()
    try:
        ds = server.client()
        agent = server.agent_arn
        src, dst = (
            ds.create_location_nfs(
                ServerHostname="localhost",
                Subdirectory=os.fspath(root / name),
                OnPremConfig={"AgentArns": [agent]},
            )["LocationArn"]
            for name in ("src", "dst")
        )
        task = ds.create_task(SourceLocationArn=src, DestinationLocationArn=dst)["TaskArn"]
        server.stop()
        server.region = "eu-west-1"
        server.start()
        assert server.agent_arn == agent  # ARNs made before keep their region
        ds = server.client()
        arn = ds.start_task_execution(TaskArn=task)["TaskExecutionArn"]
        assert wait_status(ds, arn, "SUCCESS", "ERROR")["Status"] == "SUCCESS"
    finally:
        server.stop()
