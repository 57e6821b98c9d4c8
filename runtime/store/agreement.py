"""Merging several people's labels of the same items by majority vote: ties listed, not
broken silently. How much they agree is runtime.store.label_figures (the dashboard) and
runtime.store.quality."""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass


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
