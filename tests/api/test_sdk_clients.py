"""Other SDKs and Airflow drive the DataSync API unmodified (issue 14: "keep them working").

Each gets a virtual environment of its own, made with uv (the Makefile's, passed as
DATASYNC_LOCAL_UV, else the one on PATH or in ~/.cache/datasync-local/uv): aiobotocore pins
botocore to a narrow range the dev environment's boto3 does not match, and Airflow brings ~150
packages of its own. The scripts in tests/api/sdk/ import nothing of ours; they talk to a real
server over SigV4 like a user's code does.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.api.harness import ACCESS_KEY, SECRET_KEY, Server, make_tree, nfs_task, serving

SDK = Path(__file__).parent / "sdk"
pytestmark = pytest.mark.slow
ONE_STORE = True  # a client's compatibility does not depend on the store (tests/conftest.py)


def _uv() -> str:
    for candidate in (
        os.environ.get("DATASYNC_LOCAL_UV"),
        shutil.which("uv"),
        os.path.expanduser("~/.cache/datasync-local/uv/bin/uv"),
    ):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise AssertionError("no uv found: run the tests through `make test`, which installs it")


def _venv_with(where: Path, *requirements: str) -> Path:
    """A fresh virtual environment holding `requirements`; returns its python (uv's wheel cache
    in the user's home makes a repeat take seconds)."""
    uv, venv = _uv(), where / "venv"
    env = {**os.environ, "UV_CACHE_DIR": os.path.expanduser("~/.cache/uv")}
    make = [uv, "venv", "--quiet", "--python", sys.executable, str(venv)]
    subprocess.run(make, check=True, env=env, timeout=120)
    python = venv / "bin" / "python"
    install = [uv, "pip", "install", "--quiet", "--python", str(python), *requirements]
    subprocess.run(install, check=True, env=env, timeout=600)
    return python


@pytest.fixture(scope="module")
def aiobotocore_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _venv_with(tmp_path_factory.mktemp("aiobotocore"), "aiobotocore")


@pytest.fixture(scope="module")
def airflow_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _venv_with(tmp_path_factory.mktemp("airflow"), "apache-airflow-providers-amazon")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    with serving(tmp_path) as started:
        yield started


def _run(python: Path, script: str, args: dict[str, Any], **env: str) -> dict[str, Any]:
    run = subprocess.run(
        [str(python), str(SDK / script), json.dumps(args)],
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, **env},
    )
    assert run.returncode == 0, run.stderr[-3000:]
    seen: dict[str, Any] = json.loads(run.stdout.strip().splitlines()[-1])
    return seen


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_aiobotocore_runs_throttles_and_watches_an_execution(
    aiobotocore_python: Path, server: Server
) -> None:
    root: Path = server.root  # type: ignore[attr-defined]
    make_tree(str(root / "src"), 20, 64 * 1024)
    task = nfs_task(server.client(), server.agent_arn, root / "src", root / "dst")[2]
    args = {
        "url": server.url,
        "region": server.region,
        "key": ACCESS_KEY,
        "secret": SECRET_KEY,
        "task": task,
    }
    seen = _run(aiobotocore_python, "aiobotocore_client.py", args)
    described = seen["described"]
    assert described["Status"] == "SUCCESS", described["Result"]
    assert described["FilesTransferred"] == 20 and described["BytesWritten"] == 20 * 64 * 1024
    assert described["Options"]["BytesPerSecond"] == 8 * 1024 * 1024  # the live update held
    assert seen["statuses"][-1] == "SUCCESS" and seen["arn"] in seen["listed"]
    assert seen["error"] == "InvalidRequestException"  # modelled errors reach it by code
    assert _files(root / "dst") == _files(root / "src")


def test_airflows_datasync_hook_finds_creates_runs_waits_and_cancels(
    airflow_python: Path, server: Server, tmp_path: Path
) -> None:
    root: Path = server.root  # type: ignore[attr-defined]
    make_tree(str(root / "src"), 10, 32 * 1024)
    connection = {
        "conn_type": "aws",
        "login": ACCESS_KEY,
        "password": SECRET_KEY,
        "extra": {"endpoint_url": server.url, "region_name": server.region},
    }
    args = {"src": str(root / "src"), "dst": str(root / "dst"), "agent": server.agent_arn}
    seen = _run(
        airflow_python,
        "airflow_hook.py",
        args,
        AIRFLOW_HOME=str(tmp_path / "airflow"),
        AIRFLOW_CONN_AWS_DEFAULT=json.dumps(connection),
    )
    assert seen["src_found"] and seen["dst_found"]  # LocationUri as DataSync spells it
    assert seen["task_found"] == [seen["task"]] and seen["current"]
    assert seen["succeeded"] is True and seen["described"] == "SUCCESS"
    assert _files(root / "dst") == _files(root / "src")
    # a cancel passes through CANCELLING (README: the hook's waiter does not know that state)
    # and ends ERROR, as DataSync's does
    assert seen["cancelled"][-1] == "ERROR", seen["cancelled"]
