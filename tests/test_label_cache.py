"""The labels a process keeps of each pool, brought up to date from the history, give
the same dashboard figures as reading every label again: after new labels, changes of
mind and the owner's restores written by another process, and after a transaction that
commits a lower history id after a higher one was read (PostgreSQL)."""

from __future__ import annotations

from datetime import UTC

import numpy as np
import pytest
from sqlalchemy import text

from runtime.store import label_cache
from runtime.store import label_figures as figures
from runtime.store.database import open_store
from runtime.store.pools import annotations, history, lease_batch, register_items, restore
from runtime.store.pools import save_labels as save

CHOICES = ("1", "2", "3", "4")
HOW = {"choices": CHOICES, "overlap_max": 3}
KEYS = [f"k{n}" for n in range(60)]


def figures_of(labels: figures.PoolLabels) -> dict:
    """Every figure the dashboard shows of a pool's labels."""
    counts = figures.counts_by_item(labels)
    return {
        "fleiss": figures.fleiss_kappa(counts),
        "alpha": figures.krippendorff_alpha(counts),
        "ordinal": figures.krippendorff_alpha(counts, ordinal=True),
        "full": figures.full_agreement(counts),
        "kappas": figures.cohen_kappas(labels),
        "paces": figures.paces(labels),
        "per_labeler": np.unique(labels.labeler, return_counts=True)[1].tolist(),
    }


def entries(labels: figures.PoolLabels) -> list[tuple]:
    return sorted(
        zip(
            labels.item.tolist(),
            labels.labeler.tolist(),
            [labels.values[n] for n in labels.label.tolist()],
            labels.at.tolist(),
            strict=True,
        )
    )


def from_scratch(url: str) -> figures.PoolLabels:
    """The pool's labels read by a process that has read none before."""
    fresh = open_store(url)
    try:
        return label_cache.read_labels(fresh, "rate", CHOICES)
    finally:
        fresh.dispose()


def assert_up_to_date(kept: figures.PoolLabels, url: str) -> None:
    """The kept labels are the database's labels, their moments the history's last change
    of each, and every figure equals the one read from scratch."""
    scratch = from_scratch(url)
    assert entries(kept) == entries(scratch)
    assert figures_of(kept) == figures_of(scratch)
    store = open_store(url)
    try:
        stored = {(row.item_key, row.user_id): row.label for row in annotations(store, "rate")}
        changed = {(c.item_key, c.user_id): c.changed_at for c in history(store, "rate")}
    finally:
        store.dispose()
    got = {(KEYS[item], who): (label, at) for item, who, label, at in entries(kept)}
    assert {key: label for key, (label, _) in got.items()} == stored
    for key, (_, at) in got.items():
        moment = changed[key]  # SQLite's are naive, in UTC
        moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        assert at == pytest.approx(moment.timestamp(), abs=1e-3)


def label_some(store, people, rng, batch=6) -> None:
    """Each labeler takes a batch and labels it at random."""
    for who in people:
        keys = lease_batch(store, "rate", who, batch=batch, lease_seconds=600)
        given = {key: str(rng.integers(1, 5)) for key in keys}
        save(store, "rate", who, given, f"r{rng.integers(1 << 40)}", **HOW)


def test_kept_labels_give_the_figures_of_a_full_read_after_labels_changes_and_restores(
    database_url,
):
    rng = np.random.default_rng(7)
    dashboard = open_store(database_url)  # the process showing the dashboard
    writer = open_store(database_url)  # another process, where the labelers' saves land
    try:
        register_items(writer, "rate", KEYS, overlap=(2, 3))
        people = [writer.add_user(f"labeler {n}").id for n in range(5)]
        assert label_cache.read_labels(dashboard, "rate", CHOICES).item.size == 0
        label_some(writer, people, rng)
        first = label_cache.read_labels(dashboard, "rate", CHOICES)
        assert first.item.size == 30
        assert_up_to_date(first, database_url)

        label_some(writer, people, rng)
        # Changes of mind: a labeler sends earlier items again, one answer changed and one
        # kept as it was.
        mine = sorted((key, label) for (key, who, label) in _given(writer, people[:1]))
        (changed, old), (kept, same) = mine[0], mine[1]
        new = next(c for c in CHOICES if c != old)
        save(writer, "rate", people[0], {changed: new, kept: same}, "again", **HOW)
        second = label_cache.read_labels(dashboard, "rate", CHOICES)
        assert_up_to_date(second, database_url)
        assert figures_of(second) != figures_of(first)

        # The owner puts the earlier answer back.
        restore(writer, "rate", changed, people[0], old)
        label_some(writer, people[1:], rng)
        third = label_cache.read_labels(dashboard, "rate", CHOICES)
        assert_up_to_date(third, database_url)
        assert (KEYS.index(changed), people[0], old) in [e[:3] for e in entries(third)]
    finally:
        dashboard.dispose()
        writer.dispose()


def _given(store, people):
    """The labels of these labelers: (item key, labeler, label)."""
    rows = annotations(store, "rate")
    return [(r.item_key, r.user_id, r.label) for r in rows if r.user_id in people]


def test_a_lower_id_committed_after_a_higher_one_was_read_is_not_missed(postgres_database):
    url = postgres_database
    dashboard, writer = open_store(url), open_store(url)
    try:
        register_items(writer, "rate", KEYS, overlap=(2, 3))
        people = [writer.add_user(f"labeler {n}").id for n in range(3)]
        label_some(writer, people, np.random.default_rng(3))
        label_cache.read_labels(dashboard, "rate", CHOICES)
        key, _, label = _given(writer, people[:1])[0]
        other = next(c for c in CHOICES if c != label)
        slow = writer.engine.connect()
        slow_change = slow.begin()
        # A change of mind whose transaction takes its history id and then waits...
        slow.execute(
            text(
                "INSERT INTO label_history (stage, item_key, user_id, old_label, new_label, "
                "request_id, changed_at) VALUES ('rate', :key, :who, :old, :new, 'slow', now())"
            ),
            {"key": key, "who": people[0], "old": label, "new": other},
        )
        slow.execute(
            text(
                "UPDATE annotations SET label = :new, request_id = 'slow', created_at = now() "
                "WHERE stage = 'rate' AND item_key = :key AND user_id = :who"
            ),
            {"key": key, "who": people[0], "new": other},
        )
        # ...while another labeler's later save commits, and the dashboard reads it.
        label_some(writer, people[1:2], np.random.default_rng(4))
        before = label_cache.read_labels(dashboard, "rate", CHOICES)
        assert (KEYS.index(key), people[0], label) in [e[:3] for e in entries(before)]
        slow_change.commit()
        slow.close()
        after = label_cache.read_labels(dashboard, "rate", CHOICES)
        assert (KEYS.index(key), people[0], other) in [e[:3] for e in entries(after)]
        assert_up_to_date(after, url)
    finally:
        dashboard.dispose()
        writer.dispose()
