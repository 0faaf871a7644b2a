"""Manifests (ManifestConfig) end to end: a CSV in a mapped local bucket narrows an execution to
the files it lists; quoted names, a missing entry, a directory, filters and the override."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.api.harness import Server, finished, nfs_task, serving

ROLE = "arn:aws:iam::111122223333:role/datasync-bucket-access"
BUCKET = "arn:aws:s3:::manifests"


@pytest.fixture
def bucket(tmp_path: Path) -> Path:
    return tmp_path / "bucket"


@pytest.fixture
def srv(tmp_path: Path, bucket: Path) -> Iterator[Server]:
    with serving(tmp_path, {"manifests": bucket}) as server:
        yield server


def manifest(key: str, bucket_arn: str = BUCKET) -> dict[str, Any]:
    return {
        "Action": "TRANSFER",
        "Format": "CSV",
        "Source": {
            "S3": {
                "ManifestObjectPath": key,
                "BucketAccessRoleArn": ROLE,
                "S3BucketArn": bucket_arn,
            }
        },
    }


def files_under(path: Path) -> list[str]:
    return sorted(
        os.path.relpath(os.path.join(d, f), path) for d, _, fs in os.walk(path) for f in fs
    )


def test_only_listed_files_move_quoted_names_missing_entry_and_directory(
    srv: Server, bucket: Path
) -> None:
    root: Path = srv.root  # type: ignore[attr-defined]
    src = root / "src"
    (src / "docs").mkdir()
    (src / "docs" / "a,b.txt").write_text("comma")
    (src / "docs" / 'say "hi".txt').write_text("quotes")
    (src / "line\nbreak.txt").write_text("newline")
    (src / "plain.txt").write_text("plain")
    (src / "unlisted.txt").write_text("not listed")
    (src / "docs" / "unlisted-too.txt").write_text("not listed")
    (src / "adir").mkdir()
    (bucket / "lists").mkdir()
    (bucket / "lists" / "m.csv").write_bytes(
        b'"docs/a,b.txt"\n"docs/say ""hi"".txt",v1\n"line\nbreak.txt"\nplain.txt\n'
        b"missing.txt\nadir\n"
    )
    ds = srv.client()
    _, _, task = nfs_task(
        ds, srv.agent_arn, src, root / "dst", ManifestConfig=manifest("lists/m.csv")
    )
    described = ds.describe_task(TaskArn=task)
    assert described["ManifestConfig"] == manifest("lists/m.csv")
    arn = ds.start_task_execution(TaskArn=task)["TaskExecutionArn"]
    final = finished(ds, arn)
    assert files_under(root / "dst") == sorted(
        ["docs/a,b.txt", 'docs/say "hi".txt', "line\nbreak.txt", "plain.txt"]
    )
    assert (root / "dst" / "docs" / "a,b.txt").read_text() == "comma"
    assert final["FilesListed"]["AtSource"] == 6  # manifest entries, not the tree's files
    assert final["FilesFailed"]["Prepare"] == 2  # missing.txt and the directory
    assert final["FilesTransferred"] == 4
    assert final["Status"] == "ERROR"
    detail = final["Result"]["ErrorDetail"]
    assert "missing.txt" in detail and "adir" in detail, detail
    assert final["ManifestConfig"] == manifest("lists/m.csv")


def test_manifest_with_filters_and_start_override(srv: Server, bucket: Path) -> None:
    root: Path = srv.root  # type: ignore[attr-defined]
    src = root / "src"
    for name in ("keep.txt", "skip.tmp", "other.txt", "third.txt"):
        (src / name).write_text(name)
    (bucket / "one.csv").write_text("keep.txt\nskip.tmp\n")
    (bucket / "two.csv").write_text("other.txt\n")
    ds = srv.client()
    _, _, task = nfs_task(
        ds,
        srv.agent_arn,
        src,
        root / "dst",
        ManifestConfig=manifest("one.csv"),
        Excludes=[{"FilterType": "SIMPLE_PATTERN", "Value": "*.tmp"}],
    )
    final = finished(ds, ds.start_task_execution(TaskArn=task)["TaskExecutionArn"])
    assert final["Status"] == "SUCCESS", final["Result"]
    assert files_under(root / "dst") == ["keep.txt"]  # the exclude still applies
    assert final["FilesListed"]["AtSource"] == 2
    # StartTaskExecution's own ManifestConfig replaces the task's for this run only
    arn = ds.start_task_execution(TaskArn=task, ManifestConfig=manifest("two.csv"))[
        "TaskExecutionArn"
    ]
    final = finished(ds, arn)
    assert final["Status"] == "SUCCESS", final["Result"]
    assert files_under(root / "dst") == ["keep.txt", "other.txt"]
    assert final["ManifestConfig"]["Source"]["S3"]["ManifestObjectPath"] == "two.csv"
    assert ds.describe_task(TaskArn=task)["ManifestConfig"] == manifest("one.csv")


def test_unmapped_bucket_refused_and_missing_manifest_fails(srv: Server, bucket: Path) -> None:
    root: Path = srv.root  # type: ignore[attr-defined]
    ds = srv.client()
    source = ds.create_location_nfs(
        ServerHostname="localhost",
        Subdirectory=str(root / "src"),
        OnPremConfig={"AgentArns": [srv.agent_arn]},
    )["LocationArn"]
    destination = ds.create_location_nfs(
        ServerHostname="localhost",
        Subdirectory=str(root / "dst"),
        OnPremConfig={"AgentArns": [srv.agent_arn]},
    )["LocationArn"]
    with pytest.raises(ClientError) as caught:
        ds.create_task(
            SourceLocationArn=source,
            DestinationLocationArn=destination,
            ManifestConfig=manifest("m.csv", "arn:aws:s3:::nowhere"),
        )
    assert caught.value.response["Error"]["Code"] == "InvalidRequestException"
    assert "nowhere" in caught.value.response["Error"]["Message"]
    task = ds.create_task(SourceLocationArn=source, DestinationLocationArn=destination)["TaskArn"]
    for call in (
        lambda: ds.update_task(
            TaskArn=task, ManifestConfig=manifest("m.csv", "arn:aws:s3:::nowhere")
        ),
        lambda: ds.start_task_execution(
            TaskArn=task, ManifestConfig=manifest("m.csv", "arn:aws:s3:::nowhere")
        ),
    ):
        with pytest.raises(ClientError) as caught:
            call()
        assert caught.value.response["Error"]["Code"] == "InvalidRequestException"
        assert "nowhere" in caught.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as caught:
        ds.update_task(TaskArn=task, ManifestConfig=manifest("../outside.csv"))
    assert caught.value.response["Error"]["Code"] == "InvalidRequestException"
    with pytest.raises(ClientError):
        ds.update_task(TaskArn=task, ManifestConfig={**manifest("m.csv"), "Format": "JSON"})
    # a mapped bucket without the object: the execution fails, naming the manifest
    (root / "src" / "f.txt").write_text("x")
    arn = ds.start_task_execution(TaskArn=task, ManifestConfig=manifest("absent.csv"))[
        "TaskExecutionArn"
    ]
    final = finished(ds, arn)
    assert final["Status"] == "ERROR"
    assert final["Result"]["ErrorCode"] == "ManifestError"
    assert "absent.csv" in final["Result"]["ErrorDetail"]
    assert os.listdir(root / "dst") == []
    # UpdateTask with an empty ManifestConfig removes it
    ds.update_task(TaskArn=task, ManifestConfig=manifest("absent.csv"))
    ds.update_task(TaskArn=task, ManifestConfig={})
    assert "ManifestConfig" not in ds.describe_task(TaskArn=task)
