"""The schema that migrations build is the one the code declares, and upgrading an app's
database keeps (and counts) the labels it already holds."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
from datetime import timedelta

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import column, create_engine, insert, inspect, table, text

from runtime.store.database import MIGRATIONS, Base, User, migrate, now, open_store
from runtime.store.pools import (
    has_work,
    history,
    lease_batch,
    progress,
    register_items,
    save_labels,
)


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
    register_items(store, "s", list("abc"), overlap=(2, 2))
    done = progress(store, "s")
    assert (done.items, done.labels, done.complete) == (3, 3, 1)
    # "b" has a label and bob's lease: full. Only "c" is left for a third labeler.
    assert lease_batch(store, "s", 3, batch=5, lease_seconds=60) == ["c"]
    assert has_work(store, "s", 2)  # bob still holds "b"
    store.dispose()


def test_labels_saved_before_the_history_each_get_a_first_change(database_url):
    engine = create_engine(database_url)
    migrate(engine, "0007")
    moment = now()
    marks = table(
        "annotations",
        *map(column, ("stage", "item_key", "user_id", "label", "request_id", "created_at")),
    )
    with engine.begin() as connection:
        connection.execute(insert(User), [{"id": 1, "name": "l1", "role": "labeler"}])
        connection.execute(
            insert(marks),
            [
                {
                    "stage": "s",
                    "item_key": key,
                    "user_id": 1,
                    "label": label,
                    "request_id": "r1",
                    "created_at": moment + timedelta(seconds=n),
                }
                for n, (key, label) in enumerate((("b", "yes"), ("a", "no")))
            ],
        )
    engine.dispose()
    store = open_store(database_url)
    changes = [(c.item_key, c.old_label, c.new_label, c.request_id) for c in history(store, "s")]
    assert changes == [("b", None, "yes", "r1"), ("a", None, "no", "r1")]
    store.dispose()


def test_a_downgrade_puts_back_the_earlier_pool_and_an_upgrade_redoes_it(database_url):
    store = open_store(database_url)
    register_items(store, "s", list("abc"), overlap=(1, 2), gold=["c"])
    alice = store.add_user("alice").id
    assert lease_batch(store, "s", alice, batch=1, lease_seconds=60) == ["a"]
    save_labels(store, "s", alice, {"a": "yes"}, "r1", choices=("yes",), overlap_max=2)
    store.dispose()
    engine = create_engine(database_url)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0007")
    with engine.connect() as connection:
        assert "label_history" not in inspect(connection).get_table_names()
        assert "needed" not in {c["name"] for c in inspect(connection).get_columns("items")}
        if engine.dialect.name == "postgresql":  # 0006's functions, with 0007's save
            leases = connection.scalar(
                text("SELECT pg_get_function_identity_arguments('nbfreeze_lease'::regproc)")
            )
            assert "p_overlap integer" in leases
    engine.dispose()
    store = open_store(database_url)
    register_items(store, "s", list("abc"), overlap=(1, 1))
    assert lease_batch(store, "s", alice, batch=5, lease_seconds=60) == ["b", "c"]
    assert [c.new_label for c in history(store, "s")] == ["yes"]
    store.dispose()


def test_processes_starting_together_on_a_new_database_migrate_it_once(database_url):
    """Separate `nbfreeze serve` processes on one new database all start: the first
    migrates it, the others wait for it and find it done."""
    gate = threading.Barrier(3)
    opened, failed = [], []

    def start() -> None:
        gate.wait()
        try:
            opened.append(open_store(database_url))
        except Exception as error:  # a failed start is what the test looks for
            failed.append(repr(error))

    starts = [threading.Thread(target=start) for _ in range(3)]
    for thread in starts:
        thread.start()
    for thread in starts:
        thread.join()
    for store in opened:
        store.dispose()
    assert failed == [] and len(opened) == 3
    engine = create_engine(database_url)
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM alembic_version")).scalar() == 1
    engine.dispose()


def test_the_upgrading_guide_lists_every_migration():
    guide = (MIGRATIONS.parents[2] / "docs" / "upgrading.md").read_text()
    listed = re.findall(r"^\| (\d{4}) \|", guide, re.M)
    assert listed == sorted(p.name[:4] for p in (MIGRATIONS / "versions").glob("[0-9]*.py"))


def test_a_database_migrated_by_a_newer_nbfreeze_is_refused_with_a_clear_message(tmp_path):
    url = f"sqlite:///{tmp_path / 'app.sqlite'}"
    open_store(url).dispose()
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '0042'"))
    engine.dispose()
    result = subprocess.run(
        [sys.executable, "-m", "freezer", "export", url, "-o", str(tmp_path / "out")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert "the database's schema is newer than this nbfreeze knows" in result.stderr
    assert "docs/upgrading.md" in result.stderr and "Traceback" not in result.stderr
