"""Pooled labeling under 200 labelers: labels per second and submit latency, on SQLite
(one process) and PostgreSQL (one and four processes), beside floors measured in the
same run.

A pool notebook is built in a temporary directory: `ITEMS` items (short strings), a
`ChoiceLabeler(items, choices=["yes", "no"], render=str)` stage with `overlap: 2` and
`batch: 10`, and a stage after it. `nbfreeze serve NOTEBOOK [--db URL --workers N]`
serves it as a real subprocess (its request log to a file), as `tests/test_scale_out.py`
does. Every simulated labeler opens the invite link (its own cookies, `nbfreeze_user`
and `_xsrf`), fetches its batch with `GET /api/v1/stages/label/batch`, then loops:
`POST /api/v1/stages/label/submit` with `X-XSRFToken` and
`{"request_id": …, "labels": {key: label}, "next_batch": true}` for every item of the
batch, whose answer carries the next batch, as `docs/api.md` says (a GET again only
after a refused call). All 200 labelers work at once, in this process (asyncio), each over
its own keep-alive connection as a browser would, in two phases on one server. First at
a person's pace: each labeler starts a batch every 200 x 10 / OFFERED seconds (OFFERED
labels/s together), the first at a random moment within that; this phase measures the
target (the rate kept up with, and the latency meanwhile). Then flat out, each asking
again as soon as it is answered, until the first labeler is told the pool has nothing
left for them (or after `Plan.seconds`): the most the server does. In both, what was
acknowledged counts. labels/s = labels acknowledged / seconds = 10 x submits/s; labels
saved/s counts instead the labels the database holds that were written during the run,
so it falls below labels/s when the server acknowledges labels it does not keep. After
each run the bench checks the database: no item over `overlap: 2` labels, every
acknowledged label written, no item handed to more than two labelers.

The floors, same clients, same run (`bench/labels_floor.py`, in their own processes):

- SQLite: a bare Tornado handler that parses the JSON body and commits one row to
  SQLite (WAL, `synchronous=NORMAL`) per POST: its requests per second with 200 clients.
- PostgreSQL: the same handler committing one row to PostgreSQL on one connection; and
  single-row INSERT + COMMIT back to back on one connection, no HTTP.

Each PostgreSQL run gets a database of its own (`CREATE DATABASE`), dropped afterwards;
`NBFREEZE_BENCH_PG` (default below) names the server and a role that may create one.

    .venv/bin/python bench/labels.py            # prints the table, writes bench/results/labels.md
    .venv/bin/python bench/labels.py --quick    # a small pool and short runs, to try it out
    .venv/bin/python bench/labels.py --profile DIR  # also py-spy each nbfreeze run into DIR
    .venv/bin/python bench/labels.py --client tornado  # tornado's AsyncHTTPClient instead
    .venv/bin/python bench/labels.py --only sqlite --quick --labelers 50 --overlap 12 \
        --seconds 30                            # 50 labelers flat out for some 20 s

`--labelers`, `--items`, `--overlap` and `--seconds` (the longest flat-out phase) change
the load; a run with any of them writes no results file. The server's garbage
collections are timed too (`NBFREEZE_GC_PROBE`, runtime/gc_tuning.py): per phase, how
many of each generation, the longest of each, and the share of the time they took,
beside the submit latencies' p50, p99, p99.9 and slowest.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import platform
import random
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from math import nan
from pathlib import Path

import nbformat
from nbformat import v4
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ProgrammingError

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from client import HTTP, Connection, Person, TornadoConnection, open_all  # noqa: E402
from labels_profile import summary  # noqa: E402

from runtime.store.database import Annotation  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent  # the venv this bench runs in, with `nbfreeze`
RESULTS = ROOT / "bench" / "results" / "labels.md"
FLOOR = Path(__file__).resolve().parent / "labels_floor.py"
PG = os.environ.get(
    "NBFREEZE_BENCH_PG", "postgresql+psycopg://nbfreeze:nbfreeze@127.0.0.1:5432/nbfreeze_test"
)
LABELERS = 200  # --labelers N for another count
OVERLAP = 2  # --overlap N: more labels per item, a longer flat-out phase, same heap
BATCH = 10
STAGE = "label"


Kind = Callable[[int], HTTP]  # a connection to the server on this port: the --client


OFFERED = 2100  # labels/s the paced labelers ask for together: above the 2,000 target


@dataclass
class Plan:
    items: int = 20000
    paced_seconds: float = 10.0  # labelers at a person's pace, OFFERED labels/s together
    seconds: float = 40.0  # the longest the flat-out phase may take
    floor_seconds: float = 8.0


QUICK = Plan(items=6000, paced_seconds=3.0, seconds=10.0, floor_seconds=2.0)


# ---- the notebook


def build_notebook(path: Path, items: int) -> None:
    cells = [
        "from freezer.widgets import ChoiceLabeler\n\n"
        f"items = {{i: f'item {{i}}' for i in range({items})}}",
        f"#| stage: {STAGE}\n#| input: pool\n#| overlap: {OVERLAP}\n#| batch: {BATCH}\n"
        "#| lease: 10m\n"
        "labeler = ChoiceLabeler(items, choices=['yes', 'no'], render=str)\nlabeler",
        "#| stage: report\n#| show: true\nprint(len(labeler.labels), 'items labeled')",
    ]
    notebook = v4.new_notebook(cells=[v4.new_code_cell(c) for c in cells])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    nbformat.write(notebook, path)


# ---- processes and their CPU time


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
    """User + system CPU time of a process, all its threads (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    try:
        found = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return []
    return [int(p) for p in found]


def postgres_pids() -> list[int]:
    """The PostgreSQL server's processes (read only: their CPU time is counted apart)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "postgres":
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


class Server:
    """A server subprocess in a process group of its own, its output in a log file."""

    def __init__(
        self, name: str, argv: list[str], cwd: Path, port: int, env: dict[str, str] | None = None
    ) -> None:
        self.name = name
        self.port = port
        self.log_path = cwd / f"{name}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            argv,
            cwd=cwd,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=None if env is None else os.environ | env,
        )

    @property
    def pids(self) -> list[int]:
        """The server and its worker processes."""
        return [self.process.pid, *children(self.process.pid)]

    def cpu(self) -> float:
        return sum(cpu_seconds(pid) for pid in self.pids)

    def wait_for_line(self, pattern: str, timeout: float = 180.0) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = re.search(pattern, self.log_path.read_text(errors="replace"), re.MULTILINE)
            if found:
                return found
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited; see {self.log_path}")
            time.sleep(0.1)
        raise RuntimeError(f"{self.name}: no line matching {pattern!r}; see {self.log_path}")

    def settle(self, workers: int, timeout: float = 180.0) -> None:
        """Wait until every worker is up and idle: only the first prints `Ready.`, the
        others are still running the shared stages then."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.pids) >= workers + (workers > 1):
                before = self.cpu()
                time.sleep(0.5)
                if self.cpu() - before < 0.05:
                    return
            else:
                time.sleep(0.2)
        raise RuntimeError(f"{self.name}: the workers did not settle; see {self.log_path}")

    def stop(self) -> None:
        """Ctrl-C for the whole group; whatever still runs 10 s later is killed, and
        said, so that no process of this run takes the machine's time in the next."""
        workers = self.pids
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)  # the group this Popen made
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                pass
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(Path(f"/proc/{p}").exists() for p in workers):
            time.sleep(0.2)
        left = [pid for pid in workers if Path(f"/proc/{pid}").exists()]
        if left:
            print(f"{self.name}: {len(left)} processes outlived Ctrl-C; killed", file=sys.stderr)
            for pid in left:
                os.kill(pid, signal.SIGKILL)
        self.process.wait()
        self._log.close()


def fresh_postgres_database() -> tuple[str, Callable[[], None]]:
    """A new, empty PostgreSQL database and the function that drops it."""
    url = make_url(PG)
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    name = f"nbfreeze_bench_{uuid.uuid4().hex[:12]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        # FORCE cannot end an autovacuum worker's connection (not our role's): try again.
        for attempt in range(10):
            try:
                with admin.connect() as connection:
                    connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                break
            except ProgrammingError:
                if attempt == 9:
                    raise
                time.sleep(1.0)
        admin.dispose()

    return url.set(database=name).render_as_string(hide_password=False), drop


def pct(values: list[float], q: int) -> float:
    if not values:
        return float("nan")
    if len(values) < 2:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def permille(values: list[float], q: int) -> float:
    if len(values) < 2:
        return pct(values, 50)
    return statistics.quantiles(values, n=1000, method="inclusive")[q - 1]


# ---- one run of nbfreeze


@dataclass
class Run:
    """What one run measured: per-call seconds, counts, and where the CPU went."""

    name: str
    submits: list[float] = field(default_factory=list)
    batches: list[float] = field(default_factory=list)
    labels: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    wall: float = 0.0
    ended: str = ""
    cpu: dict[str, float] = field(default_factory=dict)  # share of one core, by whom
    stored: str = ""
    handed: dict[str, set[int]] = field(default_factory=dict)  # item key -> labelers
    window: tuple[datetime, datetime] | None = None  # the run's start and end, UTC
    since: float = 0.0  # calls sent before this moment (perf_counter) are not counted
    saved: int = 0  # labels the database holds that were written within the window
    problems: list[str] = field(default_factory=list)
    gc: Collections | None = None  # the server's garbage collections during the phase

    @property
    def submit_rate(self) -> float:
        return len(self.submits) / self.wall

    @property
    def label_rate(self) -> float:
        return self.labels / self.wall

    @property
    def saved_rate(self) -> float:
        return self.saved / self.wall


@dataclass
class Collections:
    """The server's garbage collections during a phase, from its probe's file
    (`NBFREEZE_GC_PROBE`, runtime/gc_tuning.py): how many of each generation, the
    longest of each, and the time they took together."""

    counts: list[int]
    longest_ms: list[float]
    total_ms: float
    frozen: int  # objects `gc.freeze()` had moved out of the collector's reach

    @classmethod
    def read(cls, path: Path, window: tuple[datetime, datetime]) -> Collections:
        began, ended = (moment.timestamp() for moment in window)
        lines = [json.loads(line) for line in path.read_text().splitlines() if line]
        longest = [0.0, 0.0, 0.0]
        frozen: dict[int, int] = {}  # per process: objects frozen by the window's end
        first: dict[int, dict] = {}  # per process: its last totals before the window
        last: dict[int, dict] = {}  # and its last totals within it
        for line in lines:
            if "froze" in line:
                if line["t"] <= ended:
                    frozen[line["pid"]] = line["froze"]
            elif "counts" in line:
                if line["t"] < began:
                    first[line["pid"]] = line
                elif line["t"] <= ended + 1.0:  # written at most a second apart
                    last[line["pid"]] = line
            elif began <= line["t"] <= ended:
                longest[line["gen"]] = max(longest[line["gen"]], line["ms"])
        zero = {"counts": [0, 0, 0], "total_ms": [0.0, 0.0, 0.0]}
        counts = [0, 0, 0]
        total = 0.0
        for pid, end in last.items():
            start = first.get(pid, zero)
            pairs = zip(start["counts"], end["counts"], strict=True)
            counts = [c + b - a for c, (a, b) in zip(counts, pairs, strict=True)]
            total += sum(end["total_ms"]) - sum(start["total_ms"])
        return cls(counts, longest, total, sum(frozen.values()))

    def line(self, wall: float) -> str:
        return (
            f"collections (gen 0/1/2): {'/'.join(map(str, self.counts))}, the longest "
            f"{' / '.join(f'{ms:,.1f}' for ms in self.longest_ms)} ms, "
            f"{self.total_ms / 1000 / wall:.1%} of the time; {self.frozen:,} objects frozen"
        )


class Labeler:
    """A simulated person: their own cookie jar, their own connection."""

    def __init__(self, connection: HTTP, number: int) -> None:
        self.connection = connection
        self.number = number
        self.person = Person()
        self.sent = 0
        self.items: list[str] | None = None  # the batch in hand, if an answer brought it

    async def work(self, run: Run, stop: asyncio.Event, pace: float | None = None) -> None:
        """Label batch after batch until `stop`: flat out, or (with `pace`) starting one
        every `pace` seconds, as a person who takes that long over a batch would; the
        first starts at a random moment within the first `pace`. Each submission asks for
        the next batch in its answer (`next_batch`), so the batch is fetched with a GET
        only at the start, or after a refused call."""
        path = f"/api/v1/stages/{STAGE}"
        due = time.perf_counter() + random.uniform(0, pace) if pace else 0.0
        while not stop.is_set():
            if pace:
                await asyncio.sleep(max(0.0, due - time.perf_counter()))
                due += pace
                if stop.is_set():
                    return
            if self.items is None:
                started = time.perf_counter()
                response = await self.connection.get(f"{path}/batch", self.person)
                took = time.perf_counter() - started
                if stop.is_set():
                    return
                if response.status != 200:
                    run.errors[f"batch: HTTP {response.status} {response.body[:120]!r}"] += 1
                    await asyncio.sleep(0.05)
                    continue
                if started >= run.since:
                    run.batches.append(took)
                self.items = response.json()["items"]
            items = self.items
            for key in items:
                run.handed.setdefault(key, set()).add(self.number)
            if not items:
                run.ended = f"labeler {self.number} was told the pool has nothing left for them"
                stop.set()
                return
            self.sent += 1
            self.items = None  # until an answer brings the next batch
            labels = {key: "yes" if (self.number + i) % 3 else "no" for i, key in enumerate(items)}
            body = {"request_id": f"{self.number}-{self.sent}", "labels": labels}
            started = time.perf_counter()
            response = await self.connection.post_json(
                f"{path}/submit", body | {"next_batch": True}, self.person
            )
            took = time.perf_counter() - started
            if stop.is_set():
                return  # acknowledged after the end: not counted
            if response.status != 200:
                run.errors[f"submit: HTTP {response.status} {response.body[:120]!r}"] += 1
                continue
            if started >= run.since:  # sent during the ramp: not counted
                run.submits.append(took)
                run.labels += len(labels)
            self.items = response.json()["batch"]["items"]


class CpuMeter:
    """Shares of one core over a stretch of time: the server, PostgreSQL, this client,
    and everything else on the machine (other processes slow both sides)."""

    def __init__(self, server: Callable[[], float]) -> None:
        self.server = server
        self.pg_start = {pid: cpu_seconds(pid) for pid in postgres_pids()}
        self.start = self._read()
        self.started = time.perf_counter()

    def _read(self) -> tuple[float, float, float, float]:
        # Backends come and go with connections: count those alive at the end, from
        # where each stood at the start (or from nothing, when it started since).
        pg = sum(cpu_seconds(pid) - self.pg_start.get(pid, 0.0) for pid in postgres_pids())
        return self.server(), pg, time.process_time(), busy_seconds()

    def shares(self) -> dict[str, float]:
        wall = time.perf_counter() - self.started
        end = self._read()
        server, _, client, busy = ((b - a) / wall for a, b in zip(self.start, end, strict=True))
        pg = end[1] / wall
        return {
            "server": server,
            "postgres": pg,
            "client": client,
            "other": max(0.0, busy - server - pg - client),
        }


def check_store(url: str, run: Run) -> None:
    """Every acknowledged label is in the database, and no item has more than
    `OVERLAP` labels."""
    engine = create_engine(url)
    assert run.window is not None
    with engine.connect() as connection:
        total = connection.scalar(
            text("SELECT count(*) FROM annotations WHERE stage = :s"), {"s": STAGE}
        )
        run.saved = connection.scalar(
            select(func.count())
            .select_from(Annotation)
            .where(Annotation.stage == STAGE, Annotation.created_at.between(*run.window))
        )
        most = connection.scalar(
            text(
                "SELECT max(n) FROM (SELECT count(*) AS n FROM annotations "
                "WHERE stage = :s GROUP BY item_key) AS per_item"
            ),
            {"s": STAGE},
        )
    engine.dispose()
    run.stored = f"{total} labels stored, at most {most} per item"
    if run.saved < run.labels:
        run.problems.append(
            f"the server acknowledged {run.labels} labels during the run, but only "
            f"{run.saved} were written to the database then"
        )
    if (most or 0) > OVERLAP:
        run.problems.append(f"an item has {most} labels (overlap {OVERLAP})")
    over = [key for key, who in run.handed.items() if len(who) > OVERLAP]
    if over:
        run.problems.append(
            f"{len(over)} items were handed to more than {OVERLAP} labelers (e.g. item "
            f"{over[0]} to {len(run.handed[over[0]])})"
        )


async def join_all(connections: list[HTTP], invite: str) -> list[Labeler]:
    """A labeler on each connection, each through the invite link, sixteen at a time
    (as people arriving, not a thundering herd of logins)."""
    labelers = [Labeler(c, n) for n, c in enumerate(connections)]
    gate = asyncio.Semaphore(16)

    async def join(labeler: Labeler) -> None:
        async with gate:
            await labeler.person.join(labeler.connection, invite)

    await asyncio.gather(*(join(labeler) for labeler in labelers))
    return labelers


async def drive(
    port: int, invite: str, runs: tuple[Run, Run], server: Server, plan: Plan, kind: Kind
) -> None:
    """The labelers join, label at a person's pace for a while, then flat out."""
    paced, run = runs
    connections = await open_all(lambda: kind(port), LABELERS)
    labelers = await join_all(connections, invite)
    await phase(labelers, paced, server, plan.paced_seconds, LABELERS * BATCH / OFFERED)
    await phase(labelers, run, server, plan.seconds)
    for connection in connections:
        connection.close()


async def phase(
    labelers: list[Labeler], run: Run, server: Server, seconds: float, pace: float | None = None
) -> None:
    """Every labeler works until one is told the pool is empty or `seconds` pass. Paced,
    the first `pace` seconds (labelers starting one by one) are not counted."""
    stop = asyncio.Event()
    meter = CpuMeter(server.cpu)
    began = datetime.now(UTC)
    started = time.perf_counter()
    tasks = [asyncio.ensure_future(labeler.work(run, stop, pace)) for labeler in labelers]
    if pace:
        await asyncio.sleep(pace)  # the ramp: not counted
        run.submits.clear()
        run.batches.clear()
        run.labels = 0
        run.since = time.perf_counter()
        meter = CpuMeter(server.cpu)
        began = datetime.now(UTC)
        started = time.perf_counter()
        seconds -= pace
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except TimeoutError:
        run.ended = f"stopped after {seconds:.0f} s"
        stop.set()
    run.wall = time.perf_counter() - started
    run.window = (began, datetime.now(UTC))
    run.cpu = meter.shares()
    await asyncio.gather(*tasks)  # calls in flight end; what they bring is not counted


def nbfreeze_run(
    name: str,
    work: Path,
    plan: Plan,
    kind: Kind,
    db: str | None,
    workers: int,
    profile: Path | None,
) -> tuple[Run, Run]:
    """Serve the pool and run both phases: (paced, flat out)."""
    home = work / name.replace(" ", "-").replace(",", "")
    home.mkdir()
    notebook = home / "pool.ipynb"
    build_notebook(notebook, plan.items)
    port = free_port()
    argv = [str(BIN / "nbfreeze"), "serve", str(notebook), "--port", str(port)]
    if db:
        argv += ["--db", db, "--workers", str(workers)]
    url = db or f"sqlite:///{home / 'pool.nbfreeze' / 'app.sqlite'}"
    probe = home / "gc.jsonl"
    server = Server("nbfreeze", argv, home, port, {"NBFREEZE_GC_PROBE": str(probe)})
    paced = Run(f"{name}, paced")
    run = Run(name, handed=paced.handed)  # an item goes to two labelers over both phases
    spy = None
    try:
        invite = server.wait_for_line(r"^Invite:\s+\S+\?token=(\S+)").group(1)
        server.wait_for_line(r"^Ready\.")
        server.settle(workers)
        if profile is not None:
            raw = profile / f"{home.name}.txt"
            spy = subprocess.Popen(
                [str(BIN / "py-spy"), "record", "--pid", str(server.process.pid), "--format"]
                + ["raw", "--output", str(raw), "--rate", "100", "--nonblocking"]
                + (["--subprocesses"] if workers > 1 else []),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            time.sleep(1.0)  # py-spy attaches
        asyncio.run(drive(port, invite, (paced, run), server, plan, kind))
    finally:
        if spy is not None:
            spy.send_signal(signal.SIGINT)  # py-spy writes its file and exits
            spy.wait(60)
        server.stop()
    check_store(url, paced)
    check_store(url, run)
    for phased in (paced, run):
        assert phased.window is not None
        phased.gc = Collections.read(probe, phased.window)
    return paced, run


# ---- the floors


@dataclass
class Floor:
    name: str
    calls: list[float] = field(default_factory=list)
    wall: float = 0.0
    cpu: dict[str, float] = field(default_factory=dict)
    errors: int = 0

    @property
    def rate(self) -> float:
        return len(self.calls) / self.wall


async def hammer(port: int, floor: Floor, plan: Plan, kind: Kind, server: Server) -> None:
    connections = await open_all(lambda: kind(port), LABELERS)
    labels = {f'"{i}"': "yes" for i in range(BATCH)}
    counter = iter(range(10**9))

    async def loop(connection: HTTP, until: float) -> None:
        while time.perf_counter() < until:
            body = {"request_id": f"f-{next(counter)}", "labels": labels}
            started = time.perf_counter()
            response = await connection.post_json("/submit", body)
            took = time.perf_counter() - started
            if response.status == 200:
                floor.calls.append(took)
            else:
                floor.errors += 1

    await asyncio.gather(*(loop(c, time.perf_counter() + 0.5) for c in connections[:20]))
    floor.calls.clear()  # that was the warm-up
    meter = CpuMeter(server.cpu)
    started = time.perf_counter()
    until = started + plan.floor_seconds
    await asyncio.gather(*(loop(c, until) for c in connections))
    floor.wall = time.perf_counter() - started
    floor.cpu = meter.shares()
    for connection in connections:
        connection.close()


def floor_run(name: str, work: Path, plan: Plan, kind: Kind, db: str) -> Floor:
    port = free_port()
    argv = [sys.executable, str(FLOOR), "--port", str(port), "--db", db]
    server = Server(name.split()[0].lower() + "-floor", argv, work, port)
    floor = Floor(name)
    try:
        server.wait_for_line(r"^listening")
        asyncio.run(hammer(port, floor, plan, kind, server))
    finally:
        server.stop()
    return floor


def commit_loop(db: str, seconds: float) -> float:
    """Single-row commits per second on one PostgreSQL connection, no HTTP."""
    argv = [sys.executable, str(FLOOR), "--commit-loop", "--db", db, "--seconds", str(seconds)]
    done = json.loads(subprocess.run(argv, capture_output=True, check=True, text=True).stdout)
    return done["commits"] / done["seconds"]


# ---- the report


def ms(seconds: float) -> str:
    """Milliseconds, or a dash when there was no call to time (NaN)."""
    return "–" if seconds != seconds else f"{seconds * 1000:,.1f} ms"


def cpu_line(cpu: dict[str, float]) -> str:
    return ", ".join(f"{who} {share:.0%}" for who, share in cpu.items())


def report(
    pairs: list[tuple[Run, Run]],
    floors: dict[str, Floor],
    loop_rate: float | None,
    plan: Plan,
    client: str,
) -> str:
    floor_of = {"SQLite": floors.get("sqlite"), "PostgreSQL": floors.get("postgresql")}
    paced_rows = [
        "| run | labels/s offered | labels/s | submit p50 | submit p99 "
        "| batch GET p50 | batch GET p99 | server CPU |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    rows = [
        "| run | labels/s | labels saved/s | submits/s | submit p50 | submit p99 "
        "| batch GET p50 | batch GET p99 | floor req/s | floor ÷ submits/s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for paced, run in pairs:
        paced_rows.append(
            f"| {run.name} | {OFFERED:,} | {paced.label_rate:,.0f} "
            f"| {ms(pct(paced.submits, 50))} | {ms(pct(paced.submits, 99))} "
            f"| {ms(pct(paced.batches, 50))} | {ms(pct(paced.batches, 99))} "
            f"| {paced.cpu['server']:.0%} |"
        )
        floor = floor_of[run.name.split(",")[0]]
        rows.append(
            f"| {run.name} | {run.label_rate:,.0f} | {run.saved_rate:,.0f} "
            f"| {run.submit_rate:,.0f} "
            f"| {ms(pct(run.submits, 50))} | {ms(pct(run.submits, 99))} "
            f"| {ms(pct(run.batches, 50))} | {ms(pct(run.batches, 99))} "
            f"| {floor.rate:,.0f} | {floor.rate / run.submit_rate:.1f}x |"
        )
    gc_rows = [
        "| run | submit p50 | submit p99 | submit p99.9 | slowest submit "
        "| gen 0 / 1 / 2 collections | longest gen 0 | longest gen 1 | longest gen 2 "
        "| time in the collector |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for run in [r for pair in pairs for r in pair]:
        if run.gc is not None:
            gc_rows.append(
                f"| {run.name} | {ms(pct(run.submits, 50))} | {ms(pct(run.submits, 99))} "
                f"| {ms(permille(run.submits, 999))} | {ms(max(run.submits, default=nan))} "
                f"| {' / '.join(f'{c:,}' for c in run.gc.counts)} "
                + "".join(f"| {ms:,.1f} ms " for ms in run.gc.longest_ms)
                + f"| {run.gc.total_ms / 1000 / run.wall:.1%} |"
            )
    floor_rows = ["| floor | requests/s | POST p50 | POST p99 |", "|---|---:|---:|---:|"]
    for floor in floors.values():
        floor_rows.append(
            f"| {floor.name} | {floor.rate:,.0f} | {ms(pct(floor.calls, 50))} "
            f"| {ms(pct(floor.calls, 99))} |"
        )
    if loop_rate is not None:
        loop = "PostgreSQL single-row commits, one connection, no HTTP"
        floor_rows.append(f"| {loop} | {loop_rate:,.0f} | | |")

    verdicts = []
    for paced, run in pairs:
        if "4 processes" in run.name:
            continue
        fast = paced.label_rate >= 2000 and pct(paced.submits, 99) < 0.050
        floor = floor_of[run.name.split(",")[0]]
        near = floor.rate / run.submit_rate <= 4
        verdicts.append(
            f"- {run.name}: {paced.label_rate:,.0f} labels/s with submit p99 "
            f"{ms(pct(paced.submits, 99))}: {'met' if fast else 'MISSED'} "
            "(target ≥ 2,000 labels/s, p99 < 50 ms); flat out, "
            f"{floor.rate / run.submit_rate:.1f}x fewer submits/s than its floor: "
            f"{'met' if near else 'MISSED'} (target within 4x)"
        )
    details = []
    for run in [r for pair in pairs for r in pair]:
        errors = "; ".join(f"{n} x {e}" for e, n in run.errors.most_common(3)) or "none"
        details.append(
            f"- {run.name}: {len(run.submits)} submits ({run.labels} labels) and "
            f"{len(run.batches)} batch GETs in {run.wall:.1f} s; {run.ended}. CPU (share of "
            f"one core): {cpu_line(run.cpu)}. Refused calls: {errors}. {run.stored}."
        )
        if run.gc is not None:
            details.append(f"  - server's {run.gc.line(run.wall)}")
        details += [f"  - **wrong**: {problem}" for problem in run.problems]
    for floor in floors.values():
        details.append(
            f"- floor, {floor.name}: {len(floor.calls)} POSTs in {floor.wall:.1f} s, "
            f"{floor.errors} failed. CPU: {cpu_line(floor.cpu)}."
        )
    busiest = max(r.cpu["other"] for r in [*(r for p in pairs for r in p), *floors.values()])
    if busiest > 0.2:
        details.append(
            f"- other processes on the machine used up to {busiest:.0%} of a core during a "
            "run: every figure here is slowed by them; rerun on a quiet machine to compare."
        )
    how = (
        "its own keep-alive connection"
        if client == "keep-alive"
        else "tornado's AsyncHTTPClient (a new connection per request)"
    )
    pace = LABELERS * BATCH / OFFERED
    lines = [
        f"# Pooled labeling under {LABELERS} labelers",
        "",
        f"`bench/labels.py`: a pool of {plan.items:,} items (`ChoiceLabeler`, `render=str`), "
        f"`overlap: {OVERLAP}`, `batch: {BATCH}`, served by `nbfreeze serve` (SQLite beside "
        "the bundle; or `--db postgresql+psycopg://…`, one process or `--workers 4`). "
        f"{LABELERS} labelers, each with its own cookies and {how}. Each fetches a batch "
        "with `GET /api/v1/stages/label/batch`, then loops on `POST "
        f"/api/v1/stages/label/submit` with a label for each of the {BATCH} items and "
        '`"next_batch": true`, whose answer carries the next batch (one request per '
        f"batch); labels/s = {BATCH} x submits/s.",
        "",
        f"First at a person's pace: each labeler starts a batch every {pace:.2f} s (the "
        f"first at a random moment within that), {OFFERED:,} labels/s offered together, for "
        f"{plan.paced_seconds:.0f} s; the first {pace:.2f} s, and calls sent during them, "
        "are not counted. This is the "
        "target's measure: the rate the server keeps up with, and the latency labelers see "
        "meanwhile. Then flat out, every labeler asking again as soon as it is answered, "
        "until the first is told nothing is left for them: the most the server does, set "
        "beside the floors. Only what was acknowledged counts. Labels saved/s: labels "
        "written to the database during the phase (by their `created_at`), per second. "
        "Latency: one call, as the client saw it. Floors, same clients, same run: a bare "
        "Tornado handler parsing the JSON and committing one row per POST (SQLite in WAL "
        "mode; PostgreSQL on one connection), and PostgreSQL's single-row commits on one "
        "connection with no HTTP.",
        "",
        "## At a person's pace",
        "",
        *paced_rows,
        "",
        "## Flat out",
        "",
        *rows,
        "",
        *floor_rows,
        "",
        "## The server's garbage collections",
        "",
        *gc_rows,
        "",
        "Targets (one process):",
        "",
        *verdicts,
        "",
        *details,
        "",
        machine() + ".",
        "",
    ]
    return "\n".join(lines)


def machine() -> str:
    engine = create_engine(PG)
    try:
        with engine.connect() as connection:
            pg = connection.scalar(text("SHOW server_version")).split()[0]
    finally:
        engine.dispose()
    return (
        f"{os.cpu_count()} cores, Python {platform.python_version()} on {platform.machine()}, "
        f"Linux {platform.release()}, PostgreSQL {pg} on the same machine"
    )


def main() -> None:
    global LABELERS, OVERLAP
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a small pool and short runs")
    parser.add_argument("--profile", type=Path, metavar="DIR", help="py-spy each nbfreeze run")
    parser.add_argument("--client", choices=["keep-alive", "tornado"], default="keep-alive")
    parser.add_argument("--only", choices=["sqlite", "postgresql"], help="one database's runs")
    parser.add_argument("--labelers", type=int, default=LABELERS, help="simulated labelers")
    parser.add_argument("--overlap", type=int, default=OVERLAP, help="labelers per item")
    parser.add_argument("--items", type=int, help="items in the pool (default: the plan's)")
    parser.add_argument("--seconds", type=float, help="the longest flat-out phase")
    args = parser.parse_args()
    LABELERS = args.labelers
    OVERLAP = args.overlap
    # Started in the background by a shell, this process ignores Ctrl-C, and so would
    # the servers it starts: they would outlive `Server.stop` and take the next run's CPU.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    plan = QUICK if args.quick else Plan()
    if args.items:
        plan = replace(plan, items=args.items)
    if args.seconds:
        plan = replace(plan, seconds=args.seconds)
    kind: Kind = Connection
    if args.client == "tornado":
        kind = functools.partial(TornadoConnection, max_clients=LABELERS)
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    runs: list[tuple[Run, Run]] = []
    floors: dict[str, Floor] = {}
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="nbfreeze-labels-bench-") as tmp:
        work = Path(tmp)
        db = f"sqlite:///{work / 'floor.sqlite'}"
        loop_rate = None
        if args.only != "postgresql":
            floors["sqlite"] = floor_run(
                "SQLite, Tornado + one commit per POST", work, plan, kind, db
            )
            runs.append(nbfreeze_run("SQLite, 1 process", work, plan, kind, None, 1, args.profile))
        if args.only != "sqlite":
            url, drop = fresh_postgres_database()
            try:
                floors["postgresql"] = floor_run(
                    "PostgreSQL, Tornado + one commit per POST", work, plan, kind, url
                )
                loop_rate = commit_loop(url, plan.floor_seconds / 2)
            finally:
                drop()
        for workers in (1, 4) if args.only != "sqlite" else ():
            url, drop = fresh_postgres_database()
            try:
                name = f"PostgreSQL, {workers} process{'es' if workers > 1 else ''}"
                runs.append(nbfreeze_run(name, work, plan, kind, url, workers, args.profile))
            finally:
                drop()
    text_ = report(runs, floors, loop_rate, plan, args.client)
    print(text_)
    print(f"(the whole bench took {time.monotonic() - started:.0f} s)")
    if (
        not (args.quick or args.profile or args.only or args.items or args.seconds)
        and args.client == "keep-alive"
        and (args.labelers, args.overlap) == (200, 2)
    ):
        RESULTS.write_text(text_)
        print(f"wrote {RESULTS.relative_to(ROOT)}")
    if args.profile:
        for raw in sorted(args.profile.glob("*.txt")):
            print(f"\n## {raw.stem} (py-spy, {raw})\n")
            print(summary(raw))


if __name__ == "__main__":
    main()
