"""The app's database, on SQLite and on a real PostgreSQL."""

from __future__ import annotations

import sqlite3
from contextlib import closing

from sqlalchemy import text

from runtime.store.database import LABELER, OWNER, open_store


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


def test_two_people_using_the_same_request_id_both_have_their_answers_saved(database_url):
    store = open_store(database_url)
    alice, bob = store.add_user("alice").id, store.add_user("bob").id
    store.submit(alice, "pick", {"value": 1}, "b-17")
    store.submit(bob, "pick", {"value": 2}, "b-17")
    store.submit(bob, "other", {"value": 3}, "b-17")
    assert store.answers(alice) == {"pick": {"value": 1}}
    assert store.answers(bob) == {"pick": {"value": 2}, "other": {"value": 3}}


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
    store.dispose()
    reopened = open_store(database_url)
    assert reopened.answers(owner.id) == {"threshold": {"value": 0.5}}
    assert reopened.owner().id == owner.id


def test_a_checkpoint_moves_the_whole_wal_into_the_database_file(tmp_path):
    path = tmp_path / "app.sqlite"
    store = open_store(f"sqlite:///{path}")
    owner = store.owner()
    for n in range(50):
        store.submit(owner.id, f"stage{n}", {"n": n}, f"r{n}")

    def in_the_file() -> int:
        """Answers in the database file itself, its WAL left unread."""
        with closing(sqlite3.connect(f"file:{path}?immutable=1", uri=True)) as file:
            if not file.execute(
                "SELECT 1 FROM sqlite_master WHERE name = 'submissions'"
            ).fetchall():
                return 0
            return file.execute("SELECT count(*) FROM submissions").fetchone()[0]

    assert in_the_file() < 50  # they are in the WAL
    store.checkpoint()
    assert in_the_file() == 50
    store.dispose()


def test_revoking_links_revokes_the_owners_and_the_shared_invite_and_no_personal_one(
    database_url,
):
    store = open_store(database_url)
    owner, invite = store.mint_token(OWNER, store.owner().id), store.mint_token(LABELER)
    alice = store.invite("alice")
    assert store.revoke_links() == 2
    assert store.redeem(owner) is None and store.redeem(invite) is None
    assert store.redeem(alice).name == "alice"
    assert store.revoke_links() == 0  # nothing left to revoke
