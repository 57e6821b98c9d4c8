"""The Tornado app: the page shell, its static files, and its WebSocket.

Handlers are thin: they check who is asking and hand the request to a `Sessions`
function. Access is by invite: the owner's and the labelers' links carry a token that
is exchanged once for a signed, HttpOnly cookie (or, with `--open`, anyone gets one).
Every response carries a Content-Security-Policy, and requests and frames have size
limits, because labelers are not trusted.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import hashlib
import hmac
import logging
import secrets
import struct
import sys
from pathlib import Path
from typing import Any, ClassVar

import tornado.web
import tornado.websocket
from tornado.ioloop import IOLoop, PeriodicCallback
from tornado.iostream import StreamClosedError

from runtime import bundle, comm, render, shell
from runtime.bundle import Notebook
from runtime.session import Session, Sessions

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
COMPRESSED = (".js", ".css", ".txt")  # served gzipped; fonts are compressed already
COOKIE = "nbfreeze_visitor"
COOKIE_DAYS = 30
IDLE_TIMEOUT = 30 * 60.0  # seconds without a message from the page before a session closes
MAX_BODY_BYTES = 64 * 1024
MAX_FRAME_BYTES = 16 * 1024 * 1024  # a FileUpload widget sends whole files
# How long a thread running Python may keep the GIL while another waits for it. Sessions
# run notebooks on worker threads, and the event loop, which sends their frames, waits
# for the GIL: with Python's default 5 ms, Widget List's first widget output left the
# server 32 ms after its page connected (median of 15 visits); with this, 5 ms.
GIL_SWITCH_SECONDS = 0.0005
# Inline in every widget page (static/socket.js says why, in a comment left out of the
# page), so the CSP names its hash.
SOCKET_SCRIPT = (STATIC / "socket.js").read_text("utf-8").split("*/", 1)[1].strip()
_SOCKET_HASH = base64.b64encode(hashlib.sha256(SOCKET_SCRIPT.encode()).digest()).decode()
CSP = "; ".join(
    [
        "default-src 'self'",
        # anywidget imports a widget's _esm from a blob: URL
        f"script-src 'self' blob: 'sha256-{_SOCKET_HASH}'",
        "style-src 'self' 'unsafe-inline'",  # widgets and HTML outputs style inline
        "img-src 'self' data: blob:",
        "font-src 'self' data:",
        "media-src 'self' data: blob:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


class _Secured(tornado.web.RequestHandler):
    """Security headers and the visitor's role, for every handler of ours."""

    def set_default_headers(self) -> None:
        for name, value in HEADERS.items():
            self.set_header(name, value)

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
    """Any path no route matches: a 404 with the security headers, like every answer."""

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
            self.redirect("/")  # keep the token out of the address bar and history
            return
        if self.role() is None:
            if not self.open_access:
                self.set_status(403)
                self.finish("This app is by invitation: open the link you were given.")
                return
            self.admit("visitor")
        self.set_header("Cache-Control", "no-store")
        self.finish(self.page)


class StaticHandler(tornado.web.StaticFileHandler):
    """The page's scripts, styles and fonts: compressed, and cached when versioned.

    Scripts and styles are gzipped once per process and kept: compressing the ~800 KB
    bundle for every visitor cost the server 20 ms of CPU and the page 40 ms of waiting.
    """

    _gzipped: ClassVar[dict[tuple[str, Any], bytes]] = {}

    def set_default_headers(self) -> None:
        for name, value in HEADERS.items():
            self.set_header(name, value)

    def parse_url_path(self, url_path: str) -> str:
        # No file name holds a control character; the file system refuses a NUL outright.
        if any(ord(c) < 32 for c in url_path):
            raise tornado.web.HTTPError(404)
        return super().parse_url_path(url_path)

    def set_extra_headers(self, path: str) -> None:
        self.add_header("Vary", "Accept-Encoding")
        body = self._gzip_body()
        if body is not None:
            self.set_header("Content-Encoding", "gzip")
            # Shadows the classmethod for this request alone: its content is `body`.
            self.get_content = lambda _path, start=None, end=None: body[start:end]  # type: ignore[method-assign]

    def get_content_size(self) -> int:
        body = self._gzip_body()
        return len(body) if body is not None else super().get_content_size()

    def _gzip_body(self) -> bytes | None:
        accepted = self.request.headers.get("Accept-Encoding", "")
        if "gzip" not in accepted or not self.absolute_path.endswith(COMPRESSED):
            return None
        key = (self.absolute_path, self.modified)
        if key not in self._gzipped:
            data = Path(self.absolute_path).read_bytes()
            self._gzipped[key] = gzip.compress(data, compresslevel=9, mtime=0)
        return self._gzipped[key]


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


def make_app(
    notebook: Notebook,
    *,
    open_access: bool,
    tokens: dict[str, str] | None = None,
    idle_timeout: float = IDLE_TIMEOUT,
    cookie_secret: str | None = None,
) -> tornado.web.Application:
    """The app serving `notebook`; `tokens` maps `owner`/`visitor` to invite tokens.

    The app's `Sessions` is `app.settings["sessions"]`.
    """
    comm.install()
    shell.install()
    settings: dict[str, Any] = {
        "static_path": str(STATIC),
        "static_handler_class": StaticHandler,
        "cookie_secret": cookie_secret or secrets.token_hex(32),
        "compress_response": True,
        "default_handler_class": NotFound,
        "websocket_max_message_size": MAX_FRAME_BYTES,
        "websocket_ping_interval": 30,  # so a vanished page's session closes
        "websocket_ping_timeout": 30,
    }
    sessions = Sessions(notebook, idle_timeout=idle_timeout)
    page = page_for(notebook, settings)
    handlers = [
        (r"/", PageHandler, {"page": page, "tokens": tokens or {}, "open_access": open_access}),
        (r"/api/v1/ws", WidgetSocket, {"sessions": sessions}),
    ]
    return tornado.web.Application(handlers, sessions=sessions, **settings)


def page_for(notebook: Notebook, settings: dict[str, Any]) -> str:
    """The page shell, the same for every visitor, so it is rendered once."""
    cells = [
        (cell.index, render.markdown_html(cell.text) if cell.type == "markdown" else "")
        for cell in notebook.cells
        if cell.type in ("markdown", "code")
    ]
    title = Path(notebook.name).stem

    def static_url(path: str) -> str:
        return StaticHandler.make_static_url(settings, path)

    return render.page_html(title, cells, static_url)


def serve(
    bundle_dir: Path,
    *,
    host: str,
    port: int,
    open_access: bool,
    db_url: str | None = None,
    stage_timeout: float = 600.0,
    workers: int = 1,
    idle_timeout: float = IDLE_TIMEOUT,
) -> None:
    """Serve the bundle until interrupted, printing the URLs to share: a staged app when
    the notebook has input stages, else a page per visitor."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    sys.setswitchinterval(GIL_SWITCH_SECONDS)
    notebook = bundle.load(bundle_dir)
    if notebook.staged:
        from runtime.app import serve_staged

        serve_staged(
            bundle_dir,
            notebook,
            host=host,
            port=port,
            open_access=open_access,
            db_url=db_url,
            stage_timeout=stage_timeout,
            workers=workers,
        )
        return
    if workers > 1:
        raise SystemExit("--workers is for staged apps (notebooks with input stages)")
    tokens = {} if open_access else {"owner": secrets.token_urlsafe(24)}
    if tokens:
        tokens["visitor"] = secrets.token_urlsafe(24)
    app = make_app(notebook, open_access=open_access, tokens=tokens, idle_timeout=idle_timeout)
    try:
        asyncio.run(_run(app, host, port, tokens))
    except KeyboardInterrupt:
        pass


async def _run(app: tornado.web.Application, host: str, port: int, tokens: dict[str, str]) -> None:
    app.listen(port, address=host, max_body_size=MAX_BODY_BYTES, max_buffer_size=MAX_FRAME_BYTES)
    sessions: Sessions = app.settings["sessions"]
    interval = min(sessions.idle_timeout / 4, 60.0) * 1000
    PeriodicCallback(sessions.cull, interval).start()
    url = f"http://{f'[{host}]' if ':' in host else host}:{port}/"
    if tokens:
        print(f"Owner:   {url}?token={tokens['owner']}")
        print(f"Invite:  {url}?token={tokens['visitor']}  (share this with labelers)")
    else:
        print(f"Serving {url} (open: anyone with the URL can use it)")
    print("Press Ctrl-C to stop.", flush=True)
    await asyncio.Event().wait()
