"""Ten thousand idle widget sessions in one `nbfreeze serve` process: its memory.

A labeler who opens a page and walks away keeps a session on the server (its widgets
and its namespace) until `--idle-timeout` closes it. This bench serves a notebook of its
own whose first page is an `each` stage, a small form of standard ipywidgets (a `VBox`
of an `IntSlider`, a `Dropdown` and a `Text`), on SQLite, as a real subprocess. Then,
16 at a time, N people open the invite link (each a labeler of their own), skip the
welcome page, and open the stage's page: its WebSocket, read until the server says the
page's code is idle. They keep the socket open and send nothing more.

Measured: the server process's resident memory (VmRSS in /proc/PID/status) before
anyone came and after every 1,000 sessions, with the seconds that thousand took; the
sessions open on the server at the end (`GET /api/v1/pipeline` as the owner says how
many labelers there are). The sockets are then closed and the memory read again after
the sessions are closed.

    python bench/idle_sessions.py                  # 10,000; writes bench/results/idle_sessions.md
    python bench/idle_sessions.py --sessions 2000  # fewer, printed only
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import re
import signal
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from client import Person, TornadoConnection, decode, widget_socket
from labels import BIN, Server, free_port
from nbformat import v4

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "idle_sessions.md"
AT_ONCE = 16


def build_notebook(path: Path) -> None:
    cells = [
        v4.new_code_cell("import ipywidgets as widgets"),
        v4.new_code_cell(
            "#| stage: ask\n#| input: each\n"
            "age = widgets.IntSlider(value=30, min=18, max=99, description='Age')\n"
            "team = widgets.Dropdown(options=['a', 'b', 'c'], description='Team')\n"
            "note = widgets.Text(description='Note')\n"
            "widgets.VBox([age, team, note])"
        ),
        v4.new_code_cell("#| stage: thanks\n#| show: true\nprint(age.value, team.value)"),
    ]
    nbformat.write(v4.new_notebook(cells=cells), path)


def rss(pid: int) -> int:
    """Resident bytes of the process now."""
    text = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+) kB", text).group(1)) * 1024  # type: ignore[union-attr]


async def open_session(port: int, invite: str, sockets: list) -> None:
    """One person: the invite link, then the stage's page, read until idle, kept open."""
    http = TornadoConnection(port, timeout=600)
    person = Person()
    await person.join(http, invite)
    ws = await widget_socket(http.base, person, stage="ask")
    while True:
        frame = await ws.read_message()
        if frame is None:
            raise RuntimeError("the server closed an idle page")
        message, _ = decode(frame)
        if message["type"] == "status" and message.get("state") == "idle":
            break
    sockets.append(ws)


async def run(port: int, invite: str, pid: int, sessions: int) -> list[tuple[int, int, float]]:
    """(sessions open, resident bytes, seconds for the last thousand) as they open."""
    rows = [(0, rss(pid), 0.0)]
    sockets: list = []
    gate = asyncio.Semaphore(AT_ONCE)

    async def one() -> None:
        async with gate:
            await open_session(port, invite, sockets)

    step = 1000
    for start in range(0, sessions, step):
        began = time.monotonic()
        await asyncio.gather(*(one() for _ in range(min(step, sessions - start))))
        rows.append((len(sockets), rss(pid), time.monotonic() - began))
        print(f"{len(sockets)} sessions: {rss(pid) / 2**20:.0f} MiB", flush=True)
    for ws in sockets:
        ws.close()
    return rows


def report(
    rows: list[tuple[int, int, float]], after_close: int, sessions: int, stop: tuple[float, bool]
) -> str:
    """The table, the totals, and how long Ctrl-C took (`stop`: seconds, and whether the
    server had to be killed)."""
    base = rows[0][1]
    last_count, last_rss, _ = rows[-1]
    lines = [
        "# Idle widget sessions in one process",
        "",
        f"`bench/idle_sessions.py --sessions {sessions}`: {platform.python_version()}, "
        f"{platform.machine()}, SQLite, one `nbfreeze serve` process.",
        "",
        "| sessions open | resident memory | per session, above the empty server "
        "| seconds for the last 1,000 |",
        "|---:|---:|---:|---:|",
    ]
    for count, size, seconds in rows:
        each = (size - base) / count / 1024 if count else 0
        lines.append(f"| {count:,} | {size / 2**20:,.0f} MiB | {each:,.0f} KiB | {seconds:.1f} |")
    lines += [
        "",
        f"{last_count:,} idle sessions: {last_rss / 2**30:.2f} GiB resident in all, "
        f"{(last_rss - base) / last_count / 1024:,.0f} KiB each above the "
        f"{base / 2**20:,.0f} MiB of the server with none. Five seconds after the pages closed "
        f"their sockets: {after_close / 2**20:,.0f} MiB.",
        "",
        f"Ctrl-C then: {stop[0]:.1f} s to exit"
        + (", and it did not end by itself: killed." if stop[1] else ", by itself."),
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=10_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        build_notebook(work / "idle.ipynb")
        port = free_port()
        argv = [str(BIN / "nbfreeze"), "serve", "idle.ipynb", "--port", str(port)]
        server = Server("idle", argv, work, port)
        try:
            found = server.wait_for_line(r"Invite:\s+\S+\?token=(\S+)")
            server.wait_for_line(r"^Ready\.")
            invite = found.group(1)
            rows = asyncio.run(run(port, invite, server.process.pid, args.sessions))
            # The sockets are closed: the server closes their sessions shortly after.
            time.sleep(5)
            after_close = rss(server.process.pid)
        finally:
            began = time.monotonic()
            server.stop()
            stop = (time.monotonic() - began, server.process.returncode == -signal.SIGKILL)
    text = report(rows, after_close, args.sessions, stop)
    print(text)
    if args.sessions == 10_000:
        RESULTS.write_text(text)


if __name__ == "__main__":
    sys.exit(main())
