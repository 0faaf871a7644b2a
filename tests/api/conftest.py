from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.api.harness import Server, location_root


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return location_root(tmp_path)


@pytest.fixture
def server(tmp_path: Path, root: Path) -> Iterator[Server]:
    srv = Server(str(tmp_path / "data"), [str(root)]).start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def ds(server: Server) -> Any:
    return server.client()


@pytest.fixture
def locations(server: Server, ds: Any, root: Path) -> tuple[str, str]:
    agent = server.agent_arn
    src = ds.create_location_nfs(
        ServerHostname="localhost",
        Subdirectory=os.fspath(root / "src"),
        OnPremConfig={"AgentArns": [agent]},
    )["LocationArn"]
    dst = ds.create_location_smb(
        ServerHostname="127.0.0.1", Subdirectory=os.fspath(root / "dst"), AgentArns=[agent]
    )["LocationArn"]
    return src, dst
