"""The labeling protocol every labeling widget follows, and the item ids it rests on.

nbfreeze splits a `pool` stage's items between labelers by id, so ids must be stable
across runs of the notebook: a mapping's keys, a pandas index, a key the author names,
or else the position. An id is stored and sent to pages as its `item_key`, a string.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Labeling(Protocol):
    """What a widget needs for a `pool` stage: nbfreeze splits its items between the
    labelers, shows each their batch with `show`, reads `labels` back, and afterwards
    sets `labels` to everyone's labels merged by the stage's `merge` rule (majority by
    default), `probabilities` to each item's probability of its merged label, `ties` to
    the items whose top labels tie, `confusion` to each labeler's estimated confusion
    matrix (labeler -> true label -> given label -> rate), and `annotations` to every raw
    label (item, labeler, label, time). The stock widgets declare those four as traits;
    a widget of your own gets them as attributes."""

    item_ids: tuple[Hashable, ...]
    labels: dict[Hashable, Any]
    choices: tuple[str, ...]

    def show(self, ids: Iterable[Hashable]) -> None: ...


@runtime_checkable
class Prefetching(Labeling, Protocol):
    """A labeling widget whose page can hold the next batch before the current one is
    submitted: `prefetch(ids)` sends those items to the page, which gets them ready but
    does not show them; on Submit the page shows them at once, and `advance(ids)` then
    tells the widget the page shows them already (True), or that they are not the held
    batch (False: `show` them, as any labeler). A widget without these two is shown each
    batch by `show` alone, after the server's reply."""

    def prefetch(self, ids: Iterable[Hashable]) -> None: ...

    def advance(self, ids: Iterable[Hashable]) -> bool: ...


_FIRST_SHOWN: ContextVar[dict[str, None] | None] = ContextVar("first_shown", default=None)
_encode_text = json.encoder.encode_basestring_ascii  # what json.dumps does with a str


@contextmanager
def showing_first(keys: Iterable[str]) -> Iterator[None]:
    """Inside this block, labeling widgets start out showing only the items with these
    keys (none, for an empty batch): the app builds a labeler's page for their batch,
    and a pool's shared widget for no page at all, without drawing, encoding or sending
    the rest of the pool."""
    token = _FIRST_SHOWN.set(dict.fromkeys(keys))
    try:
        yield
    finally:
        _FIRST_SHOWN.reset(token)


def first_shown(ids: Iterable[Hashable] | ItemIndex) -> tuple[Hashable, ...]:
    """The ids a new labeling widget shows: all of them, or those `showing_first` names.
    Given an `ItemIndex`, the named ids are looked up, not found by a walk of every id."""
    keys = _FIRST_SHOWN.get()
    if keys is None:
        return tuple(ids.ids if isinstance(ids, ItemIndex) else ids)
    if isinstance(ids, ItemIndex):
        return tuple(ids.id_of(key) for key in keys if ids.has_key(key))
    return tuple(i for i in ids if item_key(i) in keys)


def item_key(item_id: Any) -> str:
    """The string an item id is stored under and sent to a page as."""
    kind = type(item_id)
    if kind is str:  # the common ids, without json.dumps's work per call
        return _encode_text(item_id)
    if kind is int:
        return int.__repr__(item_id)
    try:
        return json.dumps(item_id, sort_keys=True)
    except TypeError:
        return json.dumps(str(item_id))


def item_keys(ids: Iterable[Hashable]) -> list[str]:
    """The `item_key` of each id, in order: for a pool of a million ids."""
    ids = ids if isinstance(ids, (list, tuple)) else list(ids)
    kinds = set(map(type, ids))
    if kinds == {str}:
        return list(map(_encode_text, ids))
    if kinds == {int}:
        return list(map(int.__repr__, ids))
    return list(map(item_key, ids))


def _plain(ids: Iterable[Hashable]) -> bool:
    """Are these ids all exactly str or int? Then distinct ids have distinct keys, and
    a key's id is the key read as JSON."""
    return set(map(type, ids)) <= {str, int}


class ItemIndex(Mapping):
    """A labeling widget's items by id, in order, kept where the author has them: a
    mapping is looked up, a list or array indexed, a DataFrame's rows taken when asked
    for. A pool of a million items costs a tuple of ids, not an object per item."""

    def __init__(
        self,
        ids: Callable[[], Iterable[Hashable]],
        count: int,
        get: Callable[[Hashable], Any],
        has: Callable[[Hashable], bool],
        by_key: dict[str, Hashable] | None = None,
    ) -> None:
        self._ids = ids
        self._count = count
        self._get = get
        self._has = has
        self._by_key = by_key  # None: the ids are plain (`_plain`)

    @functools.cached_property
    def ids(self) -> tuple[Hashable, ...]:
        """Every id, in order: made when first asked for (a labeler's page never asks,
        so it holds no tuple of a million ids)."""
        return tuple(self._ids())

    def __getitem__(self, item_id: Hashable) -> Any:
        if not self._has(item_id):
            raise KeyError(item_id)
        return self._get(item_id)

    def __contains__(self, item_id: object) -> bool:
        try:
            return bool(self._has(item_id))
        except TypeError:  # unhashable
            return False

    def __iter__(self) -> Iterator[Hashable]:
        return iter(self.ids)

    def __len__(self) -> int:
        return self._count

    def has_key(self, key: str) -> bool:
        try:
            self.id_of(key)
        except KeyError:
            return False
        return True

    def id_of(self, key: str) -> Hashable:
        """The id whose `item_key` is `key`; KeyError when none is."""
        if self._by_key is not None:
            return self._by_key[key]
        try:
            candidate = json.loads(key)
        except (TypeError, ValueError):
            raise KeyError(key) from None
        if type(candidate) in (str, int) and candidate in self and item_key(candidate) == key:
            return candidate
        raise KeyError(key)


def index_items(items: Any, key: Callable[[Any], Hashable] | str | None = None) -> ItemIndex:
    """The items of a list, array, mapping, pandas DataFrame or Series by id, as
    `items_with_ids` names them, without copying them."""
    if key is None and isinstance(items, Mapping):
        if _plain(items):  # a mapping's keys are distinct, so their item keys are
            return ItemIndex(items.keys, len(items), items.__getitem__, items.__contains__)
    elif key is None and hasattr(items, "index") and hasattr(items, "iloc"):
        index = items.index
        ids = tuple(i.item() if isinstance(i, np.generic) else i for i in index)
        if index.is_unique and _plain(ids):
            row = lambda i: items.iloc[index.get_loc(i)]  # noqa: E731
            return ItemIndex(lambda: ids, len(ids), row, index.__contains__)
    elif key is None and isinstance(items, (Sequence, np.ndarray)) and not isinstance(items, str):
        count = len(items)

        def at(position: Hashable) -> bool:
            return type(position) is int and 0 <= position < count

        return ItemIndex(lambda: range(count), count, items.__getitem__, at)
    pairs = items_with_ids(items, key)
    rows = dict(pairs)
    by_key = {item_key(i): i for i, _ in pairs}
    ids = tuple(i for i, _ in pairs)
    return ItemIndex(lambda: ids, len(ids), rows.__getitem__, rows.__contains__, by_key)


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
