"""A PostgreSQL cluster of the test's own, for tests that restart it: the shared one is
other people's. Made with initdb in a temporary directory owned by the `postgres` user,
on a free loopback port, trust authentication; stopped and removed afterwards."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from served import free_port
from sqlalchemy import create_engine, text

BIN = Path("/usr/lib/postgresql/15/bin")


def _as_postgres(*command: str) -> None:
    prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    subprocess.run([*prefix, *command], check=True, capture_output=True, text=True)


class PrivateCluster:
    """A running cluster with one database, `app`, at `url`."""

    def __init__(self) -> None:
        if not (BIN / "initdb").exists() or shutil.which("runuser") is None:
            if os.environ.get("CI"):
                pytest.fail(f"no PostgreSQL binaries in {BIN} under CI")
            pytest.skip(f"no PostgreSQL binaries in {BIN}")
        self.dir = Path(tempfile.mkdtemp(prefix="nbfreeze-pg-"))
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        self.port = free_port()
        _as_postgres(
            str(BIN / "initdb"), "-D", str(self.dir / "data"), "-A", "trust", "-U", "postgres"
        )
        self._pg_ctl("start")
        admin = create_engine(self._url("postgres"), isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(text("CREATE DATABASE app"))
        admin.dispose()
        self.url = self._url("app")

    def _url(self, database: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def _pg_ctl(self, action: str, *flags: str) -> None:
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1"
        data = str(self.dir / "data")
        log = str(self.dir / "log")
        _as_postgres(
            str(BIN / "pg_ctl"), "-D", data, "-l", log, "-o", options, "-w", *flags, action
        )

    def restart(self, mode: str) -> None:
        """`pg_ctl restart -m fast` (sessions ended, a clean stop) or `-m immediate` (as a
        crash: no checkpoint, recovery from the WAL at the start)."""
        self._pg_ctl("restart", "-m", mode)

    def remove(self) -> None:
        try:
            self._pg_ctl("stop", "-m", "immediate")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)
