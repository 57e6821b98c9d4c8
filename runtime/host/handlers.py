"""The per-visitor app's handlers: the page shell and its WebSocket.

A notebook without input stages is served as Voilà serves it: one page per visitor,
every output and live widget, each visitor's session its own. Handlers are thin: they
check who is asking and hand the request to a `Sessions` function. Access is by invite:
the owner's and the visitors' links carry a token that is exchanged once for a signed,
HttpOnly cookie (or, with `--open`, anyone gets one). The staged app's socket writes
its frames with `FrameWriter` too. `runtime.server` builds the application from
`routes`.
"""

from __future__ import annotations

import asyncio
import hmac
import secrets
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import tornado.web
import tornado.websocket
from tornado.ioloop import IOLoop
from tornado.iostream import StreamClosedError

from runtime.bundle import Notebook
from runtime.host import render
from runtime.host.request_log import Redacted
from runtime.host.session import Session, Sessions

COOKIE = "nbfreeze_visitor"
COOKIE_DAYS = 30


class _Secured(Redacted):
    """The visitor's role, from their signed cookie, for every handler here."""

    def role(self) -> str | None:
        """`owner` or `visitor` for a valid cookie, else None."""
        value = self.get_signed_cookie(COOKIE, max_age_days=COOKIE_DAYS)
        return value.decode().split(":", 1)[0] if value else None

    def admit(self, role: str) -> None:
        value = f"{role}:{secrets.token_hex(8)}"
        secure = self.request.protocol == "https"
        self.set_signed_cookie(
            COOKIE, value, expires_days=COOKIE_DAYS, httponly=True, samesite="Strict", secure=secure
        )


class NotFound(_Secured):
    """Any path no route matches: a 404 (with the security headers, like every answer)."""

    def prepare(self) -> None:
        raise tornado.web.HTTPError(404)


class PageHandler(_Secured):
    """`GET /`: the page shell (Markdown rendered, empty containers for code cells)."""

    def initialize(self, page: str, tokens: dict[str, str], open_access: bool) -> None:
        self.page = page
        self.tokens = tokens
        self.open_access = open_access

    def get(self) -> None:
        token = self.get_query_argument("token", None)
        if token is not None:
            role = role_for_token(token, self.tokens)
            if role is None:
                raise tornado.web.HTTPError(403, reason="This invite link is not valid")
            self.admit(role)
            self.redirect(self.request.path)  # keep the token out of the address bar and history
            return
        if self.role() is None:
            if not self.open_access:
                self.set_status(403)
                self.finish("This app is by invitation: open the link you were given.")
                return
            self.admit("visitor")
        self.set_header("Cache-Control", "no-store")
        self.finish(self.page)


class FrameWriter:
    """A WebSocket handler's way to send a session's frames: every frame handed over in
    one turn of the event loop (a notebook's run sends hundreds) is written to the
    connection at once. tornado's `write_message` makes a task and a system call per
    frame: most of the event loop's time in Widget List's run, and, for a page that went
    away without closing its socket, one "Task exception was never retrieved" in the log
    per frame still buffered. Here a frame for a closed connection is dropped quietly.
    A handler using this never negotiates compression, so a frame on the wire is its
    header and its payload; it calls `start_frames` before its first frame.
    """

    ws_connection: Any

    def start_frames(self) -> None:
        self._outgoing: list[str | bytes] = []

    def send_frame(self, frame: str | bytes) -> None:
        self._outgoing.append(frame)
        if len(self._outgoing) == 1:
            asyncio.get_running_loop().call_soon(self._write_outgoing)

    def _write_outgoing(self) -> None:
        frames, self._outgoing = self._outgoing, []
        connection = self.ws_connection
        if connection is None or connection.is_closing():
            return  # the page went away; on_close closes the session
        try:
            connection.stream.write(b"".join(map(websocket_frame, frames))).add_done_callback(
                _written
            )
        except StreamClosedError:
            pass


def _written(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()  # a page gone meanwhile is no error: its socket closes


class WidgetSocket(FrameWriter, tornado.websocket.WebSocketHandler, _Secured):
    """`/api/v1/ws`: one session per connection, for as long as it is open."""

    def initialize(self, sessions: Sessions) -> None:
        self.sessions = sessions
        self.session: Session | None = None
        self.start_frames()

    def prepare(self) -> None:
        if self.role() is None:
            raise tornado.web.HTTPError(403, reason="No session cookie; load the page first")

    def open(self) -> None:
        paced = self.get_query_argument("paced", "") == "1"
        self.session = self.sessions.open(self, paced=paced)

    async def on_message(self, message: str | bytes) -> None:
        if self.session is not None:
            await self.session.receive(message)

    def on_close(self) -> None:
        if self.session is not None:
            IOLoop.current().add_callback(self.sessions.close, self.session)
            self.session = None  # the handler may outlive the connection; the session not

    def disconnect(self, reason: str) -> None:
        self.close(4000, reason)


def websocket_frame(payload: str | bytes) -> bytes:
    """One unfragmented, unmasked WebSocket frame (RFC 6455, 5.2): text or binary."""
    opcode, data = (0x1, payload.encode()) if isinstance(payload, str) else (0x2, payload)
    size = len(data)
    if size < 126:
        header = struct.pack("!BB", 0x80 | opcode, size)
    elif size <= 0xFFFF:
        header = struct.pack("!BBH", 0x80 | opcode, 126, size)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 127, size)
    return header + data


def role_for_token(token: str, tokens: dict[str, str]) -> str | None:
    """The role an invite token grants, compared in constant time."""
    for role, expected in tokens.items():
        if hmac.compare_digest(token.encode(), expected.encode()):
            return role
    return None


def page_for(notebook: Notebook, static_url: Callable[[str], str]) -> str:
    """The page shell, the same for every visitor, so it is rendered once."""
    cells = [
        (cell.index, render.markdown_html(cell.text) if cell.type == "markdown" else "")
        for cell in notebook.cells
        if cell.type in ("markdown", "code")
    ]
    title = Path(notebook.name).stem

    return render.page_html(title, cells, static_url)


def routes(
    notebook: Notebook,
    sessions: Sessions,
    static_url: Callable[[str], str],
    *,
    tokens: dict[str, str],
    open_access: bool,
) -> list[tuple[str, type[tornado.web.RequestHandler], dict[str, Any]]]:
    """The per-visitor app's routes: the page shell and its socket."""
    page = page_for(notebook, static_url)
    return [
        (r"/", PageHandler, {"page": page, "tokens": tokens, "open_access": open_access}),
        (r"/api/v1/ws", WidgetSocket, {"sessions": sessions}),
    ]
