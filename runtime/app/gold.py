"""The dashboard's gold block of a pool stage: each labeler's accuracy on its gold items
with the 95% Wilson interval, the owner's floor, and who it leaves out of the merge (the
same rule as `runtime.store.merging`: an accuracy below the floor). The owner sets the
floor by what these show (`Pipeline.set_accuracy_floor`).

The accuracies come from the pool's label arrays the dashboard already holds
(`runtime.store.label_cache`), never a read of every label per refresh.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from runtime.app.pipeline import Pipeline
from runtime.store.label_figures import PoolLabels
from runtime.store.pools import gold_positions
from runtime.store.quality import GoldAccuracy, wilson_interval


def gold_block(pipeline: Pipeline, name: str, labels: PoolLabels) -> dict[str, Any] | None:
    """Pool `name`'s gold figures from its `labels`, or None for a pool with no gold (or
    not open yet)."""
    pool = pipeline.pools.get(name)
    if pool is None or not pool.gold:
        return None
    floor = pipeline.floors.get(name)
    positions = gold_positions(pipeline.store, name)
    answers = {positions[key]: answer for key, answer in pool.gold.items() if key in positions}
    return {
        "items": len(pool.gold),
        "floor": floor,
        "settable": not pipeline.done(name),
        "labelers": [
            {
                "id": who,
                "correct": score.correct,
                "total": score.total,
                "accuracy": score.accuracy,
                "low": score.low,
                "high": score.high,
                "left_out": floor is not None and score.accuracy < floor,
            }
            for who, score in sorted(accuracies(labels, answers).items())
        ],
    }


def accuracies(labels: PoolLabels, answers: dict[int, str]) -> dict[int, GoldAccuracy]:
    """Each labeler's accuracy on the gold items, from the answers by item position;
    labelers who labeled no gold item are absent."""
    if not answers or not len(labels.item):
        return {}
    index = {value: n for n, value in enumerate(labels.values)}
    truth = np.full(max(max(answers), int(labels.item.max())) + 1, -1, dtype=np.int64)
    for position, answer in answers.items():
        truth[position] = index.get(answer, -2)  # an answer nobody gave is never matched
    known = truth[labels.item]
    on_gold = known != -1
    people, who = np.unique(labels.labeler[on_gold], return_inverse=True)
    total = np.bincount(who, minlength=len(people))
    right = np.bincount(who, weights=labels.label[on_gold] == known[on_gold], minlength=len(people))
    scores = {}
    counted = zip(people.tolist(), right.astype(int).tolist(), total.tolist(), strict=True)
    for person, correct, given in counted:
        low, high = wilson_interval(correct, given)
        scores[person] = GoldAccuracy(correct, given, correct / given, low, high)
    return scores
