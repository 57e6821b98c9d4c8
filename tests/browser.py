"""Real pages in headless Chromium: one browser per test run, a server per notebook.

Registered as a pytest plugin by conftest.py. Chromium is Debian's (`/usr/bin/chromium`),
driven by Playwright's Python API; when it is missing the browser tests skip, except
under CI (`CI` set), where they fail. A notebook is served with open access (as
`nbfreeze serve --open` does) by the real Tornado app, on a free port, from a thread of
its own, so that a test can open it in as many browser contexts (visitors) as it needs.
A staged app is started by the real command (`App`: `nbfreeze serve`), as an author would.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, expect, sync_playwright
from runtime_harness import notebook_bundle
from tornado.httpserver import HTTPServer
from tornado.testing import bind_unused_port

from runtime import bundle
from runtime.host.session import Sessions
from runtime.server import MAX_BODY_BYTES, MAX_FRAME_BYTES, ServeOptions, make_app

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# A name that is neither localhost nor an IP address, as a LAN's server has: a page from
# http://HOSTNAME is not a secure context (no crypto.randomUUID, no crypto.subtle).
HOSTNAME = "labeling.example.org"
# A function, not a bare expression: the page's Content-Security-Policy forbids eval.
READY = "() => document.body.dataset.nbfState === 'ready'"
READY_TIMEOUT_MS = 20_000
SCREENSHOTS = Path(__file__).resolve().parents[1] / "docs" / "screenshots"


class Server:
    """A bundle served with open access by the real app, on 127.0.0.1, from a thread."""

    def __init__(self, bundle_dir: Path, options: ServeOptions | None = None) -> None:
        self.url = ""
        self._options = options or ServeOptions(open_access=True, idle_timeout=600)
        self.sessions: Sessions | None = None
        self._started = threading.Event()
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(
            target=asyncio.run,
            args=(self._main(bundle_dir),),
            name="nbfreeze-test-server",
            daemon=True,
        )
        self._thread.start()
        self._started.wait()
        if self._error is not None:
            self._thread.join()
            raise self._error

    async def _main(self, bundle_dir: Path) -> None:
        try:
            app = make_app(bundle.load(bundle_dir), self._options)
            server = HTTPServer(app, max_body_size=MAX_BODY_BYTES, max_buffer_size=MAX_FRAME_BYTES)
            sock, port = bind_unused_port()
            server.add_sockets([sock])
        except BaseException as error:
            self._error = error
            self._started.set()
            return
        self.url = f"http://127.0.0.1:{port}{self._options.root_path}"
        self.sessions = app.settings["sessions"]
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self._started.set()
        await self._stop.wait()
        server.stop()
        for session in self.sessions:
            await self.sessions.close(session)
        self.sessions.shutdown()
        await server.close_all_connections()

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=30)


class App:
    """`nbfreeze serve` in a subprocess: its owner and invite links."""

    def __init__(self, notebook: Path, *args: str, port: int | None = None) -> None:
        """Serve `notebook` with more `args` (`--allow-eval`), on `port` (a free one by
        default; the same port again serves a restart at the links people have)."""
        if port is None:
            sock, port = bind_unused_port()
            sock.close()
        self.port = port
        command = [sys.executable, "-m", "freezer", "serve", str(notebook), "--port", str(port)]
        self.process = subprocess.Popen(
            [*command, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()  # type: ignore[union-attr]
            if not line:
                break
            self.lines.append(line)
            if line.startswith("Ready."):
                break
        text = "".join(self.lines)
        assert "Ready." in text, text
        self.owner = re.search(r"Owner:\s+(\S+)", text).group(1)  # type: ignore[union-attr]
        self.invite = re.search(r"Invite:\s+(\S+)", text).group(1)  # type: ignore[union-attr]

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


def visit(browser, link: str, name: str | None = None):
    """A new person opening `link`; a new labeler gives `name` on the welcome page, or
    skips it."""
    page = browser.new_context(viewport={"width": 1100, "height": 800}).new_page()
    page.goto(link)
    if urlsplit(page.url).path == "/welcome":
        if name is None:
            page.get_by_role("link", name="Skip").click()
        else:
            page.get_by_label("Your name").fill(name)
            page.get_by_role("button", name="Continue").click()
        page.wait_for_url(lambda url: urlsplit(url).path != "/welcome")
    return page


# Python writes what it holds into a Label: the page shows Python's view of the labels.
ECHO = (
    "import json\n"
    "import ipywidgets as widgets\n"
    "echo = widgets.Label(layout=widgets.Layout(display='none'))\n"
    "echo.add_class('t-python')\n"
    "def report(change):\n"
    "    echo.value = json.dumps({str(k): v for k, v in change['new'].items()}, sort_keys=True)\n"
)


def python_sees(page, expected: dict) -> None:
    """Wait until Python's `labels` (echoed into the page) are `expected`."""
    expect(page.locator(".t-python")).to_have_text(
        json.dumps({str(k): v for k, v in expected.items()}, sort_keys=True)
    )


@dataclass
class Tab:
    """A page of a served notebook in a browser context of its own (one visitor)."""

    page: Page
    errors: list[str] = field(default_factory=list)  # uncaught exceptions and console errors

    def wait_ready(self) -> Tab:
        """Wait until every widget the notebook showed is rendered."""
        self.page.wait_for_function(READY, timeout=READY_TIMEOUT_MS)
        return self


@pytest.fixture(scope="module")
def playwright_driver() -> Iterator[Playwright]:
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing under CI: the browser tests cannot run")
        pytest.skip(f"{CHROMIUM} is missing")
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def browser(playwright_driver: Playwright) -> Iterator[Browser]:
    """Debian's Chromium, headless, launched once per test module: Playwright's sync API
    holds an event loop while it runs, which the in-process server tests need back."""
    launched = playwright_driver.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
    yield launched
    launched.close()


@pytest.fixture(scope="module")
def hostname_browser(playwright_driver: Playwright) -> Iterator[Browser]:
    """A Chromium of its own that resolves HOSTNAME to 127.0.0.1, where the servers listen."""
    rules = f"--host-resolver-rules=MAP {HOSTNAME} 127.0.0.1"
    launched = playwright_driver.chromium.launch(
        executable_path=str(CHROMIUM), args=[*CHROMIUM_ARGS, rules]
    )
    yield launched
    launched.close()


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """Serve a notebook for this test: `serve(*cells)` or `serve(bundle=bundle_dir)`;
    keywords are more `ServeOptions` fields (`serve(*cells, allow_eval=True)`)."""
    servers: list[Server] = []

    def start(*cells: str, bundle: Path | None = None, **options: Any) -> Server:
        if bundle is None:
            directory = tmp_path / f"notebook-{len(servers)}"
            directory.mkdir()
            bundle = notebook_bundle(directory, cells)
        served = ServeOptions(open_access=True, idle_timeout=600, **options)
        servers.append(Server(bundle, served))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def open_tab(browser: Browser) -> Iterator[Callable[..., Tab]]:
    """Open a served notebook in a new browser context: a new visitor, own cookie."""
    contexts: list[BrowserContext] = []

    def open_(
        server: Server,
        *,
        wait: bool = True,
        init_script: str = "",
        setup: Callable[[BrowserContext], object] | None = None,
        **context_options: object,
    ) -> Tab:
        context = browser.new_context(**context_options)
        contexts.append(context)
        if init_script:  # runs before the page's own scripts, e.g. to fake a device
            context.add_init_script(init_script)
        if setup is not None:  # before the page loads, e.g. to hold back a request
            setup(context)
        page = context.new_page()
        tab = Tab(page)
        page.on("pageerror", lambda error: tab.errors.append(f"uncaught: {error}"))
        page.on(
            "console",
            lambda message: tab.errors.append(message.text) if message.type == "error" else None,
        )
        page.goto(server.url)
        return tab.wait_ready() if wait else tab

    yield open_
    for context in contexts:
        context.close()


def screenshot(page: Page, name: str) -> None:
    """Save a full-page screenshot to docs/screenshots/ when NBFREEZE_SCREENSHOTS=1."""
    if os.environ.get("NBFREEZE_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / name), full_page=True, animations="disabled")
