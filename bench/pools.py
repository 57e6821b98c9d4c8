"""A large pool stage: how long `nbfreeze serve` takes to open it, the memory it holds,
and what a labeler's page of it receives, for pools of 20,000 to 1,000,000 items.

A notebook is built in a temporary directory: a shared compute stage makes N short
strings (`{"t0": "text 0", …}`), and a `#| input: pool` stage with `#| batch: 5` shows
them in a `ChoiceLabeler`. `nbfreeze serve NOTEBOOK` serves it as a real subprocess
(SQLite beside the bundle, one process). What is measured, per N:

1. Start: seconds from starting the process until it prints `Ready.` (the shared
   stages have run and the pool is open for labeling), then checked through
   `GET /api/v1/pipeline` (the owner's view: the pool is `labeling`).
2. Memory: the process's peak resident set (`VmHWM` in /proc/PID/status) once the pool
   is open, and again after one labeler's page was opened.
3. A page: one labeler opens the invite link, asks for their batch
   (`GET /api/v1/stages/label/batch`) and opens the stage's WebSocket
   (`/api/v1/ws?stage=label`), as tests/staged_harness.py does; the frames and
   `comm_open`s it receives until the server says the page's code is idle, their
   bytes, and the seconds that took.

    python bench/pools.py                     # 20k, 200k, 1M; writes bench/results/pools.md
    python bench/pools.py --sizes 2000 20000  # other sizes, printed only
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import nbformat
from client import Person, TornadoConnection, decode, expect, widget_socket
from nbformat import v4
from serving import cpu_seconds, free_port, served

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "pools.md"
SIZES = (20_000, 200_000, 1_000_000)
BATCH = 5
TARGET_SECONDS, TARGET_BYTES = 10.0, 1 << 30


def build_notebook(path: Path, size: int) -> None:
    cells = [
        v4.new_code_cell(
            "from freezer.widgets import ChoiceLabeler\n"
            f"items = {{f't{{i}}': f'text {{i}}' for i in range({size})}}"
        ),
        v4.new_markdown_cell("Is this text polite?"),
        v4.new_code_cell(
            f"#| stage: label\n#| input: pool\n#| batch: {BATCH}\n"
            "labeler = ChoiceLabeler(items, choices=['polite', 'rude'])\nlabeler"
        ),
        v4.new_code_cell("#| stage: report\n#| show: true\nprint(len(labeler.labels))"),
    ]
    nbformat.write(v4.new_notebook(cells=cells), path)


def peak_rss(pid: int) -> int:
    """The process's peak resident set so far, in bytes (VmHWM)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM")


@dataclass
class Figures:
    size: int
    start_seconds: float
    serving_seconds: float
    start_cpu: float
    rss_open: int
    rss_page: int
    frames: int
    comm_opens: int
    page_bytes: int
    page_seconds: float
    batch: int


async def open_page(port: int, invite: str) -> tuple[int, int, int, float, int]:
    """A labeler's page of the pool: (frames, comm_opens, bytes, seconds, batch size)."""
    http = TornadoConnection(port, timeout=600)
    person = Person()
    await person.join(http, invite)
    person.take(await http.get("/", person))
    response = expect(await http.get("/api/v1/stages/label/batch", person), 200, "batch")
    batch = len(response.json()["items"])
    started = time.monotonic()
    ws = await widget_socket(http.base, person, stage="label")
    frames = opens = size = 0
    while True:
        frame = await ws.read_message()
        if frame is None:
            raise RuntimeError("the server closed the page")
        frames += 1
        size += len(frame)
        message, _ = decode(frame)
        opens += message["type"] == "comm_open"
        if message["type"] == "status" and message.get("state") == "idle":
            break
    seconds = time.monotonic() - started
    ws.close()
    return frames, opens, size, seconds, batch


def measure(size: int, work: Path, timeout: float) -> Figures:
    directory = work / f"pool-{size}"
    directory.mkdir()
    notebook = directory / "pool.ipynb"
    build_notebook(notebook, size)
    port = free_port()
    argv = [sys.executable, "-m", "freezer", "serve", str(notebook), "--port", str(port)]
    with served(argv, directory, timeout) as server:
        start_cpu = cpu_seconds(server.process.pid)
        rss_open = peak_rss(server.process.pid)
        asyncio.run(check_open(port, server.token("Owner")))
        frames, opens, page_bytes, page_seconds, batch = asyncio.run(
            open_page(port, server.token("Invite"))
        )
        rss_page = peak_rss(server.process.pid)
    return Figures(
        size,
        server.ready_seconds,
        server.serving_seconds,
        start_cpu,
        rss_open,
        rss_page,
        frames,
        opens,
        page_bytes,
        page_seconds,
        batch,
    )


async def check_open(port: int, owner: str) -> None:
    http = TornadoConnection(port, timeout=600)
    person = Person()
    await person.join(http, owner)
    response = expect(await http.get("/api/v1/pipeline", person), 200, "the pipeline")
    states = {name: s["state"] for name, s in response.json()["stages"].items()}
    if states.get("label") != "labeling":
        raise RuntimeError(f"the pool is not open: {response.body[:300]!r}")


def table(rows: list[Figures]) -> list[str]:
    lines = [
        "| items | start s | before the stages s | start CPU s | peak RSS, pool open "
        "| peak RSS, after a page | page frames | comm_opens | page KB | page s |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for f in rows:
        lines.append(
            f"| {f.size:,} | {f.start_seconds:.1f} | {f.serving_seconds:.1f} "
            f"| {f.start_cpu:.1f} | {f.rss_open / 2**20:,.0f} MiB "
            f"| {f.rss_page / 2**20:,.0f} MiB | {f.frames:,} | {f.comm_opens:,} "
            f"| {f.page_bytes / 1000:,.1f} | {f.page_seconds:.2f} |"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", help="pool sizes (default: 20k, 200k, 1M)")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for Ready")
    args = parser.parse_args()
    sizes = tuple(args.sizes or SIZES)
    rows = []
    with tempfile.TemporaryDirectory(prefix="nbfreeze-pool-bench-") as tmp:
        for size in sizes:
            figures = measure(size, Path(tmp), args.timeout)
            rows.append(figures)
            print(table([figures])[-1], flush=True)
    lines = table(rows)
    print("\n".join(lines))
    if args.sizes is None:
        machine = f"Python {platform.python_version()} on {platform.machine()}"
        met = all(f.start_seconds < TARGET_SECONDS and f.rss_page < TARGET_BYTES for f in rows)
        text = [
            "# A large pool: start, memory, and one page",
            "",
            "`bench/pools.py`: a notebook whose shared stage makes N short strings and whose "
            f"pool stage (`batch: {BATCH}`) shows them in a `ChoiceLabeler`, served by "
            "`nbfreeze serve` (one process, SQLite). Start: seconds until the server prints "
            "`Ready.` (the pool is open; `/api/v1/pipeline` confirms it), and of it the seconds "
            "until it prints `Running the shared stages:` (Python's imports, the notebook's "
            "compilation, the database opened); start CPU: the process's CPU time (user + "
            "system, all threads) until `Ready.`, which other work on the machine moves least. "
            "Peak RSS: VmHWM. "
            "A page: one labeler's batch through the JSON API, then the frames its stage "
            "WebSocket receives until its code is idle. Target: a 1,000,000-item pool "
            f"starts in under {TARGET_SECONDS:g} s and holds under 1 GiB "
            f"({'met' if met else 'not met'}).",
            "",
            *lines,
            "",
            f"{machine}.",
            "",
        ]
        RESULTS.write_text("\n".join(text))
        print(f"wrote {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
