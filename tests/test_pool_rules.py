"""The pool's rules in the database, on SQLite and PostgreSQL: overlap ranges that open a
tied item for one labeler more, leases topped up for a page that holds a batch ahead,
gold items mixed into batches, and every change to a label kept."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from runtime.store.agreement import merge
from runtime.store.database import Lease, now, open_store
from runtime.store.pools import (
    LabelRefused,
    annotations,
    gold_keys,
    has_work,
    history,
    labels_by_item,
    lease_batch,
    progress,
    register_items,
    restore,
    save_labels,
)

CHOICES = ("A", "B", "C")


@pytest.fixture
def store(database_url):
    store = open_store(database_url)
    yield store
    store.dispose()


def labelers(store, count):
    return [store.add_user(f"labeler {n}").id for n in range(count)]


def lease(store, user, batch, gold_rate=0.0, stage="check"):
    how = {"batch": batch, "lease_seconds": 600, "gold_rate": gold_rate}
    return lease_batch(store, stage, user, **how)


def save(store, user, labels, request, most):
    return save_labels(store, "check", user, labels, request, choices=CHOICES, overlap_max=most)


def labels_of_items(store):
    return labels_by_item(annotations(store, "check"))


def test_a_tied_item_gets_a_third_labeler_and_settles(store):
    register_items(store, "check", ["tied", "agreed"], overlap=(2, 3))
    alice, bob, carol = labelers(store, 3)
    assert lease(store, alice, 2) == ["tied", "agreed"]
    assert lease(store, bob, 2) == ["tied", "agreed"]
    save(store, alice, {"tied": "A", "agreed": "A"}, "a1", most=3)
    save(store, bob, {"tied": "B", "agreed": "A"}, "b1", most=3)
    # A/B ties: "tied" is open again, for carol alone; A/A stops at two.
    done = progress(store, "check")
    assert (done.items, done.labels, done.complete, done.needed) == (2, 4, 1, 5)
    assert lease(store, alice, 2) == [] and lease(store, bob, 2) == []
    assert lease(store, carol, 2) == ["tied"]
    save(store, carol, {"tied": "A"}, "c1", most=3)
    done = progress(store, "check")
    assert (done.labels, done.complete, done.needed, done.done) == (5, 2, 5, True)
    merged = merge(labels_of_items(store))
    assert merged.labels == {"tied": "A", "agreed": "A"} and merged.ties == {}
    assert not any(has_work(store, "check", person) for person in (alice, bob, carol))


def test_an_item_tied_at_the_most_overlap_is_done_and_stays_tied(store):
    register_items(store, "check", ["x"], overlap=(2, 3))
    people = labelers(store, 4)
    for person, label in zip(people, "ABC", strict=False):
        assert lease(store, person, 1) == ["x"]
        save(store, person, {"x": label}, f"r{person}", most=3)
    assert lease(store, people[3], 1) == []  # three labels, still tied: done at the most
    done = progress(store, "check")
    assert (done.labels, done.complete, done.done) == (3, 1, True)
    assert list(merge(labels_of_items(store)).ties) == ["x"]


def test_with_a_fixed_overlap_a_tie_stays_tied(store):
    register_items(store, "check", ["x"], overlap=(2, 2))
    alice, bob, carol = labelers(store, 3)
    for person, label in ((alice, "A"), (bob, "B")):
        lease(store, person, 1)
        save(store, person, {"x": label}, f"r{person}", most=2)
    assert lease(store, carol, 1) == []
    assert progress(store, "check").done
    assert list(merge(labels_of_items(store)).ties) == ["x"]


def test_nobody_labels_a_reopened_item_twice(store):
    register_items(store, "check", [str(n) for n in range(6)], overlap=(2, 4))
    people = labelers(store, 5)
    for round_ in range(8):
        for number, person in enumerate(people):
            keys = lease(store, person, 3)
            if keys:  # everyone disagrees as much as they can: many ties
                labels = {key: CHOICES[(number + round_) % 3] for key in keys}
                save(store, person, labels, f"{person}-{round_}", most=4)
    rows = annotations(store, "check")
    pairs = Counter((row.item_key, row.user_id) for row in rows)
    assert max(pairs.values()) == 1
    per_item = Counter(row.item_key for row in rows)
    assert len(per_item) == 6 and all(2 <= count <= 4 for count in per_item.values())
    done = progress(store, "check")
    assert done.done and done.complete == 6 and done.labels == len(rows) == done.needed


def test_a_raised_least_overlap_reopens_items(store):
    register_items(store, "check", ["x", "y"], overlap=(1, 1))
    [alice, bob] = labelers(store, 2)
    save(store, alice, dict.fromkeys(lease(store, alice, 2), "A"), "a1", most=1)
    assert progress(store, "check").done
    register_items(store, "check", ["x", "y"], overlap=(2, 3))  # the author asked for more
    done = progress(store, "check")
    assert (done.complete, done.needed, done.done) == (0, 4, False)
    assert lease(store, bob, 2) == ["x", "y"]


def test_a_page_holding_a_batch_ahead_gets_it_back_with_a_fresh_one(store):
    keys = [str(n) for n in range(10)]
    register_items(store, "check", keys, overlap=(1, 1))
    alice, bob = labelers(store, 2)
    assert lease(store, alice, 4) == keys[:4]  # two batches of two: one shown, one ahead
    save(store, alice, dict.fromkeys(keys[:2], "A"), "a1", most=1)
    assert lease(store, alice, 4) == keys[2:6]  # the held batch first, then a fresh one
    assert lease(store, alice, 4) == keys[2:6]  # coming back: the same four
    assert lease(store, bob, 4) == keys[6:10]


def test_a_lease_renews_the_held_items(store):
    register_items(store, "check", [str(n) for n in range(4)], overlap=(1, 1))
    [alice] = labelers(store, 1)
    held = lease(store, alice, 2)
    with store.engine.begin() as connection:  # nearly expired
        connection.execute(update(Lease).values(expires_at=now() + timedelta(seconds=1)))
    assert lease(store, alice, 3) == [*held, "2"]
    renewed = select(func.count()).where(Lease.expires_at > now() + timedelta(seconds=590))
    with store.engine.connect() as connection:
        assert connection.scalar(renewed) == 3  # every held item, for another ten minutes


def test_labelers_racing_with_batches_ahead_never_exceed_an_items_count(postgres_database):
    store = open_store(postgres_database)
    keys = [str(n) for n in range(40)]
    register_items(store, "check", keys, overlap=(2, 2))
    people = labelers(store, 4)
    start = threading.Barrier(len(people))
    handed: list[list[str]] = []

    def work(person):
        start.wait()
        for round_ in range(40):
            batch = lease(store, person, 4)
            handed.append(batch)
            if batch:
                save(store, person, dict.fromkeys(batch[:2], "A"), f"{person}-{round_}", most=2)

    threads = [threading.Thread(target=work, args=(p,)) for p in people]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    per_item = Counter(row.item_key for row in annotations(store, "check"))
    assert per_item == dict.fromkeys(keys, 2)
    assert all(len(batch) == len(set(batch)) for batch in handed)
    store.dispose()


GOLD = ["g0", "g1", "g2", "g3"]


def gold_pool(store):
    keys = [*GOLD, *(str(n) for n in range(40))]
    register_items(store, "check", keys, overlap=(1, 1), gold=GOLD)
    return [key for key in keys if key not in GOLD]


def test_gold_items_are_mixed_into_batches_at_the_rate(store):
    ordinary = gold_pool(store)
    assert gold_keys(store, "check") == GOLD
    alice, bob = labelers(store, 2)
    first = lease(store, alice, 10, gold_rate=0.2)
    assert sorted(set(first) & set(GOLD)) == GOLD[:2]
    assert [key for key in first if key not in GOLD] == ordinary[:8]
    assert lease(store, alice, 10, gold_rate=0.2) == first  # coming back: the same order
    # Gold items have no overlap limit: bob gets the same two.
    assert sorted(set(lease(store, bob, 10, gold_rate=0.2)) & set(GOLD)) == GOLD[:2]
    save(store, alice, dict.fromkeys(first, "A"), "a1", most=1)
    second = lease(store, alice, 10, gold_rate=0.2)
    assert sorted(set(second) & set(GOLD)) == GOLD[2:]  # gold she has not labeled
    save(store, alice, dict.fromkeys(second, "A"), "a2", most=1)
    third = lease(store, alice, 10, gold_rate=0.2)  # none left for her: all ordinary
    assert len(third) == 10 and not set(third) & set(GOLD)


def test_no_gold_items_at_rate_zero_and_none_in_progress(store):
    ordinary = gold_pool(store)
    [alice] = labelers(store, 1)
    assert lease(store, alice, 10) == ordinary[:10]
    done = progress(store, "check")
    assert (done.items, done.needed) == (40, 40)
    save(store, alice, dict.fromkeys(ordinary[:10], "A"), "a1", most=1)
    for round_ in range(5):
        batch = lease(store, alice, 10, gold_rate=0.5)
        save(store, alice, dict.fromkeys(batch, "A"), f"a{round_ + 2}", most=1)
    done = progress(store, "check")
    assert (done.items, done.labels, done.complete, done.done) == (40, 40, 40, True)
    assert lease(store, alice, 10, gold_rate=0.5) == []  # gold alone is no batch
    assert not has_work(store, "check", alice)


def test_gold_items_take_no_fixed_place_in_a_batch(store):
    gold_pool(store)
    places = set()
    for person in labelers(store, 6):  # 36 ordinary items of the 40
        batch = lease(store, person, 8, gold_rate=0.25)
        places |= {batch.index(key) for key in GOLD if key in batch}
        assert len([key for key in batch if key in GOLD]) == 2
    assert len(places) > 2 and places - {0, 7}


def test_every_change_to_a_label_is_kept_and_an_earlier_answer_can_be_restored(store):
    register_items(store, "check", ["x", "y"], overlap=(2, 2))
    alice, bob = labelers(store, 2)
    lease(store, alice, 2)
    save(store, alice, {"x": "A", "y": "B"}, "a1", most=2)
    save(store, alice, {"x": "B"}, "a2", most=2)  # a change of mind
    save(store, alice, {"x": "B"}, "a3", most=2)  # the same label again: no change
    lease(store, bob, 2)
    save(store, bob, {"x": "C"}, "b1", most=2)
    changes = [
        (c.item_key, c.user_id, c.old_label, c.new_label, c.request_id)
        for c in history(store, "check")
    ]
    assert changes == [
        ("x", alice, None, "A", "a1"),
        ("y", alice, None, "B", "a1"),
        ("x", alice, "A", "B", "a2"),
        ("x", bob, None, "C", "b1"),
    ]
    assert [c.new_label for c in history(store, "check", "y")] == ["B"]
    restored = restore(store, "check", "x", alice, "A")
    assert (restored.old_label, restored.new_label) == ("B", "A")
    last = history(store, "check", "x")[-1]
    assert (last.user_id, last.old_label, last.new_label) == (alice, "B", "A")
    assert last.request_id == restored.request_id
    assert sorted(labels_of_items(store)["x"]) == ["A", "C"]


def test_restoring_a_label_never_given_is_refused_and_writes_nothing(store):
    register_items(store, "check", ["x", "y"], overlap=(1, 1))
    [alice] = labelers(store, 1)
    lease(store, alice, 1)
    save(store, alice, {"x": "A"}, "a1", most=1)
    with pytest.raises(LabelRefused, match="'C' was never the answer of labeler .* to item x"):
        restore(store, "check", "x", alice, "C")
    with pytest.raises(LabelRefused, match="has not labeled item y of stage check"):
        restore(store, "check", "y", alice, "A")
    assert len(history(store, "check")) == 1
    assert labels_of_items(store) == {"x": ["A"]}


def test_a_small_batch_keeps_an_ordinary_item_at_a_high_gold_rate(store):
    ordinary = gold_pool(store)
    [alice] = labelers(store, 1)
    assert lease(store, alice, 1, gold_rate=0.9) == ordinary[:1]
    topped = lease(store, alice, 3, gold_rate=0.9)  # two new items: one gold, one not
    assert topped[0] == ordinary[0] and len(topped) == 3
    assert len(set(topped) & set(GOLD)) == 1 and ordinary[1] in topped


def test_a_change_of_mind_that_makes_a_tie_reopens_the_item(store):
    register_items(store, "check", ["x"], overlap=(2, 3))
    alice, bob, carol = labelers(store, 3)
    for person in (alice, bob):
        lease(store, person, 1)
        save(store, person, {"x": "A"}, f"r{person}", most=3)
    assert progress(store, "check").done
    save(store, bob, {"x": "B"}, "again", most=3)  # from the page of his last batch
    assert not progress(store, "check").done
    assert lease(store, carol, 1) == ["x"]
