"""The floors `bench/labels.py` measures nbfreeze's pooled labeling against.

Run as a subprocess by the bench, in one of two modes:

- `--port P --db URL`: a bare Tornado app whose only handler, `POST /submit`, parses the
  JSON body and inserts one row and commits it, on one connection, in the event loop
  (as nbfreeze's store does): SQLite in WAL mode with `synchronous=NORMAL` (as
  nbfreeze's store sets it), or PostgreSQL through psycopg. No cookies, no XSRF, no
  access log, no ORM. It prints `listening` once it accepts connections.
- `--commit-loop --db URL --seconds S`: single-row INSERT + COMMIT on one connection,
  back to back, for S seconds, no HTTP; prints the count and the seconds as JSON.

    .venv/bin/python bench/labels_floor.py --port 8890 --db sqlite:////tmp/floor.sqlite
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import time
from typing import Any

import tornado.web

TABLE = "CREATE TABLE IF NOT EXISTS floor (id {key}, request_id TEXT UNIQUE, body TEXT)"


def connect(url: str) -> tuple[Any, str]:
    """One connection to the database of `url` (an SQLAlchemy-style URL), and the
    parameter style its driver takes."""
    if url.startswith("sqlite:///"):
        db = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute(TABLE.format(key="INTEGER PRIMARY KEY"))
        return db, "?"
    import psycopg

    db = psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://", 1))
    db.execute(TABLE.format(key="BIGSERIAL PRIMARY KEY"))
    db.commit()
    return db, "%s"


def insert(db: Any, style: str, request_id: str, body: str) -> None:
    if isinstance(db, sqlite3.Connection):
        db.execute("BEGIN IMMEDIATE")  # as nbfreeze's store begins its transactions
    db.execute(
        f"INSERT INTO floor (request_id, body) VALUES ({style}, {style})", (request_id, body)
    )
    db.execute("COMMIT") if isinstance(db, sqlite3.Connection) else db.commit()


def serve(port: int, url: str) -> None:
    db, style = connect(url)

    class Submit(tornado.web.RequestHandler):
        def post(self) -> None:
            body = json.loads(self.request.body)
            insert(db, style, body["request_id"], json.dumps(body["labels"]))
            self.finish({"ok": True})

    async def main() -> None:
        app = tornado.web.Application([(r"/submit", Submit)])
        app.listen(port, address="127.0.0.1")
        print("listening", flush=True)
        await asyncio.Event().wait()

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass


def commit_loop(url: str, seconds: float) -> None:
    db, style = connect(url)
    count = 0
    started = time.perf_counter()
    until = started + seconds
    while time.perf_counter() < until:
        insert(db, style, f"loop-{count}", '{"0": "a"}')
        count += 1
    took = time.perf_counter() - started
    db.close()
    print(json.dumps({"commits": count, "seconds": took}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", required=True, help="sqlite:///PATH or postgresql+psycopg://…")
    parser.add_argument("--port", type=int)
    parser.add_argument("--commit-loop", action="store_true")
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    if args.commit_loop:
        commit_loop(args.db, args.seconds)
    else:
        serve(args.port, args.db)


if __name__ == "__main__":
    main()
