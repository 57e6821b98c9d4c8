"""The dashboard's gold block of a pool stage: each labeler's accuracy on its gold items
with the 95% Wilson interval, the owner's floor, and who it leaves out of the merge (the
same rule as `runtime.store.merging`: an accuracy below the floor). The owner sets the
floor by what these show (`Pipeline.set_accuracy_floor`).
"""

from __future__ import annotations

from typing import Any

from runtime.app.pipeline import Pipeline


def gold_block(pipeline: Pipeline, name: str) -> dict[str, Any] | None:
    """Pool `name`'s gold figures, or None for a pool with no gold (or not open yet)."""
    pool = pipeline.pools.get(name)
    if pool is None or not pool.gold:
        return None
    floor = pipeline.floors.get(name)
    scores = pipeline.gold_scores(name)
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
            for who, score in sorted(scores.items(), key=lambda pair: pair[0])
        ],
    }
