"""The jobs-protocol contract: what the agent writes is exactly what the control plane reads."""

from __future__ import annotations

import pytest

from contract.jobs import (
    MAX_DETAIL_VALUE,
    Control,
    InvalidBytesPerSecond,
    JobDocument,
    check_bytes_per_second,
    decode_report,
    encode_report,
)


@pytest.mark.parametrize("value", [-1, 1, 10_000_000, "-1", "4096"])
def test_bytes_per_second_rule_accepts_minus_one_or_positive(value: object) -> None:
    assert check_bytes_per_second(value) == int(str(value))


@pytest.mark.parametrize("value", [0, -2, True, 1.5, "fast", None, ""])
def test_bytes_per_second_rule_refuses_everything_else_with_one_error(value: object) -> None:
    with pytest.raises(InvalidBytesPerSecond, match="-1 \\(unlimited\\) or a positive"):
        check_bytes_per_second(value)


def test_report_round_trip_keeps_counters_and_result() -> None:
    snapshot = {
        "Status": "TRANSFERRING",
        "FilesTransferred": 3,
        "BytesWritten": 12,
        "FilesFailed": {"Transfer": 1},
        "Result": {"TransferStatus": "PENDING"},
    }
    report = decode_report(encode_report(snapshot))
    assert report.phase == "TRANSFERRING"
    assert report.counters == {
        "FilesTransferred": 3,
        "BytesWritten": 12,
        "FilesFailed": {"Transfer": 1},
    }
    assert report.result == {"TransferStatus": "PENDING"}


def test_report_values_stay_within_the_limit() -> None:
    details = encode_report({"Status": "ERROR", "Result": {"ErrorDetail": "x" * 5000}})
    assert all(len(v) <= MAX_DETAIL_VALUE for v in details.values())
    assert decode_report(details).result["ErrorDetail"].endswith("...")


def test_decode_ignores_unknown_and_ill_typed_counters() -> None:
    report = decode_report({"counters": '{"FilesTransferred":"3","Bogus":1,"BytesWritten":2}'})
    assert report.counters == {"BytesWritten": 2}
    assert decode_report({"counters": "not json"}).counters == {}


def test_control_round_trip_and_bad_rate() -> None:
    assert Control.from_details(Control(1024, cancel=True).to_details()) == Control(1024, True)
    assert Control.from_details({}) is None
    with pytest.raises(InvalidBytesPerSecond):
        Control.from_details({"control:bytesPerSecond": "0"})


def test_job_document_round_trip() -> None:
    doc = JobDocument(
        TaskExecutionArn="arn:x/execution/exec-1",
        TaskArn="arn:x",
        TaskMode="BASIC",
        Options={"BytesPerSecond": -1},
        Source={"Subdirectory": "/a"},
        Destination={"Subdirectory": "/b"},
    )
    assert JobDocument.from_json(doc.to_json()) == doc
    with pytest.raises(KeyError):
        JobDocument.from_json('{"TaskArn": "x"}')
