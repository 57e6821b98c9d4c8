"""Pooled labeling in the database: items, leases, annotations.

Work is handed out in batches under leases: an item goes to at most `overlap` distinct
labelers (counting unexpired leases), never twice to the same one; an expired lease
returns its item to the pool, and a labeler who comes back gets their unexpired batch
again. On PostgreSQL the candidate items are locked with `FOR UPDATE SKIP LOCKED`, so
processes racing for the last items never hand one out beyond its overlap; on SQLite
one process serves everything and its calls run one at a time.

Handing out a batch and saving one run on the driver's connection with each database's
own SQL (`runtime.store.pool_sql`); the rarer reads (progress, whether a labeler has work)
are SQLAlchemy statements built once, with bound parameters.
"""

from __future__ import annotations

import functools
import json
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, ParamSpec, TypeVar

from sqlalchemy import bindparam, exists, func, select, text, update

from runtime.store.database import Annotation, Item, Lease, Store, now
from runtime.store.pool_sql import REFUSED, Disconnected, Transaction, transaction

P = ParamSpec("P")
T = TypeVar("T")
RETRIES = 3
RETRIED_STATES = {"40P01", "40001"}  # deadlock detected, serialization failure
STATISTICS_LOCK = 0x6E626673  # PostgreSQL advisory lock: one process runs ANALYZE at a time


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

_SET_FULL = (  # only the rows whose flag changes are written
    update(Item)
    .where(Item.stage == _STAGE, Item.full != (Item.taken >= _OVERLAP))
    .values(full=Item.taken >= _OVERLAP)
)

_LABELED_BY_USER = exists().where(
    Annotation.stage == Item.stage,
    Annotation.item_key == Item.item_key,
    Annotation.user_id == _USER,
)
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
        'INSERT INTO items (stage, item_key, position, labels, taken, "full") '
        "SELECT :in_stage, value, :start + key, 0, 0, false FROM json_each(:keys) "
        "WHERE true ON CONFLICT DO NOTHING"
    ),
    "postgresql": text(
        'INSERT INTO items (stage, item_key, position, labels, taken, "full") '
        "SELECT :in_stage, k, :start + n - 1, 0, 0, false "
        "FROM unnest(CAST(:keys AS text[])) WITH ORDINALITY AS t(k, n) ON CONFLICT DO NOTHING"
    ),
}


def register_items(store: Store, stage: str, keys: list[str], *, overlap: int) -> None:
    """Record a pool stage's items (keys in order); items already known keep their labels.
    Every item's `full` flag is set again for `overlap`, which the notebook may have
    changed since the items were first registered."""
    with store.engine.begin() as connection:
        dialect = connection.dialect.name
        # Several processes register the same items as they start: the first wins.
        for start in range(0, len(keys), REGISTER_CHUNK):
            chunk = keys[start : start + REGISTER_CHUNK]
            values = json.dumps(chunk) if dialect == "sqlite" else chunk
            connection.execute(
                _REGISTER[dialect], {"in_stage": stage, "start": start, "keys": values}
            )
        connection.execute(_SET_FULL, {"in_stage": stage, "needed": overlap})
    refresh_statistics(store)


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


def _count(db: Transaction, stage: str, changes: dict[str, tuple[int, int]], overlap: int) -> None:
    """Apply (labels, taken) changes to items' counters: one statement per kind of
    change."""
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
            overlap=overlap,
        )


def _released(keys: Any) -> dict[str, tuple[int, int]]:
    """The counter changes for lease rows of `keys` that stop holding their items."""
    changes: dict[str, tuple[int, int]] = {}
    for key in keys:
        changes[key] = (0, changes.get(key, (0, 0))[1] - 1)
    return changes


def _reclaim(db: Transaction, stage: str, at: Any, overlap: int) -> bool:
    """Return the items of leases expired `at` (`db.moment`) to the pool; say whether
    there were any."""
    expired = [key for (key,) in db.rows("reclaim", stage=stage, at=at)]
    _count(db, stage, _released(expired), overlap)
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
    """How a pool hands out work: batch size, overlap, lease length."""

    batch: int
    overlap: int
    seconds: int

    def moments(self, db: Transaction) -> dict[str, Any]:
        moment = now()
        expires = moment + timedelta(seconds=self.seconds)
        return {"at": db.moment(moment), "expires": db.moment(expires)}


def leasing(
    stage: str, user_id: int, *, batch: int, overlap: int, lease_seconds: int
) -> Work[list[str]]:
    """The labeler's batch: their unexpired lease, or up to `batch` new items. Expired
    leases are reclaimed when the open items run short of a batch."""
    how = _Lease(batch, overlap, lease_seconds)

    def lease(db: Transaction) -> list[str]:
        if db.dialect == "sqlite":
            return _lease(db, stage, user_id, how)
        [(keys,)] = db.rows(
            "lease", stage=stage, user=user_id, batch=batch, overlap=overlap, **how.moments(db)
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
    overlap: int,
) -> Work[Saved]:
    """Save a batch's labels once per request id; say which were saved, and which came
    too late.

    A label must be one of `choices`, for an item leased to this labeler (or one they
    labeled before: a change of mind while the stage is open). Nothing is written when
    any label is refused. A label for an item whose lease expired and which others have
    meanwhile given all its `overlap` labels is dropped: no item gets more."""

    def save(db: Transaction) -> Saved:
        _check_choices(labels, choices)
        if db.dialect == "sqlite":
            return _save(db, stage, user_id, labels, request_id, overlap)
        [(saved, late)] = db.rows(
            "save",
            stage=stage,
            user=user_id,
            request=request_id,
            overlap=overlap,
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
    overlap: int,
    batch: int,
    lease_seconds: int,
) -> Work[tuple[Saved, list[str]]]:
    """`saving`, then `leasing`, in one transaction: a labeler's next batch comes with
    the acknowledgement of the last one, for one commit (on PostgreSQL, one call)."""
    save = saving(stage, user_id, labels, request_id, choices=choices, overlap=overlap)
    lease = leasing(stage, user_id, batch=batch, overlap=overlap, lease_seconds=lease_seconds)
    how = _Lease(batch, overlap, lease_seconds)

    def submit(db: Transaction) -> tuple[Saved, list[str]]:
        if db.dialect == "sqlite":
            return save(db), lease(db)
        _check_choices(labels, choices)
        [(saved, late, keys)] = db.rows(
            "submit",
            stage=stage,
            user=user_id,
            request=request_id,
            overlap=overlap,
            batch=batch,
            **how.moments(db),
            **db.labels(labels),
        )
        return Saved(sorted(saved), sorted(late)), keys

    return submit


def lease_batch(
    store: Store, stage: str, user_id: int, *, batch: int, overlap: int, lease_seconds: int
) -> list[str]:
    """`leasing` in a transaction of its own."""
    how = {"batch": batch, "overlap": overlap, "lease_seconds": lease_seconds}
    return in_transaction(store, leasing(stage, user_id, **how))


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
    """`saving` in a transaction of its own."""
    how = {"choices": choices, "overlap": overlap}
    return in_transaction(store, saving(stage, user_id, labels, request_id, **how))


def _lease(db: Transaction, stage: str, user_id: int, how: _Lease) -> list[str]:
    """`leasing` on SQLite, statement by statement (PostgreSQL's `nbfreeze_lease`)."""
    times = how.moments(db)
    who = {"stage": stage, "user": user_id}
    expires = times["expires"]
    mine = db.rows("mine", **who, at=times["at"])
    held = [key for key, reclaimed, live in mine if live and not reclaimed]
    if held:
        return held
    # Chosen before the labeler's expired leases go: those items are not theirs again.
    opened = db.rows("open", **who, batch=how.batch)
    if mine:  # their expired leases: those items go back to the pool
        db.run("drop_all", **who)
        _count(db, stage, _released(k for k, reclaimed, _ in mine if not reclaimed), how.overlap)
    taken = _take(db, stage, user_id, how.overlap, expires, opened)
    if len(taken) < how.batch and _reclaim(db, stage, times["at"], how.overlap):
        more = db.rows("open", **who, batch=how.batch - len(taken))
        taken += _take(db, stage, user_id, how.overlap, expires, more)
    return [key for key, _ in sorted(taken, key=lambda row: row[1])]


def _take(
    db: Transaction,
    stage: str,
    user_id: int,
    overlap: int,
    expires: Any,
    opened: list[tuple[Any, ...]],
) -> list[tuple[str, int]]:
    """Lease the open items found (key, position) to the labeler; return them."""
    taken = [(key, position) for key, position in opened]
    if taken:
        keys = [key for key, _ in taken]
        db.run("lease", stage=stage, user=user_id, expires=expires, keys=db.keys(keys))
        _count(db, stage, dict.fromkeys(keys, (0, 1)), overlap)
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
    overlap: int,
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
    given = dict(db.rows("given", stage=stage, keys=keys))
    changes = _released(key for key, reclaimed in dropped if not reclaimed)
    kept = {k: v for k, v in labels.items() if k in earlier or given.get(k, overlap) < overlap}
    for key in kept:
        if key not in earlier:
            changes[key] = (1, changes.get(key, (0, 0))[1] + 1)
    _count(db, stage, changes, overlap)
    moment = db.moment(now())
    relabeled = [
        {**who, "key": k, "label": kept[k], "request": request_id, "at": moment}
        for k in sorted(earlier & set(kept))
    ]
    if relabeled:
        db.many("relabel", relabeled)
    new = {key: label for key, label in kept.items() if key not in earlier}
    if new:
        db.run("label", **who, request=request_id, at=moment, **db.labels(new))
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


def progress(store: Store, stage: str, overlap: int) -> Progress:
    with store.reading() as connection:
        items, labels, complete = connection.execute(
            _PROGRESS, {"in_stage": stage, "needed": overlap}
        ).one()
    return Progress(items, labels, complete, overlap)


_LABELED_BY = select(func.count()).where(Annotation.stage == _STAGE, Annotation.user_id == _USER)


def labeled_by(store: Store, stage: str, user_id: int) -> int:
    """How many items of the pool stage the labeler has labeled (one index range)."""
    with store.reading() as connection:
        return connection.scalar(_LABELED_BY, {"in_stage": stage, "by_user": user_id}) or 0


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
