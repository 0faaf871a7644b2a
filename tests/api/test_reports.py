"""Task reports (TaskReportConfig) end to end: SUMMARY_ONLY and STANDARD reports written by the
embedded agent into a mapped local bucket, every field of the summary checked, and ReportResult
in DescribeTaskExecution."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.api.harness import ACCOUNT, Server, finished, nfs_task, serving

ROLE = "arn:aws:iam::111122223333:role/datasync-reports"
BUCKET = "arn:aws:s3:::reports"


@pytest.fixture
def bucket(tmp_path: Path) -> Path:
    return tmp_path / "bucket"


@pytest.fixture
def srv(tmp_path: Path, bucket: Path) -> Iterator[Server]:
    with serving(tmp_path, {"reports": bucket}) as server:
        yield server


def report_config(output: str, level: str = "SUCCESSES_AND_ERRORS", **extra: Any) -> Any:
    return {
        "Destination": {
            "S3": {"Subdirectory": "runs/", "S3BucketArn": BUCKET, "BucketAccessRoleArn": ROLE}
        },
        "OutputType": output,
        "ReportLevel": level,
        **extra,
    }


def ids(task: str, execution: str) -> tuple[str, str]:
    return task.rsplit("/", 1)[1], execution.rsplit("/", 1)[1]


def test_summary_only_report(srv: Server, bucket: Path) -> None:
    root: Path = srv.root  # type: ignore[attr-defined]
    (root / "src" / "a.txt").write_text("hello")
    (root / "src" / "b.txt").write_text("world!")
    ds = srv.client()
    source, destination, task = nfs_task(
        ds,
        srv.agent_arn,
        root / "src",
        root / "dst",
        TaskReportConfig=report_config("SUMMARY_ONLY"),
    )
    assert ds.describe_task(TaskArn=task)["TaskReportConfig"] == report_config("SUMMARY_ONLY")
    arn = ds.start_task_execution(TaskArn=task)["TaskExecutionArn"]
    final = finished(ds, arn)
    assert final["Status"] == "SUCCESS", final["Result"]
    assert final["ReportResult"] == {"Status": "SUCCESS"}
    assert final["TaskReportConfig"] == report_config("SUMMARY_ONLY")
    task_id, exec_id = ids(task, arn)
    summary_path = (
        bucket / "runs" / "Summary-Reports" / task_id / exec_id / f"{exec_id}.summary.json"
    )
    summary = json.loads(summary_path.read_text())
    assert not (bucket / "runs" / "Detailed-Reports").exists()
    assert summary["AccountId"] == ACCOUNT
    assert summary["TaskArn"] == task and summary["TaskExecutionArn"] == arn
    assert summary["Source"]["LocationArn"] == source
    assert summary["Destination"]["LocationArn"] == destination
    assert summary["Source"]["LocationUri"].startswith("nfs://localhost/")
    assert summary["Result"] == {"Status": "COMPLETED"}
    assert summary["StartTime"].endswith("Z") and summary["EndTime"] >= summary["StartTime"]
    assert summary["TotalDuration"] >= 0
    assert summary["Options"] == final["Options"]
    totals = summary["Totals"]
    assert totals["FilesTransferred"] == 2 and totals["BytesWritten"] == 11
    assert totals["FilesVerified"] == final["FilesVerified"]
    assert totals["FilesSkipped"] == 0 and totals["FilesDeleted"] == 0
    assert totals["FilesFailed"] == final["FilesFailed"]
    assert summary["TaskReportConfig"]["OutputType"] == "SUMMARY_ONLY"
    assert summary["DetailReports"]["Transferred"]["Successes"] >= 2
    assert not [n for n in os.listdir(summary_path.parent) if n.endswith(".tmp")]


def test_standard_report_lists_every_item(srv: Server, bucket: Path) -> None:
    root: Path = srv.root  # type: ignore[attr-defined]
    (root / "src" / "sub").mkdir()
    (root / "src" / "sub" / "new.txt").write_text("new file")
    (root / "src" / "same.txt").write_text("source side")
    (root / "dst" / "same.txt").write_text("kept: OverwriteMode NEVER")
    (root / "dst" / "gone.txt").write_text("remove me")
    ds = srv.client()
    config = report_config(
        "STANDARD",
        "ERRORS_ONLY",
        Overrides={
            "Transferred": {"ReportLevel": "SUCCESSES_AND_ERRORS"},
            "Skipped": {"ReportLevel": "SUCCESSES_AND_ERRORS"},
            "Verified": {"ReportLevel": "SUCCESSES_AND_ERRORS"},
            "Deleted": {"ReportLevel": "SUCCESSES_AND_ERRORS"},
        },
    )
    _, _, task = nfs_task(
        ds,
        srv.agent_arn,
        root / "src",
        root / "dst",
        TaskReportConfig=config,
        Options={
            "PreserveDeletedFiles": "REMOVE",
            "VerifyMode": "ONLY_FILES_TRANSFERRED",
            "OverwriteMode": "NEVER",
        },
    )
    arn = ds.start_task_execution(TaskArn=task)["TaskExecutionArn"]
    final = finished(ds, arn)
    assert final["Status"] == "SUCCESS", final["Result"]
    assert final["ReportResult"] == {"Status": "SUCCESS"}
    task_id, exec_id = ids(task, arn)
    detail_dir = bucket / "runs" / "Detailed-Reports" / task_id / exec_id
    reports = {
        kind: json.loads((detail_dir / f"{exec_id}.{kind}.json").read_text())
        for kind in ("transferred", "skipped", "verified", "deleted")
    }
    for kind, body in reports.items():
        assert body["TaskExecutionArn"] == arn and body["ReportType"] == kind.upper()
        assert body["ReportLevel"] == "SUCCESSES_AND_ERRORS"
    transferred = {i["RelativePath"]: i for i in reports["transferred"]["Items"]}
    assert transferred["/sub/new.txt"]["Type"] == "FILE"
    assert transferred["/sub/new.txt"]["Size"] == 8
    assert transferred["/sub/new.txt"]["Result"] == "SUCCESS"
    assert transferred["/sub/new.txt"]["TransferType"] == "CONTENT_AND_METADATA"
    assert transferred["/sub"]["Type"] == "DIRECTORY"
    assert "/same.txt" not in transferred
    skipped = {i["RelativePath"]: i for i in reports["skipped"]["Items"]}
    assert skipped["/same.txt"]["Result"] == "SUCCESS" and skipped["/same.txt"]["Reason"]
    verified = {i["RelativePath"]: i for i in reports["verified"]["Items"]}
    assert verified["/sub/new.txt"]["Result"] == "SUCCESS"
    assert len(verified["/sub/new.txt"]["SrcChecksum"]) == 32  # xxh3-128
    deleted = [i["RelativePath"] for i in reports["deleted"]["Items"]]
    assert deleted == ["/gone.txt"]
    summary = json.loads(
        (
            bucket / "runs" / "Summary-Reports" / task_id / exec_id / f"{exec_id}.summary.json"
        ).read_text()
    )
    assert summary["Totals"]["FilesDeleted"] == 1
    assert summary["DetailReports"]["Deleted"] == {
        "Successes": 1,
        "Errors": 0,
        "Reported": 1,
        "File": f"{exec_id}.deleted.json",
    }


def test_unmapped_report_bucket_refused(srv: Server) -> None:
    root: Path = srv.root  # type: ignore[attr-defined]
    ds = srv.client()
    bad = report_config("SUMMARY_ONLY")
    bad["Destination"]["S3"]["S3BucketArn"] = "arn:aws:s3:::elsewhere"
    with pytest.raises(ClientError) as caught:
        nfs_task(ds, srv.agent_arn, root / "src", root / "dst", TaskReportConfig=bad)
    error = caught.value.response["Error"]
    assert error["Code"] == "InvalidRequestException" and "elsewhere" in error["Message"]
