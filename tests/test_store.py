"""The app's database, on SQLite and on a real PostgreSQL."""

from __future__ import annotations

from sqlalchemy import text

from runtime.store import LABELER, OWNER, open_store


def test_secret_is_made_once_and_kept(database_url):
    assert open_store(database_url).secret() == open_store(database_url).secret()


def test_tokens_are_stored_hashed_and_let_their_user_in(database_url):
    store = open_store(database_url)
    owner = store.owner()
    token = store.mint_token(OWNER, owner.id)
    assert store.redeem(token).id == owner.id
    assert store.redeem(token + "x") is None
    with store.engine.connect() as connection:
        stored = [row[0] for row in connection.execute(text("SELECT token_hash FROM tokens"))]
    assert stored and token not in stored


def test_an_invite_makes_a_new_labeler_for_each_person(database_url):
    store = open_store(database_url)
    invite = store.mint_token(LABELER)
    first, second = store.redeem(invite), store.redeem(invite)
    assert first.id != second.id and first.role == second.role == LABELER


def test_a_retried_submission_is_applied_once(database_url):
    store = open_store(database_url)
    user = store.add_user("bob").id
    first = store.submit(user, "pick", {"value": 1}, "request-1")
    again = store.submit(user, "pick", {"value": 1}, "request-1")
    assert first.id == again.id


def test_a_new_answer_replaces_the_old_one_for_that_stage(database_url):
    store = open_store(database_url)
    user = store.add_user("carol").id
    store.submit(user, "pick", {"value": 1}, "r1")
    store.submit(user, "other", {"value": "x"}, "r2")
    store.submit(user, "pick", {"value": 2}, "r3")
    assert store.answers(user) == {"pick": {"value": 2}, "other": {"value": "x"}}


def test_answers_survive_reopening_the_database(database_url):
    store = open_store(database_url)
    owner = store.owner()
    store.submit(owner.id, "threshold", {"value": 0.5}, "r1")
    store.engine.dispose()
    reopened = open_store(database_url)
    assert reopened.answers(owner.id) == {"threshold": {"value": 0.5}}
    assert reopened.owner().id == owner.id
