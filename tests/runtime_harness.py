"""What the runtime tests share: a notebook served in-process, and simulated pages.

A `Page` is what a browser tab does over the WebSocket, minus the drawing: it keeps the
widget models the server opened (their state, as the page would hold it), the outputs
of each cell, and sends what a person's clicks would send.
"""

from __future__ import annotations

import json
import struct
import tempfile
import threading
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nbformat
from nbformat import v4
from tornado.httpclient import HTTPRequest
from tornado.testing import AsyncHTTPTestCase
from tornado.web import Application
from tornado.websocket import WebSocketClientConnection, websocket_connect

from freezer.bundle import BuildError, build_bundle
from runtime import bundle
from runtime.host.session import Session, Sessions
from runtime.server import ServeOptions, make_app

MD = "md:"
IDLE_TIMEOUT = 600.0


def notebook_bundle(directory: Path, cells: tuple[str, ...]) -> Path:
    """Build the bundle of a notebook of these cells (Markdown when they start with md:)."""
    made = [
        v4.new_markdown_cell(text[len(MD) :]) if text.startswith(MD) else v4.new_code_cell(text)
        for text in cells
    ]
    path = directory / "notebook.ipynb"
    nbformat.write(v4.new_notebook(cells=made), path)
    try:
        return build_bundle(path, directory / "bundle")
    except BuildError as error:
        raise AssertionError([d.message for d in error.graph.diagnostics]) from None


class NotebookTestCase(AsyncHTTPTestCase):
    """Serves `cells` (a class attribute) as a notebook, with open access."""

    cells: tuple[str, ...] = ()
    open_access = True
    tokens: dict[str, str] = {}
    serve_options: dict[str, Any] = {}  # more ServeOptions fields, e.g. allow_eval=True

    def get_app(self) -> Application:
        self._tmp = tempfile.TemporaryDirectory()
        self.tmp = Path(self._tmp.name)
        notebook = bundle.load(notebook_bundle(self.tmp, self.cells))
        options = ServeOptions(
            open_access=self.open_access, idle_timeout=IDLE_TIMEOUT, **self.serve_options
        )
        return make_app(notebook, options, tokens=self.tokens)

    def tearDown(self) -> None:
        for session in self.sessions:
            self.io_loop.run_sync(session.close)
        self.sessions.shutdown()
        super().tearDown()
        self._tmp.cleanup()

    @property
    def sessions(self) -> Sessions:
        return self._app.settings["sessions"]

    def session_of(self, page: Page) -> Session:
        """The server's session behind `page` (the newest one when several are open)."""
        return list(self.sessions)[page.number]

    async def cookie(self) -> str:
        response = await self.http_client.fetch(self.get_url("/"))
        return response.headers["Set-Cookie"].split(";", 1)[0]

    async def open_page(self) -> Page:
        """A new tab: load the page, connect, and wait until the notebook has run."""
        page = await self.connect()
        await page.until_idle()
        return page

    async def connect(self, query: str = "") -> Page:
        """A new tab: load the page and connect its socket (`query`: `?paced=1`)."""
        request = HTTPRequest(
            self.get_url(f"/api/v1/ws{query}").replace("http", "ws", 1),
            headers={"Cookie": await self.cookie()},
        )
        number = len(self.sessions)
        return Page(await websocket_connect(request), number)


class Page:
    """One simulated tab of the app."""

    def __init__(self, ws: WebSocketClientConnection, number: int) -> None:
        self.ws = ws
        self.number = number
        self.models: dict[str, dict[str, Any]] = {}
        self.outputs: dict[int, list[dict[str, Any]]] = defaultdict(list)
        self.messages: list[dict[str, Any]] = []
        self.buffers: dict[int, list[bytes]] = {}
        self.closed = False
        self._sent = 0

    async def next(self) -> dict[str, Any] | None:
        """The next message from the server, applied to this page's models and cells."""
        frame = await self.ws.read_message()
        if frame is None:
            self.closed = True
            return None
        message, buffers = decode(frame)
        self.messages.append(message)
        if buffers:
            self.buffers[len(self.messages) - 1] = buffers
        kind = message["type"]
        if kind == "comm_open":
            self.models[message["comm_id"]] = dict(message["data"]["state"])
        elif kind == "comm_msg" and message["data"].get("method") in ("update", "echo_update"):
            self.models.setdefault(message["comm_id"], {}).update(message["data"]["state"])
        elif kind == "comm_close":
            self.models.pop(message["comm_id"], None)
        elif kind in ("output", "cell_error", "clear_output"):
            self.outputs[message["cell"]].append(message)
        return message

    async def until(self, done: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
        """Read messages up to and including the first that `done` accepts."""
        read = []
        while True:
            message = await self.next()
            if message is None:
                raise ConnectionError(f"the server closed the page after {read}")
            read.append(message)
            if done(message):
                return read

    async def until_idle(self, parent: str | None = None) -> list[dict[str, Any]]:
        return await self.until(
            lambda m: (
                m["type"] == "status"
                and m["state"] == "idle"
                and (parent is None or m.get("parent_id") == parent)
            )
        )

    def model(self, model_name: str, **state: Any) -> str:
        """The comm id of the one model called `model_name` whose state has these values."""
        found = [
            comm_id
            for comm_id, s in self.models.items()
            if s.get("_model_name") == model_name and all(s.get(k) == v for k, v in state.items())
        ]
        assert len(found) == 1, f"{len(found)} {model_name} models with {state}"
        return found[0]

    def html(self, cell: int) -> str:
        """Every HTML output of a cell, joined."""
        return "\n".join(m.get("html", "") for m in self.outputs[cell] if m["type"] == "output")

    async def send(self, message: dict[str, Any], buffers: list[bytes] | None = None) -> str:
        """Send a message as the page would, and return its msg_id."""
        self._sent += 1
        msg_id = f"p{self._sent}"
        await self.ws.write_message(
            encode(message | {"msg_id": msg_id}, buffers or []), binary=bool(buffers)
        )
        return msg_id

    async def handled(self, message: dict[str, Any], buffers: list[bytes] | None = None) -> list:
        """Send a message and read until the server is done with it."""
        return await self.until_idle(await self.send(message, buffers))

    async def set(self, comm_id: str, **state: Any) -> list[dict[str, Any]]:
        """Change a model on the page (a person dragging, typing, picking)."""
        data = {"method": "update", "state": state, "buffer_paths": []}
        return await self.handled({"type": "comm_msg", "comm_id": comm_id, "data": data})

    async def click(self, comm_id: str) -> list[dict[str, Any]]:
        data = {"method": "custom", "content": {"event": "click"}}
        return await self.handled({"type": "comm_msg", "comm_id": comm_id, "data": data})


def encode(message: dict[str, Any], buffers: list[bytes]) -> str | bytes:
    text = json.dumps(message)
    if not buffers:
        return text
    parts = [text.encode(), *buffers]
    offsets, position = [], 4 * (len(parts) + 1)
    for part in parts:
        offsets.append(position)
        position += len(part)
    return struct.pack(f"!{len(parts) + 1}I", len(parts), *offsets) + b"".join(parts)


def decode(frame: str | bytes) -> tuple[dict[str, Any], list[bytes]]:
    if isinstance(frame, str):
        return json.loads(frame), []
    (count,) = struct.unpack_from("!I", frame)
    offsets = [*struct.unpack_from(f"!{count}I", frame, 4), len(frame)]
    parts = [frame[a:b] for a, b in zip(offsets, offsets[1:], strict=False)]
    return json.loads(parts[0]), parts[1:]


class Gate:
    """Holds the first session that reaches it until the test opens it."""

    def __init__(self) -> None:
        self.reached = threading.Event()
        self.opened = threading.Event()
        self._first = True
        self._lock = threading.Lock()

    def __call__(self) -> None:
        with self._lock:
            first, self._first = self._first, False
        if first:
            self.reached.set()
            self.opened.wait()


GATES: dict[str, Gate] = {}  # a notebook cell calls runtime_harness.GATES[name]()
RUNS: list[str] = []  # a notebook cell appends to it to show that it ran
