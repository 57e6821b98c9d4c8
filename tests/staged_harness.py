"""What the staged-app tests share: an annotated notebook served in-process, and people.

A `Person` is a labeler or the owner driving the app as a script would, through the
JSON API (docs/api.md) with their own cookies, or through a stage page's socket.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import nbformat
from databases import fresh_postgres_database
from runtime_harness import Page, notebook_bundle
from tornado.httpclient import HTTPClientError, HTTPRequest, HTTPResponse
from tornado.testing import AsyncHTTPTestCase
from tornado.web import Application
from tornado.websocket import websocket_connect

from runtime import bundle
from runtime.app.staged import Staged
from runtime.server import ServeOptions, make_staged_app
from runtime.store.database import LABELER, OWNER, Store, open_store


def example_cells(path: Path) -> tuple[str, ...]:
    """A notebook's cells as `StagedTestCase.cells` takes them (Markdown as "md:…")."""
    notebook = nbformat.read(path, as_version=4)
    return tuple(
        cell.source if cell.cell_type == "code" else "md:" + cell.source for cell in notebook.cells
    )


class Person:
    """One browser's worth of cookies, and the calls a page would make."""

    def __init__(self, case: StagedTestCase) -> None:
        self.case = case
        self.cookies: dict[str, str] = {}

    def _remember(self, response: HTTPResponse) -> None:
        for header in response.headers.get_list("Set-Cookie"):
            name, _, rest = header.partition("=")
            self.cookies[name] = rest.split(";", 1)[0]

    def _headers(self) -> dict[str, str]:
        cookie = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        return {"Cookie": cookie, "X-XSRFToken": self.cookies.get("_xsrf", "")}

    async def fetch(self, path: str, **kwargs: Any) -> HTTPResponse:
        request = HTTPRequest(
            self.case.get_url(path), headers=self._headers(), follow_redirects=False, **kwargs
        )
        try:
            response = await self.case.http_client.fetch(request, raise_error=False)
        except HTTPClientError as error:  # pragma: no cover - raise_error=False
            response = error.response
        self._remember(response)
        return response

    async def enter(self, token: str | None = None) -> str:
        """Open the app (with a link's token): where it sends the person."""
        response = await self.fetch(f"/?token={token}" if token else "/")
        if response.code == 302 and token:
            response = await self.fetch("/")
        return response.headers.get("Location", "")

    async def get_json(self, path: str) -> tuple[int, dict[str, Any]]:
        response = await self.fetch(path)
        return response.code, json.loads(response.body)

    async def fetch_json(self, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        response = await self.fetch(path, method="POST", body=json.dumps(body))
        return response.code, json.loads(response.body)

    async def submit(
        self, stage: str, state: dict[str, Any] | None = None, request_id: str | None = None
    ) -> tuple[int, dict[str, Any]]:
        self.case.counter += 1
        body = {"request_id": request_id or f"r{self.case.counter}"}
        if state is not None and "__labels__" in state:
            body["labels"] = state["__labels__"]
        elif state is not None:
            body["state"] = state
        response = await self.fetch(
            f"/api/v1/stages/{stage}/submit", method="POST", body=json.dumps(body)
        )
        return response.code, json.loads(response.body)

    async def open_stage(self, stage: str) -> Page:
        """A stage's page: connect its socket and wait until its code has run."""
        page = await self.connect_stage(stage)
        await page.until_idle()
        return page

    async def connect_stage(self, stage: str) -> Page:
        """A stage's page with its socket connected, its code not yet run."""
        request = HTTPRequest(
            self.case.get_url(f"/api/v1/ws?stage={stage}").replace("http", "ws", 1),
            headers=self._headers(),
        )
        return Page(await websocket_connect(request), 0)


class StagedTestCase(AsyncHTTPTestCase):
    """Serves `cells` (a class attribute) as a staged app on SQLite."""

    cells: tuple[str, ...] = ()
    database = "sqlite"  # or "postgresql": a fresh database on NBFREEZE_TEST_PG
    open_access = False
    stage_timeout = 60.0

    def get_app(self) -> Application:
        self.counter = 0
        self._tmp = tempfile.TemporaryDirectory()
        self.tmp = Path(self._tmp.name)
        self.bundle_dir = notebook_bundle(self.tmp, self.cells)
        self.db_url = f"sqlite:///{self.tmp / 'app.sqlite'}"
        self.drop_database = None
        if self.database == "postgresql":
            self.db_url, self.drop_database = fresh_postgres_database()
        return self.make()

    def make(self) -> Application:
        self.store: Store = open_store(self.db_url)
        app = make_staged_app(
            bundle.load(self.bundle_dir),
            self.store,
            self.bundle_dir / "cache",
            ServeOptions(open_access=self.open_access, stage_timeout=self.stage_timeout),
        )
        self.owner_token = self.store.mint_token(OWNER, self.store.owner().id)
        self.invite_token = self.store.mint_token(LABELER)
        return app

    @property
    def staged(self) -> Staged:
        return self._app.settings["staged"]

    async def advance(self) -> None:
        await self.staged.pipeline.advance()

    async def labeler(self) -> Person:
        person = Person(self)
        await person.enter(self.invite_token)
        return person

    async def owner(self) -> Person:
        person = Person(self)
        await person.enter(self.owner_token)
        return person

    def tearDown(self) -> None:
        self.io_loop.run_sync(self.staged.shutdown)
        self.store.dispose()
        super().tearDown()
        if self.drop_database:
            self.drop_database()
        self._tmp.cleanup()
