"""Session-wide fixtures: the store every server of a test uses.

The API and agent suites (tests/api, tests/agents) run twice, once per store: `sqlite` (the
embedded default in each server's --data-dir) and `postgresql` (a fresh database per test in one
throwaway cluster, tests/pg.py). The choice reaches every server a test starts — in-process
(`cli.serve.build`) or a real `serve` child process — through DATASYNC_LOCAL_STORE, so the
suites themselves stay unchanged. `pytest --store sqlite` (or `postgresql`) runs one of them.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from api.store import STORE_ENV
from tests.pg import PgCluster

_BOTH = ("tests/api/", "tests/agents/")
STORES = ("sqlite", "postgresql")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--store",
        choices=(*STORES, "both"),
        default="both",
        help="which store the API and agent suites run against (both)",
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "store_kind" not in metafunc.fixturenames:
        return
    path = Path(str(metafunc.definition.path)).as_posix()
    if any(part in path for part in _BOTH):
        chosen = metafunc.config.getoption("--store")
        kinds = STORES if chosen == "both" else (chosen,)
        metafunc.parametrize("store_kind", kinds, indirect=True)


@pytest.fixture
def store_kind(request: pytest.FixtureRequest) -> str:
    return str(getattr(request, "param", "sqlite"))


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    cluster = PgCluster().start()
    try:
        cluster.make_template()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(autouse=True)
def _store(
    store_kind: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str | None]:
    """DATASYNC_LOCAL_STORE for this test: unset (SQLite) or a fresh PostgreSQL database."""
    if store_kind != "postgresql":
        monkeypatch.delenv(STORE_ENV, raising=False)
        yield None
        return
    cluster: PgCluster = request.getfixturevalue("pg_cluster")
    name = cluster.new_database()
    url = cluster.url(name)
    monkeypatch.setenv(STORE_ENV, url)
    try:
        yield url
    finally:
        cluster.drop_database(name)


@pytest.fixture(autouse=True)
def _isolated_cache_home(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`sync` keeps its hash cache in $XDG_CACHE_HOME (else ~/.cache): every test gets its own,
    so no test writes into the real home or sees digests another run left there. Child
    processes inherit it through the environment."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("xdg-cache")))
