"""Task reports written to real directories and parsed back."""

from __future__ import annotations

import json
import os
import tracemalloc
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from engine.events import FileEvent, FileEventKind, FileFacts
from engine.report import (
    ExecutionSummary,
    ItemList,
    ReportConfig,
    ReportError,
    ReportItem,
    TaskReportWriter,
    event_item,
    open_report_dir,
)

TASK = "task-0123456789abcdef0"
EXEC = "exec-0fedcba9876543210"
ARN = f"arn:aws:datasync:us-east-1:111122223333:task/{TASK}/execution/{EXEC}"
START = datetime(2026, 1, 1, 10, 0, 0, 250000, tzinfo=UTC)
END = datetime(2026, 1, 1, 10, 2, 30, 750000, tzinfo=UTC)


@pytest.fixture
def bucket(tmp_path: Path) -> Path:
    path = tmp_path / "bucket"
    path.mkdir()
    return path


@pytest.fixture
def report_dir(bucket: Path) -> Iterator[int]:
    fd = open_report_dir(str(bucket), "reports/nightly/")
    try:
        yield fd
    finally:
        os.close(fd)


def summary(**changes: object) -> ExecutionSummary:
    fields: dict[str, object] = {
        "account_id": "111122223333",
        "task_arn": ARN.split("/execution/")[0],
        "task_execution_arn": ARN,
        "source_location_arn": "arn:aws:datasync:us-east-1:111122223333:location/loc-00000000000000001",
        "destination_location_arn": "arn:aws:datasync:us-east-1:111122223333:location/loc-00000000000000002",
        "source_location_uri": "nfs://localhost/srv/src/",
        "destination_location_uri": "nfs://localhost/srv/dst/",
        "status": "SUCCESS",
        "start_time": START,
        "end_time": END,
        "options": {
            "VerifyMode": "ONLY_FILES_TRANSFERRED",
            "BytesPerSecond": 1048576,
            "PreserveDeletedFiles": "REMOVE",
        },
        "counters": {
            "FilesTransferred": 2,
            "FilesSkipped": 1,
            "FilesVerified": 1,
            "FilesDeleted": 1,
            "FilesFailed": {"Prepare": 0, "Transfer": 1, "Verify": 1, "Delete": 0},
            "BytesTransferred": 300,
            "BytesWritten": 300,
        },
        "includes": ("/photos*",),
        "excludes": ("*.tmp",),
    }
    fields.update(changes)
    return ExecutionSummary(**fields)  # type: ignore[arg-type]


ITEMS = [
    ReportItem(
        ItemList.TRANSFERRED,
        "photos/a.jpg",
        size=100,
        transfer_type="CONTENT_AND_METADATA",
        timestamp=START,
    ),
    ReportItem(
        ItemList.TRANSFERRED,
        "photos/b.jpg",
        size=200,
        ok=False,
        error_code="EACCES",
        error_detail="Permission denied",
        transfer_type="CONTENT_AND_METADATA",
    ),
    ReportItem(ItemList.TRANSFERRED, "photos", kind="DIRECTORY", transfer_type="METADATA_ONLY"),
    ReportItem(ItemList.SKIPPED, "photos/c.jpg", size=5, reason="UNCHANGED"),
    ReportItem(
        ItemList.VERIFIED, "photos/a.jpg", size=100, src_checksum="ab" * 16, dst_checksum="ab" * 16
    ),
    ReportItem(
        ItemList.VERIFIED,
        "photos/d.jpg",
        size=7,
        ok=False,
        error_code="VERIFY_MISMATCH",
        src_checksum="01" * 16,
        dst_checksum="02" * 16,
    ),
    ReportItem(ItemList.DELETED, "old.txt", size=3),
]


def load(path: Path) -> dict[str, object]:
    data: dict[str, object] = json.loads(path.read_text())
    return data


def listing(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_standard_report_with_every_field(bucket: Path, report_dir: int) -> None:
    config = ReportConfig(output_type="STANDARD", report_level="SUCCESSES_AND_ERRORS")
    with TaskReportWriter(report_dir, config, ARN) as writer:
        for item in ITEMS:
            writer.record(item)
        writer.finish(summary())

    base = "reports/nightly"
    assert listing(bucket) == [
        f"{base}/Detailed-Reports/{TASK}/{EXEC}/{EXEC}.deleted.json",
        f"{base}/Detailed-Reports/{TASK}/{EXEC}/{EXEC}.skipped.json",
        f"{base}/Detailed-Reports/{TASK}/{EXEC}/{EXEC}.transferred.json",
        f"{base}/Detailed-Reports/{TASK}/{EXEC}/{EXEC}.verified.json",
        f"{base}/Summary-Reports/{TASK}/{EXEC}/{EXEC}.summary.json",
    ]
    detail = bucket / base / "Detailed-Reports" / TASK / EXEC
    transferred = load(detail / f"{EXEC}.transferred.json")
    assert transferred["TaskExecutionArn"] == ARN
    assert transferred["ReportType"] == "TRANSFERRED"
    assert transferred["ReportLevel"] == "SUCCESSES_AND_ERRORS"
    assert transferred["Items"] == [
        {
            "RelativePath": "/photos/a.jpg",
            "Type": "FILE",
            "Size": 100,
            "TransferType": "CONTENT_AND_METADATA",
            "Result": "SUCCESS",
            "Timestamp": "2026-01-01T10:00:00.250Z",
        },
        {
            "RelativePath": "/photos/b.jpg",
            "Type": "FILE",
            "Size": 200,
            "TransferType": "CONTENT_AND_METADATA",
            "Result": "ERROR",
            "ErrorCode": "EACCES",
            "ErrorDetail": "Permission denied",
        },
        {
            "RelativePath": "/photos",
            "Type": "DIRECTORY",
            "Size": 0,
            "TransferType": "METADATA_ONLY",
            "Result": "SUCCESS",
        },
    ]
    assert load(detail / f"{EXEC}.skipped.json")["Items"] == [
        {
            "RelativePath": "/photos/c.jpg",
            "Type": "FILE",
            "Size": 5,
            "Reason": "UNCHANGED",
            "Result": "SUCCESS",
        }
    ]
    verified = load(detail / f"{EXEC}.verified.json")["Items"]
    assert isinstance(verified, list) and len(verified) == 2
    assert verified[1]["SrcChecksum"] == "01" * 16 and verified[1]["DstChecksum"] == "02" * 16
    assert verified[1]["Result"] == "ERROR" and verified[1]["ErrorCode"] == "VERIFY_MISMATCH"
    assert load(detail / f"{EXEC}.deleted.json")["Items"] == [
        {"RelativePath": "/old.txt", "Type": "FILE", "Size": 3, "Result": "SUCCESS"}
    ]

    body = load(bucket / base / "Summary-Reports" / TASK / EXEC / f"{EXEC}.summary.json")
    assert body == {
        "AccountId": "111122223333",
        "TaskArn": ARN.split("/execution/")[0],
        "TaskExecutionArn": ARN,
        "Source": {
            "LocationArn": summary().source_location_arn,
            "LocationUri": "nfs://localhost/srv/src/",
        },
        "Destination": {
            "LocationArn": summary().destination_location_arn,
            "LocationUri": "nfs://localhost/srv/dst/",
        },
        "Result": {"Status": "COMPLETED"},
        "StartTime": "2026-01-01T10:00:00.250Z",
        "EndTime": "2026-01-01T10:02:30.750Z",
        "TotalDuration": 150500,
        "Options": {
            "VerifyMode": "ONLY_FILES_TRANSFERRED",
            "BytesPerSecond": 1048576,
            "PreserveDeletedFiles": "REMOVE",
        },
        "Totals": {
            "FilesTransferred": 2,
            "FilesSkipped": 1,
            "FilesVerified": 1,
            "FilesDeleted": 1,
            "FilesFailed": {"Prepare": 0, "Transfer": 1, "Verify": 1, "Delete": 0},
            "BytesTransferred": 300,
            "BytesWritten": 300,
        },
        "Includes": [{"FilterType": "SIMPLE_PATTERN", "Value": "/photos*"}],
        "Excludes": [{"FilterType": "SIMPLE_PATTERN", "Value": "*.tmp"}],
        "TaskReportConfig": {
            "OutputType": "STANDARD",
            "ReportLevel": "SUCCESSES_AND_ERRORS",
            "ObjectVersionIds": "NONE",
        },
        "DetailReports": {
            "Transferred": {
                "Successes": 2,
                "Errors": 1,
                "Reported": 3,
                "File": f"{EXEC}.transferred.json",
            },
            "Skipped": {"Successes": 1, "Errors": 0, "Reported": 1, "File": f"{EXEC}.skipped.json"},
            "Verified": {
                "Successes": 1,
                "Errors": 1,
                "Reported": 2,
                "File": f"{EXEC}.verified.json",
            },
            "Deleted": {"Successes": 1, "Errors": 0, "Reported": 1, "File": f"{EXEC}.deleted.json"},
        },
    }


def test_errors_only_with_an_override(bucket: Path, report_dir: int) -> None:
    config = ReportConfig.from_api(
        {
            "Destination": {"S3": {"S3BucketArn": "arn:aws:s3:::bucket"}},
            "OutputType": "STANDARD",
            "ReportLevel": "ERRORS_ONLY",
            "Overrides": {"Verified": {"ReportLevel": "SUCCESSES_AND_ERRORS"}},
        }
    )
    assert config.level(ItemList.VERIFIED) == "SUCCESSES_AND_ERRORS"
    assert config.level(ItemList.TRANSFERRED) == "ERRORS_ONLY"
    with TaskReportWriter(report_dir, config, ARN) as writer:
        for item in ITEMS:
            writer.record(item)
        writer.finish(summary(options={"PreserveDeletedFiles": "PRESERVE"}))
    detail = bucket / "reports/nightly/Detailed-Reports" / TASK / EXEC
    transferred = load(detail / f"{EXEC}.transferred.json")
    assert [i["RelativePath"] for i in transferred["Items"]] == ["/photos/b.jpg"]  # type: ignore[attr-defined]
    assert load(detail / f"{EXEC}.skipped.json")["Items"] == []
    verified = load(detail / f"{EXEC}.verified.json")
    assert verified["ReportLevel"] == "SUCCESSES_AND_ERRORS"
    assert len(verified["Items"]) == 2  # type: ignore[arg-type]
    # no deleted list: REMOVE is not in the options and the one delete reported was a success
    assert not (detail / f"{EXEC}.deleted.json").exists()
    body = load(bucket / "reports/nightly/Summary-Reports" / TASK / EXEC / f"{EXEC}.summary.json")
    assert body["TaskReportConfig"] == {
        "OutputType": "STANDARD",
        "ReportLevel": "ERRORS_ONLY",
        "ObjectVersionIds": "NONE",
        "Overrides": {"Verified": {"ReportLevel": "SUCCESSES_AND_ERRORS"}},
    }
    assert body["DetailReports"]["Deleted"] == {"Successes": 1, "Errors": 0, "Reported": 0}  # type: ignore[index]


def test_summary_only_writes_no_detail_reports(bucket: Path, report_dir: int) -> None:
    with TaskReportWriter(report_dir, ReportConfig(output_type="SUMMARY_ONLY"), ARN) as writer:
        for item in ITEMS:
            writer.record(item)
        writer.finish(
            summary(status="ERROR", error_code="FilesFailed", error_detail="1 file failed")
        )
    assert listing(bucket) == [f"reports/nightly/Summary-Reports/{TASK}/{EXEC}/{EXEC}.summary.json"]
    body = load(bucket / "reports/nightly/Summary-Reports" / TASK / EXEC / f"{EXEC}.summary.json")
    assert body["Result"] == {
        "Status": "ERROR",
        "ErrorCode": "FilesFailed",
        "ErrorDetail": "1 file failed",
    }
    assert body["DetailReports"]["Transferred"] == {"Successes": 2, "Errors": 1, "Reported": 0}  # type: ignore[index]


def test_cancelled_result(bucket: Path, report_dir: int) -> None:
    with TaskReportWriter(report_dir, ReportConfig(output_type="SUMMARY_ONLY"), ARN) as writer:
        writer.finish(summary(status="ERROR", cancelled=True))
    body = load(bucket / "reports/nightly/Summary-Reports" / TASK / EXEC / f"{EXEC}.summary.json")
    assert body["Result"] == {"Status": "CANCELLED"}


def test_nothing_visible_until_finish_and_abort_leaves_nothing(
    bucket: Path, report_dir: int
) -> None:
    config = ReportConfig(report_level="SUCCESSES_AND_ERRORS")
    writer = TaskReportWriter(report_dir, config, ARN)
    for item in ITEMS:
        writer.record(item)
    names = [p.name for p in listing_paths(bucket)]
    assert names and all(n.startswith(".") and n.endswith(".tmp") for n in names)
    writer.abort()
    assert listing(bucket) == []

    with pytest.raises(RuntimeError), TaskReportWriter(report_dir, config, ARN) as writer:
        writer.record(ITEMS[0])
        raise RuntimeError("the execution died")
    assert listing(bucket) == []


def listing_paths(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


def test_items_are_written_as_they_come(bucket: Path, report_dir: int) -> None:
    """50,000 items: the temporary grows on disk while the writer's memory stays flat."""
    config = ReportConfig(report_level="SUCCESSES_AND_ERRORS")
    tracemalloc.start()
    try:
        with TaskReportWriter(report_dir, config, ARN) as writer:
            for i in range(50_000):
                writer.record(
                    ReportItem(ItemList.TRANSFERRED, f"dir{i % 50}/file-{i:06d}.bin", size=i)
                )
            _, peak = tracemalloc.get_traced_memory()
            (tmp,) = (p for p in listing_paths(bucket) if "transferred" in p.name)
            assert tmp.stat().st_size > 3_000_000  # already on disk, not in a list
            writer.finish(summary())
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000
    items = load(
        bucket / "reports/nightly/Detailed-Reports" / TASK / EXEC / f"{EXEC}.transferred.json"
    )["Items"]
    assert isinstance(items, list) and len(items) == 50_000
    assert items[-1]["RelativePath"] == "/dir49/file-049999.bin"


def test_hostile_names_round_trip(bucket: Path, report_dir: int) -> None:
    names = [
        'a "quoted", name.txt',
        "line\nbreak.txt",
        "tab\there",
        "résumé/日本.txt",
        os.fsdecode(b"bad-\xff-utf8.bin"),
        "back\\slash",
    ]
    with TaskReportWriter(
        report_dir, ReportConfig(report_level="SUCCESSES_AND_ERRORS"), ARN
    ) as writer:
        for name in names:
            writer.record(ReportItem(ItemList.TRANSFERRED, name))
        writer.finish(summary())
    items = load(
        bucket / "reports/nightly/Detailed-Reports" / TASK / EXEC / f"{EXEC}.transferred.json"
    )["Items"]
    assert [i["RelativePath"] for i in items] == ["/" + n for n in names]  # type: ignore[index, union-attr]


def test_report_dir_stays_inside_the_bucket(tmp_path: Path, bucket: Path) -> None:
    with pytest.raises(ReportError, match="climbs out"):
        open_report_dir(str(bucket), "a/../../elsewhere")
    outside = tmp_path / "outside"
    outside.mkdir()
    (bucket / "link").symlink_to(outside)
    with pytest.raises(ReportError, match="cannot use 'link'"):
        open_report_dir(str(bucket), "link/reports")
    with pytest.raises(ReportError, match="bucket directory"):
        open_report_dir(str(tmp_path / "nope"), "")
    fd = open_report_dir(str(bucket), "")
    os.close(fd)
    assert list(outside.iterdir()) == []


def test_invalid_config_values_are_refused() -> None:
    with pytest.raises(ReportError, match="OutputType 'FULL'"):
        ReportConfig(output_type="FULL")
    with pytest.raises(ReportError, match=r"Overrides\.Skipped"):
        ReportConfig.from_api({"Overrides": {"Skipped": {"ReportLevel": "ALL"}}})


def test_summary_for_another_execution_is_refused(report_dir: int) -> None:
    other = ARN.replace(EXEC, "exec-11111111111111111")
    with TaskReportWriter(report_dir, ReportConfig(), ARN) as writer, pytest.raises(ReportError):
        writer.finish(summary(task_execution_arn=other))


EVENTS = [
    FileEvent(FileEventKind.TRANSFERRED, "/photos/a.jpg", False, 100, "ab" * 16),
    FileEvent(FileEventKind.TRANSFERRED, "/photos", True),
    FileEvent(FileEventKind.VERIFIED, "/photos/a.jpg", False, 100, "ab" * 16),
    FileEvent(FileEventKind.VERIFIED, "/photos", True, None),
    FileEvent(FileEventKind.SKIPPED, "/photos/c.jpg", False, 5, reason="UNCHANGED"),
    FileEvent(FileEventKind.SKIPPED, "/photos/e.jpg", False, None),
    FileEvent(FileEventKind.DELETED, "/old.txt", False, 3),
    FileEvent(FileEventKind.TRANSFERRED, '/quote"back\\slash/\x01\t\n', False, 2**63),
    FileEvent(FileEventKind.TRANSFERRED, "/é/日本/🙂", False, 0),
    FileEvent(FileEventKind.FAILED, "/photos/b.jpg", False, 200, phase="Transfer", reason="EACCES"),
    FileEvent(
        FileEventKind.FAILED,
        "/photos/d.jpg",
        False,
        phase="Verify",
        reason="checksum mismatch",
        source=FileFacts(7, 1, 0o644, 0, 0, "01" * 16),
        destination=FileFacts(7, 2, 0o644, 0, 0, "02" * 16),
    ),
    FileEvent(FileEventKind.FAILED, "/gone", False, phase="Delete", reason="EBUSY"),
]
# instants across second boundaries, one exactly on a second, one before 1970's end
TIMES = [1767261600.2504, 1767261600.9999, 1767261601.0, 1767261601.001, 86399.5]


@pytest.mark.parametrize(
    "config",
    [
        ReportConfig(output_type="STANDARD", report_level="SUCCESSES_AND_ERRORS"),
        ReportConfig(
            output_type="STANDARD",
            report_level="ERRORS_ONLY",
            overrides={ItemList.VERIFIED: "SUCCESSES_AND_ERRORS"},
        ),
        ReportConfig(output_type="SUMMARY_ONLY"),
    ],
)
def test_record_events_writes_what_record_writes(tmp_path: Path, config: ReportConfig) -> None:
    """The batch path (each success straight to its JSON text) and the general one
    (`record(event_item(...))`) write byte-identical files and the same counts."""
    batch = [(TIMES[i % len(TIMES)], event) for i, event in enumerate(EVENTS * 3)]
    written: list[dict[str, str]] = []
    counts = []
    for fast in (True, False):
        bucket = tmp_path / ("fast" if fast else "general")
        bucket.mkdir()
        fd = open_report_dir(str(bucket), "")
        try:
            writer = TaskReportWriter(fd, config, ARN)
            if fast:
                writer.record_events(batch[:7])
                writer.record_events(batch[7:])
            else:
                for at, event in batch:
                    writer.record(event_item(event, datetime.fromtimestamp(at, UTC)))
            writer.finish(summary(end_time=START))
        finally:
            os.close(fd)
        detail = bucket / "Detailed-Reports" / TASK / EXEC
        written.append({p.name: p.read_text() for p in detail.glob("*")} if detail.exists() else {})
        counts.append({k: vars(v) for k, v in writer.counts.items()})
    assert written[0] == written[1]
    assert counts[0] == counts[1]
    if config.report_level == "SUCCESSES_AND_ERRORS":
        items = json.loads(written[0][f"{EXEC}.transferred.json"])["Items"]
        assert items[0]["Timestamp"] == "2026-01-01T10:00:00.250Z"
        assert any(i["RelativePath"] == '/quote"back\\slash/\x01\t\n' for i in items)
