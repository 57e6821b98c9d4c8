"""Reviewing the items a pool's `#| review:` picks: who may, the review queue's batches,
what a reviewer sees of an item, and their decisions, as plain functions.

The review queue is a pool of its own in the store (`pipeline.review_stage`, overlap 1),
leased and saved as labels are (`runtime.store.pools`); the pipeline closes the pool
once every picked item has its decision (`Pipeline._review`). The owner and reviewers
review; labelers never see a review page, nor through it anyone else's labels.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Hashable
from typing import Any

import ipywidgets as widgets

from freezer.widgets.choice import ChoiceLabeler
from freezer.widgets.labeling import LabelingWidget
from freezer.widgets.media import Media, as_media
from runtime.app.pipeline import REVIEWING, Pool, review_stage
from runtime.app.staged import Refused, Staged
from runtime.bundle import Stage
from runtime.store import pools, reviews
from runtime.store.database import OWNER, REVIEWER, User

log = logging.getLogger(__name__)

REVIEW_BATCH = 1  # items a reviewer decides per page: one at a time


def may_review(user: User) -> bool:
    return user.role in (OWNER, REVIEWER)


def reviewing(staged: Staged, user: User, name: str) -> tuple[Stage, Pool]:
    """The pool stage `name` and its pool, when the person may review it now; Refused
    (403, 404 or 409) saying why not."""
    if not may_review(user):
        raise Refused(403, "only the owner and reviewers can review a pool's labels")
    stage = staged.notebook.stage(name)
    if stage is None or stage.input != "pool" or "review" not in stage.options:
        raise Refused(404, f"there is no pool stage “{name}” with a `#| review:` in this app")
    pool = staged.pipeline.pools.get(name)
    status = staged.pipeline.status[name]
    if pool is None or status.state != REVIEWING:
        why = f": {status.reason}" if status.reason else ""
        raise Refused(409, f"“{stage.title}” is not in review; it is {status.state}{why}")
    return stage, pool


def lease(staged: Staged, user: User, name: str) -> list[str]:
    """The keys of the review items leased to the person now (the same again until they
    decide them or the lease expires); empty when nothing is left for them."""
    _, pool = reviewing(staged, user, name)
    return pools.lease_batch(
        staged.store,
        review_stage(name),
        user.id,
        batch=REVIEW_BATCH,
        lease_seconds=pool.lease_seconds,
    )


async def decide(
    staged: Staged, user: User, name: str, request_id: str, decided: Any
) -> pools.Saved:
    """Save the person's decisions (item key -> label), committed before this returns,
    once per request id. A label outside the pool's choices, or an item not leased to
    them, is a 400 and nothing is saved."""
    _, pool = reviewing(staged, user, name)
    if not isinstance(decided, dict) or not decided:
        raise Refused(400, "`decisions` must map the keys of your review items to labels")
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in decided.items()):
        raise Refused(400, "`decisions` must map item keys (text) to labels (text)")
    work = pools.saving(
        review_stage(name), user.id, decided, request_id, choices=pool.choices, overlap_max=1
    )
    try:
        saved = await staged.written(work)
    except pools.LabelRefused as refused:
        raise Refused(400, f"stage “{name}”, review: {refused}") from None
    staged.pipeline.soon()
    return saved


def next_page(staged: Staged, user: User, name: str) -> str:
    """Where the person goes after a decision: the next review item of this pool, or
    wherever they are in the app."""
    if pools.has_work(staged.store, review_stage(name), user.id):
        return f"/review/{name}"
    return "/owner" if user.role == OWNER else staged.where(user)


async def items(staged: Staged, name: str, keys: list[str]) -> list[dict[str, Any]]:
    """What a reviewer sees of each item: its id, how the pool's widget shows it, every
    labeler's label with their name, and the merged label with its probability."""
    pool = staged.pipeline.pools[name]
    names = {u.id: u.name for u in staged.store.users()}
    given: dict[str, list[dict[str, Any]]] = {key: [] for key in keys}
    for row in reviews.labels_of_items(staged.store, name, keys):
        given[row.item_key].append(
            {"labeler": row.user_id, "labeler_name": names.get(row.user_id, ""), "label": row.label}
        )
    merged = pool.merged[1] if pool.merged else None
    shown = await staged._in_session(
        staged.pipeline.session, lambda: [display(pool.widget, pool.ids[k]) for k in keys]
    )
    return [
        {
            "key": key,
            "id": str(pool.ids[key]),
            "display": view,
            "label": merged.labels.get(pool.ids[key]) if merged else None,
            "probability": merged.probabilities.get(pool.ids[key]) if merged else None,
            "annotations": given[key],
        }
        for key, view in zip(keys, shown, strict=True)
    ]


def display(widget: Any, item: Hashable) -> dict[str, str]:
    """How the pool's widget shows `item`, as the review page shows it: `kind` "image"
    (with `src`, a data URL), "html" (the notebook's own markup) or "text". When the
    notebook's code fails to draw it, the item's id, as text (the log says why)."""
    try:
        media = _media(widget, item)
    except Exception:  # the notebook's render function: anything can fail in it
        log.warning("the pool widget could not show item %r for review", item, exc_info=True)
        media = Media("text", text=str(item))
    if media.kind == "image":
        data = base64.b64encode(media.data).decode()
        return {"kind": "image", "src": f"data:{media.mime};base64,{data}"}
    return {"kind": media.kind, "text": media.text}


def _media(widget: Any, item: Hashable) -> Media:
    if isinstance(widget, LabelingWidget):
        return widget._media_of(item)
    if isinstance(widget, ChoiceLabeler):
        value = widget._items[item]
        view = widget._render(value)
        media = _of_view(view)
        if view is not value:
            view.close()  # made for this page alone: its model goes
        return media or Media("text", text=str(item))
    return Media("text", text=str(item))


def _of_view(view: Any) -> Media | None:
    """What an item's widget shows, when it is an Image, an HTML or a Label."""
    if isinstance(view, widgets.Image):
        return as_media(bytes(view.value))
    if isinstance(view, widgets.HTML):
        return Media("html", text=view.value)
    if isinstance(view, widgets.Label):
        return Media("text", text=view.value)
    return None


def progress(staged: Staged, name: str) -> dict[str, int]:
    return staged.pipeline.review_progress(name) or {"items": 0, "reviewed": 0}
