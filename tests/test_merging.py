"""The merge rules of a pool stage, on simulated labelers of known confusion matrices:
what each rule gives, how close each comes to the truth, and the gold answers' part."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from crowdkit.aggregation import DawidSkene
from statsmodels.stats.proportion import proportion_confint
from test_quality import CHOICES, SEEDS, accuracy, simulated_pool

from runtime.store.merging import RULES, MergeError, merge_labels
from runtime.store.quality import dawid_skene_arrays, gold_accuracy, wilson_interval

pytestmark = pytest.mark.filterwarnings("ignore:::crowdkit")


def some_gold(truth, share, seed):
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(truth), int(len(truth) * share), replace=False)
    return {int(item): truth[int(item)] for item in chosen}


def scored(merged, truth, gold):
    """Accuracy on the items that are not gold (gold items are right by construction)."""
    return accuracy(merged.labels, {i: t for i, t in truth.items() if i not in gold})


@pytest.mark.parametrize("rule", RULES)
def test_every_rule_gives_each_item_a_label_a_probability_and_each_labeler_a_matrix(rule):
    truth, annotations = simulated_pool(1, items=300)
    gold = some_gold(truth, 0.1, 1)
    merged = merge_labels(rule, annotations, CHOICES, gold)
    assert set(merged.labels) == set(annotations) == set(merged.probabilities)
    assert all(label in CHOICES for label in merged.labels.values())
    assert all(0 < p <= 1 for p in merged.probabilities.values())
    assert all(merged.labels[item] == answer for item, answer in gold.items())
    assert all(merged.probabilities[item] == 1.0 for item in gold)
    labelers = {who for given in annotations.values() for who in given}
    assert set(merged.confusion) == labelers
    for rows in merged.confusion.values():
        for true, row in rows.items():
            assert true in CHOICES and set(row) == set(CHOICES)
            assert sum(row.values()) == pytest.approx(1.0)
    assert not set(merged.ties) & set(gold)
    assert merged.left_out == ()


def test_majority_keeps_its_ties_and_gives_vote_shares():
    merged = merge_labels("majority", {"a": {1: "x", 2: "y"}, "b": {1: "x", 2: "x", 3: "y"}}, "xy")
    assert merged.labels == {"a": "x", "b": "x"}
    assert merged.ties == {"a": ("x", "y")}
    assert merged.probabilities == {"a": 0.5, "b": pytest.approx(2 / 3)}
    # Labeler 3 said y where the merged label is x: their row for x is all y.
    assert merged.confusion[3] == {"x": {"x": 0.0, "y": 1.0}}
    assert merged.confusion[2] == {"x": {"x": 0.5, "y": 0.5}}


@pytest.mark.parametrize("seed", SEEDS)
def test_dawid_skene_recovers_the_truth_at_least_as_well_as_majority(seed):
    truth, annotations = simulated_pool(seed)
    majority = merge_labels("majority", annotations, CHOICES)
    found = merge_labels("dawid-skene", annotations, CHOICES)
    assert accuracy(found.labels, truth) >= accuracy(majority.labels, truth)
    # It sees the adversary for what they are; majority's matrix only sees disagreement.
    assert found.confusion["adversary"]["cat"]["dog"] > 0.7
    assert found.confusion["good1"]["dog"]["dog"] > 0.75


@pytest.mark.parametrize("seed", SEEDS)
def test_gold_weighted_beats_majority_when_some_labelers_are_bad(seed):
    truth, annotations = simulated_pool(seed)
    gold = some_gold(truth, 0.1, seed)
    majority = merge_labels("majority", annotations, CHOICES, gold)
    weighted = merge_labels("gold-weighted", annotations, CHOICES, gold)
    assert scored(weighted, truth, gold) > scored(majority, truth, gold) + 0.02


@pytest.mark.parametrize("seed", SEEDS)
def test_dawid_skene_with_gold_is_no_worse_than_without(seed):
    truth, annotations = simulated_pool(seed)
    gold = some_gold(truth, 0.1, seed)
    without = merge_labels("dawid-skene", annotations, CHOICES)
    held = merge_labels("dawid-skene", annotations, CHOICES, gold)
    assert scored(held, truth, gold) >= scored(without, truth, gold) - 0.005


def test_the_array_path_agrees_with_crowd_kit_on_a_large_pool():
    rng = np.random.default_rng(7)
    items, per_item, labelers, k = 5000, 5, 50, 4
    skill = rng.uniform(0.3, 0.9, labelers)
    truth = rng.integers(0, k, items)
    task = np.repeat(np.arange(items), per_item)
    worker = np.concatenate([rng.choice(labelers, per_item, replace=False) for _ in range(items)])
    right = rng.random(len(task)) < skill[worker]
    label = np.where(right, truth[task], rng.integers(0, k, len(task)))
    fit = dawid_skene_arrays(task, worker, label, k)
    model = DawidSkene(n_iter=100, tol=1e-5)
    theirs = model.fit_predict(pd.DataFrame({"task": task, "worker": worker, "label": label}))
    ours = fit.posteriors.argmax(axis=1)
    assert np.mean(ours == theirs.loc[np.arange(items)].to_numpy()) >= 0.999
    probas = model.probas_.loc[np.arange(items), list(range(k))].to_numpy()
    assert np.abs(fit.posteriors - probas).max() < 1e-3
    assert fit.iterations == len(model.loss_history_)


def test_the_accuracy_floor_leaves_bad_labelers_out_and_lowering_it_brings_them_back():
    truth, annotations = simulated_pool(3, items=600)
    gold = some_gold(truth, 0.2, 3)
    scores = gold_accuracy(annotations, gold)
    assert scores["good0"].accuracy > 0.7 and scores["careless0"].accuracy < 0.55
    strict = merge_labels("majority", annotations, CHOICES, gold, floor=0.6)
    assert set(strict.left_out) == {"careless0", "careless1", "careless2", "adversary"}
    assert not set(strict.left_out) & set(strict.confusion)
    loose = merge_labels("majority", annotations, CHOICES, gold, floor=0.0)
    assert loose.left_out == () and "adversary" in loose.confusion
    assert scored(strict, truth, gold) > scored(loose, truth, gold)


def test_a_custom_function_gets_the_labels_and_gives_labels_or_label_and_probability():
    annotations = {"a": {1: "x", 2: "y"}, "b": {1: "y", 2: "y"}}
    seen = []

    def first_labeler(given):
        seen.append(given)
        return {item: by[1] for item, by in given.items()}

    merged = merge_labels("first_labeler", annotations, "xy", custom=first_labeler)
    assert seen == [annotations]
    assert merged.labels == {"a": "x", "b": "y"}
    assert merged.probabilities == {"a": 0.5, "b": 1.0}  # the share of votes that agree
    sure = merge_labels("m", annotations, "xy", custom=lambda g: {"a": ("y", 0.9)})
    assert sure.labels == {"a": "y"} and sure.probabilities == {"a": 0.9}


@pytest.mark.parametrize(
    "function,message",
    [
        (lambda g: 1 / 0, "raised ZeroDivisionError: division by zero"),
        (lambda g: ["x"], "returned a list; it must return a mapping"),
        (lambda g: {"zz": "x"}, "gave a label to 'zz', not a labeled item"),
        (lambda g: {"a": "maybe"}, "the label 'maybe', which is not one of the choices"),
        (lambda g: {"a": ("x", 3)}, "the probability 3; a probability is a number from 0 to 1"),
    ],
)
def test_a_custom_function_that_fails_says_how(function, message):
    with pytest.raises(MergeError, match=message.replace("(", r"\(").replace(")", r"\)")):
        merge_labels("custom", {"a": {1: "x"}}, "xy", custom=function)


@pytest.mark.parametrize("correct,total", [(0, 5), (3, 10), (17, 20), (20, 20), (1, 1), (45, 97)])
def test_gold_accuracy_interval_is_statsmodels_wilson(correct, total):
    low, high = proportion_confint(correct, total, alpha=0.05, method="wilson")
    assert wilson_interval(correct, total) == (pytest.approx(low), pytest.approx(high))


def test_gold_accuracy_counts_each_labelers_gold_items():
    annotations = {"a": {"ann": "x", "bob": "y"}, "b": {"ann": "x"}, "c": {"bob": "y"}}
    scores = gold_accuracy(annotations, {"a": "x", "b": "y", "d": "x"})
    assert (scores["ann"].correct, scores["ann"].total) == (1, 2)
    assert (scores["bob"].correct, scores["bob"].total) == (0, 1)
    low, high = proportion_confint(1, 2, method="wilson")
    assert (scores["ann"].low, scores["ann"].high) == (pytest.approx(low), pytest.approx(high))
