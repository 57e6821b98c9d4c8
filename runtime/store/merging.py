"""How a pool stage's labels become one label per item: the merge rules.

Every rule takes each item's label by labeler (item -> {labeler: label}), the stage's
choices and its gold answers (item -> known answer), and gives one `Merged`: each item's
label and the probability of it, the items whose top labels tie, and each labeler's
estimated confusion matrix (labeler -> true label -> given label -> rate).

- `majority`: the most frequent label, a tie keeping the label seen first (and listed);
  the probability is the label's share of the item's votes.
- `dawid-skene`: quality.dawid_skene's most probable choice and its posterior, with the
  gold items' answers held as known truth.
- `gold-weighted`: each labeler's vote weighs by their accuracy on the gold items; the
  probability is the label's share of the item's weighted votes.
- a function of the notebook's (`custom`): it gets the raw labels and returns each
  item's label, or (label, probability); see docs/annotations.md.

Gold items take their known answer, with probability 1, whatever the rule (labeled or
not); the
confusion matrices of majority, gold-weighted and custom merges count against that
truth where it is known and the merged label elsewhere, with a row for each true label
among the labeler's items and a rate for each choice. Labelers whose gold accuracy is
below the owner's floor are left out before any rule runs.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from runtime.store.agreement import merge as majority_vote
from runtime.store.quality import dawid_skene, gold_accuracy

RULES = ("majority", "dawid-skene", "gold-weighted")

ByItem = Mapping[Hashable, Mapping[Hashable, Hashable]]
Confusion = dict[Hashable, dict[Hashable, dict[Hashable, float]]]


@dataclass(frozen=True)
class Merged:
    """A pool's merged labels: `labels` (item -> label), `probabilities` (item -> the
    probability of its label), `ties` (item -> its tied top labels, majority only),
    `confusion` (labeler -> true label -> given label -> rate), and the labelers
    `left_out` because their gold accuracy is below the floor."""

    labels: dict[Hashable, Hashable]
    probabilities: dict[Hashable, float]
    ties: dict[Hashable, tuple[Hashable, ...]]
    confusion: Confusion
    left_out: tuple[Hashable, ...] = ()


class MergeError(Exception):
    """A custom merge function that raised, or returned something that is not a merge."""


def merge_labels(
    rule: str,
    annotations: ByItem,
    choices: Sequence[Hashable],
    gold: Mapping[Hashable, Hashable] | None = None,
    floor: float | None = None,
    custom: Callable[[ByItem], Any] | None = None,
) -> Merged:
    """The pool's labels merged by `rule` (one of RULES, or `custom`, which is then
    called), with the labelers whose gold accuracy is below `floor` left out."""
    gold = dict(gold or {})
    left_out: tuple[Hashable, ...] = ()
    if floor is not None and gold:
        scores = gold_accuracy(annotations, gold)
        left_out = tuple(who for who, score in scores.items() if score.accuracy < floor)
        annotations = {
            item: {who: label for who, label in given.items() if who not in left_out}
            for item, given in annotations.items()
        }
    annotations = {item: given for item, given in annotations.items() if given}
    if rule == "majority":
        merged = _majority(annotations)
    elif rule == "dawid-skene":
        merged = _dawid_skene(annotations, choices, gold)
    elif rule == "gold-weighted":
        merged = _gold_weighted(annotations, choices, gold)
    elif custom is not None:
        merged = _custom(custom, annotations, choices)
    else:
        raise ValueError(f"`{rule}` is not a merge rule, and no function was given for it")
    labels = dict(merged.labels)
    probabilities = dict(merged.probabilities)
    for item, answer in gold.items():
        labels[item], probabilities[item] = answer, 1.0
    confusion = merged.confusion
    if rule != "dawid-skene":
        confusion = confusion_against(annotations, labels, choices)
    ties = {item: tied for item, tied in merged.ties.items() if item not in gold}
    return Merged(labels, probabilities, ties, confusion, left_out)


def confusion_against(
    annotations: ByItem, truth: Mapping[Hashable, Hashable], choices: Sequence[Hashable]
) -> Confusion:
    """Each labeler's rates of giving each label, by true label, taking `truth` as the
    truth: a row for each true label among the labeler's items, a rate for each choice."""
    counts: dict[Hashable, dict[Hashable, Counter[Hashable]]] = {}
    for item, by_labeler in annotations.items():
        if item not in truth:
            continue
        for who, label in by_labeler.items():
            counts.setdefault(who, {}).setdefault(truth[item], Counter())[label] += 1
    return {
        who: {
            true: {label: row[label] / sum(row.values()) for label in choices}
            for true, row in rows.items()
        }
        for who, rows in counts.items()
    }


def _majority(annotations: ByItem) -> Merged:
    voted = majority_vote({item: list(given.values()) for item, given in annotations.items()})
    probabilities = {
        item: sum(label == voted.labels[item] for label in given.values()) / len(given)
        for item, given in annotations.items()
    }
    return Merged(voted.labels, probabilities, voted.ties, {})


def _dawid_skene(
    annotations: ByItem, choices: Sequence[Hashable], gold: Mapping[Hashable, Hashable]
) -> Merged:
    estimate = dawid_skene(annotations, choices, known=gold)
    probabilities = {
        item: estimate.posteriors[item][label] for item, label in estimate.labels.items()
    }
    return Merged(estimate.labels, probabilities, {}, estimate.confusion)


def _gold_weighted(
    annotations: ByItem, choices: Sequence[Hashable], gold: Mapping[Hashable, Hashable]
) -> Merged:
    """Weighted votes: a labeler's weight is the log-odds of their gold accuracy beyond
    chance, log((k - 1) * a / (1 - a)), with the accuracy smoothed as (correct + 1) /
    (total + 2) and the weight never below 0, so that a labeler at or below chance has
    no say. A labeler with no gold item gets the weight of the pooled gold accuracy;
    with no gold at all every weight is 1 (majority). An item whose labelers all weigh
    0 falls back to its plain votes."""
    scores = gold_accuracy(annotations, gold)
    k = max(len(choices), 2)

    def weight(correct: int, total: int) -> float:
        accuracy = (correct + 1) / (total + 2)
        return max(0.0, math.log((k - 1) * accuracy / (1 - accuracy)))

    pooled = (
        weight(sum(s.correct for s in scores.values()), sum(s.total for s in scores.values()))
        if scores
        else 1.0
    )
    weights = {who: weight(s.correct, s.total) for who, s in scores.items()}
    labels, probabilities, ties = {}, {}, {}
    for item, given in annotations.items():
        votes: dict[Hashable, float] = {}
        for who, label in given.items():
            votes[label] = votes.get(label, 0.0) + weights.get(who, pooled)
        if sum(votes.values()) <= 0:
            votes = dict(Counter(given.values()))
        top = max(votes.values())
        leaders = tuple(label for label, vote in votes.items() if math.isclose(vote, top))
        labels[item] = leaders[0]
        probabilities[item] = top / sum(votes.values())
        if len(leaders) > 1:
            ties[item] = leaders
    return Merged(labels, probabilities, ties, {})


def _custom(function: Callable[[ByItem], Any], annotations: ByItem, choices: Sequence) -> Merged:
    """The function's result as a merge, or a MergeError saying what is wrong with it."""
    name = getattr(function, "__name__", repr(function))
    try:
        result = function({item: dict(given) for item, given in annotations.items()})
    except MergeError:
        raise  # the function's own account of what went wrong
    except Exception as error:
        raise MergeError(
            f"the merge function `{name}` raised {type(error).__name__}: {error}"
        ) from None
    if not isinstance(result, Mapping):
        raise MergeError(
            f"the merge function `{name}` returned a {type(result).__name__}; it must return "
            "a mapping of item id to label, or to (label, probability)"
        )
    labels, probabilities = {}, {}
    for item, value in result.items():
        if item not in annotations:
            raise MergeError(
                f"the merge function `{name}` gave a label to {item!r}, "
                "not a labeled item of the pool"
            )
        label, probability = (
            value if isinstance(value, tuple) and len(value) == 2 else (value, None)
        )
        if label not in choices:
            raise MergeError(
                f"the merge function `{name}` gave {item!r} the label {label!r}, which is not "
                f"one of the choices {list(choices)}"
            )
        if probability is None:
            given = annotations[item].values()
            probability = sum(lab == label for lab in given) / len(given)
        elif (
            isinstance(probability, bool)
            or not isinstance(probability, int | float)
            or not 0 <= probability <= 1
        ):
            raise MergeError(
                f"the merge function `{name}` gave {item!r} the probability {probability!r}; "
                "a probability is a number from 0 to 1"
            )
        labels[item], probabilities[item] = label, float(probability)
    return Merged(labels, probabilities, {}, {})
