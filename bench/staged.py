"""The staged app under 200 labelers: submissions per second, and the time from Submit
to the next page, beside a bare Tornado + SQLite floor measured in the same run.

A small annotated notebook is built in a temporary directory: a shared compute stage,
then three `#| input: each` stages (an IntSlider, a Text, a Dropdown), each followed by
a per-labeler compute stage that reads its answer, so that checking a later answer
replays the earlier ones. `nbfreeze serve NOTEBOOK` serves it as a real subprocess
(SQLite in WAL mode beside the bundle, one process, its request log to a file), and
every simulated labeler opens the invite link, keeping its own cookies
(`nbfreeze_user`, `_xsrf`) and sending `X-XSRFToken` with each POST, as `docs/api.md`
says. Each labeler talks over its own keep-alive connection, as a browser would; the
client is `bench/client.py`'s (plain asyncio streams), in this process, on the same
machine.

What is measured (every labeler is new, and every submit is its first answer to that
stage and carries `state`, so the server checks it by building the widget again):

1. Throughput: 200 labelers at once, each submitting its three answers back to back
   through `POST /api/v1/stages/NAME/submit` (no page loads in between); as soon as
   one finishes, a fresh labeler takes its place, so 200 are always in flight.
   Submissions per second over the whole phase, p50/p99 of one submit call, and the
   server's CPU time (all its threads, from /proc) per submit.
2. Time from Submit to the next page: the submit call plus the `GET` of the `next` URL
   in its reply (the next stage's page, or `/done` after the last), for one labeler at
   a time (no load), and for 200 labelers at once (each walking its three stages).
   The widget on the next page arrives over its WebSocket afterwards and is not
   counted here (`bench/widgets.py` measures that).
3. The floor, in the same run and under the same clients: a bare Tornado handler
   (`--floor-server`, this file in its own process) that parses the JSON body, inserts
   one row and commits it to SQLite (WAL, `synchronous=NORMAL`, as nbfreeze's store)
   per POST, beside a `GET` of a fixed small page: its requests per second with 200
   clients, and the same POST + GET pairs. No cookies, no XSRF, no access log.

    .venv/bin/python bench/staged.py            # prints the table, writes bench/results/staged.md
    .venv/bin/python bench/staged.py --quick    # fewer labelers' rounds, for trying it out
    .venv/bin/python bench/staged.py --profile  # py-spy of the server in phase 1, no results
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from client import Connection, Person, expect, open_all
from nbformat import v4

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / ".venv" / "bin"
RESULTS = ROOT / "bench" / "results" / "staged.md"
LABELERS = 200

# (stage, the answer labeler `n` gives) for the notebook's three `each` stages.
COLOURS = ("red", "green", "blue")
ANSWERS: tuple[tuple[str, Callable[[int], dict]], ...] = (
    ("rating", lambda n: {"": {"value": n % 11}}),
    ("comment", lambda n: {"": {"value": f"labeler {n} finds it clear enough"}}),
    ("colour", lambda n: {"": {"index": n % 3}}),  # a Dropdown syncs `index`, not `value`
)


@dataclass
class Plan:
    throughput_rounds: int = 4  # fresh labelers per slot in phase 1: 200 x rounds x 3 submits
    solo_labelers: int = 60  # walked one after another, no load
    floor_seconds: float = 8.0


QUICK = Plan(throughput_rounds=1, solo_labelers=10, floor_seconds=2.0)


# ---- the notebook


def build_notebook(path: Path) -> None:
    cells = [
        v4.new_code_cell(
            "import ipywidgets as widgets\n\nweights = [i / 1000 for i in range(1000)]\n"
            "scale = sum(weights) / len(weights)"
        ),
        v4.new_markdown_cell("How clear is the **first** text, from 0 to 10?"),
        v4.new_code_cell(
            "#| stage: rating\n#| input: each\n#| title: Rate the text\n"
            'rating = widgets.IntSlider(value=5, min=0, max=10, description="Clarity")\nrating'
        ),
        v4.new_code_cell(
            '#| stage: rated\nscore = rating.value * scale\nprint(f"your score: {score:.2f}")'
        ),
        v4.new_markdown_cell("Say in a few words why."),
        v4.new_code_cell(
            "#| stage: comment\n#| input: each\n"
            'comment = widgets.Text(value="", placeholder="because…")\ncomment'
        ),
        v4.new_code_cell(
            "#| stage: commented\nwords = len(comment.value.split())\n"
            'print(f"{words} words, score {score:.2f}")'
        ),
        v4.new_markdown_cell("Which colour fits it best?"),
        v4.new_code_cell(
            "#| stage: colour\n#| input: each\n"
            f'colour = widgets.Dropdown(options={list(COLOURS)!r}, value="red")\ncolour'
        ),
    ]
    notebook = v4.new_notebook(cells=cells)
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    nbformat.write(notebook, path)


# ---- processes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def busy_seconds() -> float:
    """CPU time every core of the machine spent busy (not idle, not waiting for I/O)."""
    with open("/proc/stat") as stat:
        ticks = [int(t) for t in stat.readline().split()[1:]]
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, all its threads."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Server:
    """A server subprocess, its output in a log file in the work directory."""

    def __init__(self, name: str, argv: list[str], cwd: Path, port: int) -> None:
        self.name = name
        self.port = port
        self.log_path = cwd / f"{name}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(argv, cwd=cwd, stdout=self._log, stderr=subprocess.STDOUT)

    @property
    def pid(self) -> int:
        return self.process.pid

    def wait_for_line(self, pattern: str, timeout: float = 120.0) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log_path.read_text(errors="replace")
            found = re.search(pattern, text, re.MULTILINE)
            if found:
                return found
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited:\n{text[-3000:]}")
            time.sleep(0.1)
        raise RuntimeError(f"{self.name}: no line matching {pattern!r}; see {self.log_path}")

    def wait_listening(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited; see {self.log_path}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"{self.name} did not listen on {self.port}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


# ---- the labelers


@dataclass
class Labeler:
    """A simulated person: their own cookie jar, and where they are."""

    number: int
    person: Person = field(default_factory=Person)
    at: str = ""


async def join(connection: Connection, invite: str, number: int) -> Labeler:
    """Open the invite link (a new labeler, its cookies), then ask where to go."""
    labeler = Labeler(number)
    await labeler.person.join(connection, invite)
    response = expect(
        await connection.get("/api/v1/stages", labeler.person), 200, "GET /api/v1/stages"
    )
    labeler.person.take(response)
    labeler.at = response.json()["next"]
    return labeler


async def submit(connection: Connection, labeler: Labeler, stage: str, state: dict) -> float:
    """One submit call; the labeler's `at` becomes the reply's `next`. Its seconds."""
    body = {"request_id": uuid.uuid4().hex, "state": state}
    started = time.perf_counter()
    response = await connection.post_json(f"/api/v1/stages/{stage}/submit", body, labeler.person)
    took = time.perf_counter() - started
    expect(response, 200, f"submit {stage}")
    labeler.at = response.json()["next"]
    return took


async def next_page(connection: Connection, labeler: Labeler) -> float:
    started = time.perf_counter()
    response = await connection.get(labeler.at, labeler.person)
    took = time.perf_counter() - started
    expect(response, 200, f"GET {labeler.at}")
    return took


# ---- phases


@dataclass
class Phase:
    """What one phase measured: per-call seconds, and the rate over the whole phase."""

    calls: list[float] = field(default_factory=list)  # the submit (or POST) call
    steps: list[float] = field(default_factory=list)  # submit + GET of the next page
    gets: list[float] = field(default_factory=list)  # that GET alone
    pages: Counter[str] = field(default_factory=Counter)
    wall: float = 0.0
    server_cpu: float = 0.0
    client_cpu: float = 0.0
    other_cpu: float = 0.0  # other processes on the machine: they slow both sides

    @property
    def rate(self) -> float:
        return len(self.calls) / self.wall

    @property
    def cpu_per_call(self) -> float:
        """Seconds of the server's CPU per call (and page, when pages were loaded)."""
        return self.server_cpu * self.wall / len(self.calls)


async def measured(phase: Phase, server_pid: int, run: Callable[[], Awaitable[None]]) -> Phase:
    cpu0, own0, all0 = cpu_seconds(server_pid), time.process_time(), busy_seconds()
    started = time.perf_counter()
    await run()
    phase.wall = time.perf_counter() - started
    phase.server_cpu = (cpu_seconds(server_pid) - cpu0) / phase.wall
    phase.client_cpu = (time.process_time() - own0) / phase.wall
    everything = (busy_seconds() - all0) / phase.wall
    phase.other_cpu = max(0.0, everything - phase.server_cpu - phase.client_cpu)
    return phase


async def gather_limited(jobs: list[Callable[[], Awaitable[None]]], limit: int) -> None:
    queue = list(reversed(jobs))

    async def worker() -> None:
        while queue:
            await queue.pop()()

    await asyncio.gather(*(worker() for _ in range(limit)))


async def join_all(slots: list[Connection], invite: str, count: int, first: int) -> list[Labeler]:
    labelers: list[Labeler | None] = [None] * count

    async def one(i: int) -> None:
        labelers[i] = await join(slots[i % len(slots)], invite, first + i)

    # Each slot joins its own labelers one after another; slots in parallel, a few at a time.
    by_slot: dict[int, list[int]] = {}
    for i in range(count):
        by_slot.setdefault(i % len(slots), []).append(i)

    async def slot_jobs(indexes: list[int]) -> None:
        for i in indexes:
            await one(i)

    await gather_limited([lambda ix=ix: slot_jobs(ix) for ix in by_slot.values()], 16)
    return [labeler for labeler in labelers if labeler is not None]


async def walk(connection: Connection, labeler: Labeler, phase: Phase, pages: bool) -> None:
    """The labeler answers its three stages in order; with `pages`, loading each next page."""
    for stage, answer in ANSWERS:
        if labeler.at != f"/stage/{stage}":
            raise RuntimeError(f"labeler {labeler.number} is at {labeler.at}, not at {stage}")
        took = await submit(connection, labeler, stage, answer(labeler.number))
        phase.calls.append(took)
        if pages:
            page = await next_page(connection, labeler)
            phase.steps.append(took + page)
            phase.gets.append(page)
            phase.pages[re.sub(r"^/stage/.*", "/stage/…", labeler.at)] += 1


async def staged_phases(
    port: int, invite: str, pid: int, plan: Plan, spy: list[str] | None
) -> dict[str, Phase]:
    rounds = plan.throughput_rounds
    slots = await open_all(lambda: Connection(port), LABELERS)
    solo = await join_all(slots[:1], invite, plan.solo_labelers, 0)
    cohort = await join_all(slots, invite, LABELERS * rounds, 10_000)
    walkers = await join_all(slots, invite, LABELERS, 20_000)

    # A warm-up labeler, so that imports the first submit makes are not measured.
    warm = await join(slots[0], invite, 99_999)
    await walk(slots[0], warm, Phase(), pages=True)

    async def alone() -> None:
        for labeler in solo:
            await walk(slots[0], labeler, phases["solo"], pages=True)

    async def throughput() -> None:
        async def slot(i: int) -> None:
            for labeler in cohort[i::LABELERS]:
                await walk(slots[i], labeler, phases["throughput"], pages=False)

        await asyncio.gather(*(slot(i) for i in range(LABELERS)))

    async def loaded() -> None:
        await asyncio.gather(
            *(walk(slots[i], w, phases["loaded"], pages=True) for i, w in enumerate(walkers))
        )

    phases = {"solo": Phase(), "throughput": Phase(), "loaded": Phase()}
    await measured(phases["solo"], pid, alone)
    profiler = subprocess.Popen(spy, stdout=subprocess.DEVNULL) if spy else None
    await measured(phases["throughput"], pid, throughput)
    if profiler is not None:
        profiler.send_signal(signal.SIGINT)  # py-spy writes its file and exits
        profiler.wait(60)
    await measured(phases["loaded"], pid, loaded)

    # The answers were saved as given: read one back.
    check = walkers[7]
    response = await slots[0].get("/api/v1/stages/comment", check.person)
    expect(response, 200, "GET /api/v1/stages/comment")
    saved = response.json()["answer"][""]["value"]
    if saved != ANSWERS[1][1](check.number)[""]["value"]:
        raise RuntimeError(f"the saved answer is {saved!r}")
    for connection in slots:
        connection.close()
    return phases


async def floor_phases(port: int, pid: int, plan: Plan) -> dict[str, Phase]:
    slots = await open_all(lambda: Connection(port), LABELERS)
    counter = iter(range(10**9))

    async def post(connection: Connection) -> float:
        n = next(counter)
        stage, answer = ANSWERS[n % 3]
        body = {"request_id": uuid.uuid4().hex, "state": answer(n)}
        started = time.perf_counter()
        response = await connection.post_json(f"/submit/{stage}", body)
        took = time.perf_counter() - started
        expect(response, 200, "floor POST")
        return took

    async def get(connection: Connection) -> float:
        started = time.perf_counter()
        response = await connection.get("/page")
        took = time.perf_counter() - started
        expect(response, 200, "floor GET")
        return took

    async def loop(connection: Connection, phase: Phase, pages: bool, until: float) -> None:
        while time.perf_counter() < until:
            took = await post(connection)
            phase.calls.append(took)
            if pages:
                page = await get(connection)
                phase.steps.append(took + page)
                phase.gets.append(page)

    phases = {"solo": Phase(), "throughput": Phase(), "loaded": Phase()}
    for connection in slots[:20]:
        await post(connection)  # warm-up

    async def alone() -> None:
        await loop(slots[0], phases["solo"], True, time.perf_counter() + plan.floor_seconds / 4)

    async def many(name: str, pages: bool) -> None:
        until = time.perf_counter() + plan.floor_seconds
        await asyncio.gather(*(loop(c, phases[name], pages, until) for c in slots))

    await measured(phases["solo"], pid, alone)
    await measured(phases["throughput"], pid, lambda: many("throughput", False))
    await measured(phases["loaded"], pid, lambda: many("loaded", True))
    for connection in slots:
        connection.close()
    return phases


# ---- the floor server (run as `bench/staged.py --floor-server`)


def floor_server(port: int, db_path: Path) -> None:
    import tornado.web

    db = sqlite3.connect(db_path)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute(
        "CREATE TABLE IF NOT EXISTS submissions (id INTEGER PRIMARY KEY, stage TEXT,"
        " state TEXT, request_id TEXT UNIQUE)"
    )
    db.commit()
    page = "<!doctype html><title>Next</title><h1>Next stage</h1><form><button>Submit</button>"

    class Submit(tornado.web.RequestHandler):
        def post(self, stage: str) -> None:
            body = json.loads(self.request.body)
            db.execute(
                "INSERT INTO submissions (stage, state, request_id) VALUES (?, ?, ?)",
                (stage, json.dumps(body["state"]), body["request_id"]),
            )
            db.commit()
            self.finish({"ok": True, "next": "/page"})

    class Page(tornado.web.RequestHandler):
        def get(self) -> None:
            self.finish(page)

    async def main() -> None:
        app = tornado.web.Application([(r"/submit/([^/]+)", Submit), (r"/page", Page)])
        app.listen(port, address="127.0.0.1")
        await asyncio.Event().wait()

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass


# ---- profiling the server


def profile_summary(raw: Path, top: int = 30) -> str:
    """py-spy's collapsed stacks as the functions with the most samples, self and total,
    and how the samples split between the event loop's thread and the pool's."""
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    loop = samples = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        if not stack:
            continue
        n = int(count)
        samples += n
        loop += n if any("run_forever" in frame for frame in frames) else 0
        own[frames[-1]] += n
        for frame in set(frames):
            total[frame] += n
    out = [
        f"{samples} samples of the thread holding the GIL: event loop thread "
        f"{100 * loop / samples:.0f}%, pool threads {100 * (samples - loop) / samples:.0f}%"
    ]
    for title, counts in (("self", own), ("total (inclusive)", total)):
        out.append(f"\n{title}:")
        for frame, n in counts.most_common(top):
            out.append(f"{100 * n / samples:5.1f}%  {frame}")
    return "\n".join(out)


# ---- the report


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.{2 if seconds < 0.001 else 1}f} ms"


def pct(values: list[float], q: int) -> float:
    if len(values) < 2:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def table(staged: dict[str, Phase], floor: dict[str, Phase]) -> list[str]:
    def row(
        figure: str, ours: float, base: float, rate: bool = False, worse: str = "slower"
    ) -> str:
        if rate:
            return f"| {figure} | {ours:,.0f}/s | {base:,.0f}/s | {base / ours:.1f}x fewer |"
        return f"| {figure} | {ms(ours)} | {ms(base)} | {ours / base:.1f}x {worse} |"

    t, tf = staged["throughput"], floor["throughput"]
    s, sf = staged["solo"], floor["solo"]
    lo, lf = staged["loaded"], floor["loaded"]
    return [
        "| figure | nbfreeze | floor | ratio |",
        "|---|---:|---:|---:|",
        row(f"submissions per second, {LABELERS} labelers", t.rate, tf.rate, rate=True),
        row(
            f"server CPU per submit, {LABELERS} labelers",
            t.cpu_per_call,
            tf.cpu_per_call,
            worse="more",
        ),
        row(f"submit call p50, {LABELERS} labelers", pct(t.calls, 50), pct(tf.calls, 50)),
        row(f"submit call p99, {LABELERS} labelers", pct(t.calls, 99), pct(tf.calls, 99)),
        row("Submit → next page p50, one labeler", pct(s.steps, 50), pct(sf.steps, 50)),
        row("Submit → next page p99, one labeler", pct(s.steps, 99), pct(sf.steps, 99)),
        row(f"Submit → next page p50, {LABELERS} labelers", pct(lo.steps, 50), pct(lf.steps, 50)),
        row(f"Submit → next page p99, {LABELERS} labelers", pct(lo.steps, 99), pct(lf.steps, 99)),
    ]


def details(staged: dict[str, Phase], floor: dict[str, Phase]) -> list[str]:
    lines = []
    for who, phases in (("nbfreeze", staged), ("floor", floor)):
        for name, phase in phases.items():
            what = "submits" if who == "nbfreeze" else "POSTs"
            steps = ""
            if phase.steps:
                steps = (
                    f", {len(phase.steps)} submit + page pairs (p50: submit "
                    f"{ms(pct(phase.calls, 50))}, page {ms(pct(phase.gets, 50))})"
                )
            lines.append(
                f"- {who}, {name}: {len(phase.calls)} {what}{steps} in {phase.wall:.1f} s "
                f"({phase.rate:,.0f}/s); server CPU {phase.server_cpu:.0%} of a core, "
                f"{phase.cpu_per_call * 1000:.2f} ms of CPU "
                f"per {what[:-1]}"
                f"{' and page' if phase.steps else ''}; "
                f"client {phase.client_cpu:.0%}, other processes {phase.other_cpu:.0%}"
            )
    pages = staged["loaded"].pages
    lines.append(f"- next pages loaded with {LABELERS} labelers: {dict(pages)}")
    busiest = max(p.other_cpu for phases in (staged, floor) for p in phases.values())
    if busiest > 0.2:
        lines.append(
            f"- other processes on the machine used up to {busiest:.0%} of a core during a "
            "phase: every figure here is slowed by them; rerun on a quiet machine"
        )
    return lines


def machine() -> str:
    return (
        f"{os.cpu_count()} cores, Python {platform.python_version()} on "
        f"{platform.machine()}, Linux {platform.release()}"
    )


def report(staged: dict[str, Phase], floor: dict[str, Phase], plan: Plan) -> str:
    lines = [
        "# The staged app under 200 labelers",
        "",
        "`bench/staged.py`: a notebook with a shared compute stage and three `each` stages "
        "(IntSlider, Text, Dropdown), each followed by a per-labeler compute stage, served "
        "by `nbfreeze serve` (one process, SQLite in WAL mode). Every submit is a new "
        "labeler's first answer to that stage, with `state`, through "
        "`POST /api/v1/stages/NAME/submit`; each labeler has its own cookies and its own "
        "keep-alive connection. Submissions per second: 200 labelers always in flight, "
        f"{LABELERS * plan.throughput_rounds} labelers x 3 submits, no page loads. "
        "Submit → next page: the submit call plus the GET of the `next` URL it returns. "
        "The floor: a bare Tornado handler committing one SQLite row per POST (and a GET "
        "of a fixed page), same clients, same run. Server CPU per submit: the server "
        "process's CPU time (all its threads) over the phase, per submit; other processes "
        "on the machine move it least of all these figures. Ratio: how many times fewer "
        "requests per second, or how many times slower, than the floor.",
        "",
        *table(staged, floor),
        "",
        *details(staged, floor),
        "",
        machine() + ".",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds, for trying it out")
    parser.add_argument(
        "--profile", action="store_true", help="py-spy the server in phase 1 (writes no results)"
    )
    parser.add_argument("--profile-out", type=Path, help="keep py-spy's collapsed stacks here")
    parser.add_argument("--floor-server", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--db", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.floor_server:
        floor_server(args.port, args.db)
        return
    plan = QUICK if args.quick else Plan()
    with tempfile.TemporaryDirectory(prefix="nbfreeze-staged-bench-") as tmp:
        work = Path(tmp)
        notebook = work / "rate.ipynb"
        build_notebook(notebook)
        port = free_port()
        server = Server(
            "nbfreeze",
            [str(BIN / "nbfreeze"), "serve", str(notebook), "--port", str(port)],
            work,
            port,
        )
        profile = work / "profile.txt"
        spy = None
        if args.profile:
            spy = [str(BIN / "py-spy"), "record", "--pid", str(server.pid), "--format", "raw"]
            # --gil: only the thread holding the GIL, so the samples are where the
            # process's one core of Python goes, not threads waiting to get it back.
            spy += ["--output", str(profile), "--rate", "250", "--gil", "--nonblocking"]
        try:
            invite = server.wait_for_line(r"^Invite:\s+\S+\?token=(\S+)").group(1)
            server.wait_for_line(r"^Ready\.")
            staged = asyncio.run(staged_phases(port, invite, server.pid, plan, spy))
        finally:
            server.stop()
        floor_port = free_port()
        floor = Server(
            "floor",
            [
                sys.executable,
                __file__,
                "--floor-server",
                "--port",
                str(floor_port),
                "--db",
                str(work / "floor.sqlite"),
            ],
            work,
            floor_port,
        )
        try:
            floor.wait_listening()
            floor_results = asyncio.run(floor_phases(floor_port, floor.pid, plan))
        finally:
            floor.stop()
        text = report(staged, floor_results, plan)
        print(text)
        if not args.quick and not args.profile:  # py-spy slows the server it watches
            RESULTS.write_text(text)
            print(f"wrote {RESULTS.relative_to(ROOT)}")
        if spy and profile.exists():
            print(f"\nThe server during phase 1 (py-spy, {args.profile_out or 'not kept'}):")
            print(profile_summary(profile))
            if args.profile_out:
                shutil.copy(profile, args.profile_out)


if __name__ == "__main__":
    main()
