"""The owner's view of one item of a pool stage: every change to its labels (who, when,
old → new), and putting back a labeler's earlier answer (docs/labeling.md, "An item's
history"). Read at any time; put back only while the pool is labeled, as a labeler's
own change would be.
"""

from __future__ import annotations

from typing import Any

from freezer.widgets import item_key
from runtime.app.going_back import open_pool
from runtime.app.pipeline import LABELING
from runtime.app.staged import Refused, Staged
from runtime.store import pools
from runtime.store.database import Store


def find_key(staged: Staged, name: str, item: Any) -> str:
    """The key of the item of pool `name` whose id is `item` as text (as the exports'
    `id` column shows it) or as its key; Refused when the pool has none such."""
    stage = staged.notebook.stage(name)
    pool = staged.pipeline.pools.get(name)
    if stage is None or stage.input != "pool" or pool is None:
        raise Refused(404, f"“{name}” is not a pool stage that has been opened")
    if not isinstance(item, str) or not 0 < len(item) <= 500:
        raise Refused(
            400, "`item` must be an item's id (1 to 500 characters), as the exports show it"
        )
    candidates = [item, item_key(item)]
    if item.lstrip("-").isascii() and item.lstrip("-").isdigit():
        candidates.append(item_key(int(item)))
    for key in candidates:
        if key in pool.ids:
            return key
    raise Refused(404, f"“{stage.title}” has no item {item!r}")


def _labeler(store: Store, user_id: int) -> dict[str, Any]:
    user = store.user(user_id)
    return {"id": user_id, "name": user.name if user else f"labeler {user_id} (revoked)"}


def _change(store: Store, change: pools.Change) -> dict[str, Any]:
    return {
        "labeler": _labeler(store, change.user_id),
        "old": change.old_label,
        "new": change.new_label,
        "at": change.changed_at.isoformat(),
        "restored": change.request_id.startswith("restore-"),
    }


def item_history(staged: Staged, name: str, item: Any) -> dict[str, Any]:
    """Every change to the item's labels, oldest first, and each labeler's answer now
    with the earlier ones that can be put back."""
    key = find_key(staged, name, item)
    store = staged.store
    changes = pools.history(store, name, key)
    answers: dict[int, list[str]] = {}
    for change in changes:
        given = answers.setdefault(change.user_id, [])
        if change.new_label in given:
            given.remove(change.new_label)
        given.append(change.new_label)  # the last one is the answer now
    status = staged.pipeline.status.get(name)
    return {
        "stage": name,
        "item": str(staged.pipeline.pools[name].ids[key]),
        "key": key,
        "open": status is not None and status.state == LABELING,
        "changes": [_change(store, change) for change in changes],
        "labelers": [
            {"labeler": _labeler(store, user), "label": given[-1], "earlier": given[:-1]}
            for user, given in answers.items()
        ],
    }


def restore_answer(
    staged: Staged, name: str, item: Any, labeler: Any, label: Any
) -> dict[str, Any]:
    """Put back the labeler's earlier answer `label` to the item, as a change of its own;
    Refused when the pool is finished or that was never their answer."""
    open_pool(staged, name)
    key = find_key(staged, name, item)
    if not isinstance(labeler, int) or isinstance(labeler, bool):
        raise Refused(400, "`labeler` must be the id of the labeler whose answer to put back")
    if not isinstance(label, str):
        raise Refused(400, "`label` must be the earlier answer to put back, as text")
    try:
        change = pools.restore(staged.store, name, key, labeler, label)
    except pools.LabelRefused as refused:
        raise Refused(400, str(refused)) from None
    return _change(staged.store, change)
