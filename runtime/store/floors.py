"""The owner's gold-accuracy floors, kept in the database: every process serving the app,
its exports and `nbfreeze thaw` merge a pool with the same floor, and a restart keeps it.
"""

from __future__ import annotations

from sqlalchemy import text

from runtime.store.database import _INSERT, AccuracyFloor, Store, now


class FloorRefused(ValueError):
    """A floor that is no share from 0 to 1."""


def accuracy_floors(store: Store) -> dict[str, float]:
    """Each pool stage's floor, by stage name; a pool with none is absent. Read on every
    advance of the pipeline: on SQLite it takes no lock (it begins no transaction)."""
    if store.engine.dialect.name == "sqlite":
        connection = store.engine.raw_connection()
        try:
            rows = connection.cursor().execute(_FLOORS).fetchall()
        finally:
            connection.close()
    else:
        with store.reading() as reading:
            rows = reading.execute(text(_FLOORS)).all()
    return {stage: float(floor) for stage, floor in rows}


_FLOORS = "SELECT stage, floor FROM accuracy_floors WHERE floor IS NOT NULL"


def set_accuracy_floor(store: Store, stage: str, floor: float | None) -> None:
    """Keep pool `stage`'s floor (None clears it), counting the change, in one statement:
    two owners setting it at once leave one of their floors, never an error."""
    if floor is not None and (
        isinstance(floor, bool) or not isinstance(floor, int | float) or not 0 <= floor <= 1
    ):
        raise FloorRefused(f"an accuracy floor is a share from 0 to 1, not {floor!r}")
    values = {"floor": None if floor is None else float(floor), "set_at": now()}
    insert = _INSERT[store.engine.dialect.name](AccuracyFloor)
    upsert = insert.values(stage=stage, changes=1, **values).on_conflict_do_update(
        index_elements=["stage"], set_=values | {"changes": AccuracyFloor.changes + 1}
    )
    with store.engine.begin() as connection:
        connection.execute(upsert)
