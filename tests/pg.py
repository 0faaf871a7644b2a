"""A throwaway PostgreSQL cluster for the test session: `initdb` + `pg_ctl` under a temporary
directory, listening on a free 127.0.0.1 port only, run as an unprivileged user (PostgreSQL
refuses to run as root, and tests run as root on CI: then the Debian package's `postgres` user,
or `nobody`, runs it through `runuser`).

Each test gets its own database, copied from a template that is migrated once
(`CREATE DATABASE … TEMPLATE`), and dropped after it.
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

import psycopg

from tests.api.harness import free_port

__all__ = ["PgCluster", "find_bin"]

_TEMPLATE = "dsl_template"


def find_bin(name: str) -> str:
    """A PostgreSQL server program: Debian keeps them in /usr/lib/postgresql/<ver>/bin, off PATH."""
    found = sorted(
        glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
        key=lambda p: int(Path(p).parts[4]) if Path(p).parts[4].isdigit() else 0,
    )
    if found:
        return found[-1]
    on_path = shutil.which(name)
    if on_path is None:
        raise RuntimeError(
            f"{name} not found: install Debian's postgresql package (make test does)"
        )
    return on_path


def _run_as() -> str | None:
    if os.geteuid() != 0:
        return None
    for user in ("postgres", "nobody"):
        try:
            pwd.getpwnam(user)
            return user
        except KeyError:
            continue
    raise RuntimeError("running as root and no unprivileged user (postgres, nobody) exists")


class PgCluster:
    def __init__(self) -> None:
        self.user = _run_as()
        self.base = Path(tempfile.mkdtemp(prefix="dsl-pg-"))
        self.data = self.base / "data"
        self.port = free_port()
        self._names = itertools.count(1)
        self.started = False

    def _cmd(self, *args: str) -> list[str]:
        return ["runuser", "-u", self.user, "--", *args] if self.user else list(args)

    def start(self) -> PgCluster:
        if self.user:
            entry = pwd.getpwnam(self.user)
            os.chown(self.base, entry.pw_uid, entry.pw_gid)
        subprocess.run(
            self._cmd(
                find_bin("initdb"),
                "-D",
                str(self.data),
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
                "-E",
                "UTF8",
            ),
            check=True,
            capture_output=True,
            timeout=120,
        )
        options = (
            f"-c listen_addresses=127.0.0.1 -c port={self.port} -c unix_socket_directories='' "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300"
        )
        subprocess.run(
            self._cmd(
                find_bin("pg_ctl"),
                "-D",
                str(self.data),
                "-l",
                str(self.base / "server.log"),
                "-o",
                options,
                "-w",
                "-t",
                "60",
                "start",
            ),
            check=True,
            capture_output=True,
            timeout=90,
        )
        self.started = True
        return self

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _admin(self, sql: str) -> None:
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(sql)

    def make_template(self) -> None:
        """The template every test database is copied from: migrated to the newest revision."""
        from api.store import Store

        self._admin(f"CREATE DATABASE {_TEMPLATE}")
        Store(self.url(_TEMPLATE).replace("postgresql://", "postgresql+psycopg://")).close()

    def new_database(self) -> str:
        name = f"t{next(self._names)}"
        self._admin(f"CREATE DATABASE {name} TEMPLATE {_TEMPLATE}")
        return name

    def drop_database(self, name: str) -> None:
        self._admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def stop(self) -> None:
        if self.started:
            subprocess.run(
                self._cmd(find_bin("pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop"),
                capture_output=True,
                timeout=60,
            )
            self.started = False
        shutil.rmtree(self.base, ignore_errors=True)
