"""The README's boto3 and AWS CLI examples, run verbatim (only the port changes) against a real
`datasync-local serve` laid out as `make run` lays it out: `.data/` and `demo/` in the cwd."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.api.harness import free_port

REPO = Path(__file__).parents[1]
README = (REPO / "README.md").read_text()


def block(after: str, language: str) -> str:
    """The first fenced `language` block after the line containing `after`."""
    start = README.index(after)
    match = re.compile(rf"^```{language}\n(.*?)^```$", re.M | re.S).search(README, start)
    assert match, (after, language)
    return match[1]


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
        deadline = time.monotonic() + 60
        while True:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert server.poll() is None and time.monotonic() < deadline, server.communicate()
            time.sleep(0.1)
        yield tmp_path, port
    finally:
        server.send_signal(signal.SIGTERM)
        server.communicate(timeout=60)


@pytest.mark.slow
def test_readme_boto3_example(served: tuple[Path, int]) -> None:
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
