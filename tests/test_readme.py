"""The README's examples, run verbatim against real processes (only ports and paths change), and
its flag tables checked against the parsers: the boto3 session and the Deadline session after it,
the AWS CLI example, the logs command, the on-prem agent walk-through, `make run` and the `sync`
synopsis. `test_every_example_is_run_or_accounted_for` fails on a new example block that no test
runs and no reason excuses, so the README cannot grow an untested example."""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.api.harness import free_port

REPO = Path(__file__).parents[1]
README = (REPO / "README.md").read_text()


FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.M | re.S)


def block(after: str, language: str) -> str:
    """The first fenced `language` block after the line containing `after`."""
    start = README.index(after)
    match = re.compile(rf"^```{language}\n(.*?)^```$", re.M | re.S).search(README, start)
    assert match, (after, language)
    return match[1]


# Every example block, by its first line: the test that runs it, or why none can here.
EXAMPLES = {
    "make run     # the API server": "test_make_run_serves_and_refuses_a_busy_port (make test: CI)",
    "import json, os, time": "test_readme_boto3_and_deadline_sessions",
    "export AWS_DEFAULT_REGION=us-east-1": "test_readme_aws_cli_example",
    "aws logs filter-log-events": "test_readme_boto3_and_deadline_sessions (line 1); "
    "line 2 (AWS CLI v2's tail --follow) by tests/cli/test_logs_tail.py",
    "import json": "test_readme_boto3_and_deadline_sessions",
    "datasync-local serve --no-embedded-agent": "test_readme_on_prem_agent_walk_through",
    "aws datasync create-agent": "test_readme_on_prem_agent_walk_through",
    "aws datasync create-location-nfs": "test_readme_on_prem_agent_walk_through",
    "datasync-local sync SRC DST": "test_readme_sync_synopsis",
    "docker build -t datasync-local .": "docker has no daemon here: tests/cli/test_container_image.py "
    "runs the same image with podman",
    "podman build --format docker": "tests/cli/test_container_image.py",
    "mkdir -p data && sudo chown 10001 data": "needs docker compose: tests/cli/test_container.py",
    "make lint    # ruff check": "CI runs make lint",
}


def test_every_example_is_run_or_accounted_for() -> None:
    firsts = [m[2].splitlines()[0] for m in FENCE.finditer(README)]
    unknown = [f for f in firsts if not any(f.startswith(k) for k in EXAMPLES)]
    assert not unknown, f"README example(s) no test runs: {unknown}"
    stale = [k for k in EXAMPLES if not any(f.startswith(k) for f in firsts)]
    assert not stale, f"EXAMPLES names blocks the README no longer has: {stale}"


def flags(command: str) -> set[str]:
    """Every long option of `datasync-local COMMAND`, from the real parser."""
    from cli.main import build_parser

    parser = build_parser(command)
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    options = sub.choices[command]._actions
    return {o for a in options for o in a.option_strings if o.startswith("--") and o != "--help"}


@pytest.mark.parametrize(
    ("command", "heading"),
    [("serve", "### `datasync-local serve` flags"), ("agent", "### `datasync-local agent` flags")],
)
def test_readme_documents_every_flag(command: str, heading: str) -> None:
    start = README.index(heading)
    table = README[start : README.index("\n\n", README.index("|---|", start))]
    documented = set(re.findall(r"`(--[a-z][a-z-]*)", table))
    assert flags(command) - documented == set(), f"undocumented {command} flags"
    assert documented - flags(command) == set(), f"documented {command} flags that do not exist"


def wait_for_port(port: int, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 60
    while True:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.1)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    port = free_port()
    (tmp_path / "demo").mkdir()
    server = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "serve", "--port", str(port), "--data-dir", ".data",
         "--root", str(tmp_path / "demo")],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    try:
        wait_for_port(port, server)
        yield tmp_path, port
    finally:
        server.send_signal(signal.SIGTERM)
        server.communicate(timeout=60)


def cli_env(cwd: Path) -> dict[str, str]:
    """The AWS CLI (the venv's) with the generated operator pair, as the CLI example exports it."""
    creds = json.loads((cwd / ".data/credentials.json").read_text())
    return {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": creds["AccessKeyId"],
        "AWS_SECRET_ACCESS_KEY": creds["SecretAccessKey"],
    }


@pytest.mark.slow
def test_readme_boto3_and_deadline_sessions(served: tuple[Path, int]) -> None:
    """The boto3 session, then ("with the session above done") the Deadline one and the logs
    command, in the same directory against the same server."""
    cwd, port = served
    code = block("## Using it like DataSync (boto3)", "python").replace("8080", str(port))
    p = subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=240
    )
    assert p.returncode == 0, p.stdout + p.stderr
    lines = p.stdout.splitlines()
    # one 64 MiB file: FilesTransferred 1 (the root directory counts in no counter, issue 11)
    assert any(line.startswith("SUCCESS 1 items, 67108864 bytes") for line in lines), lines
    assert lines[-1] in ("CANCELLING", "ERROR"), lines
    assert (cwd / "demo/backup/big.bin").read_bytes() == (cwd / "demo/photos/big.bin").read_bytes()

    deadline = block("### Pausing, resuming and retrying", "python").replace("8080", str(port))
    d = subprocess.run(
        [sys.executable, "-c", deadline], cwd=cwd, capture_output=True, text=True, timeout=120
    )
    assert d.returncode == 0, d.stdout + d.stderr
    jobs = [line.split() for line in d.stdout.splitlines() if line.startswith("arn:")]
    assert len(jobs) == 2, d.stdout  # one job per execution of the session above
    assert {job[1] for job in jobs} <= {"SUCCEEDED", "FAILED", "CANCELED"}, d.stdout

    logs = block("**Execution logs.**", "sh").splitlines()[0].replace("8080", str(port))
    assert logs.startswith("aws logs filter-log-events")
    out = subprocess.run(
        ["bash", "-e", "-c", logs], cwd=cwd, capture_output=True, text=True, timeout=60,
        env=cli_env(cwd),
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    assert "events" in json.loads(out.stdout)


@pytest.mark.slow
def test_readme_aws_cli_example(served: tuple[Path, int]) -> None:
    cwd, port = served
    script = block("The same with the AWS CLI", "sh").replace("8080", str(port))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    p = subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", script],
        cwd=cwd, capture_output=True, text=True, timeout=240, env=env,
    )  # fmt: skip
    assert p.returncode == 0, p.stdout + p.stderr
    described = json.loads(p.stdout[p.stdout.index("{") : p.stdout.rindex("}") + 1])
    assert described["Status"] in ("PREPARING", "TRANSFERRING"), described
    assert described["Of"] == 32 << 20
    assert p.stdout.splitlines()[-1] in ("CANCELLING", "ERROR")
    copy = cwd / "demo/docs-copy/big.bin"
    assert not copy.exists() or copy.stat().st_size == 0 or copy.stat().st_size < 32 << 20


def commands(script: str) -> list[str]:
    """A shell block's commands: continuation lines joined, comments dropped."""
    joined = script.replace("\\\n", " ")
    return [line.strip() for line in joined.splitlines() if line.strip() and line[0] != "#"]


@pytest.mark.slow
def test_readme_on_prem_agent_walk_through(tmp_path: Path) -> None:
    """`## On-prem agent`'s three blocks in order: a control plane without its agent, an agent
    with a root and a mount, its approval, and the two locations (one through the mount), then
    a task between them really copies from /srv/data/in to nas.example:/export/backup."""
    port = free_port()
    srv, state = tmp_path / "srv/data", tmp_path / "datasync-agent"
    (srv / "in").mkdir(parents=True)
    (srv / "nas").mkdir()
    (srv / "in/report.txt").write_text("quarterly\n")

    def local(text: str) -> str:
        return (
            text.replace("cp-host:8080", f"127.0.0.1:{port}")
            .replace("--port 8080", f"--port {port}")
            .replace("/var/lib/datasync-agent", str(state))
            .replace("/srv/data", str(srv))
        )

    serve_line, agent_line = commands(block("## On-prem agent", "sh"))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env = {k: v for k, v in env.items() if not k.startswith("DATASYNC_LOCAL")}
    procs: list[subprocess.Popen[str]] = []
    try:
        server = subprocess.Popen(
            local(serve_line).split(), cwd=tmp_path, env=env, text=True,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        procs.append(server)
        wait_for_port(port, server)
        agent = subprocess.Popen(
            local(agent_line).split(), cwd=tmp_path, env=env, text=True,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )  # fmt: skip
        procs.append(agent)
        assert agent.stdout is not None
        key = ""
        deadline = time.monotonic() + 60
        while not key:
            assert time.monotonic() < deadline and agent.poll() is None
            line = agent.stdout.readline()
            if line.startswith("ActivationKey: "):
                key = line.split()[1]
        threading.Thread(target=agent.stdout.read, daemon=True).start()  # keep it writable
        cli = {**env, **cli_env(tmp_path)}
        approve = block("Approve it (keys expire", "sh")
        approve = approve.replace("K96AE-B129Q-Z7VWJ-VHBK2-0OM7G", key)
        p = subprocess.run(
            ["bash", "-e", "-c", local(approve)], cwd=tmp_path, env=cli, capture_output=True,
            text=True, timeout=120,
        )  # fmt: skip
        assert p.returncode == 0, p.stdout + p.stderr
        listed = json.loads(p.stdout[p.stdout.rindex('{\n    "Agents"') :])
        (arn,) = [a["AgentArn"] for a in listed["Agents"] if a["Name"] == "lab-nas"]
        locations = local(block("Bind locations to it and run tasks as usual", "sh"))
        p = subprocess.run(
            ["bash", "-e", "-c", locations], cwd=tmp_path, env={**cli, "AGENT_ARN": arn},
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert p.returncode == 0, p.stdout + p.stderr
        src, dst = (json.loads(m)["LocationArn"] for m in re.findall(r"\{[^{}]*\}", p.stdout))
        creds = json.loads((tmp_path / ".data/credentials.json").read_text())
        make: Any = boto3.client
        ds = make(
            "datasync", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
            aws_access_key_id=creds["AccessKeyId"], aws_secret_access_key=creds["SecretAccessKey"],
        )  # fmt: skip
        task = ds.create_task(SourceLocationArn=src, DestinationLocationArn=dst)["TaskArn"]
        run = ds.start_task_execution(TaskArn=task)["TaskExecutionArn"]
        deadline = time.monotonic() + 120
        while (ex := ds.describe_task_execution(TaskExecutionArn=run))["Status"] not in (
            "SUCCESS",
            "ERROR",
        ):
            assert time.monotonic() < deadline, ex["Status"]
            time.sleep(0.3)
        assert ex["Status"] == "SUCCESS", ex.get("Result")
        assert (srv / "nas/backup/report.txt").read_text() == "quarterly\n"  # through --mount
    finally:
        for proc in reversed(procs):
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)


@pytest.mark.slow
def test_readme_sync_synopsis(tmp_path: Path) -> None:
    """The synopsis with its optional parts filled in (brackets and `...` dropped) runs."""
    synopsis = block("## One-off syncs with the engine alone", "").replace("\\\n", " ")
    words = synopsis.replace("[", "").replace("]", "").replace("...", "").split()
    assert words[:4] == ["datasync-local", "sync", "SRC", "DST"]
    (tmp_path / "SRC/photos").mkdir(parents=True)
    (tmp_path / "SRC/photos/a.jpg").write_bytes(b"jpeg")
    (tmp_path / "SRC/photos/b.tmp").write_bytes(b"scratch")
    (tmp_path / "SRC/music").mkdir()
    (tmp_path / "SRC/music/c.ogg").write_bytes(b"ogg")
    argv = [w.strip("'") for w in words]
    p = subprocess.run(
        [sys.executable, "-m", "cli.main", *argv[1:]], cwd=tmp_path, capture_output=True,
        text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    assert p.returncode == 0, p.stdout + p.stderr
    assert json.loads(p.stdout)["Status"] == "SUCCESS"
    assert (tmp_path / "DST/photos/a.jpg").read_bytes() == b"jpeg"
    assert not (tmp_path / "DST/photos/b.tmp").exists()  # --exclude '*.tmp'
    assert not (tmp_path / "DST/music").exists()  # --include '/photos|/docs'


def test_make_run_serves_and_refuses_a_busy_port(tmp_path: Path) -> None:
    """`make run` (its runtime already installed, as `make test` leaves it) serves the API on
    the port asked for; a second one on that port says so before any URL, and suggests PORT=."""
    if not (REPO / ".venv/.runtime-installed").exists() or shutil.which("make") is None:
        pytest.skip("make run needs the runtime venv (make .venv/.runtime-installed) and make")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATASYNC_LOCAL", "MAKE"))}
    vars_ = [f"PORT={port}", f"DATA_DIR={tmp_path / 'data'}", f"ROOT={tmp_path / 'demo'}"]
    first = subprocess.Popen(
        ["make", "--no-print-directory", "-C", str(REPO), "run", *vars_], env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        wait_for_port(port, first)
        second = subprocess.run(
            ["make", "--no-print-directory", "-C", str(REPO), "run", *vars_], env=env,
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert second.returncode != 0
        assert f"127.0.0.1:{port} is already in use" in second.stderr
        assert f"make run PORT={port + 1}" in second.stderr
        assert "http://" not in second.stdout + second.stderr.replace(f"PORT={port + 1}", "")
    finally:
        os.killpg(first.pid, signal.SIGTERM)
        out, _ = first.communicate(timeout=60)
    assert f"DataSync API on http://127.0.0.1:{port}" in out
