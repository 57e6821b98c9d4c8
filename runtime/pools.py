"""Pooled labeling in the database: items, leases, annotations.

Work is handed out in batches under leases: an item goes to at most `overlap` distinct
labelers (counting unexpired leases), never twice to the same one; an expired lease
returns its item to the pool, and a labeler who comes back gets their unexpired batch
again. On PostgreSQL the candidate items are locked with `FOR UPDATE SKIP LOCKED`, so
processes racing for the last items never hand one out beyond its overlap; on SQLite
one process serves everything and its calls run one at a time.

The statements are built once, with bound parameters: labeling runs them hundreds of
times a second, and SQLAlchemy then reuses their compiled form without rebuilding them.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, ParamSpec, TypeVar

from sqlalchemy import Connection, and_, bindparam, delete, exists, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import OperationalError

from runtime.store import Annotation, Item, Lease, Store, now

P = ParamSpec("P")
T = TypeVar("T")
RETRIES = 3
RETRIED_STATES = {"40P01", "40001"}  # deadlock detected, serialization failure
RECLAIM_LOCK = 0x6E626672  # PostgreSQL advisory lock: one process reclaims leases at a time


class LabelRefused(ValueError):
    """A label that cannot be saved; the message says which and why."""


@dataclass(frozen=True)
class Progress:
    """How far a pool stage is: items, labels given, and items with all their labels."""

    items: int
    labels: int
    complete: int
    overlap: int

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
_STAGE, _USER, _MOMENT, _OVERLAP = (bindparam(n) for n in ("in_stage", "by_user", "at", "needed"))
_KEYS = bindparam("keys", expanding=True)

_ITEM_KEYS = select(Item.item_key).where(Item.stage == _STAGE)
_SET_FULL = update(Item).where(Item.stage == _STAGE).values(full=Item.taken >= _OVERLAP)

# The next open items: read in order from the (stage, full, position) index, skipping
# those the labeler has labeled already.
_LABELED_BY_USER = exists().where(
    Annotation.stage == Item.stage,
    Annotation.item_key == Item.item_key,
    Annotation.user_id == _USER,
)
_OPEN = (
    select(Item.item_key)
    .where(Item.stage == _STAGE, Item.full.is_(False), ~_LABELED_BY_USER)
    .order_by(Item.position)
    .limit(bindparam("batch"))
)
# Locked candidates are being leased by another process: take the next ones. A candidate
# another process filled after this snapshot is re-checked by PostgreSQL against its
# newest row when it is locked, so `full` holds.
_OPEN_SKIP_LOCKED = _OPEN.with_for_update(skip_locked=True, of=Item)

_COUNT = (
    update(Item)
    .where(Item.stage == bindparam("s"), Item.item_key == bindparam("k"))
    .values(
        labels=Item.labels + bindparam("dl"),
        taken=Item.taken + bindparam("dt"),
        full=Item.taken + bindparam("dt") >= bindparam("o"),
    )
)
_MINE = (
    select(Lease.item_key, Lease.reclaimed, Lease.expires_at > _MOMENT)
    .join(Item, and_(Item.stage == Lease.stage, Item.item_key == Lease.item_key))
    .where(Lease.stage == _STAGE, Lease.user_id == _USER)
    .order_by(Item.position)
)
_RECLAIM_LOCK = select(func.pg_try_advisory_xact_lock(RECLAIM_LOCK))
_RECLAIM = (
    update(Lease)
    .where(Lease.stage == _STAGE, Lease.reclaimed.is_(False), Lease.expires_at <= _MOMENT)
    .values(reclaimed=True)
    .returning(Lease.item_key)
)
_DROP = delete(Lease).where(Lease.stage == _STAGE, Lease.user_id == _USER)
_DROP_ALL = _DROP.returning(Lease.item_key, Lease.reclaimed)
_DROP_KEYS = _DROP.where(Lease.item_key.in_(_KEYS)).returning(Lease.item_key, Lease.reclaimed)
_INSERT_LEASES = insert(Lease)

_SEEN = select(exists().where(Annotation.request_id == bindparam("request")))
_SAVED_BY = select(Annotation.item_key).where(Annotation.request_id == bindparam("request"))
_EARLIER = select(Annotation.item_key).where(
    Annotation.stage == _STAGE, Annotation.user_id == _USER, Annotation.item_key.in_(_KEYS)
)
_GIVEN = (
    select(Item.item_key, Item.labels)
    .where(Item.stage == _STAGE, Item.item_key.in_(_KEYS))
    .order_by(Item.item_key)
)
_GIVEN_LOCKED = _GIVEN.with_for_update()
_RELABEL = (
    update(Annotation)
    .where(
        Annotation.stage == bindparam("s"),
        Annotation.item_key == bindparam("k"),
        Annotation.user_id == bindparam("u"),
    )
    .values(label=bindparam("l"), request_id=bindparam("r"), created_at=bindparam("t"))
)
_INSERT_LABELS = insert(Annotation)

_PROGRESS = select(
    func.count(),
    func.coalesce(func.sum(Item.labels), 0),
    func.count().filter(Item.labels >= _OVERLAP),
).where(Item.stage == _STAGE)

_LABELED_LEASED_ITEM = exists().where(
    Annotation.stage == Lease.stage,
    Annotation.item_key == Lease.item_key,
    Annotation.user_id == _USER,
)
_HAS_WORK = select(
    exists().where(
        Lease.stage == _STAGE,
        Lease.user_id == _USER,
        Lease.reclaimed.is_(False),
        Lease.expires_at > _MOMENT,
    )
    | exists(
        select(Item.item_key).where(Item.stage == _STAGE, Item.full.is_(False), ~_LABELED_BY_USER)
    )
    | exists().where(  # items held by expired leases: the next lease reclaims them
        Lease.stage == _STAGE,
        Lease.reclaimed.is_(False),
        Lease.expires_at <= _MOMENT,
        ~_LABELED_LEASED_ITEM,
    )
)


def register_items(store: Store, stage: str, keys: list[str], *, overlap: int) -> None:
    """Record a pool stage's items (keys in order); items already known keep their labels.
    Every item's `full` flag is set again for `overlap`, which the notebook may have
    changed since the items were first registered."""
    with store.engine.begin() as connection:
        known = set(connection.scalars(_ITEM_KEYS, {"in_stage": stage}))
        rows = [
            {"stage": stage, "item_key": key, "position": position}
            for position, key in enumerate(keys)
            if key not in known
        ]
        if rows:
            # Several processes register the same items as they start: the first wins.
            dialect = {"postgresql": postgresql, "sqlite": sqlite}[connection.dialect.name]
            connection.execute(dialect.insert(Item).on_conflict_do_nothing(), rows)
        connection.execute(_SET_FULL, {"in_stage": stage, "needed": overlap})
    refresh_statistics(store)


def refresh_statistics(store: Store) -> None:
    """Have PostgreSQL look at the pool tables again. They grow from empty while people
    label, faster than autovacuum's statistics follow, and with the statistics of empty
    tables the planner sorts every open item instead of reading the index in order."""
    if store.engine.dialect.name == "postgresql":
        with store.engine.begin() as connection:
            connection.exec_driver_sql("ANALYZE items, leases, annotations")


def _count(
    connection: Connection, stage: str, changes: dict[str, tuple[int, int]], overlap: int
) -> None:
    """Apply (labels, taken) changes to items' counters, in key order (so that
    transactions on PostgreSQL lock items in one order and never deadlock)."""
    if changes:
        connection.execute(
            _COUNT,
            [
                {"s": stage, "k": key, "dl": dl, "dt": dt, "o": overlap}
                for key, (dl, dt) in sorted(changes.items())
            ],
        )


def _released(keys: Any) -> dict[str, tuple[int, int]]:
    """The counter changes for lease rows of `keys` that stop holding their items."""
    changes: dict[str, tuple[int, int]] = {}
    for key in keys:
        changes[key] = (0, changes.get(key, (0, 0))[1] - 1)
    return changes


def _released(keys: Any) -> dict[str, tuple[int, int]]:
    """The counter changes for lease rows of `keys` that stop holding their items."""
    changes: dict[str, tuple[int, int]] = {}
    for key in keys:
        changes[key] = (0, changes.get(key, (0, 0))[1] - 1)
    return changes


def _reclaim(connection: Connection, stage: str, moment: datetime, overlap: int) -> None:
    """Return the items of expired leases to the pool. On PostgreSQL one process at a
    time does it (the others skip it this time, rather than wait)."""
    if connection.dialect.name == "postgresql" and not connection.scalar(_RECLAIM_LOCK):
        return
    expired = connection.scalars(_RECLAIM, {"in_stage": stage, "at": moment})
    _count(connection, stage, _released(expired), overlap)


def _reclaim(connection: Connection, stage: str, moment: datetime, overlap: int) -> bool:
    """Return the items of expired leases to the pool; say whether there were any. On
    PostgreSQL one process at a time does it (the others skip it, rather than wait)."""
    if connection.dialect.name == "postgresql" and not connection.scalar(_RECLAIM_LOCK):
        return False
    expired = list(connection.scalars(_RECLAIM, {"in_stage": stage, "at": moment}))
    _count(connection, stage, _released(expired), overlap)
    return bool(expired)


def _drop_leases(
    connection: Connection, stage: str, user_id: int, keys: list[str] | None = None
) -> tuple[set[str], dict[str, tuple[int, int]]]:
    """Delete the labeler's lease rows (of `keys`, or all): the keys they were for, and
    the counter changes that release the items those rows still held."""
    where = {"in_stage": stage, "by_user": user_id}
    if keys is None:
        rows = connection.execute(_DROP_ALL, where).all()
    else:
        rows = connection.execute(_DROP_KEYS, where | {"keys": keys}).all()
    return {k for k, _ in rows}, _released(k for k, reclaimed in rows if not reclaimed)


def _retried(call: Callable[P, T]) -> Callable[P, T]:
    """Run a pool transaction again when PostgreSQL aborts it as a deadlock victim or a
    serialization failure. Processes lock items in one order, but a lease being
    reclaimed while its labeler submits late can still close a cycle; the retry sees
    the other transaction's outcome, and nothing of the aborted one was written."""

    @functools.wraps(call)
    def retrying(*args: P.args, **kwargs: P.kwargs) -> T:
        for _ in range(RETRIES - 1):
            try:
                return call(*args, **kwargs)
            except OperationalError as error:
                if getattr(error.orig, "sqlstate", None) not in RETRIED_STATES:
                    raise
        return call(*args, **kwargs)

    return retrying


@_retried
def lease_batch(
    store: Store, stage: str, user_id: int, *, batch: int, overlap: int, lease_seconds: int
) -> list[str]:
    """The labeler's batch: their unexpired lease, or up to `batch` new items. Expired
    leases are reclaimed when the open items run short of a batch."""
    moment = now()
    with store.engine.begin() as connection:
        who = {"in_stage": stage, "by_user": user_id}
        mine = connection.execute(_MINE, who | {"at": moment}).all()
        held = [key for key, reclaimed, live in mine if live and not reclaimed]
        if held:
            return held
        if mine:  # their expired leases: those items go back to the pool
            _, released = _drop_leases(connection, stage, user_id)
            _count(connection, stage, released, overlap)
        query = _OPEN_SKIP_LOCKED if connection.dialect.name == "postgresql" else _OPEN
        keys = list(connection.scalars(query, who | {"batch": batch}))
        if len(keys) < batch and _reclaim(connection, stage, moment, overlap):
            keys = list(connection.scalars(query, who | {"batch": batch}))
        if keys:
            expires = moment + timedelta(seconds=lease_seconds)
            connection.execute(
                _INSERT_LEASES,
                [
                    {"stage": stage, "item_key": k, "user_id": user_id, "expires_at": expires}
                    for k in keys
                ],
            )
            _count(connection, stage, dict.fromkeys(keys, (0, 1)), overlap)
        return keys


@_retried
def save_labels(
    store: Store,
    stage: str,
    user_id: int,
    labels: dict[str, str],
    request_id: str,
    *,
    choices: tuple[str, ...],
    overlap: int,
) -> Saved:
    """Save a batch's labels once per request id; say which were saved, and which came
    too late.

    A label must be one of `choices`, for an item leased to this labeler (or one they
    labeled before: a change of mind while the stage is open). Nothing is written when
    any label is refused. A label for an item whose lease expired and which others have
    meanwhile given all its `overlap` labels is dropped: no item gets more."""
    submitted = list(labels)
    for key, label in labels.items():
        if label not in choices:
            raise LabelRefused(
                f"{label!r} for item {key} is not one of the choices {list(choices)}"
            )
    with store.engine.begin() as connection:
        if connection.scalar(_SEEN, {"request": request_id}):
            saved = connection.scalars(_SAVED_BY, {"request": request_id})
            return Saved(sorted(saved), [])  # a retry of a submission already saved
        # Every submitted item leaves the batch, a late one too: the labeler moves on.
        leased, changes = _drop_leases(connection, stage, user_id, submitted)
        earlier: set[str] = set()
        if not leased.issuperset(submitted):  # changes of mind: items labeled before
            where = {"in_stage": stage, "by_user": user_id, "keys": submitted}
            earlier = set(connection.scalars(_EARLIER, where))
        for key in submitted:
            if key not in leased and key not in earlier:
                raise LabelRefused(f"item {key} is not in your batch of this stage")
        fresh = sorted(set(submitted) - earlier)
        given: dict[str, int] = {}
        if fresh:
            # Lock the items, then read their counts: a lease that expired while its
            # labeler worked may have let others fill the item; such a late label is dropped.
            lock = _GIVEN_LOCKED if connection.dialect.name == "postgresql" else _GIVEN
            given = dict(connection.execute(lock, {"in_stage": stage, "keys": fresh}).all())
        kept = {k: v for k, v in labels.items() if k in earlier or given.get(k, overlap) < overlap}
        for key in kept:
            if key not in earlier:
                changes[key] = (1, changes.get(key, (0, 0))[1] + 1)
        _count(connection, stage, changes, overlap)
        moment = now()
        relabeled = [
            {"s": stage, "k": k, "u": user_id, "l": kept[k], "r": request_id, "t": moment}
            for k in sorted(earlier & set(kept))
        ]
        if relabeled:
            connection.execute(_RELABEL, relabeled)
        new = [
            {
                "stage": stage,
                "item_key": key,
                "user_id": user_id,
                "label": label,
                "request_id": request_id,
                "created_at": moment,
            }
            for key, label in kept.items()
            if key not in earlier
        ]
        if new:
            connection.execute(_INSERT_LABELS, new)
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


def last_batch(store: Store, stage: str, user_id: int) -> dict[str, str]:
    """The labels of the labeler's most recent submission of this stage, by item key."""
    who = {"in_stage": stage, "by_user": user_id}
    with store.reading() as connection:
        latest = connection.scalar(_LATEST, who)
        if latest is None:
            return {}
        return dict(connection.execute(_LABELS_OF_REQUEST, who | {"r": latest}).all())


def progress(store: Store, stage: str, overlap: int) -> Progress:
    with store.reading() as connection:
        items, labels, complete = connection.execute(
            _PROGRESS, {"in_stage": stage, "needed": overlap}
        ).one()
    return Progress(items, labels, complete, overlap)


def has_work(store: Store, stage: str, user_id: int, overlap: int) -> bool:
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
