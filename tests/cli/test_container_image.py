"""The real container image: built from the Dockerfile with podman and run as the README runs it
(published port, the state volume, the served root bind-mounted and owned by uid 10001).

No registry is reachable here, so `python:3.11-slim` cannot be pulled: the image is built
`--build-arg BASE=` a local stand-in bootstrapped from Debian bookworm (deploy/container-base.sh,
`make container-base`), unless the real base is already in podman's storage. Everything after the
`FROM` is the Dockerfile's own: the wheel install, `useradd`, the volumes, HEALTHCHECK,
ENTRYPOINT and CMD. podman runs with runc (crun refuses this VM's hybrid cgroup layout) and with
lowered ulimits (the VM lacks CAP_SYS_RESOURCE to set podman's defaults). Skipped, saying why,
where podman, runc or a base image is missing; tests/cli/test_container.py covers the entrypoint
and healthcheck without a container engine.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from botocore.config import Config

from tests.api.harness import free_port

REPO = Path(__file__).parents[2]
REAL_BASE = "docker.io/library/python:3.11-slim"
LOCAL_BASE = "localhost/datasync-local-base:bookworm"  # deploy/container-base.sh
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")  # the host's, for pip inside the build
PODMAN = shutil.which("podman")
RUNC = shutil.which("runc")
LIMITS = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=4096:4096"]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(PODMAN is None, reason="podman is not installed: make container-base"),
    pytest.mark.skipif(RUNC is None, reason="runc is not installed: make container-base"),
    pytest.mark.skipif(os.geteuid() != 0, reason="rootful podman: the test runs as root"),
]


def podman(
    *args: str, timeout: float = 120, check: bool = True
) -> subprocess.CompletedProcess[str]:
    assert PODMAN is not None
    return subprocess.run(
        [PODMAN, "--runtime", str(RUNC), *args],
        capture_output=True, text=True, timeout=timeout, check=check,
    )  # fmt: skip


def base_image() -> str | None:
    for image in (REAL_BASE, LOCAL_BASE):
        if podman("image", "exists", image, check=False).returncode == 0:
            return image
    return None


@pytest.fixture(scope="module")
def image() -> Iterator[str]:
    base = base_image()
    if base is None and shutil.which("debootstrap"):
        # made here, not by make test ahead: the test file starts first (slow) and this takes
        # minutes of mostly waiting on Debian's mirror, while the other workers run the suite
        made = subprocess.run(
            [str(REPO / "deploy" / "container-base.sh")],
            capture_output=True, text=True, timeout=900, check=False,
        )  # fmt: skip
        assert made.returncode == 0, made.stdout[-2000:] + made.stderr[-4000:]
        base = base_image()
    if base is None:
        pytest.skip(f"no base image ({REAL_BASE} or {LOCAL_BASE}): make container-base")
    tag = f"localhost/datasync-local:test-{uuid.uuid4().hex[:8]}"
    mounts = ["-v", f"{CA_BUNDLE}:{CA_BUNDLE}:ro"] if CA_BUNDLE.exists() else []
    build = podman(
        "build", "--format", "docker", "--network", "host", *LIMITS, *mounts,
        "--build-arg", f"BASE={base}", "-t", tag, str(REPO),
        timeout=600, check=False,
    )  # fmt: skip
    assert build.returncode == 0, build.stdout[-4000:] + build.stderr[-4000:]
    try:
        yield tag
    finally:
        podman("rmi", "-f", tag, check=False)


def test_the_image_runs_as_the_readme_says(image: str, tmp_path: Path) -> None:
    inspected = json.loads(podman("image", "inspect", image).stdout)[0]
    config = inspected["Config"]
    assert config["User"] == "datasync"
    assert set(config["Volumes"]) == {"/var/lib/datasync-local", "/srv/datasync"}
    assert "8080/tcp" in config["ExposedPorts"]
    health = inspected["Healthcheck"]["Test"]  # kept: built with --format docker
    assert health[0] == "CMD" and "/health" in health[-1]
    assert config["Entrypoint"] == ["datasync-local"] and config["Cmd"][:3] == [
        "serve",
        "--host",
        "0.0.0.0",
    ]
    data = tmp_path / "data"
    data.mkdir()
    os.chown(data, 10001, -1)  # README: sudo chown 10001 data
    name, volume, port = (
        f"dsl-test-{uuid.uuid4().hex[:8]}",
        f"dsl-state-{uuid.uuid4().hex[:8]}",
        free_port(),
    )
    podman(
        "run", "-d", "--name", name, *LIMITS, "-p", f"127.0.0.1:{port}:8080",
        "-v", f"{volume}:/var/lib/datasync-local", "-v", f"{data}:/srv/datasync", image,
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=2).json() == {"status": "ok"}:
                    break
            except httpx.HTTPError:
                pass
            state = json.loads(podman("inspect", name).stdout)[0]["State"]
            assert state["Running"], podman("logs", name).stdout + podman("logs", name).stderr
            assert time.monotonic() < deadline, "not healthy in 90 s"
            time.sleep(0.5)
        assert podman("healthcheck", "run", name, check=False).returncode == 0  # its HEALTHCHECK
        assert podman("exec", name, "id", "-u").stdout.strip() == "10001"
        keys = json.loads(
            podman("exec", name, "cat", "/var/lib/datasync-local/credentials.json").stdout
        )
        make: Any = boto3.client
        ds = make(
            "datasync", endpoint_url=url, region_name="us-east-1",
            aws_access_key_id=keys["AccessKeyId"], aws_secret_access_key=keys["SecretAccessKey"],
            config=Config(retries={"max_attempts": 1, "mode": "standard"}),
        )  # fmt: skip
        (agent,) = ds.list_agents()["Agents"]
        assert agent["Status"] == "ONLINE"
        (data / "src").mkdir()
        (data / "src/hello.txt").write_text("from the container\n")
        src, dst = (
            ds.create_location_nfs(
                ServerHostname="localhost", Subdirectory=f"/srv/datasync/{side}",
                OnPremConfig={"AgentArns": [agent["AgentArn"]]},
            )["LocationArn"]
            for side in ("src", "dst")
        )  # fmt: skip
        task = ds.create_task(SourceLocationArn=src, DestinationLocationArn=dst)["TaskArn"]
        arn = ds.start_task_execution(TaskArn=task)["TaskExecutionArn"]
        deadline = time.monotonic() + 90
        while (ex := ds.describe_task_execution(TaskExecutionArn=arn))["Status"] not in (
            "SUCCESS",
            "ERROR",
        ):
            assert time.monotonic() < deadline, ex["Status"]
            time.sleep(0.3)
        assert ex["Status"] == "SUCCESS", ex.get("Result")
        copied = data / "dst/hello.txt"
        assert copied.read_text() == "from the container\n"
        assert copied.stat().st_uid == 10001  # written by the image's non-root user
        podman("stop", "-t", "40", name, timeout=60)  # SIGTERM: a clean stop
        assert json.loads(podman("inspect", name).stdout)[0]["State"]["ExitCode"] == 0
    finally:
        podman("rm", "-f", name, check=False)
        podman("volume", "rm", "-f", volume, check=False)
