"""Merged labels and the dashboard's agreement figures, checked against published worked
examples, by hand, and against a self-join in pandas."""

from __future__ import annotations

import random

import pandas as pd
import pytest

from runtime.store.agreement import merge
from runtime.store.label_figures import (
    Accord,
    PoolLabels,
    agreement_by_labeler,
    counts_by_item,
    krippendorff_alpha,
    pairwise_agreement,
)

# The reliability data of Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability",
# section C: four observers, twelve units; None is a missing value.
KRIPPENDORFF_2011 = [
    [1, 2, 3, 3, 2, 1, 4, 1, 2, None, None, None],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, None, 3],
    [None, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, None],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, None],
]
# The example of Wikipedia's "Krippendorff's alpha" article: three coders, fifteen units.
WIKIPEDIA = [
    [None, None, None, None, None, 3, 4, 1, 2, 1, 1, 3, 3, None, 3],
    [1, None, 2, 1, 3, 3, 4, 3, None, None, None, None, None, None, None],
    [None, None, 2, 1, 3, 4, 4, None, 2, 1, 1, 3, 3, None, 4],
]


def by_unit(matrix):
    units = {}
    for row in matrix:
        for unit, value in enumerate(row):
            if value is not None:
                units.setdefault(unit, []).append(value)
    return units


def as_labels(by_labeler_of_item):
    """PoolLabels from each item's label by labeler (items and labelers any hashable)."""
    items = {item: n for n, item in enumerate(by_labeler_of_item)}
    people = {
        who: n + 1
        for n, who in enumerate(
            sorted({w for g in by_labeler_of_item.values() for w in g}, key=str)
        )
    }
    rows = [
        (items[item], people[who], str(label), 0.0)
        for item, given in by_labeler_of_item.items()
        for who, label in given.items()
    ]
    return PoolLabels.of(rows), people


def alpha(units):
    """Krippendorff's nominal alpha of each unit's list of values."""
    labels, _ = as_labels({u: dict(enumerate(given)) for u, given in units.items()})
    return krippendorff_alpha(counts_by_item(labels))


def pairwise(units):
    labels, _ = as_labels({u: dict(enumerate(given)) for u, given in units.items()})
    return pairwise_agreement(counts_by_item(labels))


def by_labeler(given):
    labels, people = as_labels(given)
    found = agreement_by_labeler(labels)
    return {who: found[n] for who, n in people.items() if n in found}


def test_alpha_matches_krippendorffs_own_worked_example():
    assert alpha(by_unit(KRIPPENDORFF_2011)) == pytest.approx(0.743, abs=5e-4)


def test_alpha_matches_the_wikipedia_example():
    assert alpha(by_unit(WIKIPEDIA)) == pytest.approx(0.691358, abs=1e-6)


def test_alpha_is_one_for_perfect_agreement_and_undefined_without_pairs():
    assert alpha({1: ["a", "a"], 2: ["b", "b"]}) == 1.0
    assert alpha({1: ["a"], 2: ["b"]}) is None


def test_majority_wins_and_ties_are_listed():
    merged = merge({"x": ["yes", "no", "yes"], "y": ["no", "yes"], "z": ["no"]})
    assert merged.labels == {"x": "yes", "y": "no", "z": "no"}
    assert merged.ties == {"y": ("no", "yes")}


def test_pairwise_agreement_counts_equal_pairs():
    assert pairwise({1: ["a", "a", "b"], 2: ["c", "c"]}) == pytest.approx(2 / 4)
    assert pairwise({1: ["a"]}) is None


def test_each_labelers_agreement_with_the_others_by_hand():
    labels = {
        "x": {"ann": "yes", "bob": "yes", "cy": "no"},
        "y": {"ann": "no", "bob": "yes"},
        "z": {"ann": "yes"},  # nobody else labeled it: it compares nothing
        "w": {"dee": "no"},
    }
    # ann: on x she matches bob and not cy (1 of 2), on y not bob (0 of 1): 1 of 3.
    # bob: on x ann yes, cy no (1 of 2); on y not ann (0 of 1): 1 of 3.
    # cy: on x neither (0 of 2). dee: only w, labeled by nobody else.
    assert by_labeler(labels) == {
        "ann": Accord(matches=1, pairs=3, items=2),
        "bob": Accord(matches=1, pairs=3, items=2),
        "cy": Accord(matches=0, pairs=2, items=1),
        "dee": Accord(matches=0, pairs=0, items=0),
    }
    assert by_labeler(labels)["ann"].share == pytest.approx(1 / 3)
    assert by_labeler(labels)["dee"].share is None


def test_each_labelers_agreement_on_random_labels_matches_a_self_join():
    rng = random.Random(20240611)
    labels = {}
    for item in range(200):
        people = rng.sample(range(12), rng.randint(1, 5))
        labels[item] = {person: rng.choice("abc") for person in people}
    found = by_labeler(labels)
    # Independently: every ordered pair of different labelers of an item, by pandas.
    rows = pd.DataFrame(
        [(item, who, label) for item, given in labels.items() for who, label in given.items()],
        columns=["item", "who", "label"],
    )
    pairs = rows.merge(rows, on="item", suffixes=("", "_other"))
    pairs = pairs[pairs["who"] != pairs["who_other"]]
    expected = (pairs["label"] == pairs["label_other"]).groupby(pairs["who"]).mean()
    compared = pairs.groupby("who")["item"].nunique()
    assert set(expected.index) <= set(found)
    for who, share in expected.items():
        assert found[who].share == pytest.approx(share)
        assert found[who].items == compared[who]
    matches = sum(a.matches for a in found.values())
    flat = {item: list(given.values()) for item, given in labels.items()}
    assert matches / sum(a.pairs for a in found.values()) == pytest.approx(pairwise(flat))
