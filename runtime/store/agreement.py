"""Merging several people's labels of the same items, and how much they agree.

Majority vote (ties listed, not broken silently), pairwise percent agreement, and
Krippendorff's alpha for nominal data (Krippendorff 2011, "Computing Krippendorff's
Alpha-Reliability": coincidences within units, expected from the pooled values).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass
from itertools import combinations


@dataclass(frozen=True)
class Merged:
    """Each item's majority label, and the items whose top labels tie."""

    labels: dict[Hashable, Hashable]
    ties: dict[Hashable, tuple[Hashable, ...]]


def merge(labels_by_item: Mapping[Hashable, Iterable[Hashable]]) -> Merged:
    """The majority label of each item; a tie keeps the label seen first and is listed."""
    labels, ties = {}, {}
    for item, given in labels_by_item.items():
        counts = Counter(given)
        if not counts:
            continue
        top = max(counts.values())
        leaders = tuple(label for label, count in counts.items() if count == top)
        labels[item] = leaders[0]
        if len(leaders) > 1:
            ties[item] = leaders
    return Merged(labels, ties)


def pairwise_agreement(labels_by_item: Mapping[Hashable, Iterable[Hashable]]) -> float | None:
    """The share of pairs of labels of the same item that are equal (None: no pairs)."""
    equal = pairs = 0
    for given in labels_by_item.values():
        for first, second in combinations(list(given), 2):
            pairs += 1
            equal += first == second
    return equal / pairs if pairs else None


def krippendorff_alpha_nominal(
    labels_by_item: Mapping[Hashable, Iterable[Hashable]],
) -> float | None:
    """Krippendorff's alpha for nominal labels; None when no item has two labels or
    every label is the same value (alpha is undefined then)."""
    units = [list(given) for given in labels_by_item.values()]
    units = [unit for unit in units if len(unit) >= 2]  # only pairable values count
    if not units:
        return None
    observed_disagreement = 0.0
    totals: Counter[Hashable] = Counter()
    n = 0
    for unit in units:
        m = len(unit)
        counts = Counter(unit)
        totals.update(counts)
        n += m
        # Coincidences of different values within the unit, each pair weighted 1/(m-1).
        same = sum(c * (c - 1) for c in counts.values())
        observed_disagreement += (m * (m - 1) - same) / (m - 1)
    expected_pairs = n * (n - 1) - sum(c * (c - 1) for c in totals.values())
    if expected_pairs == 0:
        return None
    return 1.0 - (n - 1) * observed_disagreement / expected_pairs
