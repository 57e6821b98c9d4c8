"""`load_labels`: a pool stage's labels back in a notebook, for the next round."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def _database_url(bundle_or_url: str | Path) -> str:
    text = str(bundle_or_url)
    if "://" in text:
        return text
    path = Path(text)
    if path.suffix == ".ipynb":
        path = path.with_name(path.stem + ".nbfreeze")
    database = path / "app.sqlite"
    if not database.exists():
        raise FileNotFoundError(f"{database} does not exist: has the app been served yet?")
    return f"sqlite:///{database.resolve()}"


def load_labels(bundle_or_url: str | Path, stage: str) -> Any:
    """Every raw label of a pool stage as a pandas DataFrame: `item`, `labeler`,
    `labeler_name`, `label`, `time`. Give the bundle directory (or the notebook served
    from it, or a database URL such as `postgresql+psycopg://…`)."""
    import pandas as pd

    from runtime.store import pools
    from runtime.store.database import open_store

    store = open_store(_database_url(bundle_or_url))
    try:
        names = {user.id: user.name for user in store.users()}
        rows = [
            {
                "item": json.loads(row.item_key),
                "labeler": row.user_id,
                "labeler_name": names.get(row.user_id, ""),
                "label": row.label,
                "time": pd.Timestamp(row.created_at),
            }
            for row in pools.annotations(store, stage)
        ]
    finally:
        store.dispose()
    return pd.DataFrame(rows, columns=["item", "labeler", "labeler_name", "label", "time"])
