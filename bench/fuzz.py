"""Fuzz the staged app and the compiler at a large count: the test suite's fuzzers
(tests/fuzz_api.py, tests/fuzz_socket.py, tests/fuzz_compiler.py), run as long as it
takes, one process each, side by side. Writes bench/results/fuzz.md.

    nice python bench/fuzz.py                  # 100,020 cases
    nice python bench/fuzz.py --api 2000 --socket 500 --compiler 500 --oversized 2

Each part stops at its first failing case and reports it (hypothesis shrinks it first);
the figures count the cases run, the answers by status, and what the server logged as
an error (nothing, when all is well).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

ROOT = Path(__file__).parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the fuzzers live beside the tests that run them
RESULTS = ROOT / "bench" / "results" / "fuzz.md"


def run_part(part: str, cases: int, oversized: int, db: str | None) -> dict[str, Any]:
    """One fuzzer, in a process of its own: its figures, or the failure it found."""
    from fuzz_live import live_app

    started = time.monotonic()
    found: dict[str, Any] = {"part": part, "cases": 0, "failure": None, "server_errors": 0}
    try:
        if part == "compiler":
            from fuzz_compiler import fuzz_compiler

            with tempfile.TemporaryDirectory() as directory:
                figures = fuzz_compiler(Path(directory), cases, start=2026)
            found |= {"cases": figures.cases, "detail": dict(figures.exits), "by": "exit"}
        else:
            with live_app(db) as app:
                try:
                    if part == "api":
                        from fuzz_api import fuzz_api

                        figures = fuzz_api(app, cases, start=2026)
                        detail = dict(sorted(figures.statuses.items()))
                        found |= {"writes": figures.accepted_writes, "by": "status"}
                    else:
                        from fuzz_socket import fuzz_socket

                        figures = fuzz_socket(app, cases, start=2026, oversized_frames=oversized)
                        detail = dict(figures.kinds)
                        found |= {"refused": figures.refused, "writes": figures.submitted}
                        found |= {"closed": dict(figures.closed), "by": "kind"}
                    found |= {"cases": figures.cases, "detail": detail}
                finally:
                    found["server_errors"] = len(app.errors.records)
                    found["server_log"] = app.errors.lines()[:5]
    except BaseException:  # the part's failing case, reported rather than lost
        found["failure"] = traceback.format_exc()[-4000:]
    found["seconds"] = time.monotonic() - started
    return found


def report(parts: list[dict[str, Any]], wall: float, db: str) -> str:
    total = sum(p["cases"] for p in parts)
    failures = [p for p in parts if p["failure"] or p["server_errors"]]
    lines = [
        "# Fuzzing (bench/fuzz.py)",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}; database: {db}. Wall time {wall:.0f} s, the three "
        "parts side by side.",
        "",
        "| part | cases | s | cases/s | failing case | server errors logged | figures |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for p in parts:
        rate = p["cases"] / p["seconds"] if p["seconds"] else 0
        extra = {k: p[k] for k in ("writes", "refused", "closed") if k in p}
        figures = f"by {p.get('by', '?')}: {p.get('detail', {})}; {extra}"
        lines.append(
            f"| {p['part']} | {p['cases']:,} | {p['seconds']:.0f} | {rate:.0f} | "
            f"{'yes' if p['failure'] else 'none'} | {p['server_errors']} | {figures} |"
        )
    lines += ["", f"Total: {total:,} cases, {len(failures)} part(s) failing.", ""]
    for p in failures:
        lines += [
            f"## {p['part']}: failed",
            "",
            "```",
            p["failure"] or "",
            *p.get("server_log", []),
        ]
        lines += ["```", ""]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--api", type=int, default=60_000, help="JSON API calls")
    parser.add_argument("--socket", type=int, default=20_000, help="WebSocket frames")
    parser.add_argument("--compiler", type=int, default=20_000, help="mutated notebooks")
    parser.add_argument("--oversized", type=int, default=20, help="frames over the limit")
    parser.add_argument("--db", default=None, help="a PostgreSQL URL (default: SQLite)")
    args = parser.parse_args()
    started = time.monotonic()
    jobs = [
        ("api", args.api, 0),
        ("socket", args.socket, args.oversized),
        ("compiler", args.compiler, 0),
    ]
    with multiprocessing.get_context("spawn").Pool(len(jobs)) as pool:
        parts = pool.starmap(run_part, [(*job, args.db) for job in jobs])
    text = report(parts, time.monotonic() - started, "PostgreSQL" if args.db else "SQLite")
    RESULTS.write_text(text)
    print(text)
    return 1 if any(p["failure"] or p["server_errors"] for p in parts) else 0


if __name__ == "__main__":
    sys.exit(main())
