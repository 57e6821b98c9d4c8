"""What the owner's dashboard shows, as plain data: every stage's state and progress,
for a pool its pace, the time left at that pace and its labels per minute over the last
half hour, each labeler's count, pace and agreement with the others, agreement on items
labeled more than once, and the raw labels for download.

All of it comes from one read of each pool's labels (the rows agreement needs anyway),
never a query per minute or per labeler.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from runtime.app.staged import Staged
from runtime.store import pools
from runtime.store.agreement import (
    agreement_by_labeler,
    krippendorff_alpha_nominal,
    pairwise_agreement,
)
from runtime.store.database import OWNER, now

PACE_WINDOW = timedelta(minutes=10)
TIMELINE_MINUTES = 30


def overview(staged: Staged, at: datetime | None = None) -> dict[str, Any]:
    """The dashboard's data as of `at` (now by default)."""
    store, pipeline = staged.store, staged.pipeline
    at = at or now()
    users = {u.id: u for u in store.users()}
    stages, per_user, recent, last = [], {}, {}, {}
    matches, pairs, compared = Counter(), Counter(), Counter()
    since = at - PACE_WINDOW
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
            done = pools.progress(store, stage.name)
            rows = pools.annotations(store, stage.name)
            grouped = pools.labels_by_item(rows)
            needed = done.needed
            entry["progress"] = {
                "items": done.items,
                "complete": done.complete,
                "labels": done.labels,
                "needed": needed,
            }
            entry["agreement"] = {
                "pairwise": pairwise_agreement(grouped),
                "alpha": krippendorff_alpha_nominal(grouped),
            }
            moments = [_aware(row.created_at) for row in rows]
            per_minute = _per_minute(sum(since <= m <= at for m in moments))
            entry["pace"] = {
                "per_minute": per_minute,
                "minutes_left": minutes_left(needed - done.labels, per_minute),
            }
            entry["timeline"] = timeline(moments, at)
            for row, moment in zip(rows, moments, strict=True):
                per_user[row.user_id] = per_user.get(row.user_id, 0) + 1
                recent[row.user_id] = recent.get(row.user_id, 0) + (since <= moment <= at)
                last[row.user_id] = max(last.get(row.user_id, moment), moment)
            by_labeler: dict[str, dict[int, str]] = {}
            for row in rows:
                by_labeler.setdefault(row.item_key, {})[row.user_id] = row.label
            for user_id, accord in agreement_by_labeler(by_labeler).items():
                matches[user_id] += accord.matches
                pairs[user_id] += accord.pairs
                compared[user_id] += accord.items
        stages.append(entry)
    labelers = [
        {
            "id": user.id,
            "name": user.name,
            "labels": per_user.get(user.id, 0),
            "answers": len(store.answers(user.id)),
            "per_minute": _per_minute(recent.get(user.id, 0)),
            "last_label_at": last[user.id].isoformat() if user.id in last else None,
            "agreement": matches[user.id] / pairs[user.id] if pairs[user.id] else None,
            "compared": compared[user.id],
        }
        for user in users.values()
        if user.role != OWNER and user.revoked_at is None
    ]
    return {"stages": stages, "labelers": labelers}


def _per_minute(labels: int) -> float:
    """Labels per minute over the pace window, from the labels given in it."""
    return round(labels / (PACE_WINDOW.total_seconds() / 60), 2)


def minutes_left(labels_missing: int, per_minute: float) -> float | None:
    """How long the labels still missing take at this pace (None: no pace to go by)."""
    if labels_missing <= 0:
        return 0.0
    return round(labels_missing / per_minute, 1) if per_minute > 0 else None


def timeline(moments: list[datetime], at: datetime) -> dict[str, Any]:
    """Labels given in each of the last TIMELINE_MINUTES clock minutes, oldest first; the
    last is the minute `at` is in, so far."""
    end = at.replace(second=0, microsecond=0) + timedelta(minutes=1)
    start = end - timedelta(minutes=TIMELINE_MINUTES)
    counts = [0] * TIMELINE_MINUTES
    for moment in moments:
        if start <= moment <= at:
            counts[int((moment - start).total_seconds() // 60)] += 1
    return {"start": start.isoformat(), "counts": counts}


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
