"""Handing out pooled work: batches, overlap, leases, retries, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import insert, select, text, update
from sqlalchemy.exc import IntegrityError

from runtime.store.database import Item, Lease, PoolRequest, open_store
from runtime.store.pools import (
    LabelRefused,
    annotations,
    has_work,
    lease_batch,
    progress,
    register_items,
    save_labels,
)

CHOICES = ("yes", "no")
KEYS = [str(i) for i in range(10)]


def _pool(url):
    store = open_store(url)
    register_items(store, "check", KEYS, overlap=(1, 1))
    yield store
    store.dispose()


@pytest.fixture
def pool(database_url):
    yield from _pool(database_url)


@pytest.fixture
def postgres_pool(postgres_database):
    yield from _pool(postgres_database)


def labelers(store, count):
    return [store.add_user(f"labeler {n}").id for n in range(count)]


def lease(store, user, batch=4, seconds=600, gold_rate=0.0):
    how = {"batch": batch, "lease_seconds": seconds, "gold_rate": gold_rate}
    return lease_batch(store, "check", user, **how)


def save(store, user, keys, request, label="yes", overlap=1):
    labels = dict.fromkeys(keys, label)
    how = {"choices": CHOICES, "overlap_max": overlap}
    return save_labels(store, "check", user, labels, request, **how)


def test_second_labeler_never_gets_the_same_item(pool):
    alice, bob = labelers(pool, 2)
    first, second = lease(pool, alice), lease(pool, bob)
    assert first == KEYS[:4] and second == KEYS[4:8]


def test_a_labeler_who_comes_back_gets_their_unfinished_batch(pool):
    [alice] = labelers(pool, 1)
    assert lease(pool, alice) == lease(pool, alice)


def test_with_overlap_every_item_gets_that_many_distinct_labelers(pool):
    register_items(pool, "check", KEYS, overlap=(3, 3))  # the author raised the overlap
    people = labelers(pool, 4)
    for round_ in range(10):
        for person in people:
            keys = lease(pool, person, batch=3)
            if keys:
                save(pool, person, keys, f"{person}-{round_}", overlap=3)
    rows = annotations(pool, "check")
    per_item = {}
    for row in rows:
        per_item.setdefault(row.item_key, []).append(row.user_id)
    assert sorted(per_item) == sorted(KEYS)
    assert all(len(users) == 3 == len(set(users)) for users in per_item.values())
    assert progress(pool, "check").done
    assert not any(has_work(pool, "check", person) for person in people)


def test_an_expired_lease_returns_its_items_to_the_pool(pool):
    alice, bob = labelers(pool, 2)
    taken = lease(pool, alice, batch=10)
    assert lease(pool, bob) == []
    with pool.engine.begin() as connection:
        connection.execute(update(Lease).values(expires_at=Lease.expires_at - timedelta(hours=1)))
    assert lease(pool, bob, batch=10) == taken


def test_items_held_only_by_expired_leases_are_still_work_for_others(pool):
    alice, bob = labelers(pool, 2)
    lease(pool, alice, batch=10)
    assert not has_work(pool, "check", bob)
    with pool.engine.begin() as connection:
        connection.execute(update(Lease).values(expires_at=Lease.expires_at - timedelta(hours=1)))
    assert has_work(pool, "check", bob)
    assert len(lease(pool, bob, batch=10)) == 10
    assert not has_work(pool, "check", alice)


def test_progress_counts_labels_and_items_with_all_of_them(pool):
    register_items(pool, "check", KEYS, overlap=(2, 2))
    alice, bob = labelers(pool, 2)
    save(pool, alice, lease(pool, alice, batch=3), "a", overlap=2)
    save(pool, bob, lease(pool, bob, batch=5), "b", overlap=2)
    done = progress(pool, "check")
    assert (done.items, done.labels, done.complete, done.done) == (10, 8, 3, False)
    assert done.needed == 20


def test_a_retried_submission_is_applied_once(pool):
    [alice] = labelers(pool, 1)
    keys = lease(pool, alice)
    assert len(save(pool, alice, keys, "same").saved) == 4
    assert save(pool, alice, keys, "same").saved == sorted(keys)
    assert len(annotations(pool, "check")) == 4


def test_two_labelers_using_the_same_request_id_both_have_their_labels_saved(pool):
    alice, bob = labelers(pool, 2)
    first, second = lease(pool, alice), lease(pool, bob)
    assert save(pool, alice, first, "b-17").saved == sorted(first)
    assert save(pool, bob, second, "b-17").saved == sorted(second)
    by_user = {(row.user_id, row.item_key) for row in annotations(pool, "check")}
    assert by_user == {(alice, k) for k in first} | {(bob, k) for k in second}


def test_the_database_refuses_a_request_id_twice_for_one_labeler_and_stage(pool):
    [alice] = labelers(pool, 1)
    save(pool, alice, lease(pool, alice), "r1")
    with pytest.raises(IntegrityError), pool.engine.begin() as connection:
        connection.execute(
            insert(PoolRequest).values(stage="check", user_id=alice, request_id="r1")
        )


def test_labels_outside_the_choices_or_the_batch_are_refused_and_nothing_is_written(pool):
    alice, bob = labelers(pool, 2)
    keys = lease(pool, alice)
    with pytest.raises(LabelRefused, match="not one of the choices"):
        save(pool, alice, keys, "r1", label="maybe")
    with pytest.raises(LabelRefused, match="not in your batch"):
        save(pool, bob, keys, "r2")
    assert annotations(pool, "check") == []


def test_a_labeler_can_change_a_label_they_gave(pool):
    [alice] = labelers(pool, 1)
    keys = lease(pool, alice)
    save(pool, alice, keys, "r1", label="yes")
    save_labels(pool, "check", alice, {keys[0]: "no"}, "r2", choices=CHOICES, overlap_max=1)
    labels = {row.item_key: row.label for row in annotations(pool, "check")}
    assert labels[keys[0]] == "no" and labels[keys[1]] == "yes"


def test_labelers_racing_for_the_last_items_never_exceed_the_overlap(database_url):
    store = open_store(database_url)
    register_items(store, "check", KEYS[:3], overlap=(2, 2))
    people = labelers(store, 8)
    start = threading.Barrier(len(people))
    got: dict[int, list[str]] = {}

    def race(person):
        start.wait()
        got[person] = lease(store, person, batch=3)

    threads = [threading.Thread(target=race, args=(p,)) for p in people]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    handed = [key for keys in got.values() for key in keys]
    assert all(handed.count(key) <= 2 for key in KEYS[:3])
    # Those who lost the race (PostgreSQL skips items another process holds) ask again.
    for person in people:
        if not got[person]:
            handed += lease(store, person, batch=3)
    assert sorted(handed) == sorted(KEYS[:3] * 2)
    store.dispose()


def test_a_late_label_after_the_lease_expired_never_overfills_an_item(pool):
    alice, bob = labelers(pool, 2)
    slow = lease(pool, alice, batch=1)
    with pool.engine.begin() as connection:
        connection.execute(update(Lease).values(expires_at=Lease.expires_at - timedelta(hours=1)))
    # Expired leases are reclaimed when the fresh items run short of a batch.
    assert slow[0] in lease(pool, bob, batch=10)
    save(pool, bob, slow, "bob-1")
    assert save(pool, alice, slow, "alice-1").late == slow
    assert [row.user_id for row in annotations(pool, "check")] == [bob]
    assert lease(pool, alice, batch=1) != slow  # alice is not stuck on it


def test_processes_starting_at_once_register_the_same_items_once(database_url):
    stores = [open_store(database_url) for _ in range(4)]
    keys = [str(i) for i in range(2000)]
    start = threading.Barrier(len(stores))
    failed: list[BaseException] = []

    def register(store):
        start.wait()
        try:
            register_items(store, "check", keys, overlap=(2, 2))
        except Exception as error:
            failed.append(error)

    threads = [threading.Thread(target=register, args=(s,)) for s in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failed == []
    assert progress(stores[0], "check").items == len(keys)
    for store in stores:
        store.dispose()


def test_many_labelers_at_once_fill_every_item_exactly_to_its_overlap(database_url):
    store = open_store(database_url)
    keys = [str(i) for i in range(300)]
    register_items(store, "check", keys, overlap=(2, 2))
    people = labelers(store, 8)
    start = threading.Barrier(len(people))
    late: list[str] = []

    def work(person):
        start.wait()
        number = 0
        while True:
            batch = lease(store, person, batch=10)
            if not batch:
                if has_work(store, "check", person):
                    continue  # PostgreSQL skipped items another labeler was leasing
                return
            number += 1
            late.extend(save(store, person, batch, f"{person}-{number}", overlap=2).late)

    threads = [threading.Thread(target=work, args=(p,)) for p in people]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    per_item: dict[str, list[int]] = {}
    for row in annotations(store, "check"):
        per_item.setdefault(row.item_key, []).append(row.user_id)
    assert sorted(per_item) == sorted(keys)
    assert all(len(users) == 2 == len(set(users)) for users in per_item.values())
    assert late == []
    store.dispose()


def test_a_submission_chosen_as_a_deadlock_victim_is_retried_and_saved(postgres_pool):
    store = postgres_pool
    [alice] = labelers(store, 1)
    keys = lease(store, alice)
    other = store.engine.connect()
    other.execute(select(Item).where(Item.item_key == keys[0]).with_for_update())
    saved: list = []
    submit = threading.Thread(target=lambda: saved.append(save(store, alice, keys, "r1")))
    submit.start()  # deletes alice's lease rows, then waits for the item `other` holds
    time.sleep(0.3)
    # `other` now waits for alice's lease rows: a cycle. PostgreSQL aborts the
    # submission, which waited first; it is run again once `other` is done.
    other.execute(update(Lease).where(Lease.user_id == alice).values(reclaimed=False))
    other.commit()
    other.close()
    submit.join()
    assert saved[0].saved == sorted(keys)
    assert len(annotations(store, "check")) == len(keys)


def test_a_labelers_rows_are_found_by_their_keys_whatever_the_statistics(postgres_pool):
    """Migration 0005: looked at while its tables were empty, PostgreSQL saw every index
    as finding one row, and kept plans that read all of a labeler's labels, or all of
    a stage's leases, to check one item or to find the labeler's leases. (The pool's
    items were registered while the other tables were empty, and PostgreSQL looked.)"""
    store = postgres_pool
    [alice] = labelers(store, 1)
    # A labeler's row of an item, and their leases: (types, rows, arguments, the columns
    # the plan's index conditions must hold).
    lookups = [
        (
            "(text, text, int)",
            "annotations WHERE stage = $1 AND item_key = $2 AND user_id = $3",
            "('check', 'k5', %d)",
            ("item_key", "user_id"),
        ),
        (
            "(text, text, int)",
            "leases WHERE stage = $1 AND item_key = $2 AND user_id = $3",
            "('check', 'k5', %d)",
            ("item_key", "user_id"),
        ),
        ("(text, int)", "leases WHERE stage = $1 AND user_id = $2", "('check', %d)", ("user_id",)),
    ]
    with store.engine.begin() as connection:
        connection.exec_driver_sql(
            "INSERT INTO annotations (stage, item_key, user_id, label, request_id, created_at) "
            f"SELECT 'check', 'k' || n, {alice}, 'yes', 'r' || n, now() "
            "FROM generate_series(1, 2000) n"
        )
        connection.exec_driver_sql(
            "INSERT INTO leases (stage, item_key, user_id, expires_at, reclaimed) "
            f"SELECT 'check', 'k' || n, {alice}, now(), mod(n, 2) = 0 "
            "FROM generate_series(1, 2000) n"
        )
        connection.exec_driver_sql("SET plan_cache_mode = force_generic_plan")
        for number, (types, where, arguments, columns) in enumerate(lookups):
            connection.exec_driver_sql(f"PREPARE lookup{number} {types} AS SELECT 1 FROM {where}")
            plan = "\n".join(
                row[0]
                for row in connection.exec_driver_sql(
                    f"EXPLAIN EXECUTE lookup{number} {arguments % alice}"
                )
            )
            conditions = [line for line in plan.splitlines() if "Index Cond" in line]
            assert conditions, plan
            assert all(column in line for line in conditions for column in columns), plan


def test_a_submission_whose_connection_broke_is_made_again_on_a_new_one(postgres_pool):
    """PostgreSQL restarted, or a proxy dropped the connection, while it sat in the pool."""
    store = postgres_pool
    [alice] = labelers(store, 1)
    keys = lease(store, alice)
    with store.engine.begin() as connection:
        connection.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        )
    assert save(store, alice, keys, "r1").saved == sorted(keys)
    assert len(annotations(store, "check")) == len(keys)
