"""What a review page reads of a pool: the raw labels of the few items it shows.

The review queue itself is a pool of its own (`runtime.store.pools`, under the pool's
name and `/review`); this reads the labels a reviewer decides between, by item key, in
one query for the batch rather than the pool's every label.
"""

from __future__ import annotations

from sqlalchemy import select

from runtime.store.database import Annotation, Store
from runtime.store.pools import Row


def labels_of_items(store: Store, stage: str, keys: list[str]) -> list[Row]:
    """The raw labels of the items `keys` of pool `stage`, oldest first."""
    if not keys:
        return []
    with store.reading() as connection:
        rows = connection.execute(
            select(Annotation.item_key, Annotation.user_id, Annotation.label, Annotation.created_at)
            .where(Annotation.stage == stage, Annotation.item_key.in_(keys))
            .order_by(Annotation.created_at, Annotation.user_id)
        ).all()
    return [Row(*row) for row in rows]
