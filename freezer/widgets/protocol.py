"""The labeling protocol every labeling widget follows, and the item ids it rests on.

nbfreeze splits a `pool` stage's items between labelers by id, so ids must be stable
across runs of the notebook: a mapping's keys, a pandas index, a key the author names,
or else the position. An id is stored and sent to pages as its `item_key`, a string.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Labeling(Protocol):
    """What a widget needs for a `pool` stage: nbfreeze splits its items between the
    labelers, shows each their batch with `show`, reads `labels` back, and afterwards
    sets `labels` to everyone's labels merged by majority, `ties` to the items whose top
    labels tie, and `annotations` to every raw label (item, labeler, label, time)."""

    item_ids: tuple[Hashable, ...]
    labels: dict[Hashable, Any]
    choices: tuple[str, ...]

    def show(self, ids: Iterable[Hashable]) -> None: ...


_FIRST_SHOWN: ContextVar[frozenset[str] | None] = ContextVar("first_shown", default=None)


@contextmanager
def showing_first(keys: Iterable[str]) -> Iterator[None]:
    """Inside this block, labeling widgets start out showing only the items with these
    keys: the app builds a labeler's page for their batch without first encoding and
    sending every item of the pool."""
    token = _FIRST_SHOWN.set(frozenset(keys))
    try:
        yield
    finally:
        _FIRST_SHOWN.reset(token)


def first_shown(ids: Iterable[Hashable]) -> tuple[Hashable, ...]:
    """The ids a new labeling widget shows: all of them, or those `showing_first` names."""
    keys = _FIRST_SHOWN.get()
    return tuple(i for i in ids if keys is None or item_key(i) in keys)


def item_key(item_id: Any) -> str:
    """The string an item id is stored under and sent to a page as."""
    try:
        return json.dumps(item_id, sort_keys=True)
    except TypeError:
        return json.dumps(str(item_id))


def items_with_ids(
    items: Any, key: Callable[[Any], Hashable] | str | None = None
) -> list[tuple[Hashable, Any]]:
    """(id, item) pairs of a list, array, mapping, pandas DataFrame or Series: a mapping's
    keys, the pandas index, `key` (a function of the item, or a DataFrame column's name),
    or else the position."""
    if isinstance(items, Mapping):
        rows, ids = list(items.values()), list(items.keys())
    elif hasattr(items, "index") and hasattr(items, "iloc"):
        rows = [items.iloc[i] for i in range(len(items))]
        ids = list(items.index)
    else:
        rows = list(items)
        ids = list(range(len(rows)))
    if isinstance(key, str):
        column = key
        if not all(_has_field(row, column) for row in rows):
            raise ValueError(f"key={column!r}: not every item has a field {column!r}")
        ids = [row[column] for row in rows]
    elif key is not None:
        ids = [key(row) for row in rows]
    ids = [i.item() if isinstance(i, np.generic) else i for i in ids]
    keys = [item_key(i) for i in ids]
    if len(set(keys)) != len(keys):
        raise ValueError("item ids must be unique; pass `key=` to name a unique key")
    return list(zip(ids, rows, strict=True))


def _has_field(row: Any, name: str) -> bool:
    try:
        row[name]
    except (KeyError, IndexError, TypeError, ValueError):
        return False
    return True
