"""Going back: a labeler's earlier batches of an open pool stage, their answers in them,
to change and submit again (docs/labeling.md, "Going back").

Only the labeler's own batches, and only while the pool is labeled: a finished stage is
read-only. A changed answer goes through the pool's ordinary save, which keeps it in
`label_history` and lets the merge see it; it never adds a label to an item.
"""

from __future__ import annotations

from runtime.app.pipeline import LABELING, Pool
from runtime.app.staged import Refused, Staged
from runtime.bundle import Stage
from runtime.store.database import REVIEWER, User
from runtime.store.earlier import Earlier, earlier_batch


def open_pool(staged: Staged, name: str) -> tuple[Stage, Pool]:
    """The pool stage `name` and its pool, while its labels may change; else Refused."""
    stage = staged.notebook.stage(name)
    if stage is None or stage.input != "pool":
        raise Refused(404, f"there is no pool stage “{name}” in this app")
    status = staged.pipeline.status.get(name)
    pool = staged.pipeline.pools.get(name)
    if pool is None or status is None or status.state != LABELING:
        state = status.state if status else "waiting"
        if state in ("waiting", "running"):
            raise Refused(409, f"“{stage.title}” is not open for labeling yet")
        raise Refused(409, f"“{stage.title}” is finished ({state}): its labels are read-only now")
    return stage, pool


def parse_back(text: str | None) -> int | None:
    """The `back` of a request (how many batches back), None when it has none."""
    if text is None or text == "":
        return None
    if not (text.isascii() and text.isdigit()) or not 0 < int(text) <= 1_000_000:
        raise Refused(
            400, f"`back` must be a whole number from 1 (how many batches back), not {text!r}"
        )
    return int(text)


def earlier(staged: Staged, user: User, name: str, back: int) -> Earlier:
    """The person's batch `back` batches back in the open pool `name`, their answers in
    it; Refused when the pool is closed or they have no such batch."""
    if user.role == REVIEWER:
        raise Refused(403, "a reviewer's link opens the review pages only, not stages")
    stage, _ = open_pool(staged, name)
    batch = earlier_batch(staged.store, name, user.id, back)
    if batch is None:
        raise Refused(404, f"you have no batch {back} back in “{stage.title}” to change")
    return batch
