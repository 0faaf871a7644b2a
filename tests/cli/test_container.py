"""The container image without a container runtime: its wheel is built from exactly the files
the Dockerfile COPYs (minus .dockerignore), installed apart from the repository, and its
ENTRYPOINT + CMD run as a real process; then its HEALTHCHECK, the status page's templates, a
boto3 call and a transfer are checked against it.

Why not `docker build`: this machine cannot pull `python:3.11-slim` (no registry access). What
the image adds beyond this test is the base image, `useradd` and the volumes' ownership.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from botocore.config import Config

from tests.api.harness import free_port

pytestmark = pytest.mark.slow  # builds and installs the wheel, then runs it

REPO = Path(__file__).parents[2]
DOCKERFILE = (REPO / "Dockerfile").read_text()
STATE, ROOT = "/var/lib/datasync-local", "/srv/datasync"  # the image's two volumes


def instructions(name: str) -> list[str]:
    """Every `name` instruction's arguments, continuation lines joined, comments dropped."""
    text = DOCKERFILE.replace("\\\n", " ")
    return [m[1].strip() for m in re.finditer(rf"^{name}\s+(.*)$", text, re.M)]


def exec_form(name: str) -> list[str]:
    """The exec-form (JSON array) argument of the one `name` instruction."""
    (args,) = instructions(name)
    match = re.fullmatch(r"(?:--\S+\s+)*(?:CMD\s+)?(\[.*\])", args)
    assert match, f"{name} is not in exec form: {args}"
    parsed: list[str] = json.loads(match[1])
    return parsed


def ignored(relative: str, patterns: list[str]) -> bool:
    """Whether .dockerignore leaves `relative` (or a folder above it) out of the context."""
    parts = relative.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for pattern in patterns:
        for prefix in prefixes:
            if fnmatch.fnmatchcase(prefix, pattern):
                return True
            if pattern.startswith("**/") and any(
                fnmatch.fnmatchcase("/".join(prefix.split("/")[i:]), pattern[3:])
                for i in range(prefix.count("/") + 1)
            ):
                return True
    return False


def build_context_copy(dest: Path) -> None:
    """Do the Dockerfile's COPYs from the repository (as the build context) into `dest`."""
    patterns = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    copies = instructions("COPY")
    assert copies, "the Dockerfile copies nothing"
    for args in copies:
        *sources, target = args.split()
        assert target.startswith("/src"), f"COPY outside /src: {args}"
        into = dest / target.removeprefix("/src").strip("/")
        for source in sources:
            assert not ignored(source, patterns), f"COPY {source} is .dockerignored"
            path = REPO / source
            goal = into / path.name if target.endswith("/") else into
            if path.is_file():
                goal.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, goal)
                continue
            for file in path.rglob("*"):
                relative = file.relative_to(REPO).as_posix()
                if file.is_file() and not ignored(relative, patterns):
                    out = goal / file.relative_to(path)
                    out.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(file, out)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The image's `pip install /src`: a wheel of the copied files, installed into a target."""
    base = tmp_path_factory.mktemp("image")
    build_context_copy(base / "src")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(base), str(base / "src")],
        check=True, timeout=300, capture_output=True,
    )  # fmt: skip
    (wheel,) = base.glob("datasync_local-*.whl")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(base / "site"), str(wheel)],
        check=True, timeout=300, capture_output=True,
    )  # fmt: skip
    return base / "site"


def image_env(site: Path) -> dict[str, str]:
    """Only the installed wheel and the third-party dependencies: run with `python -S`, so the
    development install's .pth (which puts the repository on sys.path) is never read."""
    deps = sysconfig.get_paths()["purelib"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "DATASYNC_LOCAL"))}
    env["PYTHONPATH"] = f"{site}{os.pathsep}{deps}"
    env["PATH"] = f"{site / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    return env


def test_the_isolation_is_real(installed: Path, tmp_path: Path) -> None:
    """Without the wheel on the path, our packages are not importable: what the image runs
    below comes from the wheel, not from the repository."""
    env = image_env(installed)
    env["PYTHONPATH"] = sysconfig.get_paths()["purelib"]
    probe = subprocess.run(
        [sys.executable, "-S", "-c", "import contract"], env=env, cwd=tmp_path, capture_output=True
    )
    assert probe.returncode != 0
    where = subprocess.run(
        [sys.executable, "-S", "-c", "import api, contract; print(api.__file__, contract.__file__)"],
        env=image_env(installed), cwd=tmp_path, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert all(p.startswith(str(installed)) for p in where.stdout.split())


@pytest.fixture
def container(installed: Path, tmp_path: Path) -> Iterator[tuple[str, Path, Path, list[str]]]:
    """The image's ENTRYPOINT + CMD as a process: same arguments, with the port and the two
    volumes mapped to free / temporary ones; yields (url, state dir, root, healthcheck)."""
    entrypoint, cmd = exec_form("ENTRYPOINT"), exec_form("CMD")
    assert entrypoint == ["datasync-local"]
    assert cmd[:3] == ["serve", "--host", "0.0.0.0"]
    assert not instructions("ENV"), "the image sets environment: pass it to the process here"
    port = free_port()
    state, root = tmp_path / "state", tmp_path / "root"
    root.mkdir()
    mapping = {"8080": str(port), STATE: str(state), ROOT: str(root)}
    args = [mapping.get(a, a) for a in cmd]
    assert args.count(str(port)) == 1 and str(state) in args and str(root) in args
    script = installed / "bin" / entrypoint[0]  # the console script the wheel installs
    assert script.exists()
    health = [a.replace("8080", str(port)) for a in exec_form("HEALTHCHECK")]
    assert health[0] == "python"
    health[0] = sys.executable
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        server = subprocess.Popen(
            [sys.executable, "-S", str(script), *args],
            env=image_env(installed), cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while subprocess.run(health, timeout=10).returncode != 0:
            assert server.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        yield f"http://127.0.0.1:{port}", state, root, health
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=40)
    assert server.returncode == 0, log.read_text()
    assert f"DataSync API on http://0.0.0.0:{port}" in log.read_text()
    assert subprocess.run(health, timeout=10).returncode != 0  # nothing listening: unhealthy


def test_the_image_serves_health_ui_api_and_transfers(
    container: tuple[str, Path, Path, list[str]],
) -> None:
    url, state, root, health = container
    assert subprocess.run(health, timeout=10).returncode == 0
    assert httpx.get(f"{url}/health").json() == {"status": "ok"}
    login = httpx.get(f"{url}/ui/login")  # templates and static files are in the wheel
    assert login.status_code == 200 and "secret_access_key" in login.text
    assert httpx.get(f"{url}/ui/static/ui.js").status_code == 200
    # the first start generated the operator pair into the state volume
    keys = json.loads((state / "credentials.json").read_text())
    assert (state / "credentials.json").stat().st_mode & 0o077 == 0
    make: Any = boto3.client
    ds = make(
        "datasync",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id=keys["AccessKeyId"],
        aws_secret_access_key=keys["SecretAccessKey"],
        config=Config(retries={"max_attempts": 1, "mode": "standard"}),
    )
    (agent,) = ds.list_agents()["Agents"]
    assert agent["Status"] == "ONLINE"  # the embedded agent, over the served root
    (root / "src").mkdir()
    (root / "src" / "hello.txt").write_text("from the image\n")
    src, dst = (
        ds.create_location_nfs(
            ServerHostname="localhost",
            Subdirectory=str(root / side),
            OnPremConfig={"AgentArns": [agent["AgentArn"]]},
        )["LocationArn"]
        for side in ("src", "dst")
    )
    task = ds.create_task(SourceLocationArn=src, DestinationLocationArn=dst)["TaskArn"]
    arn = ds.start_task_execution(TaskArn=task)["TaskExecutionArn"]
    deadline = time.monotonic() + 60
    while (status := ds.describe_task_execution(TaskExecutionArn=arn)["Status"]) not in (
        "SUCCESS",
        "ERROR",
    ):
        assert time.monotonic() < deadline, status
        time.sleep(0.2)
    assert status == "SUCCESS"
    assert (root / "dst" / "hello.txt").read_text() == "from the image\n"
    metrics = httpx.get(f"{url}/metrics").text
    assert 'datasync_local_api_requests_total{code="OK",operation="StartTaskExecution"' in metrics


def test_dockerignore_keeps_the_context_small_and_the_copies_whole() -> None:
    patterns = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for heavy in (".git", ".venv", "tests", "benchmarks", "api/__pycache__"):
        assert ignored(heavy, patterns), heavy
    copied = {arg for args in instructions("COPY") for arg in args.split()[:-1]}
    packages = {"engine", "contract", "api", "agents", "cli"}  # pyproject's packages.find
    assert packages <= copied, f"the image would miss {packages - copied}"
