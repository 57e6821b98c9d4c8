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

from sqlalchemy import Connection, Select, and_, delete, exists, func, insert, select

from runtime.store import Annotation, Item, Lease, Store, now


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


def register_items(store: Store, stage: str, keys: list[str]) -> None:
    """Record a pool stage's items (keys in order); items already known stay as they are."""
    with store.engine.begin() as connection:
        known = set(connection.scalars(select(Item.item_key).where(Item.stage == stage)))
        rows = [
            {"stage": stage, "item_key": key, "position": position}
            for position, key in enumerate(keys)
            if key not in known
        ]
        if rows:
            connection.execute(insert(Item), rows)


def _open_items(stage: str, user_id: int, overlap: int, moment: datetime) -> Select[Any]:
    """The keys of the items the labeler has not labeled that have room for another
    labeler: fewer than `overlap` labels and unexpired leases together. The counts are
    grouped once per stage (a pass over its labels and leases), not counted per item."""
    labels = (
        select(Annotation.item_key, func.count().label("n"))
        .where(Annotation.stage == stage)
        .group_by(Annotation.item_key)
        .subquery()
    )
    held = (
        select(Lease.item_key, func.count().label("n"))
        .where(Lease.stage == stage, Lease.expires_at > moment)
        .group_by(Lease.item_key)
        .subquery()
    )
    mine = select(Annotation.item_key).where(
        Annotation.stage == stage, Annotation.user_id == user_id
    )
    return (
        select(Item.item_key)
        .select_from(Item)
        .outerjoin(labels, labels.c.item_key == Item.item_key)
        .outerjoin(held, held.c.item_key == Item.item_key)
        .where(
            Item.stage == stage,
            Item.item_key.not_in(mine),
            func.coalesce(labels.c.n, 0) + func.coalesce(held.c.n, 0) < overlap,
        )
    )


def _no_nested_loops(connection: Connection) -> None:
    """Plan the open-items query with hash joins. Its tables grow from empty while
    labelers work, faster than autovacuum's statistics follow, and with statistics of
    empty tables PostgreSQL picks nested loops that cost a hundred times more."""
    connection.exec_driver_sql("SET LOCAL enable_nestloop = off")


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
                .where(Lease.stage == stage, Lease.user_id == user_id, Lease.expires_at > moment)
                .order_by(Item.position)
            )
        )
        if held:
            return held
        connection.execute(
            delete(Lease).where(Lease.stage == stage, Lease.user_id == user_id)
        )  # expired leases of this labeler: those items are back in the pool
        query = _open_items(stage, user_id, overlap, moment).order_by(Item.position).limit(batch)
        postgres = connection.dialect.name == "postgresql"
        if postgres:
            query = query.with_for_update(skip_locked=True, of=Item)
        if postgres:
            _no_nested_loops(connection)
        keys = list(connection.scalars(query))
        if postgres and keys:
            # Look again at the locked candidates in a new statement (a new snapshot):
            # another process may have leased one and committed after this query's
            # snapshot was taken, leaving no lock behind and the item row unchanged.
            still = set(
                connection.scalars(
                    _open_items(stage, user_id, overlap, moment).where(Item.item_key.in_(keys))
                )
            )
            keys = [key for key in keys if key in still]
        expires = moment + timedelta(seconds=lease_seconds)
        if keys:
            connection.execute(
                insert(Lease),
                [
                    {"stage": stage, "item_key": k, "user_id": user_id, "expires_at": expires}
                    for k in keys
                ],
            )
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
        leased = set(
            connection.scalars(
                select(Lease.item_key).where(Lease.stage == stage, Lease.user_id == user_id)
            )
        )
        earlier = set(
            connection.scalars(
                select(Annotation.item_key).where(
                    Annotation.stage == stage, Annotation.user_id == user_id
                )
            )
        )
        for key in labels:
            if key not in leased and key not in earlier:
                raise LabelRefused(f"item {key} is not in your batch of this stage")
        fresh = [key for key in labels if key not in earlier]
        if fresh:
            # Lock the items, then count: a lease that expired while its labeler worked
            # may have let others fill the item meanwhile; such a late label is dropped.
            lock = select(Item.item_key).where(Item.stage == stage, Item.item_key.in_(fresh))
            if connection.dialect.name == "postgresql":
                lock = lock.with_for_update()
            list(connection.scalars(lock))
            counts = dict(
                connection.execute(
                    select(Annotation.item_key, func.count())
                    .where(Annotation.stage == stage, Annotation.item_key.in_(fresh))
                    .group_by(Annotation.item_key)
                ).all()
            )
            labels = {
                key: label
                for key, label in labels.items()
                if key in earlier or counts.get(key, 0) < overlap
            }
        for key, label in labels.items():
            if key in earlier:
                connection.execute(
                    Annotation.__table__.update()
                    .where(
                        Annotation.stage == stage,
                        Annotation.item_key == key,
                        Annotation.user_id == user_id,
                    )
                    .values(label=label, request_id=request_id, created_at=now())
                )
            else:
                connection.execute(
                    insert(Annotation).values(
                        stage=stage,
                        item_key=key,
                        user_id=user_id,
                        label=label,
                        request_id=request_id,
                        created_at=now(),
                    )
                )
        connection.execute(
            delete(Lease).where(
                Lease.stage == stage, Lease.user_id == user_id, Lease.item_key.in_(submitted)
            )
        )  # every submitted item leaves the batch, a late one too: the labeler moves on
    return Saved(sorted(labels), sorted(set(submitted) - set(labels)))


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
        items = connection.scalar(select(func.count()).select_from(Item).where(Item.stage == stage))
        counts = dict(
            connection.execute(
                select(Annotation.item_key, func.count())
                .where(Annotation.stage == stage)
                .group_by(Annotation.item_key)
            ).all()
        )
    return Progress(
        items or 0,
        sum(counts.values()),
        sum(1 for c in counts.values() if c >= overlap),
        overlap,
    )


def has_work(store: Store, stage: str, user_id: int, overlap: int) -> bool:
    """Could the labeler get (or do they hold) items of this pool now?"""
    moment = now()
    with store.engine.connect() as connection:
        if connection.scalar(
            select(
                exists().where(
                    Lease.stage == stage, Lease.user_id == user_id, Lease.expires_at > moment
                )
            )
        ):
            return True
        return bool(
            connection.scalar(
                select(_open_items(stage, user_id, overlap, moment).limit(1).exists())
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
