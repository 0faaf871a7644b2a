from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

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
