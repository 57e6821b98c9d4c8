"""Where a server's time went, from py-spy's raw (collapsed) stacks.

`bench/labels.py --profile DIR` records each nbfreeze run with `py-spy record --format
raw`; this summarises a recording: the share of busy samples in each of nbfreeze's own
functions (inclusive), the functions with the most samples of their own, and, below
each handler, how much of it was the database (SQLAlchemy and its driver).

    .venv/bin/python bench/labels_profile.py DIR/SQLite-1-process.txt
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

IDLE = (
    "_worker (concurrent/futures/thread.py",  # a pool thread waiting for work
    "select (selectors.py",  # the event loop waiting for I/O
    "wait (threading.py",
)
OURS = ("runtime/", "freezer/")
DATABASE = ("sqlalchemy/", "psycopg/", "sqlite3", "alembic/")


def _frames(raw: Path) -> list[tuple[list[str], int]]:
    stacks = []
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            frames = stack.split(";")
            if not any(frames[-1].startswith(idle) for idle in IDLE):
                stacks.append((frames, int(count)))
    return stacks


def summary(raw: Path, top: int = 25) -> str:
    stacks = _frames(raw)
    samples = sum(n for _, n in stacks)
    if not samples:
        return f"{raw}: no busy samples"
    own: Counter[str] = Counter()
    ours: Counter[str] = Counter()
    in_db: Counter[str] = Counter()
    for frames, n in stacks:
        own[frames[-1]] += n
        db = any(any(d in f for d in DATABASE) for f in frames)
        for frame in set(frames):
            if any(o in frame for o in OURS):
                ours[frame] += n
                in_db[frame] += n if db else 0
    lines = [f"{samples} busy samples (idle waits left out)", ""]
    lines.append("nbfreeze's functions, inclusive:")
    lines += [
        f"{100 * n / samples:5.1f}%  (database {100 * in_db[f] / samples:4.1f}%)  {f}"
        for f, n in ours.most_common(top)
    ]
    lines += ["", "self:"]
    lines += [f"{100 * n / samples:5.1f}%  {f}" for f, n in own.most_common(top)]
    return "\n".join(lines)


if __name__ == "__main__":
    for path in sys.argv[1:]:
        print(summary(Path(path)))
