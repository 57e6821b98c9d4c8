"""Label-quality figures, checked against the reference implementations: scikit-learn's
Cohen's kappa, statsmodels' Fleiss' kappa, the `krippendorff` package's alpha and
crowd-kit's Dawid-Skene, on seeded random pools."""

from __future__ import annotations

import krippendorff
import numpy as np
import pandas as pd
import pytest
from crowdkit.aggregation import DawidSkene
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.inter_rater import aggregate_raters
from statsmodels.stats.inter_rater import fleiss_kappa as sm_fleiss_kappa
from test_agreement import KRIPPENDORFF_2011, alpha, by_unit

from runtime.store.agreement import merge
from runtime.store.quality import (
    cohen_kappa,
    dawid_skene,
    fleiss_kappa,
    krippendorff_alpha_ordinal,
)

# crowd-kit 1.4 calls pandas in ways pandas 3 deprecates; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:::crowdkit")

SEEDS = [1, 2, 3, 4, 5]


def noisy_copies(rng, truth, raters, keep, choices):
    """Each rater's label of each item: the truth with probability `keep`, else random."""
    labels = np.where(
        rng.random((raters, len(truth))) < keep,
        truth,
        rng.integers(0, choices, (raters, len(truth))),
    )
    return labels


@pytest.mark.parametrize("seed", SEEDS)
def test_cohen_kappa_matches_scikit_learn_on_the_items_both_labeled(seed):
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 4, 300)
    first, second = noisy_copies(rng, truth, 2, 0.6, 4)
    a = {item: f"c{first[item]}" for item in range(300) if rng.random() < 0.8}
    b = {item: f"c{second[item]}" for item in range(300) if rng.random() < 0.8}
    shared = [item for item in a if item in b]
    assert len(shared) < len(a) and len(shared) < len(b)
    expected = cohen_kappa_score([a[i] for i in shared], [b[i] for i in shared])
    assert 0.2 < expected < 0.8
    assert cohen_kappa(a, b) == pytest.approx(expected, abs=1e-9)


def test_cohen_kappa_is_undefined_without_shared_items_or_variety():
    assert cohen_kappa({1: "a"}, {2: "a"}) is None
    assert cohen_kappa({1: "a", 2: "a"}, {1: "a", 2: "a"}) is None
    assert cohen_kappa({1: "a", 2: "b"}, {1: "a", 2: "b"}) == 1.0


@pytest.mark.parametrize("seed", SEEDS)
def test_fleiss_kappa_matches_statsmodels(seed):
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 3, 250)
    labels = noisy_copies(rng, truth, 5, 0.5, 3)  # raters x items
    table, _ = aggregate_raters(labels.T)
    expected = sm_fleiss_kappa(table, method="fleiss")
    assert 0.2 < expected < 0.8
    as_lists = {item: [f"c{v}" for v in labels[:, item]] for item in range(250)}
    assert fleiss_kappa(as_lists) == pytest.approx(expected, abs=1e-9)
    by_labeler = {
        item: {f"rater{r}": int(labels[r, item]) for r in range(5)} for item in range(250)
    }
    assert fleiss_kappa(by_labeler) == pytest.approx(expected, abs=1e-9)


def test_fleiss_kappa_refuses_uneven_counts_and_names_them():
    with pytest.raises(ValueError, match="have 2, 3; use Krippendorff's alpha"):
        fleiss_kappa({1: ["a", "b"], 2: ["a", "a", "b"], 3: ["b"]})
    assert fleiss_kappa({1: ["a", "b"], 2: ["a", "a"], 3: ["b"]}) is not None
    assert fleiss_kappa({1: ["a", "a"], 2: ["a", "a"]}) is None


def reliability_pool(seed, raters=6, items=200, choices=5):
    """A rater x item matrix of ordinal codes 0..choices-1 with missing values (nan), each
    rating near the item's true level."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, choices, items)
    near = np.clip(truth + rng.integers(-1, 2, (raters, items)), 0, choices - 1)
    far = rng.integers(0, choices, (raters, items))
    codes = np.where(rng.random((raters, items)) < 0.8, near, far).astype(float)
    codes[rng.random((raters, items)) < 0.4] = np.nan
    return codes


def as_units(codes, names):
    return {
        item: {r: names[int(codes[r, item])] for r in range(codes.shape[0]) if codes[r, item] >= 0}
        for item in range(codes.shape[1])
    }


LEVELS = ["awful", "poor", "fair", "good", "great"]


@pytest.mark.parametrize("seed", SEEDS)
def test_ordinal_alpha_matches_the_krippendorff_package(seed):
    codes = reliability_pool(seed)
    expected = krippendorff.alpha(
        reliability_data=codes, level_of_measurement="ordinal", value_domain=range(5)
    )
    units = as_units(codes, LEVELS)
    assert krippendorff_alpha_ordinal(units, LEVELS) == pytest.approx(expected, abs=1e-9)
    # The order matters: the same labels read in another order agree less.
    shuffled = ["fair", "awful", "great", "poor", "good"]
    assert krippendorff_alpha_ordinal(units, shuffled) < expected - 0.05


@pytest.mark.parametrize("seed", SEEDS)
def test_nominal_alpha_matches_the_krippendorff_package(seed):
    codes = reliability_pool(seed)
    expected = krippendorff.alpha(reliability_data=codes, level_of_measurement="nominal")
    units = {item: list(given.values()) for item, given in as_units(codes, LEVELS).items()}
    assert alpha(units) == pytest.approx(expected, abs=1e-9)
    # Near misses are forgiven by the ordinal alpha alone.
    assert krippendorff_alpha_ordinal(units, LEVELS) > expected + 0.1


def test_ordinal_alpha_matches_krippendorffs_worked_example():
    assert krippendorff_alpha_ordinal(by_unit(KRIPPENDORFF_2011), [1, 2, 3, 4, 5]) == (
        pytest.approx(0.815, abs=5e-4)
    )


def test_ordinal_alpha_refuses_a_label_outside_the_order():
    with pytest.raises(ValueError, match="item 2: the label 'meh' is not in the order"):
        krippendorff_alpha_ordinal({1: ["low", "high"], 2: ["meh", "low"]}, ["low", "high"])
    assert krippendorff_alpha_ordinal({1: ["low"]}, ["low", "high"]) is None


CHOICES = ["cat", "dog", "bird"]


def simulated_pool(seed, items=2000, per_item=5):
    """Items with a true choice, labeled by labelers of known confusion matrices: four
    good, three near random, one who swaps every choice for the next one."""
    rng = np.random.default_rng(seed)
    k = len(CHOICES)
    good = np.full((k, k), 0.075) + np.eye(k) * 0.775  # [true, given]: 85% right
    careless = np.full((k, k), 0.3) + np.eye(k) * 0.1  # 40% right, 33% by chance
    adversary = np.full((k, k), 0.05) + np.roll(np.eye(k), 1, axis=1) * 0.85
    confusions = {f"good{i}": good for i in range(4)}
    confusions |= {f"careless{i}": careless for i in range(3)}
    confusions["adversary"] = adversary
    names = list(confusions)
    truth = rng.choice(k, items, p=[0.5, 0.3, 0.2])
    annotations = {}
    for item in range(items):
        who = rng.choice(len(names), per_item, replace=False)
        annotations[item] = {
            names[w]: CHOICES[rng.choice(k, p=confusions[names[w]][truth[item]])] for w in who
        }
    return {item: CHOICES[t] for item, t in enumerate(truth)}, annotations


def accuracy(labels, truth):
    return np.mean([labels[item] == truth[item] for item in truth])


@pytest.mark.parametrize("seed", SEEDS)
def test_dawid_skene_recovers_the_truth_better_than_majority_vote(seed):
    truth, annotations = simulated_pool(seed)
    found = dawid_skene(annotations, CHOICES)
    majority = merge({item: list(given.values()) for item, given in annotations.items()})
    assert found.converged
    assert accuracy(found.labels, truth) >= accuracy(majority.labels, truth)
    # The adversary's labels are read back: given 'dog', the truth is most likely 'cat'.
    adversary = found.confusion["adversary"]
    assert adversary["cat"]["dog"] > 0.7 and adversary["dog"]["bird"] > 0.7
    assert found.confusion["good0"]["bird"]["bird"] > 0.75
    assert found.priors["cat"] == pytest.approx(0.5, abs=0.05)
    for posterior in found.posteriors.values():
        assert sum(posterior.values()) == pytest.approx(1.0)


@pytest.mark.parametrize("seed", SEEDS)
def test_dawid_skene_agrees_with_crowd_kit(seed):
    truth, annotations = simulated_pool(seed)
    found = dawid_skene(annotations, CHOICES)
    rows = pd.DataFrame(
        [(item, who, label) for item, given in annotations.items() for who, label in given.items()],
        columns=["task", "worker", "label"],
    )
    model = DawidSkene(n_iter=100, tol=1e-5)
    theirs = model.fit_predict(rows)
    same = np.mean([found.labels[item] == theirs[item] for item in truth])
    assert same >= 0.999
    probas = model.probas_
    ours = pd.DataFrame.from_dict(found.posteriors, orient="index")[probas.columns]
    assert np.abs(ours.loc[probas.index].to_numpy() - probas.to_numpy()).max() < 1e-3
    assert found.iterations == len(model.loss_history_)
    for choice in CHOICES:
        assert found.priors[choice] == pytest.approx(model.priors_[choice], abs=1e-3)
    errors = model.errors_  # (worker, given) x true
    for (who, given), row in errors.iterrows():
        for truth_choice, share in row.items():
            assert found.confusion[who][truth_choice][given] == pytest.approx(share, abs=1e-3)


def test_dawid_skene_refuses_a_label_outside_the_choices_and_skips_empty_items():
    with pytest.raises(ValueError, match="item 1: 'ann''s label 'fish' is not a choice"):
        dawid_skene({1: {"ann": "fish"}}, CHOICES)
    found = dawid_skene({1: {"ann": "cat", "bob": "cat"}, 2: {}}, CHOICES)
    assert found.labels == {1: "cat"}
