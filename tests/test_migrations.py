"""The schema that migrations build is the one the code declares, and upgrading an app's
database keeps (and counts) the labels it already holds."""

from __future__ import annotations

from datetime import timedelta

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import column, create_engine, insert, table

from runtime.store.database import Base, User, migrate, now, open_store
from runtime.store.pools import has_work, lease_batch, progress, register_items


def test_the_migrations_build_the_declared_schema(database_url):
    store = open_store(database_url)
    with store.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    store.dispose()
    assert differences == []


def test_an_older_database_gets_its_items_counted(database_url):
    engine = create_engine(database_url)
    migrate(engine, "0003")  # before the counters: items, leases and annotations only
    moment = now()
    items = table("items", column("stage"), column("item_key"), column("position"))
    leases = table("leases", *map(column, ("stage", "item_key", "user_id", "expires_at")))
    marks = table(
        "annotations",
        *map(column, ("stage", "item_key", "user_id", "label", "request_id", "created_at")),
    )
    with engine.begin() as connection:
        connection.execute(
            insert(User),
            [
                {"id": n, "name": f"l{n}", "role": "labeler", "created_at": moment}
                for n in (1, 2, 3)
            ],
        )
        connection.execute(
            insert(items),
            [{"stage": "s", "item_key": k, "position": p} for p, k in enumerate("abc")],
        )
        connection.execute(
            insert(marks),
            [
                {
                    "stage": "s",
                    "item_key": k,
                    "user_id": u,
                    "label": "yes",
                    "request_id": f"r{u}{k}",
                    "created_at": moment,
                }
                for u, k in ((1, "a"), (2, "a"), (1, "b"))
            ],
        )
        connection.execute(
            insert(leases),
            [
                {
                    "stage": "s",
                    "item_key": "b",
                    "user_id": 2,
                    "expires_at": moment + timedelta(hours=1),
                }
            ],
        )
    engine.dispose()
    store = open_store(database_url)
    register_items(store, "s", list("abc"), overlap=2)
    done = progress(store, "s", 2)
    assert (done.items, done.labels, done.complete) == (3, 3, 1)
    # "b" has a label and bob's lease: full. Only "c" is left for a third labeler.
    assert lease_batch(store, "s", 3, batch=5, overlap=2, lease_seconds=60) == ["c"]
    assert has_work(store, "s", 2, 2)  # bob still holds "b"
    store.dispose()
