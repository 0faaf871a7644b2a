"""`..`, absolute-path, symlink and NUL tricks in Subdirectory, filter values and manifest-like
inputs, through boto3 against a real server whose embedded agent may touch only `root/`.

Invariants: a location outside the roots (after resolving `..` and symlinks) is refused with a
clear InvalidRequestException naming the reason; a NUL never reaches a path; filter values are
patterns over paths *inside* the location, so `..` or absolute paths in them select nothing
outside it; and nothing outside the roots is ever created, changed or read into a destination.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import botocore.exceptions
import pytest

from tests.api.harness import Server, wait_for
from tests.engine.trees import state


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp_path = tmp_path_factory.mktemp("paths")
    root = tmp_path / "root"
    outside = tmp_path / "outside"
    (root / "src" / "sub").mkdir(parents=True)
    (root / "dst").mkdir()
    (root / "src" / "a.txt").write_text("a")
    (root / "src" / "sub" / "b.txt").write_text("b")
    outside.mkdir()
    (outside / "secret.txt").write_text("secret")
    (root / "escape").symlink_to(outside)  # a symlink inside the root pointing out of it
    (root / "src" / "escape-file").symlink_to(outside / "secret.txt")
    server = Server(str(tmp_path / "data"), [str(root)]).start()
    try:
        yield {
            "server": server,
            "ds": server.client(),
            "root": root,
            "outside": outside,
            "tmp": tmp_path,
            "agent": server.agent_arn,
        }
    finally:
        server.stop()


def _outside_state(env: dict[str, Any]) -> dict[str, Any]:
    """Everything under tmp except the root and the server's data directory."""
    tmp: Path = env["tmp"]
    return {
        name: state(tmp / name) if (tmp / name).is_dir() else (tmp / name).stat().st_mtime_ns
        for name in os.listdir(tmp)
        if name not in ("root", "data")
    }


def _refused(call: Any, *fragments: str) -> str:
    with pytest.raises(botocore.exceptions.ClientError) as info:
        call()
    error = info.value.response["Error"]
    assert error["Code"] == "InvalidRequestException", error
    message: str = error["Message"]
    assert any(f in message for f in fragments), message
    return message


def _nfs(env: dict[str, Any], subdirectory: str) -> Any:
    return lambda: env["ds"].create_location_nfs(
        ServerHostname="localhost",
        Subdirectory=subdirectory,
        OnPremConfig={"AgentArns": [env["agent"]]},
    )


def _smb(env: dict[str, Any], subdirectory: str) -> Any:
    return lambda: env["ds"].create_location_smb(
        ServerHostname="127.0.0.1", Subdirectory=subdirectory, AgentArns=[env["agent"]]
    )


OUTSIDE_TRICKS = [
    "{root}/..",
    "{root}/../outside",
    "{root}/src/../../outside",
    "{root}/src/./../../outside/.",
    "{root}/escape",
    "{root}/escape/",
    "{root}/src/escape-file",
    "{root}-sibling",
    "{root}/../root-sibling",
    "/",
    "/etc",
    "/..",
    "/../../../../etc",
    "//etc",
]


@pytest.mark.parametrize("make", [_nfs, _smb], ids=["nfs", "smb"])
@pytest.mark.parametrize("trick", OUTSIDE_TRICKS)
def test_subdirectory_outside_the_roots_is_refused(
    env: dict[str, Any], make: Any, trick: str
) -> None:
    before_locations = env["ds"].list_locations()["Locations"]
    before = _outside_state(env)
    _refused(make(env, trick.format(root=env["root"])), "outside", "not found", "must be")
    assert env["ds"].list_locations()["Locations"] == before_locations
    assert _outside_state(env) == before


@pytest.mark.parametrize(
    "subdirectory, reason",
    [
        ("{root}/src\x00/../../outside", "pattern"),
        ("{root}\x00", "pattern"),
        ("\x00", "pattern"),
        ("src", "absolute"),
        ("../outside", "absolute"),
        ("./root", "absolute"),
        ("", "pattern"),
        ("{root}/" + "a" * 5000, "at most"),
    ],
)
def test_nul_relative_and_oversized_subdirectories_are_refused(
    env: dict[str, Any], subdirectory: str, reason: str
) -> None:
    client = env["server"].client(
        config=botocore.config.Config(parameter_validation=False, retries={"max_attempts": 1})
    )
    call = lambda: client.create_location_nfs(  # noqa: E731
        ServerHostname="localhost",
        Subdirectory=subdirectory.format(root=env["root"]),
        OnPremConfig={"AgentArns": [env["agent"]]},
    )
    before = env["ds"].list_locations()["Locations"]
    _refused(call, reason)
    assert env["ds"].list_locations()["Locations"] == before


def test_paths_that_stay_inside_are_accepted_normalised(env: dict[str, Any]) -> None:
    root = env["root"]
    for sub in (f"{root}/src/..", f"{root}/./src", f"{root}//src/", f"{root}/src/sub/../sub"):
        arn = _nfs(env, sub)()["LocationArn"]
        assert (
            env["ds"]
            .describe_location_nfs(LocationArn=arn)["LocationUri"]
            .startswith("nfs://localhost/")
        )


def test_update_location_cannot_move_it_outside(env: dict[str, Any]) -> None:
    root = env["root"]
    arn = _nfs(env, f"{root}/dst")()["LocationArn"]
    before = env["ds"].describe_location_nfs(LocationArn=arn)
    for trick in ("{root}/../outside", "{root}/escape", "/etc"):
        _refused(
            lambda t=trick: env["ds"].update_location_nfs(
                LocationArn=arn, Subdirectory=t.format(root=root)
            ),
            "outside",
        )
    after = env["ds"].describe_location_nfs(LocationArn=arn)
    before.pop("ResponseMetadata")
    after.pop("ResponseMetadata")
    assert after == before


def _task(env: dict[str, Any], **kwargs: Any) -> str:
    root = env["root"]
    src = _nfs(env, f"{root}/src")()["LocationArn"]
    dst = _smb(env, f"{root}/dst")()["LocationArn"]
    task: str = env["ds"].create_task(SourceLocationArn=src, DestinationLocationArn=dst, **kwargs)[
        "TaskArn"
    ]
    return task


def _run(env: dict[str, Any], task: str, **kwargs: Any) -> dict[str, Any]:
    ds = env["ds"]
    arn = ds.start_task_execution(TaskArn=task, **kwargs)["TaskExecutionArn"]
    return dict(
        wait_for(
            lambda: (
                (d := ds.describe_task_execution(TaskExecutionArn=arn))["Status"]
                in ("SUCCESS", "ERROR")
                and d
            ),
            timeout=30,
        )
    )


@pytest.mark.parametrize(
    "value",
    [
        "/../outside",
        "/../outside/secret.txt",
        "/../../",
        "/..|/../*",
        "/escape-file/../../outside",
        "*/../*",
        "/tmp|/etc/passwd",
        "/./a.txt/..",
    ],
)
def test_filter_values_cannot_reach_outside_the_location(env: dict[str, Any], value: str) -> None:
    """Filters are patterns over paths inside the location: `..` selects nothing outside it."""
    before = _outside_state(env)
    task = _task(env)
    for kwargs in (
        {"Includes": [{"FilterType": "SIMPLE_PATTERN", "Value": value}]},
        {"Excludes": [{"FilterType": "SIMPLE_PATTERN", "Value": value}]},
    ):
        result = _run(env, task, **kwargs)
        assert result["Status"] in ("SUCCESS", "ERROR")
    assert _outside_state(env) == before
    dst: Path = env["root"] / "dst"
    names = {str(p.relative_to(dst)) for p in dst.rglob("*")}
    assert names <= {"a.txt", "sub", "sub/b.txt", "escape-file"}, names
    # the symlink is copied as a symlink (never followed), so the secret stays outside
    if (dst / "escape-file").exists() or (dst / "escape-file").is_symlink():
        assert (dst / "escape-file").is_symlink()
    assert not any(p.is_file() and p.read_bytes() == b"secret" for p in dst.rglob("*")
                   if not p.is_symlink())  # fmt: skip


@pytest.mark.parametrize("value", ["\x00", "/a\x00b", "/a.txt\x00/../../outside"])
def test_nul_in_a_filter_is_refused(env: dict[str, Any], value: str) -> None:
    task = _task(env)
    _refused(
        lambda: env["ds"].start_task_execution(
            TaskArn=task, Includes=[{"FilterType": "SIMPLE_PATTERN", "Value": value}]
        ),
        "pattern",
    )
    _refused(
        lambda: env["ds"].update_task(
            TaskArn=task, Excludes=[{"FilterType": "SIMPLE_PATTERN", "Value": value}]
        ),
        "pattern",
    )
    assert env["ds"].list_task_executions(TaskArn=task)["TaskExecutions"] == []


@pytest.mark.parametrize(
    "manifest",
    [
        {
            "Source": {
                "S3": {
                    "ManifestObjectPath": "../../etc/passwd",
                    "BucketAccessRoleArn": "arn:aws:iam::111122223333:role/r",
                    "S3BucketArn": "arn:aws:s3:::bucket",
                }
            }
        },
        {
            "Source": {
                "S3": {
                    "ManifestObjectPath": "/etc/passwd",
                    "BucketAccessRoleArn": "arn:aws:iam::111122223333:role/r",
                    "S3BucketArn": "arn:aws:s3:::bucket",
                }
            }
        },
    ],
)
def test_manifest_paths_are_refused_clearly(env: dict[str, Any], manifest: dict[str, Any]) -> None:
    before = _outside_state(env)
    task = _task(env)
    _refused(
        lambda: env["ds"].start_task_execution(TaskArn=task, ManifestConfig=manifest),
        "ManifestConfig",
        "pattern",
    )
    assert env["ds"].list_task_executions(TaskArn=task)["TaskExecutions"] == []
    assert _outside_state(env) == before


def test_location_directory_swapped_for_a_symlink_after_creation(env: dict[str, Any]) -> None:
    """The check at CreateLocation is not enough: the directory can become a symlink to
    outside the roots later. The agent must refuse it when the job runs, and write nothing
    outside the roots."""
    root: Path = env["root"]
    outside: Path = env["outside"]
    victim = root / "victim"
    victim.mkdir()
    task = env["ds"].create_task(
        SourceLocationArn=_nfs(env, f"{root}/src")()["LocationArn"],
        DestinationLocationArn=_nfs(env, str(victim))()["LocationArn"],
    )["TaskArn"]
    victim.rmdir()
    victim.symlink_to(outside)
    before = _outside_state(env)
    result = _run(env, task)
    assert _outside_state(env) == before, "the engine wrote outside the roots"
    assert result["Status"] == "ERROR", result
    assert "outside" in result["Result"].get("ErrorDetail", ""), result["Result"]


def test_dotdot_after_a_symlink_is_resolved_as_the_kernel_would(env: dict[str, Any]) -> None:
    """`root/escape/../outside` is `root/outside` to `os.path.normpath` but `tmp/outside` to the
    kernel (escape -> tmp/outside, then ..). The server resolves `..` lexically first (it
    accepts this as `root/outside`); whatever it accepts, no execution may write outside the
    roots through it."""
    root: Path = env["root"]
    before = _outside_state(env)
    sneaky = f"{root}/escape/../outside"
    try:
        dst = _nfs(env, sneaky)()["LocationArn"]
    except botocore.exceptions.ClientError as exc:
        assert exc.response["Error"]["Code"] == "InvalidRequestException"
        return
    task = env["ds"].create_task(
        SourceLocationArn=_nfs(env, f"{root}/src")()["LocationArn"], DestinationLocationArn=dst
    )["TaskArn"]
    result = _run(env, task)
    assert _outside_state(env) == before, f"written outside the roots: {result}"
