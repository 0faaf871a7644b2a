"""A newer botocore whose DataSync model has an `Options` member this code does not know."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from engine.model import load_service_model
from tests.engine.trees import write

REPO = Path(__file__).parents[2]


def newer_botocore(root: Path) -> Path:
    """A `botocore` package holding just the DataSync model, plus one invented Options member
    (the engine reads nothing else of botocore, so it shadows the real one for a sync)."""
    model = json.loads(json.dumps(load_service_model()))
    model["shapes"]["Options"]["members"]["FutureSetting"] = {"shape": "FutureSetting"}
    model["shapes"]["FutureSetting"] = {"type": "string", "enum": ["OFF", "ON"]}
    data = root / "botocore/data/datasync/2018-11-09"
    data.mkdir(parents=True)
    (data / "service-2.json").write_text(json.dumps(model))
    (root / "botocore/__init__.py").write_text("")
    return root


def test_an_unknown_options_member_is_ignored_not_an_error(tmp_path: Path) -> None:
    path = newer_botocore(tmp_path / "site")
    write(tmp_path / "src/a.txt", "a")
    env = {**os.environ, "PYTHONPATH": f"{path}{os.pathsep}{REPO}"}
    probe = subprocess.run(
        [sys.executable, "-c",
         "from engine import Options; import botocore; print(botocore.__file__);"
         "o = Options.create(); print(sorted(o)); print(Options.create({'FutureSetting': 'ON'})['FutureSetting'])"],
        capture_output=True, text=True, timeout=60, cwd=tmp_path, env=env,
    )  # fmt: skip
    assert probe.returncode == 0, probe.stderr
    where, defaults, given = probe.stdout.splitlines()
    assert where.startswith(str(path))
    assert "FutureSetting" not in defaults and "VerifyMode" in defaults
    assert given == "ON"  # accepted (validated against the model's enum), ignored by the engine
    sync = subprocess.run(
        [sys.executable, "-m", "cli.main", "sync", str(tmp_path / "src"), str(tmp_path / "dst"),
         "--future-setting", "on", "--verify-mode", "NONE"],
        capture_output=True, text=True, timeout=60, cwd=tmp_path, env=env,
    )  # fmt: skip
    assert sync.returncode == 0, sync.stderr
    assert (tmp_path / "dst/a.txt").read_text() == "a"
