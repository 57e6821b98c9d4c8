"""What the owner's dashboard shows, as plain data: every stage's state and progress,
for a pool its pace, the time left at that pace and its labels per minute over the last
half hour, each labeler's count, pace and agreement with the others, agreement on items
labeled more than once (percent agreement, Krippendorff's alpha, Fleiss' kappa, the share
of items all labelers agreed on, Cohen's kappa per pair of labelers), and each labeler's
time per item and labels per hour, and for a pool with gold each labeler's accuracy on it
and the owner's floor (`runtime.app.gold`; the downloads are `runtime.app.exports`).

All of it comes from each pool's labels as arrays, kept by the process and brought up to
date from the rows written since (`runtime.store.label_cache`), and figures over them
(`runtime.store.label_figures`), never a query per minute or per labeler, nor a Python
object per label.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from runtime.app.gold import gold_block
from runtime.app.staged import Staged
from runtime.store import label_cache, pools
from runtime.store import label_figures as figures
from runtime.store.database import LABELER, now

PACE_WINDOW = timedelta(minutes=10)
TIMELINE_MINUTES = 30


def overview(staged: Staged, at: datetime | None = None) -> dict[str, Any]:
    """The dashboard's data as of `at` (now by default)."""
    store, pipeline = staged.store, staged.pipeline
    at = at or now()
    users = {u.id: u for u in store.users()}
    stages = []
    tally: dict[str, Counter[int]] = {k: Counter() for k in ("labels", "recent", "match", "pair")}
    compared: Counter[int] = Counter()
    last: dict[int, float] = {}
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
            labels = label_cache.read_labels(store, stage.name, tuple(pool.choices))
            entry.update(_pool_figures(done, labels, at))
            entry["review"] = pipeline.review_progress(stage.name)
            entry["gold"] = gold_block(pipeline, stage.name, labels)
            since = (at - PACE_WINDOW).timestamp()
            people, given = np.unique(labels.labeler, return_counts=True)
            recent = np.bincount(
                np.searchsorted(people, labels.labeler[labels.at >= since]), minlength=len(people)
            )
            accords = figures.agreement_by_labeler(labels)
            for n, person in enumerate(people.tolist()):
                mine = labels.labeler == person
                tally["labels"][person] += int(given[n])
                tally["recent"][person] += int(recent[n])
                tally["match"][person] += accords[person].matches
                tally["pair"][person] += accords[person].pairs
                compared[person] += accords[person].items
                last[person] = max(last.get(person, 0.0), float(labels.at[mine].max()))
        stages.append(entry)
    labelers = [
        {
            "id": user.id,
            "name": user.name,
            "labels": tally["labels"][user.id],
            "answers": len(store.answers(user.id)),
            "per_minute": _per_minute(tally["recent"][user.id]),
            "last_label_at": _moment(last[user.id]).isoformat() if user.id in last else None,
            "agreement": (
                tally["match"][user.id] / tally["pair"][user.id] if tally["pair"][user.id] else None
            ),
            "compared": compared[user.id],
        }
        for user in users.values()
        if user.role == LABELER and user.revoked_at is None
    ]
    return {"stages": stages, "labelers": labelers}


def _pool_figures(done: pools.Progress, labels: figures.PoolLabels, at: datetime) -> dict[str, Any]:
    """A pool stage's progress, pace, agreement and quality figures, and its labelers'
    pace and Cohen's kappa with each other."""
    needed = done.needed
    counts = figures.counts_by_item(labels)
    recent = int((labels.at >= (at - PACE_WINDOW).timestamp()).sum())
    per_minute = _per_minute(recent)
    ordinal = figures.ordered(labels.values)
    kappas = figures.cohen_kappas(labels)
    return {
        "progress": {
            "items": done.items,
            "complete": done.complete,
            "labels": done.labels,
            "needed": needed,
        },
        "agreement": {
            "pairwise": figures.pairwise_agreement(counts),
            "alpha": figures.krippendorff_alpha(counts),
        },
        "quality": {
            "fleiss_kappa": figures.fleiss_kappa(counts),
            "alpha_ordinal": figures.krippendorff_alpha(counts, ordinal=True) if ordinal else None,
            "full_agreement": figures.full_agreement(counts),
            "kappas": [
                {"labelers": list(pair), "kappa": kappa, "items": items}
                for pair, (kappa, items) in sorted(kappas.items())
            ],
            "labelers": [
                {
                    "id": person,
                    "labels": pace.labels,
                    "median_seconds": pace.median_seconds,
                    "p90_seconds": pace.p90_seconds,
                    "per_hour": pace.per_hour,
                    "kappa": _mean_kappa(person, kappas),
                }
                for person, pace in sorted(figures.paces(labels).items())
            ],
        },
        "pace": {
            "per_minute": per_minute,
            "minutes_left": minutes_left(needed - done.labels, per_minute),
        },
        "timeline": timeline(labels.at, at),
    }


def _mean_kappa(
    person: int, kappas: dict[tuple[int, int], tuple[float | None, int]]
) -> float | None:
    """A labeler's Cohen's kappa with the others, averaged over the items they share."""
    weighted = [(k, n) for pair, (k, n) in kappas.items() if person in pair and k is not None]
    shared = sum(n for _, n in weighted)
    return sum(k * n for k, n in weighted) / shared if shared else None


def _moment(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def _per_minute(labels: int) -> float:
    """Labels per minute over the pace window, from the labels given in it."""
    return round(labels / (PACE_WINDOW.total_seconds() / 60), 2)


def minutes_left(labels_missing: int, per_minute: float) -> float | None:
    """How long the labels still missing take at this pace (None: no pace to go by)."""
    if labels_missing <= 0:
        return 0.0
    return round(labels_missing / per_minute, 1) if per_minute > 0 else None


def timeline(moments: np.ndarray, at: datetime) -> dict[str, Any]:
    """Labels given in each of the last TIMELINE_MINUTES clock minutes, oldest first, from
    their moments in seconds; the last is the minute `at` is in, so far."""
    end = at.replace(second=0, microsecond=0) + timedelta(minutes=1)
    start = end - timedelta(minutes=TIMELINE_MINUTES)
    shown = moments[(moments >= start.timestamp()) & (moments <= at.timestamp())]
    minute = ((shown - start.timestamp()) // 60).astype(np.int64)
    counts = np.bincount(minute, minlength=TIMELINE_MINUTES)[:TIMELINE_MINUTES]
    return {"start": start.isoformat(), "counts": counts.tolist()}


def _aware(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes for what was stored in UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
