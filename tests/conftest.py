"""Session-wide fixtures: the store every server of a test uses.

The API and agent suites (tests/api, tests/agents) run twice, once per store: `sqlite` (the
embedded default in each server's --data-dir) and `postgresql` (a fresh database per test in one
throwaway cluster, tests/pg.py). The choice reaches every server a test starts — in-process
(`cli.serve.build`) or a real `serve` child process — through DATASYNC_LOCAL_STORE, so the
suites themselves stay unchanged. `pytest --store sqlite` (or `postgresql`) runs one of them.

`make test` runs the suite in pytest-xdist workers (`-n`, `--dist loadgroup`). Each worker is a
session of its own: its own PostgreSQL cluster (the session fixture below), its own tmp_path
tree, its own block of ports (tests.api.harness.free_port). Two markers steer the workers:
`slow` files start first (the longest tests do not trail at the end), and `exclusive` tests run
while no other test of the session runs (see `_exclusive`).
"""

from __future__ import annotations

import fcntl
import os
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


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under xdist: the files with a `slow` test first, each file's order kept (module fixtures
    and the order within a file stay as written), so the longest tests start while there is
    still work for the other workers instead of running alone at the end; `exclusive` tests
    last, where waiting for the room costs the least (the others are out of work by then).
    Every worker collects the same order, as xdist requires."""
    if not hasattr(config, "workerinput"):
        return
    slow_files = {item.path for item in items if item.get_closest_marker("slow")}

    def rank(item: pytest.Item) -> int:
        if item.get_closest_marker("exclusive"):
            return 2
        return 0 if item.path in slow_files else 1

    items.sort(key=rank)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "store_kind" not in metafunc.fixturenames:
        return
    path = Path(str(metafunc.definition.path)).as_posix()
    if getattr(metafunc.module, "ONE_STORE", False):
        return  # the module tests something the store cannot change (e.g. another SDK's client)
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


@pytest.fixture(autouse=True)
def _exclusive(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[None]:
    """A readers-writer lock across the xdist workers of one session (flock on two files in
    the session's shared temporary directory). Every test holds the room shared; an
    `exclusive` test holds it alone. The turnstile gives the writer priority: once an exclusive
    test waits, no new test enters the room, the running ones finish, and it runs by itself.
    Without xdist the suite runs one test at a time anyway and this does nothing."""
    if "PYTEST_XDIST_WORKER" not in os.environ:
        yield
        return
    shared = tmp_path_factory.getbasetemp().parent  # pytest-N/, above each popen-gwK/
    with (
        open(shared / "exclusive.turnstile", "a") as turnstile,
        open(shared / "exclusive.room", "a") as room,
    ):
        alone = request.node.get_closest_marker("exclusive") is not None
        fcntl.flock(turnstile, fcntl.LOCK_EX)
        if not alone:
            fcntl.flock(turnstile, fcntl.LOCK_UN)
        fcntl.flock(room, fcntl.LOCK_EX if alone else fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(room, fcntl.LOCK_UN)
            if alone:
                fcntl.flock(turnstile, fcntl.LOCK_UN)
