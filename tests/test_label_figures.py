"""The dashboard's quality figures over label arrays, checked against the reference
implementations (scikit-learn, statsmodels, krippendorff) and the dict-based figures of
runtime.store.quality, on seeded random pools; and read from both databases in one
query."""

from __future__ import annotations

from datetime import timedelta

import krippendorff
import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.inter_rater import fleiss_kappa as sm_fleiss_kappa

from runtime.store import label_cache
from runtime.store import label_figures as figures
from runtime.store.database import open_store
from runtime.store.pools import lease_batch, register_items, save_labels

SEEDS = [1, 2, 3]
CHOICES = ("1", "2", "3", "4")


def random_pool(seed, items=400, labelers=8, per_item=(2, 5), keep=0.6):
    """A pool's labels as arrays: each item labeled by 2 to 5 distinct labelers, each
    label the item's truth with probability `keep`, else a random choice."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, len(CHOICES), items)
    rows = []
    for item in range(items):
        who = rng.choice(labelers, rng.integers(per_item[0], per_item[1] + 1), replace=False)
        for labeler in who:
            label = truth[item] if rng.random() < keep else rng.integers(0, len(CHOICES))
            rows.append((item, int(labeler) + 1, CHOICES[label], float(item)))
    return figures.PoolLabels.of(rows, CHOICES)


def reliability(labels):
    """Labelers by items, NaN where a labeler gave no label: the krippendorff package's."""
    people = sorted(set(labels.labeler.tolist()))
    data = np.full((len(people), int(labels.item.max()) + 1), np.nan)
    data[[people.index(p) for p in labels.labeler.tolist()], labels.item] = labels.label
    return data


@pytest.mark.parametrize("seed", SEEDS)
def test_alpha_matches_the_krippendorff_package_nominal_and_ordinal(seed):
    labels = random_pool(seed)
    counts = figures.counts_by_item(labels)
    data = reliability(labels)
    nominal = krippendorff.alpha(reliability_data=data, level_of_measurement="nominal")
    ordinal = krippendorff.alpha(reliability_data=data, level_of_measurement="ordinal")
    assert figures.krippendorff_alpha(counts) == pytest.approx(nominal, abs=1e-9)
    assert figures.krippendorff_alpha(counts, ordinal=True) == pytest.approx(ordinal, abs=1e-9)


@pytest.mark.parametrize("seed", SEEDS)
def test_fleiss_kappa_matches_statsmodels_when_every_item_has_the_same_count(seed):
    labels = random_pool(seed, per_item=(3, 3))
    counts = figures.counts_by_item(labels)
    assert figures.fleiss_kappa(counts) == pytest.approx(sm_fleiss_kappa(counts), abs=1e-12)


@pytest.mark.parametrize("seed", SEEDS)
def test_cohen_kappa_of_every_pair_matches_scikit_learn(seed):
    labels = random_pool(seed)
    kappas = figures.cohen_kappas(labels)
    given = {}
    for item, who, label in zip(labels.item, labels.labeler, labels.label, strict=True):
        given.setdefault(int(who), {})[int(item)] = int(label)
    people = sorted(given)
    checked = 0
    for n, a in enumerate(people):
        for b in people[n + 1 :]:
            shared = sorted(given[a].keys() & given[b].keys())
            if not shared:
                assert (a, b) not in kappas
                continue
            kappa, count = kappas[(a, b)]
            assert count == len(shared)
            expected = cohen_kappa_score(
                [given[a][i] for i in shared], [given[b][i] for i in shared]
            )
            assert kappa == pytest.approx(expected, abs=1e-9)
            checked += 1
    assert checked == len(kappas) > 20


def test_full_agreement_counts_the_items_whose_labels_are_all_alike():
    rows = [(0, 1, "1", 0.0), (0, 2, "1", 0.0), (1, 1, "1", 0.0), (1, 2, "2", 0.0)]
    rows += [(2, 1, "3", 0.0), (2, 2, "3", 0.0), (2, 3, "3", 0.0), (3, 1, "4", 0.0)]
    counts = figures.counts_by_item(figures.PoolLabels.of(rows, CHOICES))
    assert figures.full_agreement(counts) == pytest.approx(2 / 3)  # item 3 has one label


def test_pace_shares_each_submission_time_between_its_items_and_skips_breaks():
    # Labeler 1 submits 2 items at 0 s, 4 items at 40 s (10 s each), 2 at 60 s (10 s
    # each), a break, then 1 item at 2,000 s and 1 at 2,030 s (30 s).
    moments = [0, 0, 40, 40, 40, 40, 60, 60, 2000, 2030]
    rows = [(n, 1, "1", float(at)) for n, at in enumerate(moments)]
    pace = figures.paces(figures.PoolLabels.of(rows, CHOICES))[1]
    assert pace.labels == 10
    assert pace.median_seconds == pytest.approx(10.0)
    assert pace.p90_seconds == pytest.approx(18.0)  # seven items: 10 s six times, 30 s once
    assert pace.per_hour == pytest.approx(7 / 90 * 3600)  # 7 items in 20 + 40 + 30 s


def test_a_pool_with_no_labels_has_no_figures():
    labels = figures.PoolLabels.of([], CHOICES)
    counts = figures.counts_by_item(labels)
    assert figures.fleiss_kappa(counts) is None
    assert figures.krippendorff_alpha(counts) is None
    assert figures.full_agreement(counts) is None
    assert figures.cohen_kappas(labels) == {}
    assert figures.paces(labels) == {}


def test_ratings_are_ordered_and_names_are_not():
    assert figures.ordered(("1", "2", "3", "4", "5"))
    assert not figures.ordered(("yes", "no", "maybe"))
    assert not figures.ordered(("3", "2", "1"))


def test_the_labels_are_read_in_one_query_with_their_positions_and_moments(database_url):
    store = open_store(database_url)
    try:
        keys = ["a", "b", "c"]
        register_items(store, "rate", keys, overlap=(2, 2))
        first, second = (store.add_user(name).id for name in ("one", "two"))
        how = {"choices": CHOICES, "overlap_max": 2}
        for user, given in ((first, {"a": "2", "b": "3"}), (second, {"a": "2", "c": "4"})):
            assert lease_batch(store, "rate", user, batch=3, lease_seconds=600)
            save_labels(store, "rate", user, given, f"first {user}", **how)
        # A change of mind while the stage is open replaces the labeler's label.
        saved = save_labels(store, "rate", first, {"a": "1"}, "again", **how)
        assert saved.saved == ["a"]
        labels = label_cache.read_labels(store, "rate", CHOICES)
    finally:
        store.dispose()
    got = sorted(
        zip(
            labels.item.tolist(),
            labels.labeler.tolist(),
            [labels.values[i] for i in labels.label],
            strict=True,
        )
    )
    assert got == [(0, first, "1"), (0, second, "2"), (1, first, "3"), (2, second, "4")]
    assert labels.values[:4] == CHOICES
    spread = labels.at.max() - labels.at.min()
    assert 0 <= spread < timedelta(hours=1).total_seconds()
