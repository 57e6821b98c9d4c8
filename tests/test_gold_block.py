"""The dashboard's gold accuracies, from the label arrays, are the ones the merge leaves
labelers out by (`quality.gold_accuracy` over labels by item)."""

from __future__ import annotations

import random

import pytest

from runtime.app.gold import accuracies
from runtime.store.label_figures import PoolLabels
from runtime.store.quality import gold_accuracy


@pytest.mark.parametrize("seed", range(5))
def test_the_arrays_give_each_labeler_the_accuracy_the_merge_uses(seed):
    chance = random.Random(seed)
    choices = ("cat", "dog", "fox")
    answers = {position: chance.choice(choices) for position in chance.sample(range(40), 8)}
    answers[chance.choice(list(answers))] = "owl"  # a known answer nobody gives
    rows, by_item = [], {}
    for labeler in range(2, 8):
        for item in chance.sample(range(40), 25):
            label = chance.choice(choices)
            rows.append((item, labeler, label, 0.0))
            by_item.setdefault(item, {})[labeler] = label
    found = accuracies(PoolLabels.of(rows, choices), answers)
    assert found == gold_accuracy(by_item, answers)
    assert found and all(score.total > 0 for score in found.values())


def test_no_gold_or_no_labels_scores_nobody():
    labels = PoolLabels.of([(0, 2, "cat", 0.0)], ("cat",))
    assert accuracies(labels, {}) == {}
    assert accuracies(PoolLabels.of([], ("cat",)), {0: "cat"}) == {}
    assert accuracies(labels, {5: "cat"}) == {}  # nobody labeled the gold item
