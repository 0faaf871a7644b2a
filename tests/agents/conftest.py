"""The jobs-protocol suites' server: one control plane on a free port with no embedded agent
(the tests act as the agents), over one location root. A suite whose agents need a longer lease
overrides `agent_timeout`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.api.harness import Server, location_root


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return location_root(tmp_path)


@pytest.fixture
def agent_timeout() -> float:
    """Seconds without a report before an agent's job (or work item's lease) is lost: short, so
    the tests of a lost agent wait little."""
    return 2.0


@pytest.fixture
def server(tmp_path: Path, root: Path, agent_timeout: float) -> Iterator[Server]:
    srv = Server(
        str(tmp_path / "data"), [str(root)], embedded_agent=False, agent_timeout=agent_timeout
    )
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()
