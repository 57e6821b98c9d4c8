"""A staged app served from a thread of its own, for the fuzzers: people with real
cookies, a snapshot of what the database has saved, and the server's own error log.

The fuzzers (`fuzz_api`, `fuzz_socket`) are plain synchronous loops driven by hypothesis,
so the app runs on its own event loop in a thread and they talk to it over TCP, as any
client would. The test suite and `bench/fuzz.py` share it.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import logging
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runtime_harness import notebook_bundle
from sqlalchemy import text
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets
from tornado.web import Application

from runtime import bundle
from runtime.server import MAX_BODY_BYTES, ServeOptions, make_staged_app
from runtime.store.database import LABELER, OWNER, REVIEWER, open_store

CHOICES = ("yes", "no")
ITEMS = ("a", "b", "c", "d")
CELLS = (
    "import ipywidgets as widgets\nfrom freezer.widgets import ChoiceLabeler",
    "#| stage: name\n#| input: each\nname = widgets.Text(value='')\nname",
    "#| stage: limit\n#| input: owner\nlimit = widgets.IntSlider(value=3, min=0, max=9)\nlimit",
    "#| stage: label\n#| input: pool\n#| batch: 2\n#| review: disagreement\n"
    f"labeler = ChoiceLabeler({list(ITEMS)!r}, choices={list(CHOICES)!r})\nlabeler",
    "#| stage: after\n#| show: true\nprint(labeler.labels, limit.value)",
)
STAGES = ("name", "limit", "label", "after")
# What a person saves: answers, labels and their history, review decisions, people, links.
SAVED = ("submissions", "annotations", "label_history", "pool_requests", "users", "tokens")
OWNED_BY = {"users": "id"}  # the column naming whose a row is (else `user_id`)


class ErrorLog(logging.Handler):
    """Every record the server logs at ERROR or with a traceback: a fuzzer wants none."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.ERROR or record.exc_info:
            self.records.append(record)

    def lines(self) -> list[str]:
        return [self.format(record) for record in self.records]


@dataclass
class Person:
    """One browser's cookies, over one keep-alive connection to the app."""

    port: int
    role: str
    user_id: int | None = None
    cookies: dict[str, str] = field(default_factory=dict)
    _connection: http.client.HTTPConnection | None = None

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        """One call: the status, the headers (names in lower case) and the body."""
        for attempt in range(2):
            if self._connection is None:
                self._connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
            try:
                self._connection.request(method, path, body=body, headers=headers or {})
                response = self._connection.getresponse()
                data = response.read()
                break
            except (ConnectionError, http.client.HTTPException):
                self._connection.close()
                self._connection = None
                if attempt:
                    raise
        got = {name.lower(): value for name, value in response.getheaders()}
        for header in response.headers.get_all("Set-Cookie") or []:
            name, _, rest = header.partition("=")
            self.cookies[name] = rest.split(";", 1)[0].strip('"')
        return response.status, got, data

    def cookie_header(self) -> str:
        return "; ".join(f"{k}={v}" for k, v in self.cookies.items())

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()


class LiveApp:
    """`CELLS` served as a staged app on 127.0.0.1 from a thread, its shared stages run."""

    def __init__(self, db_url: str | None = None) -> None:
        self._tmp = tempfile.TemporaryDirectory()
        self.tmp = Path(self._tmp.name)
        self.bundle_dir = notebook_bundle(self.tmp, CELLS)
        self.db_url = db_url or f"sqlite:///{self.tmp / 'app.sqlite'}"
        self.errors = ErrorLog()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._serve, name="fuzz-app", daemon=True)
        [sock] = bind_sockets(0, "127.0.0.1")
        self._socket = sock
        self.port = sock.getsockname()[1]

    def _serve(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self.store = open_store(self.db_url)
        self.app: Application = make_staged_app(
            bundle.load(self.bundle_dir), self.store, self.bundle_dir / "cache", ServeOptions()
        )
        staged = self.app.settings["staged"]
        server = HTTPServer(self.app, max_body_size=MAX_BODY_BYTES)  # as serve_staged does
        server.add_sockets([self._socket])
        await staged.pipeline.advance()
        self._stop = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self._ready.set()
        await self._stop.wait()
        server.stop()
        await staged.shutdown()
        self.store.dispose()

    def start(self) -> LiveApp:
        logging.getLogger().addHandler(self.errors)
        self._thread.start()
        if not self._ready.wait(120):
            raise RuntimeError("the app did not start")
        return self

    def stop(self) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(60)
        logging.getLogger().removeHandler(self.errors)
        self._tmp.cleanup()

    def enter(self, role: str, name: str = "") -> Person:
        """A person of `role` who opened their link: their cookies and XSRF token."""
        if role == OWNER:
            user_id = self.store.owner().id
            token = self.store.mint_token(OWNER, user_id)
        elif role == REVIEWER:
            token = self.store.invite(name or "reviewer", REVIEWER)
            user_id = None
        else:
            token = self.store.invite(name or "labeler", LABELER)
            user_id = None
        person = Person(self.port, role)
        person.request("GET", f"/?token={token}")
        status, _, body = person.request(
            "GET", "/api/v1/stages", headers={"Cookie": person.cookie_header()}
        )
        assert status == 200, body
        person.user_id = user_id or json.loads(body)["user"]["id"]
        return person

    def snapshot(self) -> dict[str, set[tuple[Any, ...]]]:
        """Every row of the tables of what people saved."""
        with self.store.engine.connect() as connection:
            return {
                table: {
                    tuple(_hashable(value) for value in row)
                    for row in connection.execute(text(f"SELECT * FROM {table}"))
                }
                for table in SAVED
            }

    def owners_of_changes(
        self, before: dict[str, set[tuple[Any, ...]]], after: dict[str, set[tuple[Any, ...]]]
    ) -> set[Any]:
        """Whose rows changed between two snapshots (user ids; None for a row of no one)."""
        owners: set[Any] = set()
        with self.store.engine.connect() as connection:
            for table in SAVED:
                changed = before[table] ^ after[table]
                if not changed:
                    continue
                columns = list(
                    connection.execute(text(f"SELECT * FROM {table} WHERE 1 = 0")).keys()
                )
                at = columns.index(OWNED_BY.get(table, "user_id"))
                owners |= {row[at] for row in changed}
        return owners


def _hashable(value: Any) -> Any:
    """A column's value as a set holds it (PostgreSQL gives JSON columns as dicts)."""
    return json.dumps(value, sort_keys=True) if isinstance(value, dict | list) else value


@contextmanager
def live_app(db_url: str | None = None) -> Iterator[LiveApp]:
    app = LiveApp(db_url).start()
    try:
        yield app
    finally:
        app.stop()
