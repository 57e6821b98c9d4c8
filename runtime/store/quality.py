"""How far a pool's labels can be trusted, beyond majority vote and percent agreement.

Percent agreement (agreement.py) is high by chance when one label dominates; each figure
here corrects for that or models the labelers, so that an owner can tell a pool that
agrees from one that merely says the same thing:

- Cohen's kappa: two labelers on the items both labeled, against the agreement their
  own label frequencies give by chance. For "do these two people label alike?".
- Fleiss' kappa: every item with the same number of labels from interchangeable
  labelers, against the chance agreement of the pooled label frequencies. For a pool
  whose items all have `overlap` labels.
- Krippendorff's alpha, ordinal: any number of labels per item, missing ones allowed,
  for choices with an order (ratings): a near miss costs less than a far one, by how
  many of the pooled labels lie between the two (Krippendorff 2011). The nominal alpha
  is in agreement.py.
- Dawid and Skene (1979): each labeler's confusion matrix (how often they give each
  label when the truth is each choice) and the choices' priors, estimated with the
  truth by expectation-maximisation. It gives each item the label and the probability
  of each choice that the labelers' estimated skill implies: a careful labeler counts
  for more than a careless one, and a consistent adversary's labels are read back to
  what they mean. Started, smoothed and stopped as crowd-kit's `DawidSkene` is, so that
  its results can be checked against crowd-kit's.

Pure functions over plain values (numpy only): item -> list of labels, or item ->
{labeler: label}, as in agreement.py.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

Labels = Mapping[Hashable, Iterable[Hashable] | Mapping[Hashable, Hashable]]


def _values(given: Iterable[Hashable] | Mapping[Hashable, Hashable]) -> list[Hashable]:
    """An item's labels, from a list of them or from its labels by labeler."""
    return list(given.values()) if isinstance(given, Mapping) else list(given)


def cohen_kappa(a: Mapping[Hashable, Hashable], b: Mapping[Hashable, Hashable]) -> float | None:
    """Cohen's kappa of two labelers (item -> label each) on the items both labeled.

    None when they share no item or chance alone would make them agree on every one
    (both gave one and the same label throughout): kappa is undefined then."""
    shared = [item for item in a if item in b]
    if not shared:
        return None
    values = sorted({a[item] for item in shared} | {b[item] for item in shared}, key=repr)
    index = {value: i for i, value in enumerate(values)}
    table = np.zeros((len(values), len(values)))
    for item in shared:
        table[index[a[item]], index[b[item]]] += 1
    table /= len(shared)
    observed = np.trace(table)
    expected = float(table.sum(axis=1) @ table.sum(axis=0))
    if expected == 1.0:
        return None
    return float((observed - expected) / (1.0 - expected))


def fleiss_kappa(labels_by_item: Labels) -> float | None:
    """Fleiss' kappa of the items' labels, every item labeled the same number of times.

    Items with fewer than two labels carry no agreement and are left out. If the others
    do not all have the same number of labels, a ValueError says so: Fleiss' chance
    agreement assumes a fixed number of labels per item, and Krippendorff's alpha is the
    figure for uneven counts. None when no item has two labels or every label is the
    same value (kappa is undefined then)."""
    units = [_values(given) for given in labels_by_item.values()]
    units = [unit for unit in units if len(unit) >= 2]
    if not units:
        return None
    sizes = sorted({len(unit) for unit in units})
    if len(sizes) > 1:
        raise ValueError(
            f"Fleiss' kappa needs the same number of labels on every item, and these items "
            f"have {', '.join(map(str, sizes))}; use Krippendorff's alpha for uneven "
            f"counts, or keep the items that have all their labels."
        )
    m = sizes[0]
    values = sorted({label for unit in units for label in unit}, key=repr)
    index = {value: i for i, value in enumerate(values)}
    counts = np.zeros((len(units), len(values)))
    for row, unit in enumerate(units):
        for label in unit:
            counts[row, index[label]] += 1
    shares = counts.sum(axis=0) / counts.sum()
    expected = float(shares @ shares)
    if expected == 1.0:
        return None
    observed = float(((counts * counts).sum(axis=1) - m).mean() / (m * (m - 1)))
    return (observed - expected) / (1.0 - expected)


def krippendorff_alpha_ordinal(labels_by_item: Labels, order: Sequence[Hashable]) -> float | None:
    """Krippendorff's alpha for ordered labels, `order` listing them from lowest to highest.

    The distance of two labels is the number of pooled labels from one to the other, the
    two ends counted half (Krippendorff 2011, the ordinal metric), squared. None when no
    item has two labels or every label is the same value. A label missing from `order`
    is a ValueError."""
    index = {value: i for i, value in enumerate(order)}
    coincidences = np.zeros((len(order), len(order)))
    for item, given in labels_by_item.items():
        unit = _values(given)
        if len(unit) < 2:
            continue  # only pairable values count
        counts = np.zeros(len(order))
        for label in unit:
            if label not in index:
                raise ValueError(f"item {item!r}: the label {label!r} is not in the order given")
            counts[index[label]] += 1
        coincidences += (np.outer(counts, counts) - np.diag(counts)) / (len(unit) - 1)
    pooled = coincidences.sum(axis=0)
    n = pooled.sum()
    if n == 0:
        return None
    below = np.concatenate(([0.0], np.cumsum(pooled)))
    ranks = np.arange(len(order))
    low, high = np.minimum.outer(ranks, ranks), np.maximum.outer(ranks, ranks)
    # Labels from `low` to `high` inclusive, less half of each end.
    distance = (below[high + 1] - below[low] - (pooled[low] + pooled[high]) / 2) ** 2
    expected = float((np.outer(pooled, pooled) * distance).sum())
    if expected == 0:
        return None
    return 1.0 - (n - 1) * float((coincidences * distance).sum()) / expected


# crowd-kit's floor for probabilities, so that no logarithm meets a zero.
_FLOOR = 1e-10


@dataclass(frozen=True)
class Estimate:
    """What Dawid-Skene makes of a pool's labels.

    `labels`: each item's most probable choice (the first in `choices` on a tie);
    `posteriors`: item -> choice -> its probability; `confusion`: labeler -> true
    choice -> given label -> the probability that they give it; `priors`: choice -> its
    share of the items; `iterations` run, and whether the estimate `converged` (its
    bound rose by less than `tol`) before the limit."""

    labels: dict[Hashable, Hashable]
    posteriors: dict[Hashable, dict[Hashable, float]]
    confusion: dict[Hashable, dict[Hashable, dict[Hashable, float]]]
    priors: dict[Hashable, float]
    iterations: int
    converged: bool


def dawid_skene(
    annotations: Mapping[Hashable, Mapping[Hashable, Hashable]],
    choices: Sequence[Hashable],
    iterations: int = 100,
    tol: float = 1e-5,
    known: Mapping[Hashable, Hashable] | None = None,
) -> Estimate:
    """Dawid-Skene's estimate from each item's label by labeler.

    As crowd-kit's `DawidSkene`: the posteriors start as each item's share of votes
    (majority vote), then the confusion matrices and priors are estimated from them
    and the posteriors from those, in turn; a confusion entry for a label the labeler
    gave is floored at 1e-10 (so is a prior), and the loop stops when the evidence lower
    bound per label (crowd-kit's, which counts the log prior once per label) rises by
    less than `tol`, or after `iterations`. `known` gives items whose true choice is
    known (gold): their posteriors stay certain of it throughout. Items without labels
    are left out; a label outside `choices` is a ValueError."""
    index = {choice: i for i, choice in enumerate(choices)}
    items = [item for item, given in annotations.items() if given]
    labelers = list(dict.fromkeys(who for item in items for who in annotations[item]))
    who_index = {who: i for i, who in enumerate(labelers)}
    task, worker, label = [], [], []
    for i, item in enumerate(items):
        for who, given in annotations[item].items():
            if given not in index:
                raise ValueError(f"item {item!r}: {who!r}'s label {given!r} is not a choice")
            task.append(i)
            worker.append(who_index[who])
            label.append(index[given])
    if not task:
        return Estimate({}, {}, {}, {}, 0, True)
    truth = np.full(len(items), -1)
    for i, item in enumerate(items):
        if known and item in known and known[item] in index:
            truth[i] = index[known[item]]
    fit = dawid_skene_arrays(
        np.array(task), np.array(worker), np.array(label), len(choices), iterations, tol, truth
    )
    posteriors, confusion = fit.posteriors, fit.confusion
    best = posteriors.argmax(axis=1)
    return Estimate(
        labels={item: choices[best[i]] for i, item in enumerate(items)},
        posteriors={
            item: {choice: float(posteriors[i, c]) for c, choice in enumerate(choices)}
            for i, item in enumerate(items)
        },
        confusion={
            who: {
                truth: {given: float(confusion[w, g, t]) for g, given in enumerate(choices)}
                for t, truth in enumerate(choices)
            }
            for w, who in enumerate(labelers)
        },
        priors={choice: float(fit.priors[c]) for c, choice in enumerate(choices)},
        iterations=fit.iterations,
        converged=fit.converged,
    )


@dataclass(frozen=True)
class Fit:
    """Dawid-Skene's estimate over integer codes: `posteriors[item, choice]`,
    `confusion[labeler, given, true]` (each column sums to 1), `priors[choice]`."""

    posteriors: np.ndarray
    confusion: np.ndarray
    priors: np.ndarray
    iterations: int
    converged: bool


def dawid_skene_arrays(
    task: np.ndarray,
    worker: np.ndarray,
    label: np.ndarray,
    classes: int,
    iterations: int = 100,
    tol: float = 1e-5,
    truth: np.ndarray | None = None,
) -> Fit:
    """`dawid_skene` over one row per label: its item `task[r]`, labeler `worker[r]` and
    label `label[r]`, integer codes from 0 (every item from 0 to the largest has a label);
    `truth[i]` is item i's known choice, or -1. Every sum is a `np.bincount` over the
    rows, one per choice, so a pool of 500,000 labels takes well under a second."""
    k = classes
    items, labelers = int(task.max()) + 1, int(worker.max()) + 1
    pair = worker * k + label  # (labeler, given) as one code
    gave = np.zeros(labelers * k, dtype=bool)
    gave[pair] = True
    gold = np.flatnonzero(truth >= 0) if truth is not None else np.array([], dtype=int)

    def pinned(posteriors: np.ndarray) -> np.ndarray:
        if len(gold):
            posteriors[gold] = 0.0
            posteriors[gold, truth[gold]] = 1.0
        return posteriors

    def confusion_from(posteriors: np.ndarray) -> np.ndarray:
        # [labeler, given, true]: the posterior mass of each true choice behind each label.
        mass = posteriors[task]
        counts = np.stack(
            [np.bincount(pair, weights=mass[:, t], minlength=labelers * k) for t in range(k)],
            axis=1,
        )
        counts = np.where(gave[:, None], np.maximum(counts, _FLOOR), 0.0)
        counts = counts.reshape(labelers, k, k)
        return counts / counts.sum(axis=1, keepdims=True)

    def summed_logs(confusion: np.ndarray) -> np.ndarray:
        # [item, true]: the sum of the log rates of the item's labels given that truth.
        logs = np.log(confusion.reshape(labelers * k, k)[pair])
        return np.stack(
            [np.bincount(task, weights=logs[:, t], minlength=items) for t in range(k)], axis=1
        )

    def posteriors_from(priors: np.ndarray, summed: np.ndarray) -> np.ndarray:
        log = summed + np.log(priors)
        scaled = np.exp(log - log.max(axis=1, keepdims=True))
        return pinned(scaled / scaled.sum(axis=1, keepdims=True))

    per_item = np.bincount(task, minlength=items)[:, None]
    posteriors = np.stack(
        [np.bincount(task, weights=label == c, minlength=items) for c in range(k)], axis=1
    )
    posteriors = pinned(posteriors / per_item)
    priors = np.maximum(posteriors.mean(axis=0), _FLOOR)
    confusion = confusion_from(posteriors)
    summed = summed_logs(confusion)
    bound, run, converged = -np.inf, 0, False
    while run < iterations:
        run += 1
        posteriors = posteriors_from(priors, summed)
        priors = np.maximum(posteriors.mean(axis=0), _FLOOR)
        confusion = confusion_from(posteriors)
        summed = summed_logs(confusion)  # the bound's, and the next posteriors'
        # Summed over labels: each label's log rate and its item's log prior.
        expectation = (posteriors * (summed + per_item * np.log(priors))).sum()
        floored = np.maximum(posteriors, _FLOOR)
        new_bound = (expectation - (floored * np.log(floored)).sum()) / len(task)
        if new_bound - bound < tol:
            converged = True
            break
        bound = new_bound
    return Fit(posteriors, confusion, priors, run, converged)


# The normal quantile of a two-sided 95% interval, as statsmodels' norm.isf(0.025).
_Z95 = 1.959963984540054


@dataclass(frozen=True)
class GoldAccuracy:
    """How often a labeler gave the known answer on the gold items they labeled, with the
    95% Wilson score interval of that share (`low`, `high`)."""

    correct: int
    total: int
    accuracy: float
    low: float
    high: float


def wilson_interval(correct: int, total: int, z: float = _Z95) -> tuple[float, float]:
    """The Wilson score interval of `correct` successes in `total` trials (Wilson 1927),
    as statsmodels' `proportion_confint(method="wilson")`; (0, 1) for no trials."""
    if total == 0:
        return 0.0, 1.0
    share = correct / total
    spread = z * z / total
    centre = (share + spread / 2) / (1 + spread)
    half = z / (1 + spread) * np.sqrt(share * (1 - share) / total + spread / (4 * total))
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))


def gold_accuracy(
    annotations: Mapping[Hashable, Mapping[Hashable, Hashable]],
    gold: Mapping[Hashable, Hashable],
) -> dict[Hashable, GoldAccuracy]:
    """Each labeler's accuracy on the gold items (item -> known answer) they labeled,
    from each item's label by labeler; labelers who labeled no gold item are absent."""
    tally: dict[Hashable, list[int]] = {}
    for item, answer in gold.items():
        for who, label in annotations.get(item, {}).items():
            counts = tally.setdefault(who, [0, 0])
            counts[0] += label == answer
            counts[1] += 1
    return {
        who: GoldAccuracy(correct, total, correct / total, *wilson_interval(correct, total))
        for who, (correct, total) in tally.items()
    }
