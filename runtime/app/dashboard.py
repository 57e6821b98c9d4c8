"""What the owner's dashboard shows, as plain data: every stage's state and progress,
each labeler's count and pace, agreement on items labeled more than once, and the raw
labels for download.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from runtime.app.staged import Staged
from runtime.store import pools
from runtime.store.agreement import krippendorff_alpha_nominal, pairwise_agreement
from runtime.store.database import OWNER, now

PACE_WINDOW = timedelta(minutes=10)


def overview(staged: Staged) -> dict[str, Any]:
    """The dashboard's data."""
    store, pipeline = staged.store, staged.pipeline
    users = {u.id: u for u in store.users()}
    stages, per_user, recent, last = [], {}, {}, {}
    since = now() - PACE_WINDOW
    for stage in staged.notebook.stages:
        status = pipeline.status.get(stage.name)
        entry: dict[str, Any] = {
            "name": stage.name,
            "title": stage.title,
            "kind": stage.kind,
            "input": stage.input,
            "scope": stage.scope,
            "state": status.state if status else "per labeler",
            "reason": status.reason if status else "",
        }
        pool = pipeline.pools.get(stage.name)
        if pool is not None:
            done = pools.progress(store, stage.name, pool.overlap)
            rows = pools.annotations(store, stage.name)
            grouped = pools.labels_by_item(rows)
            entry["progress"] = {
                "items": done.items,
                "complete": done.complete,
                "labels": done.labels,
            }
            entry["agreement"] = {
                "pairwise": pairwise_agreement(grouped),
                "alpha": krippendorff_alpha_nominal(grouped),
            }
            for row in rows:
                per_user[row.user_id] = per_user.get(row.user_id, 0) + 1
                moment = _aware(row.created_at)
                recent[row.user_id] = recent.get(row.user_id, 0) + (moment >= since)
                last[row.user_id] = max(last.get(row.user_id, moment), moment)
        stages.append(entry)
    labelers = [
        {
            "id": user.id,
            "name": user.name,
            "labels": per_user.get(user.id, 0),
            "answers": len(store.answers(user.id)),
            "per_minute": round(recent.get(user.id, 0) / (PACE_WINDOW.total_seconds() / 60), 2),
            "last_label_at": last[user.id].isoformat() if user.id in last else None,
        }
        for user in users.values()
        if user.role != OWNER and user.revoked_at is None
    ]
    return {"stages": stages, "labelers": labelers}


def _aware(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes for what was stored in UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def label_rows(staged: Staged, stage: str) -> list[dict[str, Any]]:
    """Every raw label of a pool stage: item, labeler, label, time."""
    pool = staged.pipeline.pools.get(stage)
    names = {u.id: u.name for u in staged.store.users()}
    rows = pools.annotations(staged.store, stage)
    return [
        {
            "item": pool.ids.get(r.item_key, r.item_key) if pool else json.loads(r.item_key),
            "labeler": r.user_id,
            "labeler_name": names.get(r.user_id, ""),
            "label": r.label,
            "time": _aware(r.created_at).isoformat(),
        }
        for r in rows
    ]


def as_csv(rows: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, ["item", "labeler", "labeler_name", "label", "time"])
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def as_jsonl(rows: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(row, default=str) + "\n" for row in rows)
