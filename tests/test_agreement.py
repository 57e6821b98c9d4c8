"""Merged labels and agreement, checked against published worked examples."""

from __future__ import annotations

import pytest

from runtime.store.agreement import krippendorff_alpha_nominal, merge, pairwise_agreement

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


def test_alpha_matches_krippendorffs_own_worked_example():
    assert krippendorff_alpha_nominal(by_unit(KRIPPENDORFF_2011)) == pytest.approx(0.743, abs=5e-4)


def test_alpha_matches_the_wikipedia_example():
    assert krippendorff_alpha_nominal(by_unit(WIKIPEDIA)) == pytest.approx(0.691358, abs=1e-6)


def test_alpha_is_one_for_perfect_agreement_and_undefined_without_pairs():
    assert krippendorff_alpha_nominal({1: ["a", "a"], 2: ["b", "b"]}) == 1.0
    assert krippendorff_alpha_nominal({1: ["a"], 2: ["b"]}) is None


def test_majority_wins_and_ties_are_listed():
    merged = merge({"x": ["yes", "no", "yes"], "y": ["no", "yes"], "z": ["no"]})
    assert merged.labels == {"x": "yes", "y": "no", "z": "no"}
    assert merged.ties == {"y": ("no", "yes")}


def test_pairwise_agreement_counts_equal_pairs():
    assert pairwise_agreement({1: ["a", "a", "b"], 2: ["c", "c"]}) == pytest.approx(2 / 4)
    assert pairwise_agreement({1: ["a"]}) is None
