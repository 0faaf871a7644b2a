"""Execution logs end to end: an execution at LogLevel TRANSFER names every file in its log
group, read back with boto3's `logs` client (DescribeLogGroups/Streams, GetLogEvents,
FilterLogEvents with a pattern and pagination); OFF logs nothing; a task without a group logs to
the default group."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.api.harness import Server, finished, nfs_task, serving

GROUP = "/datasync/nightly"
GROUP_ARN = f"arn:aws:logs:us-east-1:111122223333:log-group:{GROUP}:*"


@pytest.fixture
def srv(tmp_path: Path) -> Iterator[Server]:
    with serving(tmp_path) as server:
        yield server


def run(ds: Any, task: str) -> dict[str, Any]:
    return finished(ds, ds.start_task_execution(TaskArn=task)["TaskExecutionArn"])


def messages(logs: Any, group: str, **kw: Any) -> list[str]:
    out: list[str] = []
    for page in logs.get_paginator("filter_log_events").paginate(logGroupName=group, **kw):
        out.extend(e["message"] for e in page["events"])
    return out


def test_transfer_logs_name_every_file_and_read_back(srv: Server) -> None:
    root: Path = srv.root  # type: ignore[attr-defined]
    names = [f"f{i:02d}.txt" for i in range(12)]
    for name in names:
        (root / "src" / name).write_text(name)
    ds, logs = srv.client(), srv.client("logs")
    _, _, task = nfs_task(
        ds,
        srv.agent_arn,
        root / "src",
        root / "dst",
        CloudWatchLogGroupArn=GROUP_ARN,
        Options={"LogLevel": "TRANSFER", "VerifyMode": "ONLY_FILES_TRANSFERRED"},
    )
    final = run(ds, task)
    assert final["Status"] == "SUCCESS", final["Result"]
    arn, task_id = final["TaskExecutionArn"], task.rsplit("/", 1)[1]

    found = messages(logs, GROUP)  # at once: the end line commits with the SUCCESS it reports
    assert any(f"{arn} ended with status SUCCESS" in m for m in found), found
    assert any(m.startswith(f"[INFO] Execution {arn} started") for m in found)
    for name in names:
        assert any(m.startswith(f"[INFO] Transferred file /{name}, ") for m in found), name
        assert any(m.startswith(f"[INFO] Verified file /{name}") for m in found), name
    groups = [g["logGroupName"] for g in logs.describe_log_groups()["logGroups"]]
    assert GROUP in groups and "/aws/datasync" in groups
    streams = logs.describe_log_streams(logGroupName=GROUP)["logStreams"]
    assert [s["logStreamName"] for s in streams] == [task_id]
    # a pattern, a small page size and the paginator's tokens
    transferred = messages(logs, GROUP, filterPattern='"Transferred file"', limit=5)
    assert len(transferred) == 12 and all("Transferred file" in m for m in transferred)
    assert messages(logs, GROUP, filterPattern="-Verified -Transferred") == [
        m for m in found if "Verified" not in m and "Transferred" not in m
    ]
    head = logs.get_log_events(
        logGroupName=GROUP, logStreamName=task_id, startFromHead=True, limit=3
    )
    assert len(head["events"]) == 3 and "started" in head["events"][0]["message"]
    more = logs.get_log_events(
        logGroupName=GROUP, logStreamName=task_id, nextToken=head["nextForwardToken"], limit=3
    )
    assert [e["timestamp"] for e in more["events"]] >= [e["timestamp"] for e in head["events"]]
    assert more["events"][0]["message"] != head["events"][0]["message"]
    with pytest.raises(ClientError) as caught:
        logs.filter_log_events(logGroupName="/no/such/group")
    assert caught.value.response["Error"]["Code"] == "ResourceNotFoundException"
    with pytest.raises(ClientError) as caught:
        logs.filter_log_events(logGroupName=GROUP, nextToken="f/forged.token")
    assert caught.value.response["Error"]["Code"] == "InvalidParameterException"


def test_off_logs_nothing_and_basic_goes_to_the_default_group(srv: Server) -> None:
    root: Path = srv.root  # type: ignore[attr-defined]
    (root / "src" / "a.txt").write_text("a")
    ds, logs = srv.client(), srv.client("logs")
    _, _, quiet = nfs_task(
        ds,
        srv.agent_arn,
        root / "src",
        root / "dst",
        CloudWatchLogGroupArn=GROUP_ARN,
        Options={"LogLevel": "OFF"},
    )
    assert run(ds, quiet)["Status"] == "SUCCESS"
    assert messages(logs, GROUP) == []
    (root / "src2").mkdir()
    (root / "src2" / "b.txt").write_text("b")
    _, _, basic = nfs_task(
        ds, srv.agent_arn, root / "src2", root / "dst2", Options={"LogLevel": "BASIC"}
    )
    final = run(ds, basic)
    assert final["Status"] == "SUCCESS"
    found = [m for m in messages(logs, "/aws/datasync") if "ended with status" in m]
    assert len(found) == 1 and final["TaskExecutionArn"] in found[0], found
    every = messages(logs, "/aws/datasync")
    assert not any("Transferred file" in m for m in every)  # BASIC: no per-file lines
    assert messages(logs, GROUP) == []


def test_a_terminal_status_is_seen_only_with_its_end_line_and_file_lines(srv: Server) -> None:
    """What automation does: poll DescribeTaskExecution until the execution is terminal, then
    read the log at once; the end line and every file's line must already be there (they used
    to be appended just after the SUCCESS write). Ten short executions, each a new file."""
    root: Path = srv.root  # type: ignore[attr-defined]
    ds, logs = srv.client(), srv.client("logs")
    _, _, task = nfs_task(
        ds,
        srv.agent_arn,
        root / "src",
        root / "dst",
        CloudWatchLogGroupArn=GROUP_ARN,
        Options={"LogLevel": "TRANSFER"},
    )
    stream = task.rsplit("/", 1)[1]
    for i in range(10):
        (root / "src" / f"n{i}.txt").write_text(str(i))
        final = run(ds, task)
        arn = final["TaskExecutionArn"]
        found = messages(logs, GROUP, logStreamNames=[stream])
        assert final["Status"] == "SUCCESS", final["Result"]
        ends = [m for m in found if f"{arn} ended with status" in m]
        assert len(ends) == 1 and "SUCCESS" in ends[0], (i, found)
        mine = [m for m in found if m.endswith(f"({arn.rsplit('/', 1)[1]})")]
        assert any(m.startswith(f"[INFO] Transferred file /n{i}.txt, ") for m in mine), (i, mine)
        starts = [m for m in found if m.startswith(f"[INFO] Execution {arn} started")]
        assert len(starts) == 1, (i, found)  # each state logged once


def test_describe_calls_page_with_limit_and_next_token(srv: Server) -> None:
    root: Path = srv.root  # type: ignore[attr-defined]
    ds, logs = srv.client(), srv.client("logs")
    groups = [f"/datasync/paged/g{i}" for i in range(7)]
    for group in groups:
        nfs_task(
            ds, srv.agent_arn, root / "src", root / "dst",
            CloudWatchLogGroupArn=f"arn:aws:logs:us-east-1:111122223333:log-group:{group}",
        )  # fmt: skip
    pages = list(
        logs.get_paginator("describe_log_groups").paginate(
            logGroupNamePrefix="/datasync/paged/", PaginationConfig={"PageSize": 3}
        )
    )
    assert [len(page["logGroups"]) for page in pages] == [3, 3, 1]
    assert "nextToken" not in pages[-1]
    assert [g["logGroupName"] for page in pages for g in page["logGroups"]] == groups
    # four tasks logging to one group: four streams, paged by name and by last event time
    (root / "src" / "a.txt").write_text("a")
    tasks = []
    for _ in range(4):
        _, _, task = nfs_task(
            ds, srv.agent_arn, root / "src", root / "dst",
            CloudWatchLogGroupArn=GROUP_ARN, Options={"LogLevel": "BASIC"},
        )  # fmt: skip
        assert run(ds, task)["Status"] == "SUCCESS"
        tasks.append(task.rsplit("/", 1)[1])

    def streams(**kw: Any) -> list[list[str]]:
        paginator = logs.get_paginator("describe_log_streams")
        found = paginator.paginate(logGroupName=GROUP, PaginationConfig={"PageSize": 3}, **kw)
        return [[s["logStreamName"] for s in page["logStreams"]] for page in found]

    assert [s for page in streams() for s in page] == sorted(tasks)  # logged with SUCCESS
    assert streams() == [sorted(tasks)[:3], sorted(tasks)[3:]]
    assert streams(descending=True) == [sorted(tasks, reverse=True)[:3], [sorted(tasks)[0]]]
    # the runs ended one after another: by last event time is the order they ran
    by_time = streams(orderBy="LastEventTime", descending=True)
    assert [s for page in by_time for s in page] == tasks[::-1]
    assert [len(page) for page in by_time] == [3, 1]
    # a token is bound to its query and cannot be forged
    first = logs.describe_log_streams(logGroupName=GROUP, limit=2)
    assert len(first["logStreams"]) == 2 and first["nextToken"]
    with pytest.raises(ClientError) as caught:
        logs.describe_log_streams(logGroupName=GROUP, descending=True, nextToken=first["nextToken"])
    assert caught.value.response["Error"]["Code"] == "InvalidParameterException"
    with pytest.raises(ClientError) as caught:
        logs.describe_log_groups(nextToken=first["nextToken"][:-2] + "xx")
    assert caught.value.response["Error"]["Code"] == "InvalidParameterException"
    with pytest.raises(ClientError) as caught:
        logs.describe_log_streams(
            logGroupName=GROUP, orderBy="LastEventTime", logStreamNamePrefix="task-"
        )
    assert caught.value.response["Error"]["Code"] == "InvalidParameterException"
    with pytest.raises(ClientError) as caught:
        logs.describe_log_groups(limit=51)
    assert caught.value.response["Error"]["Code"] == "InvalidParameterException"


def test_logs_and_a_report_together_name_every_file(tmp_path: Path) -> None:
    """TRANSFER logs with a STANDARD report: the engine's events reach both through the
    report's writer (agents/unattended.TaskReport.forward), every file in each, the log's
    lines all in before the execution's end line."""
    with serving(tmp_path, {"reports": tmp_path / "bucket"}) as server:
        root: Path = server.root  # type: ignore[attr-defined]
        names = [f"d{i % 3}/f{i:03d}.txt" for i in range(300)]
        for name in names:
            (root / "src" / name).parent.mkdir(exist_ok=True)
            (root / "src" / name).write_text(name)
        ds, logs = server.client(), server.client("logs")
        report = {
            "Destination": {
                "S3": {
                    "S3BucketArn": "arn:aws:s3:::reports",
                    "BucketAccessRoleArn": "arn:aws:iam::111122223333:role/r",
                }
            },
            "OutputType": "STANDARD",
            "ReportLevel": "SUCCESSES_AND_ERRORS",
        }
        _, _, task = nfs_task(
            ds,
            server.agent_arn,
            root / "src",
            root / "dst",
            CloudWatchLogGroupArn=GROUP_ARN,
            Options={"LogLevel": "TRANSFER"},
            TaskReportConfig=report,
        )
        final = run(ds, task)
        assert final["Status"] == "SUCCESS", final["Result"]
        assert final["ReportResult"] == {"Status": "SUCCESS"}

        found = messages(logs, GROUP)  # the end line commits with the execution's last write
        assert "ended with status SUCCESS" in found[-1]  # every file line came before it
        for name in names:
            assert f"[INFO] Transferred file /{name}, {len(name)} bytes" in "\n".join(found)
            assert sum(m.startswith(f"[INFO] Verified file /{name},") for m in found) == 1
        reported = [
            item["RelativePath"]
            for path in (tmp_path / "bucket").rglob("*.transferred.json")
            for item in json.loads(path.read_text())["Items"]
        ]
        assert sorted(p for p in reported if p.endswith(".txt")) == sorted(f"/{n}" for n in names)
