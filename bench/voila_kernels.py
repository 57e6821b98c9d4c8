"""How many visitors one machine holds, nbfreeze's sessions beside Voilà's kernels, and
how fast they label.

Voilà runs one kernel per visitor and has no pool, so the comparable Voilà app is the same
notebook run in each visitor's own kernel, or, for labeling, the natural way to write
one in Voilà: ten items beside ten ToggleButtons and a Submit button whose handler keeps
the labels in the kernel and shows the next ten. Two parts, nbfreeze's and Voilà's runs
in turn for each count of visitors, the 1-minute load average read at each:

- visitors: the form of bench/idle_sessions.py (a `VBox` of an `IntSlider`, a `Dropdown`
  and a `Text`; its `#|` headers are comments to Voilà). N people arrive at once. An
  nbfreeze person opens the invite link and the stage's page, its WebSocket read until
  the server says the page's code is idle; a Voilà visitor GETs `/` (Voilà starts a
  kernel, runs the notebook and then sends the page) and connects to its kernel's
  channels, as the page does. Measured: each visitor's seconds to a complete page (p50
  and the slowest), and the VmRSS of the server's process tree before and with the N
  idle (Voilà's: the server and each kernel apart). nbfreeze gets a fresh server per N;
  Voilà's kernels are shut down after each N (`POST /voila/api/shutdown/ID`).
- labels: N labelers flat out for a few seconds. nbfreeze: the pool of bench/labels.py
  (`ChoiceLabeler`, `overlap: 2`, `batch: 10`) through the JSON API, its `Labeler`
  (a submit of ten labels that brings the next batch). Voilà: each visitor's client
  speaks the Jupyter widget protocol over the kernel's WebSocket
  (`/api/kernels/ID/channels`), as the page's widget manager does: it asks the
  `jupyter.widget.control` comm for every model's state, then for each batch sends
  ten `update` messages (a ToggleButtons' `index`) and the Submit button's `click`,
  and waits for the kernel to be idle after the click: its labels are saved in the
  kernel's memory and the next ten shown.

    python bench/voila_kernels.py               # writes bench/results/voila_kernels.md
    python bench/voila_kernels.py --quick       # 1 and 5 visitors, 3 s runs, printed only
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat
from client import (
    Connection,
    TornadoConnection,
    open_all,
    websocket,
)
from federated import voila_serve
from idle_sessions import build_notebook as build_form
from idle_sessions import open_session
from labels import BIN, Labeler, Run, build_notebook, cpu_seconds, phase
from labels import Server as Subprocess
from labels import free_port as any_port
from nbformat import v4
from next_item import percentile
from widgets import KIB, MIB, descendants, vmrss_kib, voila_connect, voila_shutdown, voila_visit

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "voila_kernels.md"
BATCH = 10
PAGE_S = 180.0  # the longest a Voilà visitor waits for the page before it counts as failed

# The Voilà way to label a batch at a time: the visitor's kernel holds the items, the
# position and the labels; Submit saves the ten choices and shows the next ten.
VOILA_LABELING = f"""\
import ipywidgets as widgets

items = [f"item {{n}}" for n in range(1_000_000)]
saved = {{}}
position = 0
texts = [widgets.Label() for _ in range({BATCH})]
choices = [widgets.ToggleButtons(options=["yes", "no"], value=None) for _ in range({BATCH})]


def show():
    for text, choice, n in zip(texts, choices, range(position, position + {BATCH})):
        text.value = items[n]
        choice.value = None


def submit(_):
    global position
    for choice, n in zip(choices, range(position, position + {BATCH})):
        saved[n] = choice.value
    position += {BATCH}
    show()


button = widgets.Button(description="Submit")
button.on_click(submit)
show()
widgets.VBox([widgets.HBox([t, c]) for t, c in zip(texts, choices)] + [button])
"""


def write_notebook(path: Path, sources: list[str]) -> Path:
    """A notebook of these code cells, with the kernelspec Voilà starts its kernels from."""
    path.parent.mkdir(parents=True)
    notebook = v4.new_notebook(cells=[v4.new_code_cell(source) for source in sources])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    nbformat.write(notebook, path)
    return path


def say(text: str) -> float:
    """Print a phase's start with the machine's load, and give the load back."""
    load = os.getloadavg()[0]
    print(f"  {text} (load {load:.1f})", file=sys.stderr, flush=True)
    return load


def tree_rss(pid: int) -> tuple[int, list[int]]:
    """Bytes of VmRSS of `pid` itself, and of each process below it."""
    below = descendants(pid)[1:]
    return vmrss_kib(pid) * KIB, [vmrss_kib(p) * KIB for p in below]


def nbfreeze_server(work: Path, notebook: Path) -> tuple[Subprocess, str]:
    """`nbfreeze serve NOTEBOOK` (SQLite), once it is ready: the process and its invite."""
    port = any_port()
    argv = [str(BIN / "nbfreeze"), "serve", notebook.name, "--port", str(port)]
    server = Subprocess(f"nbfreeze-{notebook.stem}", argv, work, port)
    invite = server.wait_for_line(r"Invite:\s+\S+\?token=(\S+)").group(1)
    server.wait_for_line(r"^Ready\.")
    server.settle(1)
    return server, invite


# ---- visitors arriving at once


@dataclass
class Arrivals:
    """N visitors arriving at once: their seconds to a complete page, and memory."""

    side: str
    visitors: int
    load: float
    page_s: list[float] = field(default_factory=list)
    server_before: int = 0
    server_with: int = 0
    kernels: list[int] = field(default_factory=list)  # Voilà: each kernel's RSS
    failed: list[str] = field(default_factory=list)


async def nbfreeze_person(port: int, invite: str, found: Arrivals, sockets: list) -> None:
    """bench/idle_sessions.py's person (the invite link, then the stage's page read until
    its code is idle, kept open), timed."""
    started = time.perf_counter()
    await open_session(port, invite, sockets)
    found.page_s.append(time.perf_counter() - started)


async def nbfreeze_arrivals(port: int, invite: str, pid: int, found: Arrivals) -> None:
    TornadoConnection(port, max_clients=found.visitors + 10)  # the loop's client: N at once
    found.server_before = sum(tree_rss(pid)[1], tree_rss(pid)[0])
    sockets: list = []
    await asyncio.gather(
        *(nbfreeze_person(port, invite, found, sockets) for _ in range(found.visitors))
    )
    await asyncio.sleep(2.0)
    found.server_with = sum(tree_rss(pid)[1], tree_rss(pid)[0])
    for ws in sockets:
        ws.close()


async def voila_arrivals(server: Any, found: Arrivals) -> None:
    """N Voilà visitors at once; each kernel's RSS while all are idle; then shut down."""
    http = TornadoConnection(server.port, max_clients=found.visitors + 10, timeout=PAGE_S)
    found.server_before = tree_rss(server.process.pid)[0]

    async def one() -> tuple[str, Any] | None:
        try:
            seconds, kernel, person = await voila_visit(http)
            ws = await voila_connect(http, kernel, person)
        except Exception as error:  # noqa: BLE001 - a visitor Voilà failed is a figure
            found.failed.append(str(error)[:200])
            return None
        found.page_s.append(seconds)
        return kernel, ws

    opened = [o for o in await asyncio.gather(*(one() for _ in range(found.visitors))) if o]
    await server.settled_rss()
    found.server_with, found.kernels = tree_rss(server.process.pid)
    for kernel, ws in opened:
        ws.close()
        await voila_shutdown(http, kernel)
    await asyncio.sleep(1.0)


def visitors_part(work: Path, counts: list[int]) -> list[Arrivals]:
    form = work / "form.ipynb"
    build_form(form)
    sources = [cell.source for cell in nbformat.read(form, as_version=4).cells]
    form = write_notebook(work / "form" / "form.ipynb", sources)
    voila = voila_serve(form)
    rows = []
    try:
        asyncio.run(voila.ready())
        for n in counts:
            ours = Arrivals("nbfreeze", n, say(f"nbfreeze: {n} visitors at once"))
            server, invite = nbfreeze_server(form.parent, form)
            try:
                asyncio.run(nbfreeze_arrivals(server.port, invite, server.process.pid, ours))
            finally:
                server.stop()
            theirs = Arrivals("voila", n, say(f"voila: {n} visitors at once"))
            asyncio.run(voila_arrivals(voila, theirs))
            rows += [ours, theirs]
    finally:
        voila.stop()
    return rows


# ---- labeling flat out


@dataclass
class Labeling:
    """N labelers flat out: labels per second, and each batch's seconds."""

    side: str
    labelers: int
    load: float
    labels: int = 0
    wall: float = 0.0
    submits: list[float] = field(default_factory=list)
    cpu: float = 0.0  # the server's (Voilà: with its kernels) CPU seconds over the run
    errors: list[str] = field(default_factory=list)
    page_s: list[float] = field(default_factory=list)  # Voilà: each visitor's GET
    kernels: list[int] = field(default_factory=list)  # Voilà: each kernel's RSS, ready


class KernelClient:
    """A Voilà visitor's widget traffic over its kernel's WebSocket (Jupyter's messaging
    protocol, the JSON form jupyter_server speaks when no subprotocol is asked for)."""

    def __init__(self) -> None:
        self.session = uuid.uuid4().hex
        self.idle: dict[str, asyncio.Future[None]] = {}
        self.states: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.ws: Any = None
        self.kernel = ""
        self.page_s = 0.0  # Voilà's GET: a kernel started and the notebook run
        self.shown = ""  # the last item a Label was given: the kernel moved on
        self.errors: list[str] = []  # what the kernel wrote to stderr
        self.roles: dict[str, str] = {}  # comm id -> which of ours, to say in an error
        self.submitted = 0

    def on_message(self, frame: str | bytes | None) -> None:
        if not isinstance(frame, str):
            return
        message = json.loads(frame)
        kind = message["header"]["msg_type"]
        parent = message.get("parent_header", {}).get("msg_id", "")
        if kind == "status" and message["content"]["execution_state"] == "idle":
            waiting = self.idle.pop(parent, None)
            if waiting is not None and not waiting.done():
                waiting.set_result(None)
        if kind == "stream" and message["content"]["name"] == "stderr":
            text = message["content"]["text"].strip()
            named = [role for comm, role in self.roles.items() if comm in text]
            when = "while labeling" if self.submitted else "before the first Submit"
            text = re.sub(r"[0-9a-f]{32}", "ID", text[:200])  # one line per kind of error
            self.errors.append(f"{text} ({', '.join(named) or 'not a comm of ours'}, {when})")
        data = message["content"].get("data", {}) if kind == "comm_msg" else {}
        if data.get("method") == "update_states" and not self.states.done():
            self.states.set_result(data["states"])
        value = data.get("state", {}).get("value") if data.get("method") == "update" else None
        if isinstance(value, str) and value.startswith("item "):
            self.shown = value

    def send(self, kind: str, content: dict[str, Any], metadata: dict | None = None) -> str:
        """A message on the shell channel; its id, which the kernel's replies name."""
        msg_id = uuid.uuid4().hex
        header = {"msg_id": msg_id, "msg_type": kind, "session": self.session}
        header |= {"username": "bench", "date": "", "version": "5.3"}
        message = {"header": header, "parent_header": {}, "content": content}
        message["metadata"] = metadata or {}
        self.ws.write_message(json.dumps(message | {"channel": "shell", "buffers": []}))
        return msg_id

    async def connect(self, http: TornadoConnection) -> tuple[list[str], str]:
        """A new visitor: Voilà's page, its kernel's channels, every widget's state; the
        ToggleButtons' and the Submit button's model ids."""
        self.page_s, kernel, person = await voila_visit(http)
        self.kernel = kernel
        path = f"/api/kernels/{kernel}/channels?session_id={self.session}"
        self.ws = await websocket(http.base, path, person, on_message=self.on_message)
        control = uuid.uuid4().hex
        opening = {"comm_id": control, "target_name": "jupyter.widget.control"}
        self.send("comm_open", opening, {"version": "1.0.0"})  # ipywidgets' control protocol
        self.send("comm_msg", {"comm_id": control, "data": {"method": "request_states"}})
        states = await asyncio.wait_for(self.states, 60)
        toggles = [m for m, s in states.items() if s["model_name"] == "ToggleButtonsModel"]
        (button,) = (m for m, s in states.items() if s["model_name"] == "ButtonModel")
        self.roles = {control: "the control comm", button: "the Submit button"}
        self.roles |= dict.fromkeys(toggles, "a ToggleButtons")
        return toggles, button

    async def submit(self, toggles: list[str], button: str) -> None:
        """A batch: each item's choice sent as the page sends it, then the click, until
        the kernel has run the click's handler."""
        for n, model in enumerate(toggles):
            update = {"method": "update", "state": {"index": n % 2}, "buffer_paths": []}
            self.send("comm_msg", {"comm_id": model, "data": update})
        click = {"method": "custom", "content": {"event": "click"}}
        done = asyncio.get_running_loop().create_future()
        before = self.shown
        self.submitted += 1
        self.idle[self.send("comm_msg", {"comm_id": button, "data": click})] = done
        await asyncio.wait_for(done, 120)
        if self.shown == before:
            self.errors.append(f"Submit did not show the next items (still {before!r})")


def cpu_of(pids: list[int]) -> float:
    """CPU seconds (user and system) the processes have used."""
    return sum(cpu_seconds(pid) for pid in pids)


async def voila_labeling(server: Any, found: Labeling, seconds: float) -> None:
    http = TornadoConnection(server.port, max_clients=found.labelers + 10, timeout=PAGE_S)

    async def arrive(client: KernelClient) -> tuple[list[str], str] | None:
        try:
            return await client.connect(http)
        except Exception as error:  # noqa: BLE001 - a visitor Voilà failed is a figure
            found.errors.append(f"a visitor got no page: {str(error)[:150]}")
            return None

    everyone = [KernelClient() for _ in range(found.labelers)]
    arrived = await asyncio.gather(*(arrive(c) for c in everyone))
    clients = [c for c, r in zip(everyone, arrived, strict=True) if r is not None]
    ready = [r for r in arrived if r is not None]
    found.page_s = [c.page_s for c in clients]
    found.kernels = tree_rss(server.process.pid)[1]
    stop = asyncio.Event()

    async def work(client: KernelClient, toggles: list[str], button: str) -> None:
        while not stop.is_set():
            started = time.perf_counter()
            await client.submit(toggles, button)
            if not stop.is_set():
                found.submits.append(time.perf_counter() - started)
                found.labels += len(toggles)

    pids = descendants(server.process.pid)
    cpu = cpu_of(pids)
    started = time.perf_counter()
    tasks = [asyncio.ensure_future(work(c, *r)) for c, r in zip(clients, ready, strict=True)]
    await asyncio.sleep(seconds)
    stop.set()
    found.wall = time.perf_counter() - started
    found.cpu = cpu_of(pids) - cpu
    await asyncio.gather(*tasks)
    for client in clients:
        found.errors += client.errors
        client.ws.close()
        await voila_shutdown(http, client.kernel)


async def nbfreeze_labeling(server: Subprocess, invite: str, found: Labeling, seconds: float):
    connections = await open_all(lambda: Connection(server.port), found.labelers)
    labelers = [Labeler(c, n) for n, c in enumerate(connections)]
    for labeler in labelers:
        await labeler.person.join(labeler.connection, invite)
    run = Run(f"nbfreeze, {found.labelers}")
    cpu = server.cpu()
    await phase(labelers, run, server, seconds)
    found.cpu = server.cpu() - cpu
    found.labels, found.wall, found.submits = run.labels, run.wall, run.submits
    found.errors = [text for text, n in run.errors.items() for _ in range(n)]
    for connection in connections:
        connection.close()


def labels_part(work: Path, counts: list[int], seconds: float) -> list[Labeling]:
    voila = voila_serve(write_notebook(work / "voila-labels" / "labels.ipynb", [VOILA_LABELING]))
    rows = []
    try:
        asyncio.run(voila.ready())
        for n in counts:
            ours = Labeling("nbfreeze", n, say(f"nbfreeze: {n} labelers flat out"))
            pool = work / f"pool-{n}" / "pool.ipynb"
            pool.parent.mkdir()
            build_notebook(pool, 20_000)
            server, invite = nbfreeze_server(pool.parent, pool)
            try:
                asyncio.run(nbfreeze_labeling(server, invite, ours, seconds))
            finally:
                server.stop()
            theirs = Labeling("voila", n, say(f"voila: {n} labelers flat out"))
            asyncio.run(voila_labeling(voila, theirs, seconds))
            rows += [ours, theirs]
    finally:
        voila.stop()
    return rows


# ---- the report


def p50(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def arrivals_table(rows: list[Arrivals]) -> str:
    lines = [
        "| visitors at once | server | complete page p50 | slowest | RSS before | RSS with"
        " them idle | per visitor | of it, each kernel (median) | failed | load |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        held = row.server_with + sum(row.kernels)
        each = (held - row.server_before) / max(1, len(row.page_s))
        kernel = f"{p50(row.kernels) / MIB:,.1f} MiB" if row.kernels else "(no kernel)"
        name = "nbfreeze" if row.side == "nbfreeze" else "Voilà"
        lines.append(
            f"| {row.visitors} | {name} | {1000 * p50(row.page_s):,.0f} ms"
            f" | {1000 * max(row.page_s, default=float('nan')):,.0f} ms"
            f" | {row.server_before / MIB:,.0f} MiB | {held / MIB:,.0f} MiB"
            f" | {each / KIB:,.0f} KiB | {kernel} | {len(row.failed)} | {row.load:.1f} |"
        )
    return "\n".join(lines)


def labeling_table(rows: list[Labeling]) -> str:
    lines = [
        "| labelers | server | labels/s | submit p50 | submit p99 | CPU s per 1,000 labels"
        " | errors | load |",
        "|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        p99 = percentile(row.submits, 99) if row.submits else float("nan")
        name = "nbfreeze (SQLite)" if row.side == "nbfreeze" else "Voilà (kernel memory)"
        per = 1000 * row.cpu / row.labels if row.labels else float("nan")
        lines.append(
            f"| {row.labelers} | {name} | {row.labels / row.wall:,.0f}"
            f" | {1000 * p50(row.submits):,.1f} ms | {1000 * p99:,.1f} ms | {per:.2f}"
            f" | {len(row.errors)} | {row.load:.1f} |"
        )
    return "\n".join(lines)


def report(arrivals: list[Arrivals], labeling: list[Labeling], seconds: float) -> str:
    failures = sorted({f for row in arrivals for f in row.failed})
    failed = "\n".join(f"- {f}" for f in failures) or "none"
    voila = [row for row in labeling if row.side == "voila"]
    pages = [f"{r.labelers}: {1000 * p50(r.page_s):,.0f} ms" for r in voila]
    memory = [f"{r.labelers}: {p50(r.kernels) / MIB:,.1f} MiB" for r in voila]
    errors = Counter(f"{row.side}: {e}" for row in labeling for e in row.errors)
    said = "\n".join(f"- {n}x {e}" for e, n in sorted(errors.items())) or "none"
    return f"""# Visitors one machine holds: nbfreeze's sessions beside Voilà's kernels

`python bench/voila_kernels.py`, {time.strftime("%Y-%m-%d %H:%M")}, {os.cpu_count()} cores,
{os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30:.1f} GiB; nbfreeze's and
Voilà's runs in turn for each count, the 1-minute load average at each run's start.

## Visitors arriving at once (bench/idle_sessions.py's form)

{arrivals_table(arrivals)}

Complete page: nbfreeze, from the invite link to the stage page's first `status: idle` on
its WebSocket; Voilà, its GET of `/` (sent once the visitor's kernel has run the
notebook). Memory: the server's process tree; per visitor is its growth over the
visitors that got a page. Voilà's failures: {failed}

## Labeling flat out, {seconds:.0f} s

{labeling_table(labeling)}

nbfreeze: the pool of bench/labels.py (`ChoiceLabeler`, `overlap: 2`, `batch: 10`),
each labeler's submit of ten labels bringing its next batch, saved in SQLite. Voilà: ten
ToggleButtons and a Submit button in each visitor's kernel, driven over the kernel's
WebSocket (ten `update` messages and a `click`, until the kernel is idle), the labels
kept in the kernel's memory. CPU: the server process (Voilà: with every kernel).
Voilà's labeling notebook makes its million items in each visitor's kernel: the
complete page (its GET), p50 by labelers at once, {", ".join(pages)}; each kernel's RSS
once ready (median), {", ".join(memory)}.
Errors (a refused call; Voilà: the kernel's stderr, or a Submit that showed nothing new):
{said}
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--visitors", type=int, nargs="+", default=[1, 10, 50])
    parser.add_argument("--labelers", type=int, nargs="+", default=[1, 10, 50])
    parser.add_argument("--seconds", type=float, default=6.0, help="each labeling run")
    parser.add_argument("--quick", action="store_true", help="few visitors, short runs")
    args = parser.parse_args()
    if args.quick:
        args.visitors, args.labelers, args.seconds = [1, 5], [1, 5], 3.0
    with tempfile.TemporaryDirectory(prefix="nbfreeze-voila-") as tmp:
        work = Path(tmp)
        arrivals = visitors_part(work, args.visitors)
        labeling = labels_part(work, args.labelers, args.seconds)
    text = report(arrivals, labeling, args.seconds)
    print(text)
    if not args.quick:
        RESULTS.write_text(text)


if __name__ == "__main__":
    main()
