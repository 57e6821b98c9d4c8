"""Pooled labeling in the database: items, leases, annotations.

Work is handed out in batches under leases: an item goes to at most its needed count of
distinct labelers (counting unexpired leases), never twice to the same one. An item's
needed count starts at the pool's least overlap and grows by one, up to the most, each
time its labels reach it tied (two or more labels share the highest count). Gold items
(whose answers the owner knows) go to every labeler once, mixed into their batches at a
rate. An expired lease returns its item to the pool, and a labeler who comes back gets
their unexpired batch again, topped up to a batch. Every change to a label is kept in
`label_history`. On PostgreSQL the candidate items are locked with `FOR UPDATE SKIP
LOCKED`, so processes racing for the last items never hand one out beyond its needed
count; on SQLite one process serves everything and its calls run one at a time.

Handing out a batch and saving one run on the driver's connection with each database's
own SQL (`runtime.store.pool_sql`); the rarer reads (progress, whether a labeler has work)
are SQLAlchemy statements built once, with bound parameters.
"""

from __future__ import annotations

import functools
import json
import math
import random
import uuid
from collections import defaultdict
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, ParamSpec, TypeVar

from sqlalchemy import bindparam, case, exists, func, insert, select, text, update

from runtime.store.database import Annotation, Item, LabelHistory, Lease, Store, now
from runtime.store.pool_sql import GROWS, REFUSED, Disconnected, Transaction, transaction

P = ParamSpec("P")
T = TypeVar("T")
RETRIES = 3
RETRIED_STATES = {"40P01", "40001"}  # deadlock detected, serialization failure
STATISTICS_LOCK = 0x6E626673  # PostgreSQL advisory lock: one process runs ANALYZE at a time
# Spreads a batch's gold items over it (`_slot`; PostgreSQL's `nbfreeze_lease` the same).
GOLD_SPREAD = (2654435761, 40503)


class LabelRefused(ValueError):
    """A label that cannot be saved; the message says which and why."""


@dataclass(frozen=True)
class Progress:
    """How far a pool stage is: its ordinary items (gold ones are not counted), the labels
    given them, the items with all their labels, and the labels all items need (each
    item's needed count: more than the least overlap where labels tied)."""

    items: int
    labels: int
    complete: int
    needed: int

    @property
    def done(self) -> bool:
        return self.items > 0 and self.complete == self.items


@dataclass(frozen=True)
class Saved:
    """What became of a batch: the item keys saved, and those that came too late (their
    lease had expired and others gave the item all its labels meanwhile)."""

    saved: list[str]
    late: list[str]


# Not named after columns: an UPDATE or DELETE may not bind a column's own name.
_STAGE, _USER, _MOMENT = (bindparam(n) for n in ("in_stage", "by_user", "at"))
_LEAST, _MOST = bindparam("least"), bindparam("most")

# What an ordinary item needs once the notebook's overlap is known: its labels, within
# the least and the most (a raised least raises it, a lowered most lowers it); then
# `_GROW_ALL` adds one where those labels tie.
_NEEDED = case((Item.labels < _LEAST, _LEAST), (Item.labels > _MOST, _MOST), else_=Item.labels)
_SET_NEEDED = (  # only the rows whose count changes are written
    update(Item)
    .where(Item.stage == _STAGE, ~Item.gold, Item.needed != _NEEDED)
    .values(needed=_NEEDED)
)
_GROW_ALL = text(f"UPDATE items SET needed = needed + 1 WHERE stage = :in_stage AND {GROWS}")
_FULL = Item.gold | (Item.taken >= Item.needed)
_SET_FULL = update(Item).where(Item.stage == _STAGE, Item.full != _FULL).values(full=_FULL)

_LABELED_BY_USER = exists().where(
    Annotation.stage == Item.stage,
    Annotation.item_key == Item.item_key,
    Annotation.user_id == _USER,
)
_PROGRESS = select(
    func.count(),
    func.coalesce(func.sum(Item.labels), 0),
    func.count().filter(Item.labels >= Item.needed),
    func.coalesce(func.sum(Item.needed), 0),
).where(Item.stage == _STAGE, ~Item.gold)

_LABELED_LEASED_ITEM = exists().where(
    Annotation.stage == Lease.stage,
    Annotation.item_key == Lease.item_key,
    Annotation.user_id == _USER,
)
_HAS_WORK = select(
    exists().where(
        Lease.stage == _STAGE,
        Lease.user_id == _USER,
        ~Lease.reclaimed,
        Lease.expires_at > _MOMENT,
    )
    | exists(
        select(Item.item_key).where(Item.stage == _STAGE, Item.full.is_(False), ~_LABELED_BY_USER)
    )
    | exists().where(  # items held by expired leases: the next lease reclaims them
        Lease.stage == _STAGE,
        ~Lease.reclaimed,
        Lease.expires_at <= _MOMENT,
        ~_LABELED_LEASED_ITEM,
    )
)


# A pool's items go in a chunk per statement, the chunk's keys one JSON array (SQLite)
# or one text[] (PostgreSQL) unpacked by the database: no row object per item on our
# side, and a million items in seconds. Items already known are left as they are.
REGISTER_CHUNK = 50_000
_REGISTER = {
    "sqlite": text(
        'INSERT INTO items (stage, item_key, position, labels, taken, "full", needed, gold) '
        "SELECT :in_stage, value, :start + key, 0, 0, false, :least, false "
        "FROM json_each(:keys) WHERE true ON CONFLICT DO NOTHING"
    ),
    "postgresql": text(
        'INSERT INTO items (stage, item_key, position, labels, taken, "full", needed, gold) '
        "SELECT :in_stage, k, :start + n - 1, 0, 0, false, :least, false "
        "FROM unnest(CAST(:keys AS text[])) WITH ORDINALITY AS t(k, n) ON CONFLICT DO NOTHING"
    ),
}
# Items that become gold, or stop being gold, with their counters counted again (a gold
# item keeps none).
_IS_GOLD = {
    "sqlite": "item_key IN (SELECT value FROM json_each(:gold))",
    "postgresql": "item_key = ANY(CAST(:gold AS text[]))",
}
_SET_GOLD = {
    dialect: text(
        f"UPDATE items SET gold = {is_gold}, labels = (SELECT count(*) FROM annotations a "
        "  WHERE a.stage = items.stage AND a.item_key = items.item_key), "
        "taken = (SELECT count(*) FROM annotations a "
        "  WHERE a.stage = items.stage AND a.item_key = items.item_key) "
        "+ (SELECT count(*) FROM leases l WHERE l.stage = items.stage "
        "  AND l.item_key = items.item_key AND NOT l.reclaimed) "
        f"WHERE stage = :in_stage AND gold <> ({is_gold})"
    )
    for dialect, is_gold in _IS_GOLD.items()
}


def register_items(
    store: Store,
    stage: str,
    keys: list[str],
    *,
    overlap: tuple[int, int],
    gold: Collection[str] = (),
) -> None:
    """Record a pool stage's items (keys in order); items already known keep their labels.
    `overlap` is (least, most): each new item needs `least` labels. Items already known
    get the needed count their labels call for under this overlap, which the notebook may
    have changed since they were registered: their labels within least..most, one more
    where those tie. The items of `gold` are gold items, the others not."""
    least, most = overlap
    with store.engine.begin() as connection:
        dialect = connection.dialect.name
        # Several processes register the same items as they start: the first wins.
        for start in range(0, len(keys), REGISTER_CHUNK):
            chunk = keys[start : start + REGISTER_CHUNK]
            values = json.dumps(chunk) if dialect == "sqlite" else chunk
            connection.execute(
                _REGISTER[dialect],
                {"in_stage": stage, "start": start, "keys": values, "least": least},
            )
        marked = json.dumps(sorted(gold)) if dialect == "sqlite" else sorted(gold)
        connection.execute(_SET_GOLD[dialect], {"in_stage": stage, "gold": marked})
        bounds = {"in_stage": stage, "least": least, "most": most}
        connection.execute(_SET_NEEDED, bounds)
        connection.execute(_GROW_ALL, bounds)
        connection.execute(_SET_FULL, {"in_stage": stage})
    refresh_statistics(store)


_GOLD_KEYS = select(Item.item_key).where(Item.stage == _STAGE, Item.gold).order_by(Item.position)


def gold_keys(store: Store, stage: str) -> list[str]:
    """The keys of the pool's gold items, in the pool's order."""
    with store.reading() as connection:
        return list(connection.scalars(_GOLD_KEYS, {"in_stage": stage}))


_GOLD_POSITIONS = select(Item.item_key, Item.position).where(Item.stage == _STAGE, Item.gold)


def gold_positions(store: Store, stage: str) -> dict[str, int]:
    """Each gold item's position in the pool, by key: how the label arrays of the
    dashboard (`label_figures.PoolLabels.item`) name it. One lookup of the gold index."""
    with store.reading() as connection:
        rows = connection.execute(_GOLD_POSITIONS, {"in_stage": stage})
        return {key: position for key, position in rows}


def refresh_statistics(store: Store) -> None:
    """Have PostgreSQL look at the pool tables again once a pool's items are in: with
    the statistics of an empty items table, the planner sorts every open item instead
    of reading the index in order. One process looks at a time (processes register
    their items as they start, and concurrent ANALYZEs of a table can fail each other)."""
    if store.engine.dialect.name == "postgresql":
        with store.engine.begin() as connection:
            locked = connection.scalar(
                text("SELECT pg_try_advisory_xact_lock(:lock)"), {"lock": STATISTICS_LOCK}
            )
            if locked:
                connection.exec_driver_sql("ANALYZE items, leases, annotations")


def _count(db: Transaction, stage: str, changes: dict[str, tuple[int, int]]) -> None:
    """Apply (labels, taken) changes to items' counters (gold items keep none): one
    statement per kind of change."""
    by_change: dict[tuple[int, int], list[str]] = defaultdict(list)
    for key, change in changes.items():
        if change != (0, 0):
            by_change[change].append(key)
    for (labels, taken), keys in sorted(by_change.items()):
        db.run(
            "count",
            stage=stage,
            keys=db.keys(keys),
            labels=labels,
            taken=taken,
        )


def _released(keys: Any) -> dict[str, tuple[int, int]]:
    """The counter changes for lease rows of `keys` that stop holding their items."""
    changes: dict[str, tuple[int, int]] = {}
    for key in keys:
        changes[key] = (0, changes.get(key, (0, 0))[1] - 1)
    return changes


def _reclaim(db: Transaction, stage: str, at: Any) -> bool:
    """Return the items of leases expired `at` (`db.moment`) to the pool; say whether
    there were any."""
    expired = [key for (key,) in db.rows("reclaim", stage=stage, at=at)]
    _count(db, stage, _released(expired))
    return bool(expired)


def _sqlstate(error: BaseException) -> str | None:
    return getattr(error, "sqlstate", None) or getattr(
        getattr(error, "orig", None), "sqlstate", None
    )


def _retried(call: Callable[P, T]) -> Callable[P, T]:
    """Run a pool transaction again when PostgreSQL aborts it as a deadlock victim or a
    serialization failure, or when its connection broke (PostgreSQL restarted, say).
    Processes lock items in one order, but a lease being reclaimed while its labeler
    submits late can still close a cycle; the retry sees the other transaction's
    outcome, and nothing of the aborted one was written. A save whose connection broke
    after its commit is recognised by its request id, and a lease by the labeler's
    unexpired batch."""

    def again(error: Exception) -> bool:
        return isinstance(error, Disconnected) or _sqlstate(error) in RETRIED_STATES

    @functools.wraps(call)
    def retrying(*args: P.args, **kwargs: P.kwargs) -> T:
        for _ in range(RETRIES - 1):
            try:
                return call(*args, **kwargs)
            except Exception as error:
                if not again(error):
                    raise
        return call(*args, **kwargs)

    return retrying


Work = Callable[[Transaction], T]


@_retried
def in_transaction(store: Store, work: Work[T]) -> T:
    """Run `work` (from `leasing`, `saving`, `saving_and_leasing`) in a transaction of
    its own, committed before this returns."""
    try:
        with transaction(store.pool_engine) as db:
            return work(db)
    except Exception as error:
        if _sqlstate(error) == REFUSED:  # PostgreSQL's `nbfreeze_save` refused a label
            raise LabelRefused(error.diag.message_primary) from None  # type: ignore[attr-defined]
        raise


@dataclass(frozen=True)
class _Lease:
    """How a pool hands out work: batch size, lease length, the share of gold items."""

    batch: int
    seconds: int
    gold_rate: float

    def moments(self, db: Transaction) -> dict[str, Any]:
        moment = now()
        expires = moment + timedelta(seconds=self.seconds)
        return {"at": db.moment(moment), "expires": db.moment(expires)}

    def gold(self, wanted: int) -> int:
        """How many of `wanted` new items are to be gold: the rate's share, its fraction
        rounded up by chance (as PostgreSQL's `nbfreeze_lease` does), so that a batch of 4
        at a rate of 0.1 has a gold item one time in 2.5 and the rate holds on average;
        leaving one ordinary item at least, since gold items come only with ordinary
        ones."""
        share = math.floor(self.gold_rate * wanted + random.random())
        return max(0, min(share, wanted - 1))


def leasing(
    stage: str, user_id: int, *, batch: int, lease_seconds: int, gold_rate: float = 0.0
) -> Work[list[str]]:
    """The labeler's batch: their unexpired leases, renewed for another `lease_seconds`
    and topped up to `batch` with new items (held ones first, then new ones, each in the
    batch's order). Of the new items about `gold_rate` are gold items the labeler has not
    labeled (fewer when none are left), at places in the batch that depend on the items
    and the labeler, the rest ordinary items; gold items come only with ordinary ones.
    Expired leases are reclaimed when the open items run short of a batch."""
    how = _Lease(batch, lease_seconds, gold_rate)

    def lease(db: Transaction) -> list[str]:
        if db.dialect == "sqlite":
            return _lease(db, stage, user_id, how)
        [(keys,)] = db.rows(
            "lease", stage=stage, user=user_id, batch=batch, gold_rate=gold_rate, **how.moments(db)
        )
        return keys

    return lease


def saving(
    stage: str,
    user_id: int,
    labels: dict[str, str],
    request_id: str,
    *,
    choices: tuple[str, ...],
    overlap_max: int,
) -> Work[Saved]:
    """Save a batch's labels once per request id; say which were saved, and which came
    too late.

    A label must be one of `choices`, for an item leased to this labeler (or one they
    labeled before: a change of mind while the stage is open). Nothing is written when
    any label is refused. A label for an item whose lease expired and which others have
    meanwhile given all its needed labels is dropped: no item gets more. An item whose
    labels reach its needed count tied needs one more, up to `overlap_max`."""

    def save(db: Transaction) -> Saved:
        _check_choices(labels, choices)
        if db.dialect == "sqlite":
            return _save(db, stage, user_id, labels, request_id, overlap_max)
        [(saved, late)] = db.rows(
            "save",
            stage=stage,
            user=user_id,
            request=request_id,
            overlap=overlap_max,
            at=db.moment(now()),
            **db.labels(labels),
        )
        return Saved(sorted(saved), sorted(late))

    return save


def saving_and_leasing(
    stage: str,
    user_id: int,
    labels: dict[str, str],
    request_id: str,
    *,
    choices: tuple[str, ...],
    overlap_max: int,
    batch: int,
    lease_seconds: int,
    gold_rate: float = 0.0,
) -> Work[tuple[Saved, list[str]]]:
    """`saving`, then `leasing`, in one transaction: a labeler's next batch comes with
    the acknowledgement of the last one, for one commit (on PostgreSQL, one call)."""
    save = saving(stage, user_id, labels, request_id, choices=choices, overlap_max=overlap_max)
    lease = leasing(stage, user_id, batch=batch, lease_seconds=lease_seconds, gold_rate=gold_rate)
    how = _Lease(batch, lease_seconds, gold_rate)

    def submit(db: Transaction) -> tuple[Saved, list[str]]:
        if db.dialect == "sqlite":
            return save(db), lease(db)
        _check_choices(labels, choices)
        [(saved, late, keys)] = db.rows(
            "submit",
            stage=stage,
            user=user_id,
            request=request_id,
            overlap=overlap_max,
            batch=batch,
            gold_rate=gold_rate,
            **how.moments(db),
            **db.labels(labels),
        )
        return Saved(sorted(saved), sorted(late)), keys

    return submit


def lease_batch(
    store: Store,
    stage: str,
    user_id: int,
    *,
    batch: int,
    lease_seconds: int,
    gold_rate: float = 0.0,
) -> list[str]:
    """`leasing` in a transaction of its own."""
    how = {"batch": batch, "lease_seconds": lease_seconds, "gold_rate": gold_rate}
    return in_transaction(store, leasing(stage, user_id, **how))


def save_labels(
    store: Store,
    stage: str,
    user_id: int,
    labels: dict[str, str],
    request_id: str,
    *,
    choices: tuple[str, ...],
    overlap_max: int,
) -> Saved:
    """`saving` in a transaction of its own."""
    how = {"choices": choices, "overlap_max": overlap_max}
    return in_transaction(store, saving(stage, user_id, labels, request_id, **how))


def _slot(position: int, user_id: int, ordinary: int) -> int:
    """Where a gold item goes among a batch's `ordinary` new items: before the item of
    that index (after the last at `ordinary`), the same for the same item and labeler."""
    spread, by_user = GOLD_SPREAD
    return (position * spread + user_id * by_user) % (ordinary + 1)


def _lease(db: Transaction, stage: str, user_id: int, how: _Lease) -> list[str]:
    """`leasing` on SQLite, statement by statement (PostgreSQL's `nbfreeze_lease`).

    A batch's order is its leases' `place`: new ordinary items at odd places after the
    held ones, in the pool's order, gold items at even places among them."""
    times = how.moments(db)
    who = {"stage": stage, "user": user_id}
    expires = times["expires"]
    mine = db.rows("mine", **who, at=times["at"])
    live = [(key, place) for key, reclaimed, alive, place in mine if alive and not reclaimed]
    held = [key for key, _ in live]
    if held:
        db.run("renew", **who, **times)
    wanted = how.batch - len(held)
    if wanted <= 0:
        return held
    base = max((place for _, place in live), default=-1) + 1
    gold = db.rows("gold", **who, batch=how.gold(wanted)) if how.gold(wanted) else []
    target = wanted - len(gold)
    # Chosen before the labeler's expired leases go: those items are not theirs again.
    opened = db.rows("open", **who, batch=target)
    if len(mine) > len(live):  # their expired leases: those items go back to the pool
        db.run("drop_stale", **who, at=times["at"])
        _count(
            db,
            stage,
            _released(k for k, reclaimed, alive, _ in mine if not alive and not reclaimed),
        )
    taken = _take(db, stage, user_id, expires, opened, base + 1)
    if len(taken) < target and _reclaim(db, stage, times["at"]):
        more = db.rows("open", **who, batch=target - len(taken))
        taken += _take(db, stage, user_id, expires, more, base + 1 + 2 * len(taken))
    if taken and gold:
        places = {key: base + 2 * _slot(position, user_id, target) for key, position in gold}
        db.run("lease", **who, expires=expires, places=db.places(places))
        taken += [(key, places[key], position) for key, position in gold]
    return held + [key for key, _, _ in sorted(taken, key=lambda row: row[1:])]


def _take(
    db: Transaction,
    stage: str,
    user_id: int,
    expires: Any,
    opened: list[tuple[Any, ...]],
    first: int,
) -> list[tuple[str, int, int]]:
    """Lease the open items found (key, position) to the labeler at every other place
    from `first`; return them (key, place, position)."""
    taken = [(key, first + 2 * n, position) for n, (key, position) in enumerate(opened)]
    if taken:
        places = {key: place for key, place, _ in taken}
        db.run("lease", stage=stage, user=user_id, expires=expires, places=db.places(places))
        _count(db, stage, dict.fromkeys(places, (0, 1)))
    return taken


def _check_choices(labels: dict[str, str], choices: tuple[str, ...]) -> None:
    for key, label in labels.items():
        if label not in choices:
            raise LabelRefused(
                f"{label!r} for item {key} is not one of the choices {list(choices)}"
            )


def _save(
    db: Transaction,
    stage: str,
    user_id: int,
    labels: dict[str, str],
    request_id: str,
    overlap_max: int,
) -> Saved:
    """`saving` on SQLite, statement by statement (PostgreSQL's `nbfreeze_save`)."""
    submitted = list(labels)
    who = {"stage": stage, "user": user_id}
    keys = db.keys(submitted)
    if not db.rows("request", **who, request=request_id):  # a retry of a saved submission
        return Saved(sorted(key for (key,) in db.rows("seen", **who, request=request_id)), [])
    # Every submitted item leaves the batch, a late one too: the labeler moves on. A
    # lease that expired while its labeler worked may have let others fill the item;
    # such a late label is dropped.
    dropped = db.rows("drop_keys", **who, keys=keys)
    leased = {key for key, _ in dropped}
    earlier = {key for (key,) in db.rows("earlier", **who, keys=keys)} - leased
    for key in submitted:
        if key not in leased and key not in earlier:
            raise LabelRefused(f"item {key} is not in your batch of this stage")
    counts = {
        key: (given, needed, gold)
        for key, given, needed, gold in db.rows("given", stage=stage, keys=keys)
    }
    open_items = {key for key, (given, needed, gold) in counts.items() if gold or given < needed}
    changes = _released(key for key, reclaimed in dropped if not reclaimed)
    kept = {k: v for k, v in labels.items() if k in earlier or k in open_items}
    for key in kept:
        if key not in earlier:
            changes[key] = (1, changes.get(key, (0, 0))[1] + 1)
    _count(db, stage, changes)
    moment = db.moment(now())
    written = {**who, "request": request_id, "at": moment}
    relabeled = [{**written, "key": k, "label": kept[k]} for k in sorted(earlier & set(kept))]
    if relabeled:
        db.run("history", **written, **db.labels({k: kept[k] for k in earlier & set(kept)}))
        db.many("relabel", relabeled)
    new = {key: label for key, label in kept.items() if key not in earlier}
    if new:
        db.run("label", **written, **db.labels(new))
        db.run("first", **written, **db.labels(new))
    # Only items this save brings up to a needed count below the most can grow: with a
    # fixed overlap, none, and no statement.
    growing = []
    for key in kept:
        given, needed, gold = counts[key]
        if not gold and needed < overlap_max and given + (key not in earlier) >= needed:
            growing.append(key)
    if growing:
        db.run("grow", stage=stage, keys=db.keys(sorted(growing)), most=overlap_max)
    return Saved(sorted(kept), sorted(set(submitted) - set(kept)))


_LATEST = (
    select(Annotation.request_id)
    .where(Annotation.stage == _STAGE, Annotation.user_id == _USER)
    .order_by(Annotation.created_at.desc())
    .limit(1)
)
_LABELS_OF_REQUEST = select(Annotation.item_key, Annotation.label).where(
    Annotation.stage == _STAGE, Annotation.user_id == _USER, Annotation.request_id == bindparam("r")
)


_LABELS_OF_USER = select(Annotation.item_key, Annotation.label).where(
    Annotation.stage == _STAGE, Annotation.user_id == _USER
)


def labels_of(store: Store, stage: str, user_id: int) -> dict[str, str]:
    """Every label the labeler gave in this stage, by item key."""
    with store.reading() as connection:
        who = {"in_stage": stage, "by_user": user_id}
        return dict(connection.execute(_LABELS_OF_USER, who).all())


def last_batch(store: Store, stage: str, user_id: int) -> dict[str, str]:
    """The labels of the labeler's most recent submission of this stage, by item key."""
    who = {"in_stage": stage, "by_user": user_id}
    with store.reading() as connection:
        latest = connection.scalar(_LATEST, who)
        if latest is None:
            return {}
        return dict(connection.execute(_LABELS_OF_REQUEST, who | {"r": latest}).all())


def progress(store: Store, stage: str) -> Progress:
    """How far the pool is: an item is complete once its labels reach its needed count."""
    with store.reading() as connection:
        items, labels, complete, needed = connection.execute(_PROGRESS, {"in_stage": stage}).one()
    return Progress(items, labels, complete, needed)


_LABELED_BY = select(func.count()).where(Annotation.stage == _STAGE, Annotation.user_id == _USER)


def labeled_by(store: Store, stage: str, user_id: int) -> int:
    """How many items of the pool stage the labeler has labeled (one index range)."""
    with store.reading() as connection:
        return connection.scalar(_LABELED_BY, {"in_stage": stage, "by_user": user_id}) or 0


def has_work(store: Store, stage: str, user_id: int) -> bool:
    """Could the labeler get (or do they hold) items of this pool now? Items held by an
    expired lease count: the next lease reclaims them."""
    with store.reading() as connection:
        return bool(
            connection.scalar(_HAS_WORK, {"in_stage": stage, "by_user": user_id, "at": now()})
        )


@dataclass(frozen=True)
class Row:
    """One raw annotation: which item, who, what label, when."""

    item_key: str
    user_id: int
    label: str
    created_at: datetime


def annotations(store: Store, stage: str) -> list[Row]:
    with store.reading() as connection:
        rows = connection.execute(
            select(Annotation.item_key, Annotation.user_id, Annotation.label, Annotation.created_at)
            .where(Annotation.stage == stage)
            .order_by(Annotation.created_at, Annotation.item_key)
        ).all()
    return [Row(*row) for row in rows]


def labels_by_item(rows: list[Row]) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = defaultdict(list)
    for row in rows:
        grouped[row.item_key].append(row.label)
    return dict(grouped)


@dataclass(frozen=True)
class Change:
    """One change to a label: who changed which item's label from what (None for a first
    label) to what, in which request, when."""

    item_key: str
    user_id: int
    old_label: str | None
    new_label: str
    request_id: str
    changed_at: datetime


_HISTORY = select(
    LabelHistory.item_key,
    LabelHistory.user_id,
    LabelHistory.old_label,
    LabelHistory.new_label,
    LabelHistory.request_id,
    LabelHistory.changed_at,
).order_by(LabelHistory.id)


def history(store: Store, stage: str, item_key: str | None = None) -> list[Change]:
    """Every change to the labels of the pool (or of one item of it), oldest first."""
    query = _HISTORY.where(LabelHistory.stage == stage)
    if item_key is not None:
        query = query.where(LabelHistory.item_key == item_key)
    with store.reading() as connection:
        return [Change(*row) for row in connection.execute(query)]


def restore(store: Store, stage: str, item_key: str, user_id: int, label: str) -> Change:
    """Put back an earlier answer of a labeler's to an item (the owner's correction of a
    change of mind), recorded in the history as a change of its own. Refused, with
    nothing written, unless the labeler labeled the item and `label` was one of their
    answers to it. An item's needed count stays as it is."""
    mine = (
        Annotation.stage == stage,
        Annotation.item_key == item_key,
        Annotation.user_id == user_id,
    )
    with store.engine.begin() as connection:
        current = connection.scalar(select(Annotation.label).where(*mine))
        if current is None:
            raise LabelRefused(
                f"labeler {user_id} has not labeled item {item_key} of stage {stage}"
            )
        answers = connection.scalars(
            select(LabelHistory.new_label).where(
                LabelHistory.stage == stage,
                LabelHistory.item_key == item_key,
                LabelHistory.user_id == user_id,
            )
        ).all()
        if label not in answers:
            raise LabelRefused(
                f"{label!r} was never the answer of labeler {user_id} to item {item_key} "
                f"of stage {stage}; their answers were {sorted(set(answers))}"
            )
        change = Change(item_key, user_id, current, label, f"restore-{uuid.uuid4().hex}", now())
        connection.execute(
            update(Annotation)
            .where(*mine)
            .values(label=label, request_id=change.request_id, created_at=change.changed_at)
        )
        connection.execute(insert(LabelHistory).values(stage=stage, **vars(change)))
    return change
