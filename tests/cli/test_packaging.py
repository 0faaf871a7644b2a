"""The container image's exact commands, the compose file, the wheel's contents, the licence."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import tomllib
import zipfile
from pathlib import Path

import pytest
import yaml

from cli.main import build_parser
from tests.api.harness import free_port

REPO = Path(__file__).parents[2]
DOCKERFILE = (REPO / "Dockerfile").read_text()


def instruction(name: str) -> list[str]:
    """The exec-form (JSON array) argument of a Dockerfile instruction, continuation lines joined."""
    text = DOCKERFILE.replace("\\\n", " ")
    match = re.search(rf"^{name}\s+(?:--\S+\s+)*(?:CMD\s+)?(\[.*\])\s*$", text, re.M)
    assert match, name
    parsed: list[str] = json.loads(match[1])
    return parsed


def test_the_image_entrypoint_serves_and_its_healthcheck_sees_it(tmp_path: Path) -> None:
    entrypoint, cmd = instruction("ENTRYPOINT"), instruction("CMD")
    assert entrypoint == ["datasync-local"]
    assert cmd[:3] == ["serve", "--host", "0.0.0.0"]
    assert re.search(r"^USER datasync$", DOCKERFILE, re.M) and "VOLUME" in DOCKERFILE
    port = free_port()
    paths = {"8080": str(port), "/var/lib/datasync-local": str(tmp_path / "state"),
             "/srv/datasync": str(tmp_path / "root")}  # fmt: skip
    (tmp_path / "root").mkdir()
    args = [paths.get(a, a) for a in cmd]
    health = [a.replace("8080", str(port)) for a in instruction("HEALTHCHECK")]
    assert health[0] == "python"
    health[0] = sys.executable
    server = subprocess.Popen(
        [sys.executable, "-m", "cli.main", *args],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while subprocess.run(health, timeout=10).returncode != 0:
            assert server.poll() is None and time.monotonic() < deadline, server.stdout
            time.sleep(0.2)
    finally:
        server.send_signal(signal.SIGTERM)
        out, _ = server.communicate(timeout=30)
    assert server.returncode == 0, out
    assert f"DataSync API on http://0.0.0.0:{port}" in out
    assert subprocess.run(health, timeout=10).returncode != 0  # nothing listening: unhealthy


def test_compose_commands_are_valid_invocations() -> None:
    compose = yaml.safe_load((REPO / "compose.yaml").read_text())
    services = compose["services"]
    assert set(services) == {"serve", "agent"}
    for service in services.values():
        args = build_parser(service["command"][0]).parse_args(service["command"])
        assert args.command == service["command"][0]
    assert "http://serve:8080" in services["agent"]["command"]


def test_systemd_units_run_real_commands() -> None:
    for unit in sorted((REPO / "deploy/systemd").glob("*.service")):
        text = unit.read_text().replace("\\\n", " ")
        exec_start = re.search(r"^ExecStart=(.*)$", text, re.M)
        assert exec_start, unit
        argv = shlex.split(exec_start[1].replace("%H", "host"))
        assert argv[0].endswith("/datasync-local")
        build_parser(argv[1]).parse_args(argv[1:])


def test_licence_matches_pyproject() -> None:
    meta = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert meta["license"] == "Apache-2.0"
    head = (REPO / "LICENSE").read_text()[:300]
    assert "Apache License" in head and "Version 2.0, January 2004" in head


@pytest.mark.slow
def test_the_wheel_ships_the_four_packages_and_no_benchmarks(tmp_path: Path) -> None:
    src = tmp_path / "src"  # a copy, so the build leaves nothing in the working tree
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(REPO / name, src / name)
    for package in ("engine", "api", "agents", "cli", "benchmarks"):
        shutil.copytree(REPO / package, src / package, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(tmp_path), str(src)],
        check=True, timeout=300, capture_output=True,
    )  # fmt: skip
    (wheel,) = tmp_path.glob("datasync_local-*.whl")
    tops = {name.split("/")[0] for name in zipfile.ZipFile(wheel).namelist()}
    assert {"engine", "api", "agents", "cli"} <= tops
    assert "benchmarks" not in tops and "tests" not in tops
