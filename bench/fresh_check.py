"""What the check that a process's shared stages are the database's costs each request.

Every page, API call and socket submit of the staged app first reads the database's
marks of the shared stages (`Store.shared_marks`: the `stage_runs` rows and the owner's
last submission, one statement) and compares them with the marks its pipeline last
caught up with (`Staged.fresh`). This measures that check when nothing changed, which is
what almost every request pays, on SQLite and on PostgreSQL, beside the floor of the
same connection: a bare `SELECT 1`.

The database is filled as a busy app's would be: 20 shared stages recorded in
`stage_runs`, 10 answers of the owner, and 2,000 labelers with 5 answers each (10,000
`submissions` rows), so that the owner's last answer must be found through the index on
`submissions.user_id`, not by luck in a small table. On PostgreSQL the plan of the read
is printed too.

    .venv/bin/python bench/fresh_check.py                 # SQLite only
    .venv/bin/python bench/fresh_check.py --pg postgresql+psycopg://user:pw@host/db
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
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import insert, text  # noqa: E402

from runtime.app.staged import Staged  # noqa: E402
from runtime.server import STORE_THREADS  # noqa: E402
from runtime.store.database import (  # noqa: E402
    _MARKS,
    LABELER,
    OWNER,
    Store,
    Submission,
    User,
    open_store,
)

STAGES = 20
LABELERS = 2000
ANSWERS = 5
CALLS = 3000
RESULTS = Path(__file__).parent / "results" / "fresh_check.md"


def fill(store: Store) -> int:
    """Stages, the owner's answers and the labelers' answers; the owner's id."""
    owner = store.owner().id
    for number in range(STAGES):
        store.set_stage_run(f"stage{number}", "done", f"{number:064d}")
    with store.engine.begin() as connection:
        connection.execute(
            insert(User), [{"name": f"l{i}", "role": LABELER} for i in range(LABELERS)]
        )
        ids = [
            row[0]
            for row in connection.execute(
                text("SELECT id FROM users WHERE role = :r"), {"r": LABELER}
            )
        ]
        rows = [
            {
                "user_id": user,
                "stage": f"each{k}",
                "state": {"": {"value": k}},
                "request_id": str(k),
            }
            for user in ids
            for k in range(ANSWERS)
        ]
        connection.execute(insert(Submission), rows)
    for k in range(10):
        store.submit(owner, f"owner{k}", {"": {"value": k}}, f"o{k}")
    with store.engine.begin() as connection:
        if store.engine.dialect.name == "postgresql":
            connection.execute(text("ANALYZE"))
        assert (
            connection.scalar(text("SELECT role FROM users WHERE id = :i"), {"i": owner}) == OWNER
        )
    return owner


def timed(call, calls: int = CALLS) -> list[float]:
    took = []
    for _ in range(calls):
        started = time.perf_counter()
        call()
        took.append((time.perf_counter() - started) * 1e6)
    return took


def atimed(call, calls: int = CALLS) -> list[float]:
    async def main() -> list[float]:
        took = []
        for _ in range(calls):
            started = time.perf_counter()
            await call()
            took.append((time.perf_counter() - started) * 1e6)
        return took

    return asyncio.run(main())


def summary(took: list[float]) -> str:
    cuts = statistics.quantiles(took, n=100)
    return f"{statistics.median(took):.0f} µs | {cuts[98]:.0f} µs"


def floor(store: Store) -> list[float]:
    """A bare `SELECT 1` over the same kind of connection as the read."""
    if store.engine.dialect.name == "sqlite":

        def once() -> None:
            connection = store.engine.raw_connection()
            try:
                connection.cursor().execute("SELECT 1").fetchall()
            finally:
                connection.close()

        return timed(once)

    def once_pg() -> None:
        with store.reading() as reading:
            reading.execute(text("SELECT 1")).all()

    return timed(once_pg)


def measure(name: str, url: str) -> list[str]:
    store = open_store(url)
    owner = fill(store)
    marks = store.shared_marks(owner)
    assert len(marks) == STAGES + 1
    threads = None if url.startswith("sqlite") else ThreadPoolExecutor(STORE_THREADS)
    # The check as a request makes it, nothing changed: `Staged.fresh` with a pipeline
    # that has caught up with these marks.
    pipeline = SimpleNamespace(started=True, seen=marks)
    staged = Staged(None, store, pipeline, None, live={}, store_calls=threads)  # type: ignore[arg-type]
    staged._owner = owner
    lines = [
        f"| {name} | `Store.shared_marks` | {summary(timed(lambda: store.shared_marks(owner)))} |",
        f"| {name} | `Staged.fresh()`, nothing changed | {summary(atimed(staged.fresh))} |",
        f"| {name} | floor: `SELECT 1` | {summary(floor(store))} |",
    ]
    if store.engine.dialect.name == "postgresql":
        with store.reading() as reading:
            plan = reading.execute(text("EXPLAIN " + _MARKS), {"owner": owner}).scalars().all()
        print("\n".join(plan))
    if threads is not None:
        threads.shutdown()
    store.dispose()
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pg", help="an empty PostgreSQL database to fill and measure")
    args = parser.parse_args()
    lines = ["| database | what | p50 | p99 |", "|---|---|---:|---:|"]
    with tempfile.TemporaryDirectory() as tmp:
        lines += measure("SQLite", f"sqlite:///{tmp}/app.sqlite")
    if args.pg:
        lines += measure("PostgreSQL", args.pg)
    lines += [
        "",
        f"{CALLS} calls each, one after another; {os.cpu_count()} cores, Python "
        f"{platform.python_version()} on {platform.machine()}, Linux {platform.release()}.",
    ]
    table = "\n".join(lines)
    print(table)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(table + "\n")


if __name__ == "__main__":
    main()
