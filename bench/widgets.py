"""The widget host against Voilà: memory per idle visitor, time to a complete page, time
to the first widget in a browser, for a one-slider notebook and ipywidgets' Widget List.

Each notebook is copied into a temporary directory (with the images Widget List reads)
and served, one server at a time, by:

- `nbfreeze serve NOTEBOOK --open` for the page times and the browser;
- `bench/widget_server.py` (the same app through `runtime.server.make_app`, whose idle
  timeout it can shrink on a signal) for memory, because `nbfreeze serve` has no option
  for the idle timeout and culling is part of what is measured;
- `voila NOTEBOOK --no-browser` with its defaults, except that it listens on 127.0.0.1
  (its default is `localhost`) and pip, which Widget List's `%pip install` cell runs in
  the kernel, is told not to look for a newer pip on the network.

What is measured, the client on the same machine:

1. Memory: the RSS (VmRSS) of the server's whole process tree (Voilà's kernels included)
   at start, before the sessions (after one warm-up visit, closed, so that imports made
   once per process are not counted per session), with N sessions open and idle, and
   after they are gone. An nbfreeze session is a WebSocket client (tornado) that loads
   `/`, connects and waits for the first `status: idle` (the notebook has run and every
   output and widget was sent), then stays connected, sending nothing, until the
   server's culling closes it. A Voilà visitor loads `/` (which starts its kernel and
   runs the notebook) and connects to its kernel's channels as the page does; Voilà
   culls nothing by default, so after the clients disconnect its kernels are shut down
   the way a page's `beforeunload` does it (`POST /voila/api/shutdown/ID`).
2. Time for the server to send a complete page: nbfreeze, from the GET of `/` to the
   WebSocket's first `status: idle`, and the GET alone; Voilà, its GET (it sends the
   page once the notebook has run). p50 of repeated visits, each a new visitor.
3. Time to the first rendered widget: headless Chromium (Playwright), a fresh browser
   context per load, from navigation start to the first visible element whose class is
   `jupyter-widgets` or `widget-*` (an init script's MutationObserver, backed by a
   requestAnimationFrame loop, stamps `performance.now()` and logs it to the console,
   where the bench reads it). Median of several loads.
   Beside nbfreeze's loads, in turn with them, the bench loads a reference: the same page
   shell with the official front end drawing the same first widget from the same model
   states, made in the page itself, with no server behind it (the page and the static
   files from a plain threaded HTTP server, uncompressed). It is what the front end alone
   costs in this browser on this machine, a floor for any server.

    .venv/bin/python bench/widgets.py            # prints the table, writes bench/results/widgets.md
    .venv/bin/python bench/widgets.py --quick    # small N and few repeats, for trying it out
    .venv/bin/python bench/widgets.py --browser-only  # only 3. for nbfreeze, printed
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import http.server
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field, replace
from importlib import metadata
from pathlib import Path
from typing import Any

import nbformat
from client import (
    HTTP,
    Person,
    TornadoConnection,
    WebSocket,
    decode,
    expect,
    websocket,
    widget_socket,
)
from nbformat import v4

ROOT = Path(__file__).resolve().parent.parent
# The interpreter running the bench and its scripts (nbfreeze, voila): the project's venv,
# also when the bench runs from a worktree that has none of its own.
BIN = Path(sys.executable).parent
PEERS = ROOT.parent / "shared" / "peers" / "ipywidgets"
RESULTS = ROOT / "bench" / "results" / "widgets.md"
CHROMIUM = "/usr/bin/chromium"
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
KIB = 1024
LOADS: list[float] = []  # 1-minute load average at each phase's start, and at the end
MIB = 1024 * 1024

# Stamps the first visible widget element, from navigation start (performance.now()),
# and logs the stamp. The bench reads the console rather than polling the page with
# `wait_for_function`, which evaluates Playwright's injected script (over 300 KB) in the
# page while it loads: no visitor's browser spends that time, which was counted in the
# time to the first widget (10 to 15 ms on a quiet machine, up to 70 ms on a busy one).
FIRST_WIDGET_MARK = "nbfreeze-bench-first-widget "
FIRST_WIDGET_JS = """
(() => {
  const selector = '.jupyter-widgets, [class*="widget-"]';
  const isWidget = (el) =>
    [...el.classList].some((c) => c === 'jupyter-widgets' || c.startsWith('widget-'));
  const visible = (el) => {
    const box = el.getBoundingClientRect();
    return box.width > 0 && box.height > 0 &&
      el.checkVisibility({ checkOpacity: true, checkVisibilityCSS: true });
  };
  let done = false;
  const look = (how) => {
    if (done || !document.querySelector(selector)) return;  // no layout until one exists
    for (const el of document.querySelectorAll(selector)) {
      if (isWidget(el) && visible(el)) {
        done = true;
        observer.disconnect();
        const stamp = { ms: performance.now(), how, cls: String(el.className) };
        console.debug(MARK + JSON.stringify(stamp));
        return;
      }
    }
  };
  const observer = new MutationObserver(() => look('mutation'));
  observer.observe(document, {
    childList: true, subtree: true, attributes: true,
    attributeFilter: ['class', 'style', 'hidden'],
  });
  const frame = () => { look('frame'); if (!done) requestAnimationFrame(frame); };
  requestAnimationFrame(frame);
})();
""".replace("MARK", json.dumps(FIRST_WIDGET_MARK))


@dataclass
class Plan:
    nbfreeze_sessions: int = 1000
    voila_visitors: int = 10
    page_repeats: dict[str, int] = field(default_factory=lambda: {"slider": 60, "widget_list": 30})
    voila_repeats: dict[str, int] = field(default_factory=lambda: {"slider": 10, "widget_list": 6})
    browser_loads: int = 7
    voila_browser_loads: int = 5
    concurrency: int = 4
    browser_only: bool = False  # only nbfreeze's first widget in Chromium


QUICK = Plan(
    nbfreeze_sessions=50,
    voila_visitors=2,
    page_repeats={"slider": 10, "widget_list": 5},
    voila_repeats={"slider": 2, "widget_list": 2},
    browser_loads=2,
    voila_browser_loads=1,
)


# ---- processes and their memory


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def vmrss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0  # gone, or a zombie


def threads(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("Threads:"):
                return int(line.split()[1])
    return 0


def descendants(root: int) -> list[int]:
    """`root` and every process below it."""
    children: dict[int, list[int]] = defaultdict(list)
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    ppid = int(stat.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children[ppid].append(int(entry))
    found, stack = [], [root]
    while stack:
        pid = stack.pop()
        found.append(pid)
        stack.extend(children[pid])
    return found


class Server:
    """A server process of ours, its log in the work directory."""

    def __init__(self, name: str, argv: list[str], cwd: Path, port: int, env=None) -> None:
        self.name = name
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        self.log_path = cwd / f"{name}.{port}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            argv, cwd=cwd, stdout=self._log, stderr=subprocess.STDOUT, env=env
        )

    def rss(self) -> tuple[int, int]:
        """KiB of VmRSS summed over the process tree, and how many processes."""
        pids = descendants(self.process.pid)
        return sum(vmrss_kib(pid) for pid in pids) * KIB, len(pids)

    async def ready(self, timeout: float = 60.0) -> None:
        """Once the server accepts connections."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited; see {self.log_path}")
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
                writer.close()
                return
            except OSError:
                await asyncio.sleep(0.1)
        raise RuntimeError(f"{self.name} did not listen on {self.port}; see {self.log_path}")

    async def logged(self, pattern: str, timeout: float = 120.0) -> None:
        """Once a line of the server's output matches `pattern`."""
        self._log.flush()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if re.search(pattern, self.log_path.read_text(errors="replace"), re.MULTILINE):
                return
            await asyncio.sleep(0.2)
        raise RuntimeError(f"{self.name} never logged {pattern!r}; see {self.log_path}")

    async def settled_rss(self, timeout: float = 20.0) -> int:
        """The tree's RSS once it stops moving (within 0.5% over 2 s), or at `timeout`."""
        samples: list[int] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            samples.append(self.rss()[0])
            recent = samples[-5:]
            if len(recent) == 5 and max(recent) - min(recent) <= 0.005 * max(recent):
                break
            await asyncio.sleep(0.5)
        return samples[-1]

    def stop(self) -> None:
        pids = descendants(self.process.pid)
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for pid in pids[1:]:  # kernels a server did not take down with it
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self._log.close()


# ---- clients


class Watcher:
    """A WebSocket client's messages: when the first `status: idle` came, and the close."""

    def __init__(self) -> None:
        loop = asyncio.get_running_loop()
        self.idle: asyncio.Future[float] = loop.create_future()
        self.closed: asyncio.Future[None] = loop.create_future()
        self.counts: dict[str, int] = defaultdict(int)

    def __call__(self, message: str | bytes | None) -> None:
        if message is None:
            if not self.idle.done():
                self.idle.set_exception(ConnectionError("closed before the page was complete"))
            if not self.closed.done():
                self.closed.set_result(None)
            return
        if isinstance(message, bytes):
            self.counts["binary"] += 1
            return
        if self.idle.done():
            return
        prefix = '{"type":"'  # how runtime/host/wire.py writes every message; else parse it
        if message.startswith(prefix):
            kind = message[len(prefix) : message.index('"', len(prefix))]
        else:
            kind = json.loads(message).get("type", "?")
        self.counts[kind] += 1
        if kind == "status" and '"idle"' in message:
            self.idle.set_result(time.perf_counter())


@dataclass
class Visit:
    get_s: float
    page_s: float
    ws: WebSocket
    watcher: Watcher


async def nbfreeze_visit(http: HTTP) -> Visit:
    """A new visitor: GET /, connect, wait for the first `status: idle`."""
    person = Person()
    start = time.perf_counter()
    response = expect(await http.get("/"), 200, "GET /")
    got = time.perf_counter()
    person.take(response)
    watcher = Watcher()
    ws = await widget_socket(http.base, person, on_message=watcher)
    idle = await asyncio.wait_for(watcher.idle, 120)
    return Visit(got - start, idle - start, ws, watcher)


async def voila_visit(http: HTTP) -> tuple[float, str, Person]:
    """A new Voilà visitor's GET: seconds, its kernel id, its cookies."""
    person = Person()
    start = time.perf_counter()
    response = expect(await http.get("/"), 200, "Voilà's GET /")
    seconds = time.perf_counter() - start
    person.take(response)
    html = response.body.decode()
    marker = '"kernelId": "'
    kernel = html[html.index(marker) + len(marker) :].split('"', 1)[0]
    return seconds, kernel, person


async def voila_connect(http: HTTP, kernel: str, person: Person) -> WebSocket:
    """Connect to a kernel's channels as Voilà's page does; messages are dropped."""
    path = f"/api/kernels/{kernel}/channels?session_id={uuid.uuid4().hex}"
    return await websocket(http.base, path, person, on_message=lambda message: None)


async def voila_shutdown(http: HTTP, kernel: str) -> None:
    """What Voilà's page does on `beforeunload`."""
    xsrf = uuid.uuid4().hex
    headers = {"Cookie": f"_xsrf={xsrf}", "X-XSRFToken": xsrf}
    response = await http.request("POST", f"/voila/api/shutdown/{kernel}", headers)
    expect(response, 204, "Voilà's kernel shutdown")


# ---- the figures


def p50(values: list[float]) -> float:
    return statistics.median(values)


async def nbfreeze_page_times(server: Server, repeats: int) -> dict[str, Any]:
    http = TornadoConnection(server.port)
    gets, pages = [], []
    counts: dict[str, int] = {}
    for i in range(repeats + 3):  # three warm-up visits
        visit = await nbfreeze_visit(http)
        visit.ws.close()
        await visit.watcher.closed
        await asyncio.sleep(0.05)  # let the session close before the next visitor
        if i >= 3:
            gets.append(visit.get_s)
            pages.append(visit.page_s)
            counts = dict(visit.watcher.counts)
    return {"get_ms": 1000 * p50(gets), "page_ms": 1000 * p50(pages), "messages": counts}


async def voila_page_times(server: Server, repeats: int) -> dict[str, Any]:
    http = TornadoConnection(server.port)
    gets = []
    for i in range(repeats + 1):  # one warm-up visit
        seconds, kernel, _ = await voila_visit(http)
        await voila_shutdown(http, kernel)
        await asyncio.sleep(0.2)  # the kernel's process exits
        if i >= 1:
            gets.append(seconds)
    return {"get_ms": 1000 * p50(gets), "page_ms": 1000 * p50(gets)}


async def nbfreeze_memory(server: Server, sessions: int, concurrency: int) -> dict[str, Any]:
    """RSS at start, before, with `sessions` idle sessions, and after the server culls them."""
    http = TornadoConnection(server.port, max_clients=concurrency * 2)
    start, _ = server.rss()
    warm = await nbfreeze_visit(http)
    warm.ws.close()
    await warm.watcher.closed
    await asyncio.sleep(1.5)  # the next cull (every second) collects and trims
    before = await server.settled_rss()
    threads_before = threads(server.process.pid)
    gate = asyncio.Semaphore(concurrency)

    async def one() -> Visit:
        async with gate:
            return await nbfreeze_visit(http)

    opened = time.perf_counter()
    visits = await asyncio.gather(*(one() for _ in range(sessions)))
    open_s = time.perf_counter() - opened
    await asyncio.sleep(2.0)
    with_sessions, processes = server.rss()
    threads_with = threads(server.process.pid)
    server.process.send_signal(signal.SIGUSR1)  # idle timeout -> 1 s: the next cull closes all
    culling = time.perf_counter()
    await asyncio.wait_for(asyncio.gather(*(v.watcher.closed for v in visits)), 300)
    await server.logged(r"^culled \d+, 0 open$", 300)  # the cull returned: memory released
    culled_s = time.perf_counter() - culling
    after = await server.settled_rss()
    server.process.send_signal(signal.SIGUSR2)  # diagnostic: release_memory() once more
    await server.logged(r"^released$")
    released = await server.settled_rss()
    for visit in visits:
        visit.ws.close()
    return {
        "n": sessions,
        "start": start,
        "before": before,
        "with": with_sessions,
        "after": after,
        "released": released,
        "threads": (threads_before, threads_with),
        "processes": processes,
        "open_s": open_s,
        "culled_s": culled_s,
    }


async def voila_memory(server: Server, visitors: int) -> dict[str, Any]:
    http = TornadoConnection(server.port)
    before = await server.settled_rss()
    kernels, sockets = [], []
    opened = time.perf_counter()
    for _ in range(visitors):
        _, kernel, person = await voila_visit(http)
        kernels.append(kernel)
        sockets.append(await voila_connect(http, kernel, person))
    open_s = time.perf_counter() - opened
    with_sessions = await server.settled_rss()
    processes = server.rss()[1]
    for ws in sockets:
        ws.close()
    await asyncio.sleep(2.0)
    disconnected, left = server.rss()
    for kernel in kernels:
        await voila_shutdown(http, kernel)
    after = await server.settled_rss()
    return {
        "n": visitors,
        "before": before,
        "with": with_sessions,
        "disconnected": disconnected,
        "disconnected_processes": left,
        "after": after,
        "processes": processes,
        "open_s": open_s,
    }


async def load_once(
    browser: Any, url: str, script: str = FIRST_WIDGET_JS, voila: bool = False
) -> dict[str, Any]:
    """One load of `url` in a fresh browser context: the stamp `script` logs (`ms` from
    navigation start, `how`, `cls`), and for Voilà the kernel its page started."""
    context = await browser.new_context()
    await context.add_init_script(script)
    page = await context.new_page()
    try:
        async with page.expect_console_message(
            lambda message: message.text.startswith(FIRST_WIDGET_MARK), timeout=60_000
        ) as logged:
            await page.goto(url, wait_until="commit", timeout=60_000)
        stamp = json.loads((await logged.value).text.removeprefix(FIRST_WIDGET_MARK))
        if voila:
            stamp["kernel"] = await page.evaluate(
                "() => JSON.parse(document.getElementById('jupyter-config-data')"
                ".textContent).kernelId"
            )
    finally:
        await context.close()
    return stamp


async def first_widget(
    browser: Any, urls: dict[str, str], server: Server, voila: bool, loads: int
) -> dict[str, dict]:
    """Median ms from navigation start to the first visible widget, fresh context per load,
    for each of `urls` (name -> URL), loaded in turn."""
    http = TornadoConnection(server.port)
    times: dict[str, list[float]] = {name: [] for name in urls}
    seen = dict.fromkeys(urls, "")
    for i in range(loads + 1):  # one warm-up load (the server's first page)
        for name, url in urls.items():
            stamp = await load_once(browser, url, voila=voila)
            if voila:
                await voila_shutdown(http, stamp["kernel"])
                await asyncio.sleep(0.2)
            if i >= 1:
                times[name].append(stamp["ms"])
                seen[name] = f"{stamp['cls']} ({stamp['how']})"
    return {
        name: {"ms": p50(values), "all_ms": values, "element": seen[name]}
        for name, values in times.items()
    }


# The reference page's script: the first widget's models, made in the page from the
# states the server sent, and its view shown in its cell, by the bundle's WidgetManager.
FRONT_END_ALONE_JS = """
import { WidgetManager } from '/static/widgets.js';
const comm = () => ({ on_msg() {}, on_close() {}, send() {}, open() {}, close() {} });
const manager = new WidgetManager(comm);
for (const [model_id, state] of MODELS) {
  const spec = { model_name: state._model_name, model_module: state._model_module,
                 model_module_version: state._model_module_version, model_id };
  await manager.new_model(spec, state);
}
const view = await manager.create_view(await manager.get_model(WIDGET));
const cell = document.querySelector(`.nbf-cell[data-cell="${CELL}"]`);
cell.closest('.nbf-rest')?.removeAttribute('hidden');
await manager.display_view(view, cell.appendChild(document.createElement('div')));
"""


class FrontEndAlone:
    """The reference page (see the module's docstring), served from a temporary directory
    by a threaded HTTP server, as long as the `with` block lasts."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self._server: http.server.ThreadingHTTPServer | None = None

    async def build(self, connection: HTTP) -> str:
        """Write the page for the nbfreeze server `connection` is to; return its URL."""
        person = Person()
        response = expect(await connection.get("/"), 200, "GET /")
        person.take(response)
        shell = response.body.decode()
        ws = await widget_socket(connection.base, person)
        models: list[tuple[str, dict]] = []
        while True:  # the models opened before the first widget output, and that output
            message, _ = decode(await ws.read_message())
            if message["type"] == "comm_open":
                models.append((message["comm_id"], message["data"]["state"]))
            elif message["type"] == "output" and message.get("widget"):
                break
        ws.close()
        script = (
            FRONT_END_ALONE_JS.replace("MODELS", json.dumps(models))
            .replace("WIDGET", json.dumps(message["widget"]))
            .replace("CELL", str(int(message["cell"])))
        )
        page = re.sub(r"<script>.*?</script>", "", shell, count=1, flags=re.S)
        page = re.sub(r'<script type="module" src="[^"]*page\.js[^"]*"></script>', "", page)
        page = page.replace("</body>", f'<script type="module">{script}</script>\n</body>')
        (self.work / "index.html").write_text(page)
        (self.work / "static").symlink_to(ROOT / "runtime" / "static")
        handler = functools.partial(_QuietHandler, directory=str(self.work))
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self._server.server_address[1]}/index.html"

    def __enter__(self) -> FrontEndAlone:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


# ---- the run


@dataclass
class Notebook:
    key: str
    title: str
    path: Path


def prepare(work: Path) -> list[Notebook]:
    slider = work / "slider" / "slider.ipynb"
    slider.parent.mkdir()
    cell = v4.new_code_cell("import ipywidgets\nipywidgets.IntSlider()")
    notebook = v4.new_notebook(cells=[cell])
    notebook.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(notebook, slider)
    listing = work / "widget_list" / "Widget List.ipynb"
    listing.parent.mkdir()
    shutil.copy(PEERS / "Widget List.ipynb", listing)
    shutil.copytree(PEERS / "images", listing.parent / "images")
    return [
        Notebook("slider", "one slider (`ipywidgets.IntSlider()`)", slider),
        Notebook("widget_list", "ipywidgets' `Widget List.ipynb`", listing),
    ]


def voila_env() -> dict[str, str]:
    return os.environ | {"PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1"}


async def measure(notebook: Notebook, plan: Plan, browser: Any) -> dict[str, Any]:
    cwd = notebook.path.parent
    figures: dict[str, Any] = {"nbfreeze": {}, "voila": {}}

    def say(text: str) -> None:
        LOADS.append(os.getloadavg()[0])
        print(f"  [{notebook.key}] {text} (load {LOADS[-1]:.1f})", file=sys.stderr, flush=True)

    say("nbfreeze serve: " + ("browser" if plan.browser_only else "page times, browser"))
    port = free_port()
    argv = [str(BIN / "nbfreeze"), "serve", notebook.path.name, "--open", "--port", str(port)]
    server = Server("nbfreeze", argv, cwd, port)
    try:
        await server.ready()
        if not plan.browser_only:
            figures["nbfreeze"] |= await nbfreeze_page_times(
                server, plan.page_repeats[notebook.key]
            )
        reference = cwd / "front-end-alone"
        reference.mkdir()
        with FrontEndAlone(reference) as alone:
            urls = {
                "nbfreeze": f"{server.base}/",
                "alone": await alone.build(TornadoConnection(server.port)),
            }
            loaded = await first_widget(browser, urls, server, False, plan.browser_loads)
        figures["nbfreeze"]["browser"] = loaded["nbfreeze"]
        figures["alone"] = {"browser": loaded["alone"]}
    finally:
        server.stop()
    if plan.browser_only:
        return figures

    say("voila: page times, memory, browser")
    port = free_port()
    argv = [str(BIN / "voila"), notebook.path.name, "--no-browser", "--port", str(port)]
    argv.append("--Voila.ip=127.0.0.1")
    server = Server("voila", argv, cwd, port, env=voila_env())
    try:
        await server.ready()
        start, _ = server.rss()
        figures["voila"] |= await voila_page_times(server, plan.voila_repeats[notebook.key])
        figures["voila"]["memory"] = await voila_memory(server, plan.voila_visitors)
        figures["voila"]["memory"]["start"] = start
        loaded = await first_widget(
            browser, {"voila": f"{server.base}/"}, server, True, plan.voila_browser_loads
        )
        figures["voila"]["browser"] = loaded["voila"]
    finally:
        server.stop()

    say(f"nbfreeze (bench/widget_server.py): {plan.nbfreeze_sessions} idle sessions, culling")
    port = free_port()
    bundle = cwd / f"{notebook.path.stem}.nbfreeze"  # built by `nbfreeze serve` above
    script = str(ROOT / "bench" / "widget_server.py")
    argv = [str(BIN / "python"), script, str(bundle), "--port", str(port)]
    # As `nbfreeze serve` runs: with the system allocator (see freezer/cli.py).
    server = Server("widget_server", argv, cwd, port, env=os.environ | {"PYTHONMALLOC": "malloc"})
    try:
        await server.ready()
        await server.logged("^Serving")  # its signal handlers are in place
        figures["nbfreeze"]["memory"] = await nbfreeze_memory(
            server, plan.nbfreeze_sessions, plan.concurrency
        )
    finally:
        server.stop()
    LOADS.append(os.getloadavg()[0])
    return figures


async def run(plan: Plan) -> tuple[dict[str, Any], dict[str, str]]:
    from playwright.async_api import async_playwright

    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="nbfreeze-bench-") as tmp:
        notebooks = prepare(Path(tmp))
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(
                executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
            )
            try:
                for notebook in notebooks:
                    results[notebook.key] = await measure(notebook, plan, browser)
                    results[notebook.key] |= {"title": notebook.title, "key": notebook.key}
            finally:
                chromium = browser.version
                await browser.close()
    return results, machine(chromium)


def machine(chromium: str) -> dict[str, str]:
    model = ""
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as meminfo:
        total = int(meminfo.readline().split()[1]) * KIB
    versions = ", ".join(
        f"{name} {metadata.version(name)}"
        for name in (
            "nbfreeze",
            "voila",
            "ipywidgets",
            "ipykernel",
            "jupyter_server",
            "tornado",
            "playwright",
        )
    )
    return {
        "cpu": f"{os.cpu_count()} cores ({model})",
        "memory": f"{total / 2**30:.1f} GiB",
        "system": f"{platform.system()} {platform.release()} {platform.machine()}",
        "python": f"Python {platform.python_version()}",
        "versions": f"{versions}, Chromium {chromium}",
    }


# ---- the table


def size(value: float) -> str:
    if abs(value) >= MIB:
        return f"{value / MIB:,.1f} MiB"
    return f"{value / KIB:,.1f} KiB"


def ratio(voila: float, ours: float) -> str:
    return f"{voila / ours:,.0f}x" if ours > 0 else "—"


TARGETS = {  # nbfreeze's targets (issue 4): bytes per idle session, ms for a complete page
    "slider": {"session": 100_000, "page_ms": 10.0},
    "widget_list": {"session": MIB, "page_ms": None},
}
BROWSER_TARGET_MS = 150.0
CULL_TARGET = 0.10  # RSS after culling, within this fraction of the RSS before


def notebook_table(figures: dict[str, Any], plan: Plan) -> tuple[list[str], list[list[str]]]:
    """The table of one notebook, and its rows of the targets table."""
    ours, theirs = figures["nbfreeze"], figures["voila"]
    om, tm = ours["memory"], theirs["memory"]
    per_ours = (om["with"] - om["before"]) / om["n"]
    per_theirs = (tm["with"] - tm["before"]) / tm["n"]

    def change(value: float, base: float) -> str:
        return f"{(value - base) / base:+.1%}"

    ob, tb, ab = ours["browser"], theirs["browser"], figures["alone"]["browser"]
    rows = [
        ["sessions opened, then left idle", f"{om['n']:,}", f"{tm['n']:,}", ""],
        ["RSS at start", size(om["start"]), size(tm["start"]), ""],
        [
            "RSS before the sessions (after a warm-up visit)",
            size(om["before"]),
            size(tm["before"]),
            "",
        ],
        [
            "RSS with the sessions idle",
            f"{size(om['with'])} (1 process; threads {om['threads'][0]} before, "
            f"{om['threads'][1]} now: the session pool's workers start as needed)",
            f"{size(tm['with'])} ({tm['processes']} processes)",
            "",
        ],
        [
            "**RSS per idle session**",
            f"**{size(per_ours)}**",
            f"**{size(per_theirs)}**",
            f"**{ratio(per_theirs, per_ours)}**",
        ],
        [
            "RSS after the sessions are gone (vs before)",
            f"{size(om['after'])} ({change(om['after'], om['before'])}): culled by the server",
            f"{size(tm['after'])} ({change(tm['after'], tm['before'])}): kernels shut down "
            "by `POST /voila/api/shutdown`",
            "",
        ],
        [
            "… after one more `release_memory()` (diagnostic)",
            f"{size(om['released'])} ({change(om['released'], om['before'])})",
            "",
            "",
        ],
        [
            "… Voilà: after the clients disconnected, before the shutdowns",
            "",
            f"{size(tm['disconnected'])} ({tm['disconnected_processes']} processes: "
            "Voilà culls no kernel by default)",
            "",
        ],
        [
            "time to open the sessions",
            f"{om['open_s']:.1f} s ({om['open_s'] / om['n'] * 1000:.1f} ms each, "
            f"{plan.concurrency} at a time)",
            f"{tm['open_s']:.1f} s ({tm['open_s'] / tm['n'] * 1000:.0f} ms each, one at a time)",
            "",
        ],
        ["time for the server to cull them all", f"{om['culled_s']:.1f} s", "(no culling)", ""],
        [
            "GET / alone, p50",
            f"{ours['get_ms']:.1f} ms",
            f"{theirs['get_ms']:.0f} ms",
            ratio(theirs["get_ms"], ours["get_ms"]),
        ],
        [
            "**complete page, p50** (nbfreeze: GET to the first `status: idle`; Voilà: its GET)",
            f"**{ours['page_ms']:.1f} ms**",
            f"**{theirs['page_ms']:.0f} ms**",
            f"**{ratio(theirs['page_ms'], ours['page_ms'])}**",
        ],
        [
            "**first widget visible in Chromium, median**",
            f"**{ob['ms']:.0f} ms** (n={len(ob['all_ms'])})",
            f"**{tb['ms']:.0f} ms** (n={len(tb['all_ms'])})",
            f"**{ratio(tb['ms'], ob['ms'])}**",
        ],
        [
            "… the official front end alone drawing that widget in the same page, no server "
            "(reference, loaded in turn with nbfreeze's)",
            f"{ab['ms']:.0f} ms (n={len(ab['all_ms'])})",
            "",
            "",
        ],
    ]
    lines = [
        f"## {figures['title']}",
        "",
        "| figure | nbfreeze | Voilà | Voilà / nbfreeze |",
        "|---|---:|---:|---:|",
        *(f"| {' | '.join(row)} |" for row in rows),
        "",
        "Each browser load, ms: nbfreeze "
        + ", ".join(f"{v:.0f}" for v in ob["all_ms"])
        + "; the front end alone "
        + ", ".join(f"{v:.0f}" for v in ab["all_ms"])
        + "; Voilà "
        + ", ".join(f"{v:.0f}" for v in tb["all_ms"])
        + ". The diagnostic row is the RSS after the bench asked the server to run "
        "`runtime.session.release_memory()` (gc, type cache, `malloc_trim`) once more: what "
        "it gives back is memory of culled sessions that the cull's own release could not "
        "free; what stays is kept by the allocator or by the process (threads, caches)."
        + f" First widget element seen: `{ob['element'][:90]}` (nbfreeze), "
        f"`{tb['element'][:90]}` (Voilà). One nbfreeze page's messages up to its first "
        f"`status: idle`: {json.dumps(ours['messages'])}.",
        "",
    ]
    target = TARGETS[figures["key"]]
    back = (om["after"] - om["before"]) / om["before"]
    checks = [
        ["RSS per idle session", f"< {size(target['session'])}", size(per_ours),
         per_ours < target["session"]],
        ["RSS after culling", f"within {CULL_TARGET:.0%} of before", f"{back:+.1%}",
         abs(back) <= CULL_TARGET],
    ]  # fmt: skip
    if target["page_ms"] is not None:
        checks.append(
            ["complete page", f"< {target['page_ms']:.0f} ms", f"{ours['page_ms']:.1f} ms",
             ours["page_ms"] < target["page_ms"]]
        )  # fmt: skip
    checks.append(
        ["first widget in Chromium", f"< {BROWSER_TARGET_MS:.0f} ms", f"{ob['ms']:.0f} ms",
         ob["ms"] < BROWSER_TARGET_MS]
    )  # fmt: skip
    verdicts = [
        [figures["title"], name, goal, value, "met" if ok else "**missed**"]
        for name, goal, value, ok in checks
    ]
    return lines, verdicts


def report(results: dict[str, Any], info: dict[str, str], plan: Plan) -> str:
    lines = [
        "# The widget host against Voilà",
        "",
        "`bench/widgets.py`: one server at a time, the client and the browser on the same "
        "machine (the script's docstring says exactly what each figure is). Memory is the "
        "VmRSS of the server's whole process tree (Voilà: the server and a kernel per "
        "visitor). Times are wall-clock at the client: p50 of repeated new visitors for the "
        "page, median of cold loads (a fresh browser context each) for the browser.",
        "",
    ]
    verdicts = []
    for figures in results.values():
        table, checks = notebook_table(figures, plan)
        lines += table
        verdicts += checks
    lines += [
        "## nbfreeze's targets",
        "",
        "| notebook | figure | target | measured | |",
        "|---|---|---|---:|---|",
        *(f"| {' | '.join(row)} |" for row in verdicts),
        "",
        "## Machine",
        "",
        f"{info['cpu']}, {info['memory']} of memory; {info['system']}; {info['python']}; "
        f"{info['versions']}. The 1-minute load average at each phase's start and at the "
        f"end: {', '.join(f'{load:.1f}' for load in LOADS)} (other work on the machine "
        "shares its cores with the servers, the client and the browser).",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small N and few repeats")
    parser.add_argument(
        "--browser-only", action="store_true", help="only nbfreeze in Chromium; writes nothing"
    )
    args = parser.parse_args()
    plan = replace(QUICK if args.quick else Plan(), browser_only=args.browser_only)
    began = time.monotonic()
    results, info = asyncio.run(run(plan))
    if plan.browser_only:
        for figures in results.values():
            for who, label in (("nbfreeze", "first widget"), ("alone", "front end alone")):
                browser = figures[who]["browser"]
                loads = ", ".join(f"{ms:.0f}" for ms in browser["all_ms"])
                print(f"{figures['title']}: {label} {browser['ms']:.0f} ms (median; {loads})")
        print(f"load average: {', '.join(f'{load:.1f}' for load in LOADS)}")
        return
    text = report(results, info, plan)
    text += f"\nThe whole run took {time.monotonic() - began:.0f} s.\n"
    print(text)
    if not args.quick:
        RESULTS.write_text(text)
        print(f"written to {RESULTS.relative_to(ROOT)}", file=sys.stderr)


if __name__ == "__main__":
    main()
