"""The owner's dashboard of a large pool: how long `GET /api/v1/dashboard` takes for a pool
of 100,000 items labeled 5 times each by 50 labelers, on SQLite and on PostgreSQL.

A notebook is built in a temporary directory: a shared stage makes N short strings and a
`#| input: pool` stage (`#| overlap: 5`) shows them in a `ChoiceLabeler` with four
choices. `nbfreeze serve` serves it as a real subprocess (SQLite beside the bundle, or
`--db` PostgreSQL). Once the pool is open, the bench writes the labels straight into the
database, each with its row of label history as a submission writes it: 50 labelers,
each item labeled by 5 of them (its true choice 70% of the time), their submissions of
10 items spread over ten hours; the last item is one label short, so that the pool stays
open and nothing but the dashboard runs. Then the owner asks for the dashboard's data
several times; the figures are the time from request to full answer on loopback (server
time and a fraction of a millisecond of HTTP) and the server's CPU seconds per answer.

    python bench/dashboard.py                    # writes bench/results/dashboard.md
    python bench/dashboard.py --items 20000      # another size, printed only
    NBFREEZE_TEST_PG=postgresql+psycopg://... python bench/dashboard.py   # PostgreSQL too
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import nbformat
from client import Person, TornadoConnection, expect
from nbformat import v4
from serving import cpu_seconds, free_port, served
from sqlalchemy import create_engine, insert, text, update
from sqlalchemy.engine import make_url

from runtime.store.database import Annotation, Item, LabelHistory, open_store

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "dashboard.md"
CHOICES = ("cat", "dog", "bird", "fish")
LABELERS, OVERLAP, BATCH = 50, 5, 10
TARGET_SECONDS = 1.0


def build_notebook(path: Path, items: int) -> None:
    cells = [
        v4.new_code_cell(
            "from freezer.widgets import ChoiceLabeler\n"
            f"items = {{f't{{i}}': f'text {{i}}' for i in range({items})}}"
        ),
        v4.new_code_cell(
            f"#| stage: label\n#| input: pool\n#| overlap: {OVERLAP}\n#| batch: {BATCH}\n"
            f"labeler = ChoiceLabeler(items, choices={list(CHOICES)!r})\nlabeler"
        ),
    ]
    nbformat.write(v4.new_notebook(cells=cells), path)


def write_labels(url: str, items: int) -> int:
    """Every item labeled OVERLAP times by distinct labelers, straight into the tables,
    each label with its first row of history as a submission writes it."""
    store = open_store(url)
    try:
        people = [store.add_user(f"labeler {n}").id for n in range(LABELERS)]
        keys = [f'"t{i}"' for i in range(items)]
        start = datetime.now(UTC) - timedelta(hours=10)
        step = timedelta(hours=10) / (items * OVERLAP / BATCH)
        rows, done = [], {}
        for i, key in enumerate(keys):
            for j in range(OVERLAP - (i == items - 1)):  # the last item keeps the pool open
                person = people[(i + j * (LABELERS // OVERLAP)) % LABELERS]
                right = (i * 7 + j * 13) % 10 < 7
                label = CHOICES[i % 4] if right else CHOICES[(i + j + 1) % 4]
                n = done[person] = done.get(person, 0) + 1
                moment = start + step * (n // BATCH) * (LABELERS / OVERLAP)
                rows.append(
                    {
                        "stage": "label",
                        "item_key": key,
                        "user_id": person,
                        "label": label,
                        "request_id": f"{person}-{n // BATCH}",
                        "created_at": moment,
                    }
                )
        history = [
            {
                "stage": row["stage"],
                "item_key": row["item_key"],
                "user_id": row["user_id"],
                "new_label": row["label"],
                "request_id": row["request_id"],
                "changed_at": row["created_at"],
            }
            for row in sorted(rows, key=lambda row: row["created_at"])
        ]
        with store.engine.begin() as connection:
            for chunk in range(0, len(rows), 50_000):
                connection.execute(insert(Annotation), rows[chunk : chunk + 50_000])
                connection.execute(insert(LabelHistory), history[chunk : chunk + 50_000])
            connection.execute(
                update(Item)
                .where(Item.stage == "label", Item.item_key != keys[-1])
                .values(labels=OVERLAP, full=True)
            )
            connection.execute(
                update(Item).where(Item.item_key == keys[-1]).values(labels=OVERLAP - 1)
            )
        return len(rows)
    finally:
        store.dispose()


async def ask(port: int, owner: str, times: int) -> list[float]:
    http = TornadoConnection(port, timeout=600)
    person = Person()
    await person.join(http, owner)
    seconds = []
    for _ in range(times):
        started = time.perf_counter()
        response = expect(await http.get("/api/v1/dashboard", person), 200, "the dashboard")
        seconds.append(time.perf_counter() - started)
    [stage] = [s for s in response.json()["stages"] if s["name"] == "label"]
    if stage["progress"]["labels"] != stage["progress"]["needed"] - 1:
        raise RuntimeError(f"the labels did not all arrive: {stage['progress']}")
    return seconds


def measure(database: str, url: str | None, items: int, work: Path, times: int) -> dict:
    directory = work / database
    directory.mkdir()
    notebook = directory / "pool.ipynb"
    build_notebook(notebook, items)
    port = free_port()
    argv = [sys.executable, "-m", "freezer", "serve", str(notebook), "--port", str(port)]
    if url:
        argv += ["--db", url]
    url = url or f"sqlite:///{directory / 'pool.nbfreeze' / 'app.sqlite'}"
    with served(argv, directory) as server:
        owner = server.token("Owner")
        labels = write_labels(url, items)
        [first] = asyncio.run(ask(port, owner, 1))  # it reads the pool's whole history
        cpu = cpu_seconds(server.process.pid)
        seconds = asyncio.run(ask(port, owner, times))
        cpu = (cpu_seconds(server.process.pid) - cpu) / times
    return {
        "database": database,
        "labels": labels,
        "first": first,
        "median": statistics.median(seconds),
        "worst": max(seconds),
        "cpu": cpu,
    }


def fresh_postgres(base: str) -> tuple[str, Callable[[], None]]:
    url = make_url(base)
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    name = f"nbfreeze_bench_{uuid.uuid4().hex[:8]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return url.set(database=name).render_as_string(hide_password=False), drop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--times", type=int, default=5, help="answers timed per database")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as work:
        results.append(measure("SQLite", None, args.items, Path(work), args.times))
        postgres = os.environ.get("NBFREEZE_TEST_PG")
        if postgres:
            url, drop = fresh_postgres(postgres)
            try:
                results.append(measure("PostgreSQL", url, args.items, Path(work), args.times))
            finally:
                drop()
        else:
            print("NBFREEZE_TEST_PG is not set: PostgreSQL left out")
    lines = [
        f"# The dashboard of a pool of {args.items:,} items × {OVERLAP} labels, "
        f"{LABELERS} labelers",
        "",
        f"`python bench/dashboard.py` on {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}; "
        f"load average {os.getloadavg()[0]:.1f} at the end; {args.times} answers timed "
        f"after a first one, which reads the pool's whole label history (the server keeps "
        f"the labels and reads on from there). Goal: under {TARGET_SECONDS:g} s.",
        "",
        "| database | labels | first answer s | median s | slowest s | server CPU s per answer |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r['database']} | {r['labels']:,} | {r['first']:.3f} | {r['median']:.3f} "
            f"| {r['worst']:.3f} "
            f"| {r['cpu']:.3f} |"
        )
    report = "\n".join(lines) + "\n"
    print(report)
    if args.items == 100_000:
        RESULTS.write_text(report)


if __name__ == "__main__":
    main()
