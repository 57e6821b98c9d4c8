"""The app's database, on SQLite and on a real PostgreSQL."""

from __future__ import annotations

from runtime.store import OWNER, open_store


def test_secret_is_made_once_and_kept(database_url):
    assert open_store(database_url).secret() == open_store(database_url).secret()


def test_tokens_are_stored_hashed_and_find_their_user(database_url):
    store = open_store(database_url)
    invite = store.invite("alice")
    assert store.user_for_token(invite.token).name == "alice"
    assert store.user_for_token(invite.token + "x") is None
    assert invite.token not in {u.token_hash for u in store.users()}


def test_a_retried_submission_is_applied_once(database_url):
    store = open_store(database_url)
    user = store.invite("bob").user_id
    first = store.submit(user, "pick", {"value": 1}, "request-1")
    again = store.submit(user, "pick", {"value": 1}, "request-1")
    assert first.id == again.id


def test_a_new_answer_replaces_the_old_one_for_that_stage(database_url):
    store = open_store(database_url)
    user = store.invite("carol").user_id
    store.submit(user, "pick", {"value": 1}, "r1")
    store.submit(user, "other", {"value": "x"}, "r2")
    store.submit(user, "pick", {"value": 2}, "r3")
    assert store.answers(user) == {"pick": {"value": 2}, "other": {"value": "x"}}


def test_answers_survive_reopening_the_database(database_url):
    store = open_store(database_url)
    owner = store.invite("owner", OWNER)
    store.submit(owner.user_id, "threshold", {"value": 0.5}, "r1")
    store.engine.dispose()
    reopened = open_store(database_url)
    assert reopened.answers(owner.user_id) == {"threshold": {"value": 0.5}}
    assert reopened.owner().name == "owner"
