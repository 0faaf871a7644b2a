"""The operator's engine switches reach the embedded agent's transfers (serve --allow-empty-source,
--no-hash-cache), through the real API: an empty source never empties a destination unless allowed."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cli.serve import add_arguments, config_from_args
from tests.api.harness import Server, location_root, nfs_task, wait_for


def _run(server: Server, root: Path, **options: Any) -> dict[str, Any]:
    ds = server.client()
    _, _, task = nfs_task(
        ds,
        server.agent_arn,
        root / "src",
        root / "dst",
        Options={"PreserveDeletedFiles": "REMOVE", **options},
    )
    arn = ds.start_task_execution(TaskArn=task)["TaskExecutionArn"]
    done: dict[str, Any] = wait_for(
        lambda: (
            (d := ds.describe_task_execution(TaskExecutionArn=arn))["Status"]
            in ("SUCCESS", "ERROR")
            and d
        ),
        timeout=60,
    )
    return done


@pytest.fixture
def root(tmp_path: Path) -> Path:
    path = location_root(tmp_path)
    (path / "dst/keep.txt").write_text("the only copy")
    return path


@pytest.fixture
def strict(tmp_path: Path, root: Path) -> Iterator[Server]:
    server = Server(str(tmp_path / "data"), [str(root)]).start()
    yield server
    server.stop()


def test_an_empty_source_never_empties_the_destination(strict: Server, root: Path) -> None:
    done = _run(strict, root)
    assert done["Status"] == "ERROR"
    assert done["Result"]["ErrorCode"] == "SourceLocationEmpty"
    assert (root / "dst/keep.txt").read_text() == "the only copy"


def test_allow_empty_source_lets_remove_empty_it(tmp_path: Path, root: Path) -> None:
    server = Server(str(tmp_path / "data"), [str(root)], allow_empty_source=True).start()
    try:
        done = _run(server, root)
    finally:
        server.stop()
    assert done["Status"] == "SUCCESS", done.get("Result")
    assert list((root / "dst").iterdir()) == []


def test_point_in_time_verification_keeps_its_hash_cache_in_the_data_dir(
    strict: Server, root: Path, tmp_path: Path
) -> None:
    (root / "src/a.txt").write_text("some data")
    done = _run(strict, root, VerifyMode="POINT_IN_TIME_CONSISTENT")
    assert done["Status"] == "SUCCESS", done.get("Result")
    cache = tmp_path / "data/hash-cache"
    assert cache.is_dir() and any(cache.iterdir())


def test_flags_and_their_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    def parse(*argv: str) -> argparse.Namespace:
        parser = argparse.ArgumentParser()
        add_arguments(parser)
        return parser.parse_args(list(argv))

    config = config_from_args(parse("--allow-empty-source", "--fsync", "--no-hash-cache"))
    assert (config.allow_empty_source, config.fsync, config.hash_cache) == (True, True, False)
    assert config_from_args(parse()).allow_empty_source is False
    monkeypatch.setenv("DATASYNC_LOCAL_ALLOW_EMPTY_SOURCE", "true")
    assert config_from_args(parse()).allow_empty_source is True


def test_the_split_minimum_flags_and_their_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from contract.workitems import DEFAULT_SPLIT_MIN_BYTES, DEFAULT_SPLIT_MIN_FILES

    def parse(*argv: str) -> argparse.Namespace:
        parser = argparse.ArgumentParser()
        add_arguments(parser)
        return parser.parse_args(list(argv))

    config = config_from_args(parse())
    assert (config.split_min_files, config.split_min_bytes) == (
        DEFAULT_SPLIT_MIN_FILES,
        DEFAULT_SPLIT_MIN_BYTES,
    )
    config = config_from_args(parse("--split-min-files", "0", "--split-min-bytes", "5"))
    assert (config.split_min_files, config.split_min_bytes) == (0, 5)
    monkeypatch.setenv("DATASYNC_LOCAL_SPLIT_MIN_FILES", "7")
    assert config_from_args(parse()).split_min_files == 7
