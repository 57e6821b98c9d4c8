"""The databases tests run against: SQLite always, PostgreSQL when NBFREEZE_TEST_PG is set.

Under CI a PostgreSQL that is missing or unreachable fails the test instead of skipping it.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url


def _postgres_url() -> str:
    url = os.environ.get("NBFREEZE_TEST_PG")
    if not url:
        if os.environ.get("CI"):
            pytest.fail("NBFREEZE_TEST_PG is not set under CI")
        pytest.skip("NBFREEZE_TEST_PG is not set")
    return url


def fresh_postgres_database() -> tuple[str, Callable[[], None]]:
    """A new, empty PostgreSQL database and the function that drops it."""
    url = make_url(_postgres_url())
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    name = f"nbfreeze_t_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"PostgreSQL is unreachable: {exc}")

    def drop() -> None:
        for attempt in range(20):
            try:
                with admin.connect() as connection:
                    connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                break
            except Exception:
                # An autovacuum worker on the new database can hold it for a moment.
                if attempt == 19:
                    raise
                time.sleep(0.25)
        admin.dispose()

    return url.set(database=name).render_as_string(hide_password=False), drop


@pytest.fixture
def postgres_database() -> Iterator[str]:
    """A fresh PostgreSQL database for one test, dropped afterwards."""
    url, drop = fresh_postgres_database()
    try:
        yield url
    finally:
        drop()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database URL, once for SQLite and once for PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'app.sqlite'}"
    return request.getfixturevalue("postgres_database")
