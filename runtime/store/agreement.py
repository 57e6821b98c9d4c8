"""Merging several people's labels of the same items, and how much they agree.

Majority vote (ties listed, not broken silently), pairwise percent agreement, each
labeler's agreement with the others, and Krippendorff's alpha for nominal data
(Krippendorff 2011, "Computing Krippendorff's Alpha-Reliability": coincidences within
units, expected from the pooled values).
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


def agreement_by_labeler(
    labels_by_item: Mapping[Hashable, Mapping[Hashable, Hashable]],
) -> dict[Hashable, Accord]:
    """Each labeler's agreement with the others, from each item's label by labeler.

    A labeler whose item has two other labels is compared with each of them, so the
    shares weigh items as pairwise_agreement does: summed over labelers, the matches
    and pairs are twice that function's equal pairs and pairs."""
    tally: dict[Hashable, list[int]] = {}
    for by_labeler in labels_by_item.values():
        counts = Counter(by_labeler.values())
        others = len(by_labeler) - 1
        for labeler, label in by_labeler.items():
            totals = tally.setdefault(labeler, [0, 0, 0])
            if others:
                totals[0] += counts[label] - 1
                totals[1] += others
                totals[2] += 1
    return {labeler: Accord(*totals) for labeler, totals in tally.items()}


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
