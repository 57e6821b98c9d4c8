"""The statements of labeling's hot path, as each database's own SQL, run on the driver.

Handing out a batch and saving one run hundreds of times a second. Through SQLAlchemy's
execution layer each statement cost about 100 µs of Python before the database saw it,
more than the database's own work; here a transaction is the driver's connection from
the engine's pool (`Engine.raw_connection`), and each statement is one driver call with
a fixed text that the driver prepares once (sqlite3's statement cache, psycopg's
prepared statements). On SQLite the pool's rules run statement by statement, sets of
item keys travelling as one parameter (a JSON array that `json_each` reads), so a batch
is one statement, not one per item. On PostgreSQL they run in the functions that
migrations 0006 to 0008 create: a submission with its next batch is one call on a connection in
autocommit mode (`Store.pool_engine`), one round trip with its commit, and its items'
locks are held only while the database works.
The tables are the ones `runtime.store.database` declares and its migrations build.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import Engine

# SQLite stores SQLAlchemy's DateTime as this text (its SQLite dialect's format): the
# statements here write and compare the same text.
SQLITE_MOMENT = "%Y-%m-%d %H:%M:%S.%f"

# Each statement names its parameters `:name`; PostgreSQL's are turned into psycopg's
# `%(name)s` once, below. SQLite runs the pool's rules (`runtime.store.pools`) statement by
# statement; PostgreSQL runs them in the functions migration 0008 creates, one call each.
_IN_KEYS = "IN (SELECT value FROM json_each(:keys))"
# Whether an ordinary item of `items` is to get one label more (`:most` the pool's most
# overlap): its labels reached its needed count, and its two commonest labels are as
# common (the second is null when it has one label alone). The same SQL on both
# databases: `runtime.store.pools.register_items` uses it too, and PostgreSQL's
# `nbfreeze_save` a copy (migration 0008).
GROWS = """NOT gold AND labels >= needed AND needed < :most
    AND (SELECT count(*) FROM annotations a WHERE a.stage = items.stage
         AND a.item_key = items.item_key GROUP BY a.label ORDER BY count(*) DESC LIMIT 1)
      = (SELECT count(*) FROM annotations a WHERE a.stage = items.stage
         AND a.item_key = items.item_key GROUP BY a.label ORDER BY count(*) DESC
         LIMIT 1 OFFSET 1)"""
_SQL = {
    "sqlite": {
        # A labeler's lease rows in their batch's order: key, reclaimed, still live, place.
        "mine": """
            SELECT l.item_key, l.reclaimed, l.expires_at > :at, l.place FROM leases l
            JOIN items i ON i.stage = l.stage AND i.item_key = l.item_key
            WHERE l.stage = :stage AND l.user_id = :user ORDER BY l.place, i.position""",
        # The labeler's live leases are theirs for another lease length.
        "renew": """
            UPDATE leases SET expires_at = :expires WHERE stage = :stage AND user_id = :user
              AND NOT reclaimed AND expires_at > :at""",
        # The next open items, in order, that this labeler neither labeled nor holds.
        "open": """
            SELECT i.item_key, i.position FROM items i
            WHERE i.stage = :stage AND i."full" = false
              AND NOT EXISTS (SELECT 1 FROM annotations a WHERE a.stage = i.stage
                              AND a.item_key = i.item_key AND a.user_id = :user)
              AND NOT EXISTS (SELECT 1 FROM leases l WHERE l.stage = i.stage
                              AND l.item_key = i.item_key AND l.user_id = :user)
            ORDER BY i.position LIMIT :batch""",
        # The same of the gold items, which every labeler may label once.
        "gold": """
            SELECT i.item_key, i.position FROM items i
            WHERE i.stage = :stage AND i.gold
              AND NOT EXISTS (SELECT 1 FROM annotations a WHERE a.stage = i.stage
                              AND a.item_key = i.item_key AND a.user_id = :user)
              AND NOT EXISTS (SELECT 1 FROM leases l WHERE l.stage = i.stage
                              AND l.item_key = i.item_key AND l.user_id = :user)
            ORDER BY i.position LIMIT :batch""",
        "drop_stale": """
            DELETE FROM leases WHERE stage = :stage AND user_id = :user
              AND (reclaimed OR expires_at <= :at)""",
        "drop_keys": f"""
            DELETE FROM leases WHERE stage = :stage AND user_id = :user AND item_key {_IN_KEYS}
            RETURNING item_key, reclaimed""",
        "reclaim": """
            UPDATE leases SET reclaimed = true WHERE stage = :stage AND NOT reclaimed
              AND expires_at <= :at RETURNING item_key""",
        # Gold items keep no counters.
        "count": f"""
            UPDATE items SET labels = labels + :labels, taken = taken + :taken,
                             "full" = taken + :taken >= needed
            WHERE stage = :stage AND item_key {_IN_KEYS} AND NOT gold""",
        # Items whose labels reached their needed count with their top labels tied are
        # open for one labeler more, up to the pool's most overlap.
        "grow": f"""
            UPDATE items SET needed = needed + 1, "full" = taken >= needed + 1
            WHERE stage = :stage AND item_key {_IN_KEYS} AND {GROWS}""",
        # A submission's request id, recorded once per labeler and stage: no row back
        # means this labeler's submission of that id was saved before.
        "request": """
            INSERT INTO pool_requests (stage, user_id, request_id)
            VALUES (:stage, :user, :request) ON CONFLICT DO NOTHING RETURNING 1""",
        "seen": """
            SELECT item_key FROM annotations
            WHERE stage = :stage AND user_id = :user AND request_id = :request""",
        "earlier": f"""
            SELECT item_key FROM annotations
            WHERE stage = :stage AND user_id = :user AND item_key {_IN_KEYS}""",
        "given": f"""
            SELECT item_key, labels, needed, gold FROM items
            WHERE stage = :stage AND item_key {_IN_KEYS}""",
        # First labels, and (before they are written) changes of mind with the label each
        # replaces: the history of every change.
        "first": """
            INSERT INTO label_history
                (stage, item_key, user_id, old_label, new_label, request_id, changed_at)
            SELECT :stage, key, :user, NULL, value, :request, :at FROM json_each(:labels)""",
        "history": """
            INSERT INTO label_history
                (stage, item_key, user_id, old_label, new_label, request_id, changed_at)
            SELECT :stage, s.key, :user, a.label, s.value, :request, :at FROM json_each(:labels) s
            LEFT JOIN annotations a
              ON a.stage = :stage AND a.item_key = s.key AND a.user_id = :user
            WHERE a.label IS NOT s.value""",
        "relabel": """
            UPDATE annotations SET label = :label, request_id = :request, created_at = :at
            WHERE stage = :stage AND item_key = :key AND user_id = :user""",
        "lease": """
            INSERT INTO leases (stage, item_key, user_id, expires_at, reclaimed, place)
            SELECT :stage, key, :user, :expires, false, value FROM json_each(:places)""",
        "label": """
            INSERT INTO annotations (stage, item_key, user_id, label, request_id, created_at)
            SELECT :stage, key, :user, value, :request, :at FROM json_each(:labels)""",
    },
    "postgresql": {
        "lease": """
            SELECT nbfreeze_lease(:stage, :user, :batch, :gold_rate, :at, :expires)""",
        "save": """
            SELECT saved, late FROM nbfreeze_save(:stage, :user, CAST(:keys AS text[]),
                CAST(:labels AS text[]), :request, :overlap, :at)""",
        "submit": """
            SELECT saved, late, batch FROM nbfreeze_submit(:stage, :user,
                CAST(:keys AS text[]), CAST(:labels AS text[]), :request, :overlap, :batch,
                :gold_rate, :at, :expires)""",
    },
}
REFUSED = "NBF01"  # the SQLSTATE of a label PostgreSQL's `nbfreeze_save` refuses
_PARAMETER = re.compile(r"(?<![:\w]):(\w+)")


def _statements(dialect: str) -> dict[str, str]:
    texts = {name: " ".join(text.split()) for name, text in _SQL[dialect].items()}
    if dialect == "postgresql":
        texts = {name: _PARAMETER.sub(r"%(\1)s", t) for name, t in texts.items()}
    return texts


STATEMENTS = {dialect: _statements(dialect) for dialect in _SQL}


class Disconnected(ConnectionError):
    """The database connection broke during a pool call; it was dropped from the pool,
    and the call may be made again (its request id keeps a save from counting twice)."""


class Transaction:
    """One transaction on a driver connection: statements by name, parameters by name.

    On SQLite the statements run inside one transaction that `transaction` ends. On
    PostgreSQL the connection is in autocommit mode: the pool's work there is one
    function call, a transaction of its own, committed before its answer is read."""

    def __init__(self, connection: Any, dialect: str) -> None:
        self._cursor = connection.cursor()
        self.dialect = dialect
        self._texts = STATEMENTS[dialect]

    def rows(self, name: str, **parameters: Any) -> list[tuple[Any, ...]]:
        self._cursor.execute(self._texts[name], parameters)
        return self._cursor.fetchall()

    def run(self, name: str, **parameters: Any) -> None:
        self._cursor.execute(self._texts[name], parameters)

    def many(self, name: str, rows: Sequence[dict[str, Any]]) -> None:
        self._cursor.executemany(self._texts[name], rows)

    def attempt(self, work: Callable[[Transaction], Any]) -> tuple[bool, Any]:
        """Run `work` inside a savepoint: (True, its result), or (False, the exception it
        raised), with what it wrote undone and the rest of the transaction kept."""
        self._cursor.execute("SAVEPOINT attempt")
        try:
            result = work(self)
        except Exception as error:
            self._cursor.execute("ROLLBACK TO SAVEPOINT attempt")
            self._cursor.execute("RELEASE SAVEPOINT attempt")
            return False, error
        self._cursor.execute("RELEASE SAVEPOINT attempt")
        return True, result

    def keys(self, keys: Sequence[str]) -> str:
        """A set of item keys as SQLite's statements' `:keys` parameter."""
        return json.dumps(list(keys))

    def places(self, places: dict[str, int]) -> str:
        """Item keys with their places in a batch, as SQLite's `lease` statement's
        `:places` parameter."""
        return json.dumps(places)

    def labels(self, labels: dict[str, str]) -> dict[str, Any]:
        """Labels by item key as the parameters of SQLite's `label` statement, or of
        PostgreSQL's `save` and `submit`."""
        if self.dialect == "sqlite":
            return {"labels": json.dumps(labels)}
        return {"keys": list(labels), "labels": list(labels.values())}

    def moment(self, value: datetime) -> Any:
        return value.strftime(SQLITE_MOMENT) if self.dialect == "sqlite" else value


@contextmanager
def transaction(engine: Engine) -> Iterator[Transaction]:
    """A transaction on a connection of the engine's pool (`Store.pool_engine`),
    committed when the block ends and rolled back when it raises. On SQLite it takes the
    write lock at once: its reads decide what it writes. On PostgreSQL each statement
    commits as it ends (autocommit). A connection found broken leaves the pool, and the
    block raises `Disconnected`."""
    connection = engine.raw_connection()
    dialect = engine.dialect.name
    try:
        if dialect == "postgresql":
            yield Transaction(connection.driver_connection, dialect)
        else:
            connection.cursor().execute("BEGIN IMMEDIATE")
            yield Transaction(connection, dialect)
            connection.commit()
    except BaseException as error:
        if dialect == "postgresql" and connection.driver_connection.broken:
            connection.invalidate()
            raise Disconnected(str(error)) from error
        connection.rollback()
        raise
    finally:
        connection.close()
