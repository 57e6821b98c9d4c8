"""A team's load behind nginx: 200 and 1,000 simulated labelers, 1, 2 and 4 processes.

Each run serves a pool of 60,000 items (`ChoiceLabeler`, `overlap: 2`, `batch: 10`, the
notebook of bench/labels.py) from N separate `nbfreeze serve` processes on one new
PostgreSQL database (as N machines would run them), and puts Debian's nginx in front
with the site `nbfreeze deploy nginx` writes (plain HTTP, round robin, no stickiness),
in a main configuration of the bench's own (`worker_processes auto`, 8,192
connections a worker, everything it writes in the run's directory). The labelers, each
with their own cookies and their own keep-alive connection, join by the invite link and
then label flat out: a submit with `"next_batch": true`, whose answer brings the next
batch, again as soon as it is answered, for the run's seconds. Past what the processes
can do the labelers wait longer; the bench counts what went wrong.

The same runs without nginx: the labelers connect to the processes directly, each to
one of them in turn (what nginx's round robin would give a connection), to show what
the proxy costs.

Measured per run: labels acknowledged per second, submit latency p50 and p99 as the
client saw it, the answers that were not 200 (by status; 5xx counted apart), and from
the database afterwards: every acknowledged label stored, no item over its overlap,
no item handed to a third labeler. The machine's cores and its load are reported: on 2
cores, nginx, PostgreSQL, the processes and this client all share them.

    NBFREEZE_BENCH_PG=postgresql+psycopg://… python bench/scale.py   # writes bench/results/scale.md
    python bench/scale.py --labelers 200 --processes 1 2 --seconds 5 # a quicker look, printed only
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from client import Connection, open_all
from labels import (
    BIN,
    CpuMeter,
    Run,
    Server,
    build_notebook,
    check_store,
    free_port,
    fresh_postgres_database,
    join_all,
    pct,
)

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "scale.md"
NGINX = Path("/usr/sbin/nginx")
ITEMS = 60_000


@dataclass
class Figures:
    labelers: int
    processes: int
    via: str  # "nginx" or "direct"
    labels_per_second: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    statuses: Counter[str] = field(default_factory=Counter)
    server_errors: int = 0
    cpu: dict[str, float] = field(default_factory=dict)
    stored: str = ""
    problems: list[str] = field(default_factory=list)


def nginx_main(directory: Path, site: str) -> Path:
    """The site in a main configuration that keeps everything nginx writes in `directory`."""
    (directory / "site.conf").write_text(site)
    temp = directory / "temp"
    temp.mkdir(exist_ok=True)
    main = directory / "nginx.conf"
    main.write_text(
        f"""daemon off;
worker_processes auto;
worker_rlimit_nofile 20000;
pid {directory / "nginx.pid"};
error_log {directory / "error.log"} warn;
events {{ worker_connections 8192; }}
http {{
    client_body_temp_path {temp / "body"};
    proxy_temp_path {temp / "proxy"};
    fastcgi_temp_path {temp / "fastcgi"};
    uwsgi_temp_path {temp / "uwsgi"};
    scgi_temp_path {temp / "scgi"};
    include {directory / "site.conf"};
}}
"""
    )
    return main


def start_nginx(directory: Path, ports: list[int]) -> tuple[subprocess.Popen[bytes], int]:
    listen = free_port()
    deploy = [str(BIN / "nbfreeze"), "deploy", "nginx", "--listen", f"127.0.0.1:{listen}"]
    for port in ports:
        deploy += ["--upstream", f"127.0.0.1:{port}"]
    deploy += ["--access-log", str(directory / "access.log")]
    site = subprocess.run(deploy, check=True, capture_output=True, text=True).stdout
    main = nginx_main(directory, site)
    process = subprocess.Popen(
        [str(NGINX), "-c", str(main), "-p", str(directory)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", listen), timeout=1):
                return process, listen
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"nginx did not listen on {listen}; see {directory / 'error.log'}")


async def drive(
    ports: list[int], invite: str, labelers: int, run: Run, seconds: float, cpu: Callable[[], float]
) -> None:
    """`labelers` people, the n-th on ports[n % len(ports)], flat out for `seconds`."""
    turn = itertools.count()
    connections = await open_all(lambda: Connection(ports[next(turn) % len(ports)]), labelers)
    people = await join_all(connections, invite)
    stop = asyncio.Event()
    meter = CpuMeter(cpu)
    began = datetime.now(UTC)
    started = time.perf_counter()
    tasks = [asyncio.ensure_future(p.work(run, stop)) for p in people]
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except TimeoutError:
        run.ended = f"stopped after {seconds:.0f} s"
        stop.set()
    run.wall = time.perf_counter() - started
    run.window = (began, datetime.now(UTC))
    run.cpu = meter.shares()
    await asyncio.gather(*tasks)
    for connection in connections:
        connection.close()


def one_run(work: Path, labelers: int, processes: int, via: str, seconds: float) -> Figures:
    home = work / f"{via}-{processes}p-{labelers}l"
    home.mkdir()
    notebook = home / "pool.ipynb"
    build_notebook(notebook, ITEMS)
    url, drop = fresh_postgres_database()
    servers: list[Server] = []
    proxy = None
    found = Figures(labelers, processes, via)
    try:
        # The first process migrates the database and builds the bundle; then the rest.
        for n in range(processes):
            port = free_port()
            argv = [str(BIN / "nbfreeze"), "serve", str(notebook), "--port", str(port)]
            argv += ["--db", url, "--trusted-proxy", "127.0.0.1"]
            server = Server(f"nbfreeze-{n}", argv, home, port)
            servers.append(server)
            invite = server.wait_for_line(r"^Invite:\s+\S+\?token=(\S+)").group(1)
            server.wait_for_line(r"^Ready\.")
        for server in servers:
            server.settle(1)
        ports = [s.port for s in servers]
        if via == "nginx":
            proxy, listen = start_nginx(home, ports)
            ports = [listen]
        run = Run(f"{via}, {processes} processes, {labelers} labelers")
        asyncio.run(
            drive(ports, invite, labelers, run, seconds, lambda: sum(s.cpu() for s in servers))
        )
    finally:
        if proxy is not None:
            proxy.terminate()
            proxy.wait(10)
        for server in servers:
            server.stop()
    check_store(url, run)
    drop()
    found.labels_per_second = run.label_rate
    found.p50_ms = 1000 * pct(run.submits, 50)
    found.p99_ms = 1000 * pct(run.submits, 99)
    found.statuses = Counter({"200": len(run.submits)})
    for error, count in run.errors.items():
        status = error.split("HTTP ", 1)[1].split()[0] if "HTTP " in error else error
        found.statuses[status] += count
        if status.startswith("5") or status == "599":
            found.server_errors += count
    found.cpu = run.cpu
    found.stored = run.stored
    found.problems = run.problems
    return found


def report(rows: list[Figures], args: argparse.Namespace, load: tuple[float, float]) -> str:
    lines = [
        "# A team's load behind nginx",
        "",
        f"`bench/scale.py --labelers {' '.join(map(str, args.labelers))} --processes "
        f"{' '.join(map(str, args.processes))} --seconds {args.seconds:g}`: "
        f"{os.cpu_count()} cores, Python {platform.python_version()}, PostgreSQL on the same "
        f"machine, 1-minute load {load[0]:.1f} before and {load[1]:.1f} after.",
        "",
        "| labelers | processes | via | labels/s | submit p50 | submit p99 | answers | 5xx | "
        "CPU (cores): processes, PostgreSQL, client, other | stored |",
        "|---:|---:|---|---:|---:|---:|---|---:|---|---|",
    ]
    for r in rows:
        answers = ", ".join(f"{n} × {s}" for s, n in sorted(r.statuses.items()))
        cpu = ", ".join(f"{r.cpu.get(k, 0):.2f}" for k in ("server", "postgres", "client", "other"))
        lines.append(
            f"| {r.labelers:,} | {r.processes} | {r.via} | {r.labels_per_second:,.0f} | "
            f"{r.p50_ms:.0f} ms | {r.p99_ms:.0f} ms | {answers} | {r.server_errors} | {cpu} | "
            f"{r.stored}{'; ' + '; '.join(r.problems) if r.problems else ''} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--labelers", type=int, nargs="+", default=[200, 1000])
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--via", nargs="+", default=["nginx", "direct"])
    parser.add_argument("--seconds", type=float, default=8.0)
    args = parser.parse_args()
    if "nginx" in args.via and not NGINX.exists():
        sys.exit(f"{NGINX} is missing: apt-get install -y nginx")
    rows = []
    before = os.getloadavg()[0]
    work = Path(tempfile.mkdtemp(prefix="nbfreeze-scale-"))
    try:
        for labelers in args.labelers:
            for processes in args.processes:
                for via in args.via:
                    row = one_run(work, labelers, processes, via, args.seconds)
                    rows.append(row)
                    print(
                        f"{labelers} labelers, {processes} processes, {via}: "
                        f"{row.labels_per_second:,.0f} labels/s, p50 {row.p50_ms:.0f} ms, "
                        f"p99 {row.p99_ms:.0f} ms, 5xx {row.server_errors}, {row.stored}"
                        + (f", PROBLEMS {row.problems}" if row.problems else ""),
                        flush=True,
                    )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    text = report(rows, args, (before, os.getloadavg()[0]))
    print(text)
    if args.labelers == [200, 1000] and args.processes == [1, 2, 4]:
        RESULTS.write_text(text)


if __name__ == "__main__":
    main()
