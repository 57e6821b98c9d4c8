"""While the server restarts or its database is away, a request gets a 503 with
Retry-After (or, over a page's socket, a `submit_error` with `retry`), never a 500, and
nothing already saved is lost: the same request made again is saved once."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing, contextmanager

from databases import fresh_postgres_database
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from staged_harness import StagedTestCase
from test_pool_app import labels_body
from tornado.testing import gen_test

from runtime.store.pools import annotations

CELLS = (
    "import ipywidgets as widgets\nfrom freezer.widgets import ChoiceLabeler",
    "#| stage: name\n#| input: each\nname = widgets.Text(value='')\nname",
    "#| stage: label\n#| input: pool\n#| batch: 2\n"
    "labeler = ChoiceLabeler({'a': 1, 'b': 2, 'c': 3}, choices=['yes', 'no'])\nlabeler",
    "#| stage: after\n#| show: true\nprint(labeler.labels)",
)


def retry_after(response) -> bool:
    return response.code == 503 and int(response.headers["Retry-After"]) > 0


class TestRestarting(StagedTestCase):
    cells = CELLS

    async def restarted(self):
        """A labeler with a batch, and the app made anew, its pipeline not yet run."""
        await self.advance()
        alice = await self.labeler()
        status, batch = await alice.get_json("/api/v1/stages/label/batch")
        assert status == 200
        await self.staged.shutdown()
        self._app = self.make()
        self.http_server.request_callback = self._app
        return alice, batch["items"]

    @gen_test
    async def test_a_submission_before_the_restarted_server_reopens_its_pool_is_a_503(self):
        alice, keys = await self.restarted()
        body = labels_body(dict.fromkeys(keys, "yes"))
        status, reply = await alice.submit("label", body, request_id="b1")
        assert status == 503 and "starting" in reply["error"]
        response = await alice.fetch("/api/v1/stages/label/batch")
        assert retry_after(response)
        await self.advance()
        status, reply = await alice.submit("label", body, request_id="b1")
        assert status == 200, reply
        assert {row.item_key for row in annotations(self.store, "label")} == set(keys)

    @gen_test
    async def test_a_page_opened_before_the_pool_reopens_is_a_503_that_retries(self):
        alice, _ = await self.restarted()
        response = await alice.fetch("/stage/label")
        assert retry_after(response)
        assert b"starting" in response.body


@contextmanager
def sqlite_locked(path):
    """Another process holding SQLite's write lock (a backup, a stuck writer)."""
    with closing(sqlite3.connect(path, isolation_level=None)) as other:
        other.execute("BEGIN EXCLUSIVE")
        try:
            yield
        finally:
            other.execute("ROLLBACK")


class TestDatabaseAway(StagedTestCase):
    cells = CELLS

    @gen_test
    async def test_a_locked_database_is_a_503_and_the_retry_is_saved_once(self):
        await self.advance()
        alice = await self.labeler()
        _, batch = await alice.get_json("/api/v1/stages/label/batch")
        body = labels_body(dict.fromkeys(batch["items"], "no"))
        with sqlite_locked(self.tmp / "app.sqlite"):
            response = await alice.fetch(
                "/api/v1/stages/label/submit",
                method="POST",
                body=json.dumps({"request_id": "b1", "labels": body["__labels__"]}),
            )
            assert retry_after(response), response.code
        for _ in range(2):
            status, reply = await alice.submit("label", body, request_id="b1")
            assert status == 200, reply
        assert len(annotations(self.store, "label")) == len(batch["items"])


class TestPostgresAway(StagedTestCase):
    cells = CELLS
    database = "postgresql"

    @contextmanager
    def postgres_away(self):
        """No connection to the app's database: the open ones ended, new ones refused."""
        name = make_url(self.db_url).database
        admin_url, drop = fresh_postgres_database()  # any other database to speak from
        admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false'))
            connection.execute(
                text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"),
                {"n": name},
            )
        try:
            yield
        finally:
            with admin.connect() as connection:
                connection.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))
            admin.dispose()
            drop()

    @gen_test
    async def test_while_postgresql_is_away_requests_are_503s_and_the_retry_is_saved(self):
        await self.advance()
        alice = await self.labeler()
        _, batch = await alice.get_json("/api/v1/stages/label/batch")
        body = labels_body(dict.fromkeys(batch["items"], "yes"))
        with self.postgres_away():
            status, _ = await alice.submit("label", body, request_id="b1")
            assert status == 503
            assert retry_after(await alice.fetch("/api/v1/stages"))
            assert retry_after(await alice.fetch("/stage/label"))
        status, reply = await alice.submit("label", body, request_id="b1")
        assert status == 200, reply
        assert len(annotations(self.store, "label")) == len(batch["items"])
