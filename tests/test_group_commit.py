"""Pool writes that arrive together on SQLite share one commit, and stay apart: a refused
one leaves the others saved, and nobody hears back before the commit holding their write."""

from __future__ import annotations

import asyncio

import pytest

from runtime.store import pools
from runtime.store.database import open_store
from runtime.store.group_commit import GroupCommit

CHOICES = ("yes", "no")


class Commits:
    """Counts the commits of the engine's driver connections, or makes them fail."""

    def __init__(self, engine, monkeypatch, fail=False):
        self.count = 0
        self.fail = fail
        real = engine.raw_connection
        monkeypatch.setattr(engine, "raw_connection", lambda: _Counted(real(), self))


class _Counted:
    def __init__(self, connection, commits):
        self._connection = connection
        self._commits = commits

    def commit(self):
        self._commits.count += 1
        if self._commits.fail:
            raise OSError("disk full")
        self._connection.commit()

    def __getattr__(self, name):
        return getattr(self._connection, name)


@pytest.fixture
def store(tmp_path):
    store = open_store(f"sqlite:///{tmp_path / 'app.sqlite'}")
    pools.register_items(store, "check", [str(i) for i in range(20)], overlap=(1, 1))
    yield store
    store.dispose()


def batches(store, count):
    people = [store.add_user(f"labeler {n}").id for n in range(count)]
    how = {"batch": 2, "lease_seconds": 600}
    return [(person, pools.lease_batch(store, "check", person, **how)) for person in people]


def saving(person, keys, request, label="yes"):
    labels = dict.fromkeys(keys, label)
    return pools.saving("check", person, labels, request, choices=CHOICES, overlap_max=1)


def submit_together(store, works):
    async def submit():
        group = GroupCommit(store.engine)
        futures = [group.run(work) for work in works]
        return await asyncio.gather(*futures, return_exceptions=True)

    return asyncio.run(submit())


def test_submissions_arriving_together_are_saved_by_one_commit(store, monkeypatch):
    held = batches(store, 5)
    commits = Commits(store.engine, monkeypatch)
    results = submit_together(store, [saving(p, keys, f"r{p}") for p, keys in held])
    assert [r.saved for r in results] == [sorted(keys) for _, keys in held]
    assert len(pools.annotations(store, "check")) == 10
    assert commits.count == 1


def test_a_refused_submission_leaves_the_others_of_its_commit_saved(store):
    (alice, hers), (bob, his), (carol, _) = batches(store, 3)
    saved, not_a_choice, not_her_batch = submit_together(
        store,
        [
            saving(alice, hers, "a"),
            saving(bob, his, "b", label="maybe"),
            saving(carol, his, "c"),
        ],
    )
    assert saved.saved == sorted(hers)
    assert "not one of the choices" in str(not_a_choice)
    assert "not in your batch" in str(not_her_batch)
    assert {row.user_id for row in pools.annotations(store, "check")} == {alice}
    again = pools.lease_batch(store, "check", bob, batch=2, lease_seconds=600)
    assert again == his  # bob's refused submission left his batch as it was


def test_nobody_is_told_saved_when_the_commit_fails(store, monkeypatch):
    held = batches(store, 2)
    Commits(store.engine, monkeypatch, fail=True)
    results = submit_together(store, [saving(p, keys, f"r{p}") for p, keys in held])
    assert [str(r) for r in results] == ["disk full", "disk full"]
    assert pools.annotations(store, "check") == []
