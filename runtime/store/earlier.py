"""A labeler's earlier batches of a pool stage, for going back to change an answer.

A batch is what one submission labeled first: the first labels in `label_history` (no
old label) that share its request id. A later change of mind does not move an item out
of the batch it was first labeled in, so "two batches back" stays the same batch.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import bindparam, func, select

from runtime.store.database import Annotation, LabelHistory, Store

_FIRSTS = (
    LabelHistory.stage == bindparam("in_stage"),
    LabelHistory.user_id == bindparam("by_user"),
    LabelHistory.old_label.is_(None),
)
_REQUESTS = (
    select(LabelHistory.request_id)
    .where(*_FIRSTS)
    .group_by(LabelHistory.request_id)
    .order_by(func.min(LabelHistory.id).desc())
)
_KEYS = (
    select(LabelHistory.item_key)
    .where(*_FIRSTS, LabelHistory.request_id == bindparam("r"))
    .order_by(LabelHistory.id)
)
_CURRENT = select(Annotation.item_key, Annotation.label).where(
    Annotation.stage == bindparam("in_stage"),
    Annotation.user_id == bindparam("by_user"),
    Annotation.item_key.in_(bindparam("keys", expanding=True)),
)


@dataclass(frozen=True)
class Earlier:
    """One of a labeler's submitted batches: `back` batches back (1 is the last one), its
    item keys in the order they were labeled, the labeler's current label of each, and
    how many batches they have submitted in all."""

    back: int
    keys: list[str]
    labels: dict[str, str]
    batches: int

    @property
    def older(self) -> bool:
        """Is there a batch before this one to go back to?"""
        return self.back < self.batches


def earlier_batch(store: Store, stage: str, user_id: int, back: int) -> Earlier | None:
    """The labeler's batch `back` batches back (1: their last), or None when they have
    submitted fewer."""
    who = {"in_stage": stage, "by_user": user_id}
    with store.reading() as connection:
        requests = list(connection.scalars(_REQUESTS, who))
        if not 0 < back <= len(requests):
            return None
        keys = list(connection.scalars(_KEYS, who | {"r": requests[back - 1]}))
        labels = dict(connection.execute(_CURRENT, who | {"keys": keys}).all())
    return Earlier(back, keys, labels, len(requests))
