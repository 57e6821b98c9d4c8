"""Pooled labeling in the database: items, leases, annotations.

Work is handed out in batches under leases: an item goes to at most `overlap` distinct
labelers (counting unexpired leases), never twice to the same one; an expired lease
returns its item to the pool, and a labeler who comes back gets their unexpired batch
again. On PostgreSQL the candidate items are locked with `FOR UPDATE SKIP LOCKED`, so
processes racing for the last items never hand one out beyond its overlap; on SQLite
one process serves everything and its calls run one at a time.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Connection,
    Select,
    and_,
    bindparam,
    delete,
    exists,
    func,
    insert,
    select,
    update,
)

from runtime.store import Annotation, Item, Lease, Store, now

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


def register_items(store: Store, stage: str, keys: list[str], *, overlap: int) -> None:
    """Record a pool stage's items (keys in order); items already known keep their labels.
    Every item's `full` flag is set again for `overlap`, which the notebook may have
    changed since the items were first registered."""
    with store.engine.begin() as connection:
        known = set(connection.scalars(select(Item.item_key).where(Item.stage == stage)))
        rows = [
            {"stage": stage, "item_key": key, "position": position}
            for position, key in enumerate(keys)
            if key not in known
        ]
        if rows:
            connection.execute(insert(Item), rows)
        connection.execute(
            update(Item).where(Item.stage == stage).values(full=Item.taken >= overlap)
        )


def _open_items(stage: str, user_id: int) -> Select[Any]:
    """The keys of the items with room for another labeler that this one has not labeled,
    in order: read from the (stage, full, position) index, not counted."""
    mine = exists().where(
        Annotation.stage == Item.stage,
        Annotation.item_key == Item.item_key,
        Annotation.user_id == user_id,
    )
    return (
        select(Item.item_key)
        .where(Item.stage == stage, Item.full.is_(False), ~mine)
        .order_by(Item.position)
    )


def _count(
    connection: Connection, stage: str, changes: dict[str, tuple[int, int]], overlap: int
) -> None:
    """Apply (labels, taken) changes to items' counters, in key order (so that
    transactions on PostgreSQL lock items in one order and never deadlock)."""
    if not changes:
        return
    connection.execute(
        update(Item)
        .where(Item.stage == bindparam("s"), Item.item_key == bindparam("k"))
        .values(
            labels=Item.labels + bindparam("dl"),
            taken=Item.taken + bindparam("dt"),
            full=Item.taken + bindparam("dt") >= overlap,
        ),
        [{"s": stage, "k": key, "dl": dl, "dt": dt} for key, (dl, dt) in sorted(changes.items())],
    )


def _reclaim(connection: Connection, stage: str, moment: datetime, overlap: int) -> None:
    """Return the items of expired leases to the pool. On PostgreSQL one process at a
    time does it (the others skip it this time, rather than wait)."""
    if connection.dialect.name == "postgresql" and not connection.scalar(
        select(func.pg_try_advisory_xact_lock(RECLAIM_LOCK))
    ):
        return
    expired = connection.scalars(
        update(Lease)
        .where(Lease.stage == stage, Lease.reclaimed.is_(False), Lease.expires_at <= moment)
        .values(reclaimed=True)
        .returning(Lease.item_key)
    )
    _count(connection, stage, _released(expired), overlap)


def _released(keys: Any) -> dict[str, tuple[int, int]]:
    """The counter changes for lease rows of `keys` that stop holding their items."""
    changes: dict[str, tuple[int, int]] = {}
    for key in keys:
        changes[key] = (0, changes.get(key, (0, 0))[1] - 1)
    return changes


def _drop_leases(
    connection: Connection, stage: str, user_id: int, keys: list[str] | None = None
) -> tuple[set[str], dict[str, tuple[int, int]]]:
    """Delete the labeler's lease rows (of `keys`, or all): the keys they were for, and
    the counter changes that release the items those rows still held."""
    query = delete(Lease).where(Lease.stage == stage, Lease.user_id == user_id)
    if keys is not None:
        query = query.where(Lease.item_key.in_(keys))
    rows = connection.execute(query.returning(Lease.item_key, Lease.reclaimed)).all()
    return {k for k, _ in rows}, _released(k for k, reclaimed in rows if not reclaimed)


def lease_batch(
    store: Store, stage: str, user_id: int, *, batch: int, overlap: int, lease_seconds: int
) -> list[str]:
    """The labeler's batch: their unexpired lease, or up to `batch` new items."""
    moment = now()
    with store.engine.begin() as connection:
        held = list(
            connection.scalars(
                select(Lease.item_key)
                .join(Item, and_(Item.stage == Lease.stage, Item.item_key == Lease.item_key))
                .where(
                    Lease.stage == stage,
                    Lease.user_id == user_id,
                    Lease.reclaimed.is_(False),
                    Lease.expires_at > moment,
                )
                .order_by(Item.position)
            )
        )
        if held:
            return held
        _reclaim(connection, stage, moment, overlap)
        _, released = _drop_leases(connection, stage, user_id)  # their expired ones, if any
        _count(connection, stage, released, overlap)
        query = _open_items(stage, user_id).limit(batch)
        if connection.dialect.name == "postgresql":
            # Locked candidates are being leased by another process: take the next ones.
            # A candidate another process filled after this snapshot is re-checked by
            # PostgreSQL against its newest row when it is locked, so `full` holds.
            query = query.with_for_update(skip_locked=True, of=Item)
        keys = list(connection.scalars(query))
        if keys:
            expires = moment + timedelta(seconds=lease_seconds)
            connection.execute(
                insert(Lease),
                [
                    {"stage": stage, "item_key": k, "user_id": user_id, "expires_at": expires}
                    for k in keys
                ],
            )
            _count(connection, stage, dict.fromkeys(keys, (0, 1)), overlap)
        return keys


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
        if connection.scalar(select(exists().where(Annotation.request_id == request_id))):
            saved = connection.scalars(
                select(Annotation.item_key).where(Annotation.request_id == request_id)
            )
            return Saved(sorted(saved), [])  # a retry of a submission already saved
        # Every submitted item leaves the batch, a late one too: the labeler moves on.
        leased, changes = _drop_leases(connection, stage, user_id, submitted)
        earlier = set(
            connection.scalars(
                select(Annotation.item_key).where(
                    Annotation.stage == stage,
                    Annotation.user_id == user_id,
                    Annotation.item_key.in_(submitted),
                )
            )
        )
        for key in submitted:
            if key not in leased and key not in earlier:
                raise LabelRefused(f"item {key} is not in your batch of this stage")
        fresh = sorted(set(submitted) - earlier)
        given: dict[str, int] = {}
        if fresh:
            # Lock the items, then read their counts: a lease that expired while its
            # labeler worked may have let others fill the item; such a late label is dropped.
            lock = select(Item.item_key, Item.labels).where(
                Item.stage == stage, Item.item_key.in_(fresh)
            )
            if connection.dialect.name == "postgresql":
                lock = lock.order_by(Item.item_key).with_for_update()
            given = dict(connection.execute(lock).all())
        kept = {k: v for k, v in labels.items() if k in earlier or given.get(k, overlap) < overlap}
        for key in kept:
            if key not in earlier:
                changes[key] = (1, changes.get(key, (0, 0))[1] + 1)
        _count(connection, stage, changes, overlap)
        moment = now()
        for key in sorted(earlier & set(kept)):
            connection.execute(
                update(Annotation)
                .where(
                    Annotation.stage == stage,
                    Annotation.item_key == key,
                    Annotation.user_id == user_id,
                )
                .values(label=kept[key], request_id=request_id, created_at=moment)
            )
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
            connection.execute(insert(Annotation), new)
    return Saved(sorted(kept), sorted(set(submitted) - set(kept)))


def last_batch(store: Store, stage: str, user_id: int) -> dict[str, str]:
    """The labels of the labeler's most recent submission of this stage, by item key."""
    with store.engine.connect() as connection:
        latest = connection.scalar(
            select(Annotation.request_id)
            .where(Annotation.stage == stage, Annotation.user_id == user_id)
            .order_by(Annotation.created_at.desc())
            .limit(1)
        )
        if latest is None:
            return {}
        rows = connection.execute(
            select(Annotation.item_key, Annotation.label).where(
                Annotation.stage == stage,
                Annotation.user_id == user_id,
                Annotation.request_id == latest,
            )
        ).all()
    return dict(rows)


def progress(store: Store, stage: str, overlap: int) -> Progress:
    with store.engine.connect() as connection:
        items, labels, complete = connection.execute(
            select(
                func.count(),
                func.coalesce(func.sum(Item.labels), 0),
                func.count().filter(Item.labels >= overlap),
            ).where(Item.stage == stage)
        ).one()
    return Progress(items, labels, complete, overlap)


def has_work(store: Store, stage: str, user_id: int, overlap: int) -> bool:
    """Could the labeler get (or do they hold) items of this pool now? Items held by an
    expired lease count: the next lease reclaims them."""
    moment = now()
    labeled_by_them = exists().where(
        Annotation.stage == Lease.stage,
        Annotation.item_key == Lease.item_key,
        Annotation.user_id == user_id,
    )
    with store.engine.connect() as connection:
        return bool(
            connection.scalar(
                select(
                    exists().where(
                        Lease.stage == stage, Lease.user_id == user_id, Lease.expires_at > moment
                    )
                    | _open_items(stage, user_id).limit(1).exists()
                    | exists().where(
                        Lease.stage == stage,
                        Lease.reclaimed.is_(False),
                        Lease.expires_at <= moment,
                        ~labeled_by_them,
                    )
                )
            )
        )


@dataclass(frozen=True)
class Row:
    """One raw annotation: which item, who, what label, when."""

    item_key: str
    user_id: int
    label: str
    created_at: datetime


def annotations(store: Store, stage: str) -> list[Row]:
    with store.engine.connect() as connection:
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
