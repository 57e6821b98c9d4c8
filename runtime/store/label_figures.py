"""A pool's quality figures for the owner's dashboard, from its labels as integer arrays.

The dashboard of a pool of 100,000 items and 50 labelers must come back in well under a
second, every few seconds. Its labels come as numbers (the item's position, the labeler,
the label, the moment in seconds; runtime.store.label_cache keeps them), never as a
Python object per label, and every figure is numpy over those arrays: the per-item label
counts give Fleiss' kappa, Krippendorff's alpha and the share of items everyone agreed on; the pairs
of labels of one item give Cohen's kappa for each pair of labelers; the moments of each
labeler's submissions give their time per item and labels per hour.

The figures are those of runtime.store.quality (tests check them against it, against
published worked examples, and against scikit-learn, statsmodels and the krippendorff
package);
Fleiss' kappa here also takes items with uneven label counts, each item's observed
agreement over its own pairs, which is Fleiss' formula when the counts are even.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

# A gap between two submissions longer than this is a break, not time spent on the items.
BREAK_SECONDS = 600.0


@dataclass(frozen=True)
class PoolLabels:
    """Every label of a pool, one entry per label: the item (its position in the pool),
    the labeler's id, the label (an index into `values`), the moment (seconds)."""

    item: np.ndarray
    labeler: np.ndarray
    label: np.ndarray
    at: np.ndarray
    values: tuple[str, ...]

    @classmethod
    def of(cls, rows: list[tuple[Any, ...]], order: tuple[str, ...] = ()) -> PoolLabels:
        """From (position, labeler, label, seconds) rows; labels in `order` first."""
        if not rows:
            empty = np.zeros(0, dtype=np.int64)
            return cls(empty, empty, empty, np.zeros(0), tuple(order))
        item, labeler, label, at = ([row[n] for row in rows] for n in range(4))
        index = {value: n for n, value in enumerate(order)}
        for value in label:
            if value not in index:
                index[value] = len(index)
        return cls(
            np.asarray(item, dtype=np.int64),
            np.asarray(labeler, dtype=np.int64),
            np.fromiter(map(index.__getitem__, label), dtype=np.int64, count=len(label)),
            np.asarray(at, dtype=np.float64),
            tuple(index),
        )


def counts_by_item(labels: PoolLabels) -> np.ndarray:
    """Items (those labeled at least once) by values: how many labels of each."""
    _, item = np.unique(labels.item, return_inverse=True)
    counts = np.zeros((int(item.max(initial=-1)) + 1, len(labels.values)), dtype=np.int64)
    np.add.at(counts, (item, labels.label), 1)
    return counts


def pairwise_agreement(counts: np.ndarray) -> float | None:
    """The share of pairs of labels of the same item that are equal (None: no pairs)."""
    sizes = counts.sum(axis=1)
    pairs = int((sizes * (sizes - 1)).sum())
    return int((counts * (counts - 1)).sum()) / pairs if pairs else None


@dataclass(frozen=True)
class Accord:
    """How one labeler's labels compare with the other labels of the same items: of the
    pairs (their label, another labeler's label of the item), how many are equal, over
    how many items that someone else labeled too."""

    matches: int
    pairs: int
    items: int

    @property
    def share(self) -> float | None:
        """The share of those pairs that agree (None: nobody else labeled their items)."""
        return self.matches / self.pairs if self.pairs else None


def agreement_by_labeler(labels: PoolLabels) -> dict[int, Accord]:
    """Each labeler's agreement with the others (one label per labeler and item). A
    labeler whose item has two other labels is compared with each, so the shares weigh
    items as pairwise_agreement does: summed over labelers, the matches and pairs are
    twice its equal pairs and pairs."""
    counts = counts_by_item(labels)
    _, row = np.unique(labels.item, return_inverse=True)
    sizes = counts.sum(axis=1)[row]
    people, who = np.unique(labels.labeler, return_inverse=True)
    tallies = (counts[row, labels.label] - 1, sizes - 1, sizes >= 2)
    matches, pairs, items = (
        np.bincount(who, weights=t, minlength=len(people)).astype(np.int64).tolist()
        for t in tallies
    )
    return {
        person: Accord(*found)
        for person, *found in zip(people.tolist(), matches, pairs, items, strict=True)
    }


def full_agreement(counts: np.ndarray) -> float | None:
    """The share of items labeled at least twice whose labels are all the same."""
    sizes = counts.sum(axis=1)
    pairable = sizes >= 2
    if not pairable.any():
        return None
    return float((counts[pairable].max(axis=1) == sizes[pairable]).mean())


def fleiss_kappa(counts: np.ndarray) -> float | None:
    """Fleiss' kappa of the items labeled at least twice (uneven counts allowed)."""
    counts = counts[counts.sum(axis=1) >= 2]
    if not len(counts):
        return None
    sizes = counts.sum(axis=1)
    shares = counts.sum(axis=0) / sizes.sum()
    expected = float(shares @ shares)
    if expected >= 1.0:
        return None
    observed = float((((counts**2).sum(axis=1) - sizes) / (sizes * (sizes - 1))).mean())
    return (observed - expected) / (1.0 - expected)


def _coincidences(counts: np.ndarray) -> np.ndarray:
    """Krippendorff's coincidence matrix of the pairable items."""
    counts = counts[counts.sum(axis=1) >= 2].astype(np.float64)
    weights = 1.0 / (counts.sum(axis=1) - 1.0)
    return (counts * weights[:, None]).T @ counts - np.diag(weights @ counts)


def krippendorff_alpha(counts: np.ndarray, ordinal: bool = False) -> float | None:
    """Krippendorff's alpha, nominal, or ordinal with the values in their order."""
    coincidences = _coincidences(counts)
    pooled = coincidences.sum(axis=0)
    n = pooled.sum()
    if n == 0:
        return None
    ranks = np.arange(len(pooled))
    if ordinal:
        below = np.concatenate(([0.0], np.cumsum(pooled)))
        low, high = np.minimum.outer(ranks, ranks), np.maximum.outer(ranks, ranks)
        distance = (below[high + 1] - below[low] - (pooled[low] + pooled[high]) / 2) ** 2
    else:
        distance = (ranks[:, None] != ranks[None, :]).astype(np.float64)
    expected = float((np.outer(pooled, pooled) * distance).sum())
    if expected == 0:
        return None
    return 1.0 - (n - 1) * float((coincidences * distance).sum()) / expected


def _label_pairs(labels: PoolLabels) -> tuple[np.ndarray, ...]:
    """Every pair of labels of the same item by two labelers: (first labeler, second
    labeler, first's label, second's label), the first labeler's id the lower."""
    order = np.lexsort((labels.labeler, labels.item))
    item, who, what = labels.item[order], labels.labeler[order], labels.label[order]
    starts = np.flatnonzero(np.r_[True, item[1:] != item[:-1]])
    sizes = np.diff(np.r_[starts, len(item)])
    place = np.arange(len(item)) - np.repeat(starts, sizes)
    width = int(sizes.max(initial=0))
    grid_who = np.full((len(starts), width), -1, dtype=np.int64)
    grid_what = np.zeros((len(starts), width), dtype=np.int64)
    row = np.repeat(np.arange(len(starts)), sizes)
    grid_who[row, place], grid_what[row, place] = who, what
    firsts, seconds = np.triu_indices(width, k=1)
    a, b = grid_who[:, firsts].ravel(), grid_who[:, seconds].ravel()
    present = (a >= 0) & (b >= 0)
    return (
        a[present],
        b[present],
        grid_what[:, firsts].ravel()[present],
        grid_what[:, seconds].ravel()[present],
    )


def cohen_kappas(labels: PoolLabels) -> dict[tuple[int, int], tuple[float | None, int]]:
    """Cohen's kappa of each pair of labelers who share items: (kappa, shared items),
    keyed by their ids, lower first. Kappa is None when chance alone would make the two
    agree on every shared item."""
    a, b, la, lb = _label_pairs(labels)
    if not len(a):
        return {}
    k = len(labels.values)
    people = np.unique(labels.labeler)
    ia, ib = np.searchsorted(people, a), np.searchsorted(people, b)
    p = len(people)
    cells = ((ia * p + ib) * k + la) * k + lb
    tables = np.bincount(cells, minlength=p * p * k * k).reshape(p * p, k, k)
    shared = tables.sum(axis=(1, 2))
    pairs = np.flatnonzero(shared)
    table = tables[pairs] / shared[pairs, None, None]
    observed = np.trace(table, axis1=1, axis2=2)
    expected = np.einsum("pi,pi->p", table.sum(axis=2), table.sum(axis=1))
    with np.errstate(divide="ignore", invalid="ignore"):
        kappa = (observed - expected) / (1.0 - expected)
    kappas: dict[tuple[int, int], tuple[float | None, int]] = {}
    for pair, value, undefined in zip(pairs.tolist(), kappa.tolist(), expected >= 1.0, strict=True):
        key = (int(people[pair // p]), int(people[pair % p]))
        kappas[key] = (None if undefined else value, int(shared[pair]))
    return kappas


@dataclass(frozen=True)
class Pace:
    """A labeler's working pace: seconds per item (median and 90th percentile over their
    items) and labels per hour of work; None before a second submission. Time between
    two submissions longer than BREAK_SECONDS is a break and not counted."""

    labels: int
    median_seconds: float | None
    p90_seconds: float | None
    per_hour: float | None


def paces(labels: PoolLabels) -> dict[int, Pace]:
    """Each labeler's pace, from the moments of their submissions (the labels of one
    submission share its moment); a submission's items took the time since the one
    before, shared between them."""
    found: dict[int, Pace] = {}
    for labeler in np.unique(labels.labeler).tolist():
        moments = labels.at[labels.labeler == labeler]
        submitted, sizes = np.unique(moments, return_counts=True)
        gaps = np.diff(submitted)
        worked = gaps <= BREAK_SECONDS
        per_item = np.repeat(gaps[worked] / sizes[1:][worked], sizes[1:][worked])
        seconds = float(gaps[worked].sum())
        found[labeler] = Pace(
            labels=len(moments),
            median_seconds=float(np.median(per_item)) if len(per_item) else None,
            p90_seconds=float(np.percentile(per_item, 90)) if len(per_item) else None,
            per_hour=float(sizes[1:][worked].sum() / seconds * 3600) if seconds > 0 else None,
        )
    return found


def ordered(values: tuple[str, ...]) -> bool:
    """Whether a pool's choices are ratings: every one a number, in increasing order."""
    try:
        numbers = [float(value) for value in values]
    except ValueError:
        return False
    return len(numbers) > 2 and numbers == sorted(numbers)
