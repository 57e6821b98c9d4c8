"""A pool's labels kept in memory by each process, brought up to date from the history.

The owner's dashboard reads every label of a pool every few seconds; reading 500,000 of
them each time takes seconds. Every change to a label (a first label, a change of mind,
the owner's restore) appends a row to `label_history` with a higher id, so each process
keeps the arrays of the pools it has read and reads only the rows after the last id it
saw: a label is its labeler's latest answer in the history, its moment when they gave it
(a batch sent again with an answer unchanged does not move it).

An id is taken when a row is written, not when its transaction commits, so on PostgreSQL
another process may commit a lower id after a higher one was read. A count of the pool's
history rows up to the last id read (an aggregate over an index) says whether any were
missed; if so, the ids are read back from where the counts agree and the missing rows
applied, the higher id winning for a labeler's label of an item.
"""

from __future__ import annotations

import threading
import weakref
from typing import Any

import numpy as np
from sqlalchemy import text

from runtime.store.database import Store
from runtime.store.label_figures import PoolLabels

# SQLite would walk every row of the stage in its index of (stage, item_key): NOT INDEXED
# makes it take the id range alone.
_FROM = {"sqlite": "label_history h NOT INDEXED", "postgresql": "label_history h"}
_MOMENT = {
    "sqlite": "(julianday(h.changed_at) - 2440587.5) * 86400.0",
    "postgresql": "extract(epoch FROM h.changed_at)::float8",
}
_ROWS = (
    "SELECT h.id, i.position, h.user_id, h.new_label, {moment} FROM {table} "
    "LEFT JOIN items i ON i.stage = h.stage AND i.item_key = h.item_key "
    "WHERE h.stage = :stage AND h.id > :after AND h.id <= :upto ORDER BY h.id"
)
_COUNT = text("SELECT count(*) FROM label_history WHERE stage = :stage AND id <= :upto")
_IDS = text("SELECT id FROM label_history WHERE stage = :stage AND id > :after AND id <= :upto")
_EMPTY = np.zeros(0, dtype=np.int64)
_LAST = 2**62  # above any id


class _Pool:
    """One pool's labels, one entry per (item, labeler), sorted by item then labeler:
    the key (position << 32 | labeler), the label's index into `values`, its moment, and
    the id of the history row that set it; and the ids of every history row applied."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        self.key = _EMPTY
        self.label = _EMPTY
        self.at = np.zeros(0)
        self.change = _EMPTY
        self.values: dict[str, int] = {}
        self.seen = _EMPTY  # sorted
        self.upto = 0

    def apply(self, rows: list[tuple[Any, ...]]) -> None:
        """Apply history rows (id, position, labeler, label, seconds); a row of an item
        the pool no longer has (no position) is counted as seen and kept out."""
        if not rows:
            return
        ids = np.fromiter((row[0] for row in rows), dtype=np.int64, count=len(rows))
        in_order = len(self.seen) == 0 or ids.min() > self.seen[-1]
        self.seen = np.concatenate((self.seen, ids)) if in_order else np.union1d(self.seen, ids)
        rows = [row for row in rows if row[1] is not None]
        if not rows:
            return
        change, position, labeler, label, at = (
            np.asarray([row[n] for row in rows], dtype=dtype)
            for n, dtype in enumerate((np.int64, np.int64, np.int64, object, np.float64))
        )
        for value in label:
            if value not in self.values:
                self.values[value] = len(self.values)
        label = np.fromiter(map(self.values.__getitem__, label), dtype=np.int64, count=len(rows))
        key = (position << 32) | labeler
        # Per key, the row of the highest id.
        order = np.lexsort((-change, key))
        first = np.r_[True, key[order][1:] != key[order][:-1]]
        pick = order[first]
        key, label, at, change = key[pick], label[pick], at[pick], change[pick]
        slot = np.searchsorted(self.key, key)
        known = slot < len(self.key)
        known[known] = self.key[slot[known]] == key[known]
        newer = known.copy()
        newer[known] = self.change[slot[known]] < change[known]
        self.label[slot[newer]] = label[newer]
        self.at[slot[newer]] = at[newer]
        self.change[slot[newer]] = change[newer]
        fresh = ~known
        where = slot[fresh]
        self.key = np.insert(self.key, where, key[fresh])
        self.label = np.insert(self.label, where, label[fresh])
        self.at = np.insert(self.at, where, at[fresh])
        self.change = np.insert(self.change, where, change[fresh])

    def labels(self, order: tuple[str, ...]) -> PoolLabels:
        """A copy as PoolLabels, the labels in `order` first."""
        values = list(order) + [v for v in self.values if v not in order]
        index = {value: n for n, value in enumerate(values)}
        remap = np.zeros(len(self.values), dtype=np.int64)
        for value, n in self.values.items():
            remap[n] = index[value]
        return PoolLabels(
            self.key >> 32,
            self.key & 0xFFFFFFFF,
            remap[self.label],
            self.at.copy(),
            tuple(values),
        )


_POOLS: weakref.WeakKeyDictionary[Store, dict[str, _Pool]] = weakref.WeakKeyDictionary()
_POOLS_LOCK = threading.Lock()


def read_labels(store: Store, stage: str, order: tuple[str, ...] = ()) -> PoolLabels:
    """A pool stage's labels as arrays, as of now: the first call of a process reads the
    whole history of the pool in one query, later ones the rows written since."""
    with _POOLS_LOCK:
        pool = _POOLS.setdefault(store, {}).setdefault(stage, _Pool())
    with pool.lock, store.reading() as connection:
        dialect = connection.dialect.name
        rows = text(_ROWS.format(moment=_MOMENT[dialect], table=_FROM[dialect]))
        _read_after(connection, rows, pool, stage)
        counted = connection.scalar(_COUNT, {"stage": stage, "upto": pool.upto})
        if counted < len(pool.seen):  # not the history read before (a new database)
            pool.reset()
            _read_after(connection, rows, pool, stage)
        elif counted > len(pool.seen):
            _catch_up(connection, rows, pool, stage)
        return pool.labels(order)


def _read_after(connection: Any, rows: Any, pool: _Pool, stage: str) -> None:
    new = connection.execute(rows, _span(stage, pool.upto, _LAST)).all()
    pool.apply(new)
    if new:
        pool.upto = max(pool.upto, new[-1][0])


def _catch_up(connection: Any, rows: Any, pool: _Pool, stage: str) -> None:
    """Apply the rows committed after a higher id was read: find the last id up to which
    the database's count and the applied count agree, doubling the span looked back."""
    span, after = 1024, pool.upto
    while after > 0:
        after = max(0, pool.upto - span)
        applied = int(np.searchsorted(pool.seen, after, side="right"))
        if connection.scalar(_COUNT, {"stage": stage, "upto": after}) == applied:
            break
        span *= 2
    found = connection.scalars(_IDS, _span(stage, after, pool.upto)).all()
    missed = np.setdiff1d(np.asarray(found, dtype=np.int64), pool.seen)
    if len(missed):
        late = connection.execute(rows, _span(stage, int(missed[0]) - 1, int(missed[-1]))).all()
        wanted = set(missed.tolist())
        pool.apply([row for row in late if row[0] in wanted])


def _span(stage: str, after: int, upto: int) -> dict[str, Any]:
    return {"stage": stage, "after": after, "upto": upto}
