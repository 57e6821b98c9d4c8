"""How long Dawid-Skene takes on a large pool: nbfreeze's against crowd-kit's, same data.

100,000 items with 5 labels each from 50 labelers (each of the item's labelers
distinct), 4 classes; each labeler right with a probability of their own (0.3 to 0.9),
else a random class. Both run to crowd-kit's defaults (100 iterations at most, tolerance
1e-5) on the same rows in the same process. Figures are the median of `--runs` runs:

- ours, arrays: `quality.dawid_skene_arrays` on the integer columns (what a caller with
  codes already in hand, or the bench, pays);
- ours, mappings: `quality.dawid_skene` from item -> {labeler: label} with string labels,
  as the pool's merge calls it (building the codes and the result dicts included);
- crowd-kit: `DawidSkene().fit_predict` on a DataFrame of task, worker, label.

It also counts the items on which the two most probable labels differ and the largest
difference of a posterior.

    .venv/bin/python bench/dawid_skene.py        # writes bench/results/dawid_skene.md
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
from crowdkit.aggregation import DawidSkene

from runtime.store.quality import dawid_skene, dawid_skene_arrays

RESULTS = Path(__file__).resolve().parent / "results" / "dawid_skene.md"
CHOICES = ["a", "b", "c", "d"]


def simulated(items: int, per_item: int, labelers: int, classes: int, seed: int):
    rng = np.random.default_rng(seed)
    skill = rng.uniform(0.3, 0.9, labelers)
    truth = rng.integers(0, classes, items)
    task = np.repeat(np.arange(items), per_item)
    # Distinct labelers per item: the first `per_item` of a random permutation each.
    worker = np.argsort(rng.random((items, labelers)), axis=1)[:, :per_item].ravel()
    right = rng.random(len(task)) < skill[worker]
    label = np.where(right, truth[task], rng.integers(0, classes, len(task)))
    return task, worker, label


def timed(function) -> tuple[float, object]:
    started = time.perf_counter()
    result = function()
    return time.perf_counter() - started, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--per-item", type=int, default=5)
    parser.add_argument("--labelers", type=int, default=50)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    task, worker, label = simulated(args.items, args.per_item, args.labelers, len(CHOICES), 1)
    frame = pd.DataFrame({"task": task, "worker": worker, "label": label})
    by_item: dict[int, dict[int, str]] = {}
    for t, w, lab in zip(task.tolist(), worker.tolist(), label.tolist(), strict=True):
        by_item.setdefault(t, {})[w] = CHOICES[lab]
    arrays, mappings, theirs = [], [], []
    for _ in range(args.runs):
        seconds, fit = timed(lambda: dawid_skene_arrays(task, worker, label, len(CHOICES)))
        arrays.append(seconds)
        seconds, _ = timed(lambda: dawid_skene(by_item, CHOICES))
        mappings.append(seconds)
        model = DawidSkene(n_iter=100, tol=1e-5)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # crowd-kit 1.4's pandas deprecations
            seconds, _ = timed(partial(model.fit_predict, frame))
        theirs.append(seconds)
    probas = model.probas_.loc[np.arange(args.items), list(range(len(CHOICES)))].to_numpy()
    differ = int((fit.posteriors.argmax(axis=1) != probas.argmax(axis=1)).sum())
    gap = float(np.abs(fit.posteriors - probas).max())
    rows = [
        ("nbfreeze, integer arrays (`dawid_skene_arrays`)", statistics.median(arrays)),
        ("nbfreeze, mappings (`dawid_skene`, as the merge calls it)", statistics.median(mappings)),
        ("crowd-kit `DawidSkene().fit_predict`", statistics.median(theirs)),
    ]
    lines = [
        f"{args.items:,} items × {args.per_item} labels from {args.labelers} labelers, "
        f"{len(CHOICES)} classes; median of {args.runs} runs; {fit.iterations} iterations "
        f"(crowd-kit {len(model.loss_history_)}).",
        "",
        "| implementation | seconds |",
        "|---|---|",
        *(f"| {what} | {seconds:.2f} |" for what, seconds in rows),
        "",
        f"Most probable labels that differ: {differ} of {args.items:,}; largest posterior "
        f"difference: {gap:.1e}.",
    ]
    RESULTS.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
