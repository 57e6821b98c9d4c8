"""The one module that builds nbfreeze's Tornado applications and serves them.

Two applications: a notebook without input stages is served as Voilà serves it, a page
per visitor (`runtime.host.handlers`); an annotated one as the staged app
(`runtime.app.handlers`). Both get the same static files (gzipped once, cached when
versioned), the same request and frame limits, and the same security headers on every
response, refusals and unknown paths included (`SecurityHeaders`), because labelers
are not trusted. The serve options travel as one `ServeOptions`, built once by the
command line or by a caller in Python.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import functools
import gzip
import json
import logging
import os
import re
import secrets
import signal
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import tornado.httpserver
import tornado.httputil
import tornado.netutil
import tornado.process
import tornado.template
import tornado.web
from tornado.ioloop import PeriodicCallback
from tornado.log import access_log

from runtime import bundle, forwarded
from runtime.app import gc_tuning, stage_limits
from runtime.app.advancing import advance_in_background
from runtime.app.handlers import NotFound as StagedNotFound
from runtime.app.handlers import routes as staged_routes
from runtime.app.pipeline import Pipeline
from runtime.app.stage_limits import Limits
from runtime.app.staged import Staged
from runtime.bundle import Notebook
from runtime.frontend import SOCKET_HASH, STATIC, TEMPLATES
from runtime.host import comm, frontends, shell, singletons
from runtime.host.handlers import NotFound
from runtime.host.handlers import routes as visitor_routes
from runtime.host.request_log import request_summary
from runtime.host.session import Sessions
from runtime.store.database import LABELER, OWNER, Store, default_url, open_store
from runtime.store.group_commit import GroupCommit
from runtime.urls import root_path, rooted

log = logging.getLogger(__name__)

COMPRESSED = (".js", ".css", ".txt")  # served gzipped; fonts are compressed already
IDLE_TIMEOUT = 30 * 60.0  # seconds without a message from the page before a session closes
MAX_BODY_BYTES = 64 * 1024
MAX_FRAME_BYTES = 16 * 1024 * 1024  # a FileUpload widget sends whole files
# How long a thread running Python may keep the GIL while another waits for it. Sessions
# run notebooks on worker threads, and the event loop, which sends their frames, waits
# for the GIL: with Python's default 5 ms, Widget List's first widget output left the
# server 32 ms after its page connected (median of 15 visits); with this, 5 ms.
GIL_SWITCH_SECONDS = 0.0005
# Store calls at once, on PostgreSQL; fewer than the connections the store keeps open
# (database.CONNECTIONS, and database.POOL_CONNECTIONS for pool writes). A pool write is
# one call there; more of them at once only contend for the same first open items
# (measured: 8 threads held more of them locked, and every lease skipped past them).
STORE_THREADS = 3
DRAIN_SECONDS = 10.0  # how long a stopping server waits for the answers being saved
# What the page's Content-Security-Policy allows, and why (docs/security.md). The serve
# options allow_eval and allow_frames loosen script-src and frame-src, and nothing else.
POLICY = {
    "default-src": "'self'",
    # anywidget imports a widget's _esm from a blob: URL; the page's one inline
    # script (static/socket.js) is admitted by its hash
    "script-src": f"'self' blob: 'sha256-{SOCKET_HASH}'",
    "style-src": "'self' 'unsafe-inline'",  # widgets and HTML outputs style inline
    "img-src": "'self' data: blob:",
    "font-src": "'self' data:",
    "media-src": "'self' data: blob:",
    "connect-src": "'self'",
    "frame-src": "'none'",  # an IFrame output says so in its place (page.js)
    "object-src": "'none'",
    "base-uri": "'none'",
    "form-action": "'self'",
    "frame-ancestors": "'none'",
}
# One origin a page may frame: a scheme and host (a leading `*.` for its subdomains),
# an optional port, nothing a policy would read as another source or directive.
FRAME_ORIGIN = re.compile(r"https?://(\*\.)?[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*(:[0-9]{1,5})?")


@dataclass(frozen=True)
class ServeOptions:
    """How `nbfreeze serve` serves an app: where and under which path, who may come in,
    which database, how many processes, its time limits, what its pages' policy lets
    scripts do, and which proxies' forwarded headers it believes."""

    host: str = "127.0.0.1"
    port: int = 8866
    open_access: bool = False  # anyone with the URL, or only people with a link
    db_url: str | None = None  # the staged app's database; SQLite beside the bundle
    stage_timeout: float = 600.0  # seconds a shared stage may run
    stage_memory: int | None = None  # MB a shared stage may take; None: half the machine's
    workers: int = 1  # processes sharing the port (PostgreSQL only)
    idle_timeout: float = IDLE_TIMEOUT  # seconds before a silent visitor's session closes
    allow_eval: bool = False  # 'unsafe-eval' in script-src, for code-generating libraries
    allow_frames: tuple[str, ...] = ()  # origins the pages may frame (IFrame outputs)
    root_path: str = "/"  # the path the app lives under, such as /labels/ behind nginx
    trusted_proxies: tuple[str, ...] = ()  # addresses whose X-Forwarded-* headers count

    def __post_init__(self) -> None:
        object.__setattr__(self, "root_path", root_path(self.root_path))
        for address in self.trusted_proxies:
            forwarded.network(address)
        for origin in self.allow_frames:
            if not FRAME_ORIGIN.fullmatch(origin):
                raise ValueError(
                    f"{origin!r} is not an origin a page may frame: give a scheme and host, "
                    "such as https://www.youtube.com or https://*.example.org:8443"
                )


def content_security_policy(options: ServeOptions) -> str:
    """The pages' Content-Security-Policy, loosened only as `options` say."""
    policy = dict(POLICY)
    if options.allow_eval:
        policy["script-src"] += " 'unsafe-eval'"
    if options.allow_frames:
        policy["frame-src"] = " ".join(options.allow_frames)
    return "; ".join(f"{name} {value}" for name, value in policy.items())


def security_headers(options: ServeOptions) -> dict[str, str]:
    """The headers every response of an app served with `options` carries."""
    return {
        "Content-Security-Policy": content_security_policy(options),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
    }


HEADERS = security_headers(ServeOptions())  # the default's, as most apps are served
CSP = HEADERS["Content-Security-Policy"]


class SecurityHeaders(tornado.web.OutputTransform):
    """The security headers on every response of either app, whichever handler wrote
    it: pages, the API, static files, WebSocket handshakes, errors and unknown paths."""

    def __init__(
        self, request: tornado.httputil.HTTPServerRequest, headers: dict[str, str] = HEADERS
    ) -> None:
        super().__init__(request)
        self.headers = headers

    def transform_first_chunk(
        self,
        status_code: int,
        headers: tornado.httputil.HTTPHeaders,
        chunk: bytes,
        finishing: bool,
    ) -> tuple[int, tornado.httputil.HTTPHeaders, bytes]:
        for name, value in self.headers.items():
            headers[name] = value
        return status_code, headers, chunk


def transforms(options: ServeOptions) -> list[Callable[..., tornado.web.OutputTransform]]:
    """An app's output transforms: responses gzipped when the browser accepts it
    (`compress_response`, spelled out because an application given its transforms gets
    no others), and the security headers of `options`."""
    headers = security_headers(options)
    return [tornado.web.GZipContentEncoding, functools.partial(SecurityHeaders, headers=headers)]


class StaticHandler(tornado.web.StaticFileHandler):
    """The page's scripts, styles and fonts: compressed, and cached when versioned.

    Scripts and styles are gzipped once per process and kept: compressing the ~800 KB
    bundle for every visitor cost the server 20 ms of CPU and the page 40 ms of waiting.
    """

    _gzipped: ClassVar[dict[tuple[str, Any], bytes]] = {}

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


# webpack's content-hashed names: remoteEntry.e01ddc1715812041a9e5.js, 147.995621b3….js,
# 14ad542071f6e259fbe2.png; their content never changes under the same name.
_HASHED = re.compile(r"(^|[.-])[0-9a-f]{8,}(\.[\w]+)+$")


class ExtensionFileHandler(StaticHandler):
    """A widget library's own front end, from its installed files: `/labextensions/
    <package>/static/<file>` and `/nbextensions/<name>/<file>`, for the packages
    `frontends.installed()` found and only inside their directories (`static/` of a
    labextension). Compressed like our own files; hashed names cached as immutable,
    the others revalidated (their name stays when the package is upgraded)."""

    def initialize(self, kind: str) -> None:  # type: ignore[override]
        self.kind = kind
        super().initialize(path="/nonexistent")  # replaced per request, in get()

    async def get(self, package: str, path: str, include_body: bool = True) -> None:  # type: ignore[override]
        found = frontends.installed()
        if self.kind == "lab":
            lab = found.labextensions.get(package)
            directory = lab.directory / "static" if lab else None
        else:
            directory = found.nbextensions.get(package)
        if directory is None:
            raise tornado.web.HTTPError(404)
        self.root = str(directory)
        await super().get(path, include_body)

    def get_cache_time(self, path: str, modified: Any, mime_type: str) -> int:
        return self.CACHE_MAX_AGE if _HASHED.search(path.rsplit("/", 1)[-1]) else 0

    def set_extra_headers(self, path: str) -> None:
        super().set_extra_headers(path)
        if _HASHED.search(path.rsplit("/", 1)[-1]):
            self.set_header("Cache-Control", f"public, max-age={self.CACHE_MAX_AGE}, immutable")
        else:
            self.set_header("Cache-Control", "no-cache")


class FrontEndsIndex(tornado.web.RequestHandler):
    """`/api/v1/frontends`: where each installed widget front end is, asked for by a
    page only when it first meets a model whose module it does not bundle."""

    def get(self) -> None:
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-cache")
        prefix = self.settings.get("root_path", "/")[:-1]
        self.finish(json.dumps(frontends.installed().index(prefix)))


_PACKAGE_PATH = r"((?:@[\w.-]+/)?[\w.-]+)"


def frontend_routes() -> list[tuple[str, type[tornado.web.RequestHandler], dict[str, Any]]]:
    """The routes serving installed widget front ends, the same in both apps."""
    return [
        (r"/api/v1/frontends", FrontEndsIndex, {}),
        (rf"/labextensions/{_PACKAGE_PATH}/static/(.+)", ExtensionFileHandler, {"kind": "lab"}),
        (rf"/nbextensions/{_PACKAGE_PATH}/(.+)", ExtensionFileHandler, {"kind": "nb"}),
    ]


def log_request(handler: tornado.web.RequestHandler) -> None:
    """The access log of both apps: refusals and failures at once, every answered request
    only at DEBUG. A team labeling sends hundreds of requests a second; a line for each
    would bury the lines that matter, and writing them costs the server time. A link's
    token never reaches it: a log is read by more people than the links are for."""
    status = handler.get_status()
    # A 503 is a known moment (a restart, the database away) that asks to be retried.
    failed = status >= 500 and status != 503
    level = logging.DEBUG if status < 400 else logging.ERROR if failed else logging.WARNING
    if access_log.isEnabledFor(level):
        took = 1000.0 * handler.request.request_time()
        access_log.log(level, "%d %s %.2fms", status, request_summary(handler.request), took)


def root_settings(options: ServeOptions) -> dict[str, Any]:
    """The settings that put an app under its root path and behind its trusted proxies."""
    return {
        "root_path": options.root_path,
        "static_url_prefix": f"{options.root_path}static/",
        "trusted_proxies": tuple(forwarded.network(a) for a in options.trusted_proxies),
    }


def make_app(
    notebook: Notebook,
    options: ServeOptions,
    *,
    tokens: dict[str, str] | None = None,
    cookie_secret: str | None = None,
) -> tornado.web.Application:
    """The per-visitor app serving `notebook`; `tokens` maps `owner`/`visitor` to invite
    tokens. The app's `Sessions` is `app.settings["sessions"]`."""
    comm.install()
    shell.install()
    singletons.install()
    settings: dict[str, Any] = {
        "static_path": str(STATIC),
        "static_handler_class": StaticHandler,
        "cookie_secret": cookie_secret or secrets.token_hex(32),
        "default_handler_class": NotFound,
        "log_function": log_request,
        "websocket_max_message_size": MAX_FRAME_BYTES,
        "websocket_ping_interval": 30,  # so a vanished page's session closes
        "websocket_ping_timeout": 30,
        **root_settings(options),
    }
    sessions = Sessions(notebook, idle_timeout=options.idle_timeout)

    def static_url(path: str) -> str:
        return StaticHandler.make_static_url(settings, path)

    handlers = visitor_routes(
        notebook, sessions, static_url, tokens=tokens or {}, open_access=options.open_access
    )
    handlers += frontend_routes()
    return forwarded.Application(
        rooted(options.root_path, handlers),
        transforms=transforms(options),
        sessions=sessions,
        **settings,
    )


def limits(options: ServeOptions) -> Limits:
    """The time and memory a shared stage may take; no memory limit where this process
    cannot read its own memory."""
    mb = options.stage_memory or stage_limits.default_memory_mb()
    memory = mb * 2**20 if stage_limits.resident_memory() is not None else None
    return Limits(options.stage_timeout, memory)


def make_staged_app(
    notebook: Notebook,
    store: Store,
    cache_dir: Path,
    options: ServeOptions,
    *,
    progress: Callable[[str], None] = lambda line: None,
) -> tornado.web.Application:
    """The staged app; call `app.settings["staged"].start()` (as serve does) or its
    `pipeline.advance()` to run the shared stages."""
    comm.install()
    shell.install()
    singletons.install()
    pool = ThreadPoolExecutor(32, thread_name_prefix="nbfreeze-stage")
    pipeline = Pipeline(notebook, store, cache_dir, pool, limits=limits(options), progress=progress)
    store_calls = group = None
    if store.engine.dialect.name == "postgresql":
        store_calls = ThreadPoolExecutor(STORE_THREADS, thread_name_prefix="nbfreeze-store")
    else:
        group = GroupCommit(store.engine)
    staged = Staged(notebook, store, pipeline, pool, live={}, store_calls=store_calls, group=group)
    handlers = frontend_routes() + staged_routes(staged, options.open_access)
    settings = {
        "static_path": str(STATIC),
        "static_handler_class": StaticHandler,
        "default_handler_class": StagedNotFound,
        "default_handler_args": {"staged": staged, "open_access": options.open_access},
        "cookie_secret": store.secret(),
        "xsrf_cookies": True,
        "xsrf_cookie_kwargs": {"samesite": "Strict"},
        "log_function": log_request,
        "templates": tornado.template.Loader(str(TEMPLATES)),
        "websocket_max_message_size": MAX_FRAME_BYTES,  # a FileUpload sends whole files
        "websocket_ping_interval": 30,
        "websocket_ping_timeout": 30,
        **root_settings(options),
    }
    return forwarded.Application(
        rooted(options.root_path, handlers),
        transforms=transforms(options),
        staged=staged,
        max_body_size=MAX_BODY_BYTES,
        **settings,
    )


def serve(bundle_dir: Path, options: ServeOptions) -> None:
    """Serve the bundle until interrupted, printing the URLs to share: a staged app when
    the notebook has input stages, else a page per visitor."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    sys.setswitchinterval(GIL_SWITCH_SECONDS)
    notebook = bundle.load(bundle_dir)
    if notebook.staged:
        serve_staged(bundle_dir, notebook, options)
        return
    if options.workers > 1:
        raise SystemExit("--workers is for staged apps (notebooks with input stages)")
    tokens = {} if options.open_access else {"owner": secrets.token_urlsafe(24)}
    if tokens:
        tokens["visitor"] = secrets.token_urlsafe(24)
    app = make_app(notebook, options, tokens=tokens)
    asyncio.run(_run(app, options.host, options.port, tokens))


async def _run(app: tornado.web.Application, host: str, port: int, tokens: dict[str, str]) -> None:
    stop = _stop_signals()
    server = app.listen(
        port, address=host, max_body_size=MAX_BODY_BYTES, max_buffer_size=MAX_FRAME_BYTES
    )
    sessions: Sessions = app.settings["sessions"]
    interval = min(sessions.idle_timeout / 4, 60.0) * 1000
    PeriodicCallback(sessions.cull, interval).start()
    url = f"http://{f'[{host}]' if ':' in host else host}:{port}{app.settings['root_path']}"
    if tokens:
        print(f"Owner:   {url}?token={tokens['owner']}")
        print(f"Invite:  {url}?token={tokens['visitor']}  (share this with labelers)")
    else:
        print(f"Serving {url} (open: anyone with the URL can use it)")
    print("Press Ctrl-C to stop.", flush=True)
    await stop.wait()
    server.stop()
    print("Stopped.", flush=True)


def serve_staged(bundle_dir: Path, notebook: Notebook, options: ServeOptions) -> None:
    """Serve a staged app until interrupted: print the links, run the shared stages.

    With `options.workers` > 1 (PostgreSQL only), that many processes share the port;
    each runs the shared stages itself (or takes them from the cache) and serves any
    labeler."""
    host, port, workers = options.host, options.port, options.workers
    url = options.db_url or default_url(bundle_dir)
    if workers > 1 and not url.startswith("postgresql"):
        raise SystemExit("--workers needs a PostgreSQL database: pass --db postgresql+psycopg://…")
    store = open_store(url)
    owner = store.mint_token(OWNER, store.owner().id)
    invite = None if options.open_access else store.mint_token(LABELER)
    address = f"http://{f'[{host}]' if ':' in host else host}:{port}{options.root_path}"
    print(f"Owner:   {address}?token={owner}")
    if invite:
        print(f"Invite:  {address}?token={invite}  (share this with labelers: one link for all)")
    else:
        print(f"Open:    {address}  (anyone with the URL can label)")
    print("Links from earlier runs keep working.", flush=True)
    sockets = tornado.netutil.bind_sockets(port, address=host)
    worker = 0
    if workers > 1:
        store.dispose()  # connections must not cross a fork
        print(f"Starting {workers} processes.", flush=True)
        # The first process only waits for the others: stopped, it stops them (each is
        # told when it is gone, and stops as on Ctrl-C).
        signal.signal(signal.SIGTERM, lambda number, frame: sys.exit(0))
        worker = tornado.process.fork_processes(workers)
        _stop_with_parent()
        store = open_store(url)

    def say(line: str) -> None:
        if worker == 0:
            print(line, flush=True)

    async def main() -> None:
        stop = _stop_signals()
        gc_tuning.install_probe()  # in each process, after the fork
        # Sessions belong to the loop they are made on: make the app inside it.
        app = make_staged_app(notebook, store, bundle_dir / "cache", options, progress=say)
        server = tornado.httpserver.HTTPServer(app, max_body_size=MAX_BODY_BYTES)
        server.add_sockets(sockets)
        say("Running the shared stages:")
        running = asyncio.ensure_future(app.settings["staged"].start())
        stopping = asyncio.ensure_future(stop.wait())
        await asyncio.wait([running, stopping], return_when=asyncio.FIRST_COMPLETED)
        if stop.is_set():  # stopped while a shared stage ran: it is not waited for
            server.stop()
            say("Stopped before the shared stages were done.")
            os._exit(0)  # the stage's thread cannot be interrupted; nothing is half-saved
        # The shared namespace lives as long as the server and is most of its heap (a
        # pool widget of 20,000 items was 2 million objects): frozen, full collections
        # no longer walk it, which had stalled every request for a second or more.
        # (The task refreezes as later stages run; the loop holds tasks only weakly.)
        refreezing = gc_tuning.keep_frozen(app.settings["staged"].pipeline)
        say("Ready. Press Ctrl-C to stop.")
        # Pools fill from every process's labelers: look again every few seconds.
        advance = app.settings["staged"].pipeline.advance
        PeriodicCallback(functools.partial(advance_in_background, advance), 2000).start()
        if store.engine.dialect.name == "sqlite":  # PostgreSQL checkpoints by itself
            checkpoints = ThreadPoolExecutor(1, thread_name_prefix="nbfreeze-checkpoint")
            PeriodicCallback(lambda: checkpoints.submit(store.checkpoint), 1000).start()
        await stopping
        refreezing.cancel()
        server.stop()  # no new connections; the requests in flight go on
        staged: Staged = app.settings["staged"]
        await staged.drained(DRAIN_SECONDS)
        await staged.shutdown()
        store.dispose()
        say("Stopped: no new requests taken, and every answer acknowledged is saved.")
        if stage_limits.threads_left():
            os._exit(0)  # a stopped stage's thread is blocked in C: it is not waited for

    asyncio.run(main())


def _stop_with_parent() -> None:
    """Have Linux send this process SIGTERM when the process that forked it ends."""
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    pr_set_pdeathsig = 1
    libc.prctl(pr_set_pdeathsig, signal.SIGTERM)


def _stop_signals() -> asyncio.Event:
    """An event set by Ctrl-C (SIGINT) or a service manager's stop (SIGTERM)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for number in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(number, stop.set)
    return stop
