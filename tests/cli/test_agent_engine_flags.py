"""`agent` takes the same engine switches as `serve`, with its hash cache under --state-dir."""

from __future__ import annotations

import argparse

import pytest

from cli.agent import add_arguments
from cli.engine_flags import engine_settings


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(["--server", "http://127.0.0.1:9", *argv])


def test_defaults_keep_the_safety_rail_and_the_cache() -> None:
    settings = engine_settings(_parse("--state-dir", "/var/lib/agent"), "/var/lib/agent")
    assert settings.allow_empty_source is False
    assert settings.fsync is False
    assert settings.hash_cache_dir == "/var/lib/agent/hash-cache"


def test_flags_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = engine_settings(_parse("--allow-empty-source", "--fsync", "--no-hash-cache"), "s")
    assert (settings.allow_empty_source, settings.fsync, settings.hash_cache_dir) == (
        True,
        True,
        None,
    )
    monkeypatch.setenv("DATASYNC_LOCAL_AGENT_FSYNC", "1")
    assert engine_settings(_parse(), "s").fsync is True
