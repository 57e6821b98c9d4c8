"""The shared stages: run once for everybody, in dependency order, off the event loop.

One headless session holds the shared namespace. A compute stage runs when every
stage it depends on is done; an `owner` stage is replayed from the owner's stored
answer; a `pool` stage waits for pooled labeling. A compute stage's results are cached
on disk under a key made of its code and its inputs' keys, so a restart (or another
process) reuses them instead of recomputing; a changed cell changes its key and the
keys of everything after it, and nothing else.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import importlib
import json
import logging
import pickle
import tempfile
import time
import types
from collections.abc import Callable, Hashable, Mapping
from concurrent.futures import Executor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cloudpickle

from freezer.widgets import Labeling, item_key, item_keys, showing_first
from runtime.app.advancing import advance_in_background
from runtime.app.stage_limits import Limited, Limits, Stop, call_limited, run_limited
from runtime.app.stage_run import AnswerError, apply_answer, run_cells, stage_widget
from runtime.bundle import Notebook, Stage
from runtime.host.session import Session, release_memory
from runtime.store import pools
from runtime.store.database import Store
from runtime.store.floors import FloorRefused, accuracy_floors, set_accuracy_floor
from runtime.store.merging import RULES, Merged, MergeError, merge_labels
from runtime.store.quality import GoldAccuracy, gold_accuracy

log = logging.getLogger(__name__)

WAITING, RUNNING, LABELING, DONE, FAILED = "waiting", "running", "labeling", "done", "failed"
REVIEWING = "reviewing"  # a pool's labels are all in; the items its `#| review:` picks wait
REVIEW_SUFFIX = "/review"  # a pool's review queue is a pool of its own under this name
SOON_SECONDS = 1.0  # a pool closes at most this long after its last label


@dataclass
class Pool:
    """A pool stage open for labeling: its widget in the shared namespace, its items by
    key (the id as JSON), how its work is handed out (each item goes to `overlap_min`
    labelers, up to `overlap_max` while their labels tie), how its labels are merged
    (`merge`, a rule's name, and `merge_function`, the notebook's function when it names
    one), and its gold items (item key -> known answer) with the share of each batch
    that is gold."""

    widget: Any
    ids: dict[str, Any]
    choices: tuple[str, ...]
    overlap_min: int
    overlap_max: int
    batch: int
    lease_seconds: int
    merge: str = "majority"
    merge_function: Callable[..., Any] | None = None
    gold: dict[str, str] = field(default_factory=dict)
    gold_rate: float = 0.0
    failed_merge: str | None = None  # the merge's key when it last failed
    merged: tuple[str, Merged] | None = None  # the last merge, under its key
    review_keys: list[str] | None = None  # the items in its review queue, once registered


def annotation_place(notebook: Notebook, stage: Stage, key: str) -> str:
    """Where a pool stage's `#| key:` line is: `cell N, line M` of its header cell."""
    header = next(c.index for c in notebook.cells_of(stage) if c.type == "code")
    return f"cell {header}, line {stage.options.get(f'{key}_line', 1)}"


def merge_function(namespace: Mapping[str, Any], notebook: Notebook, stage: Stage) -> Any:
    """The function a pool's `#| merge:` names, or None for a built-in rule; an
    AnswerError, naming the annotation's cell and line, when it is not a function."""
    rule = str(stage.options.get("merge", "majority"))
    if rule in RULES:
        return None
    where = f"stage `{stage.name}`, {annotation_place(notebook, stage, 'merge')}"
    root, *attributes = rule.split(".")
    if root not in namespace:
        raise AnswerError(
            f"{where}: `#| merge: {rule}` is not a rule ({', '.join(RULES)}), and the notebook "
            f"defines no `{root}` before this stage; define or import the function, or name a rule"
        )
    value = namespace[root]
    for attribute in attributes:
        if not hasattr(value, attribute):
            raise AnswerError(f"{where}: `#| merge: {rule}`: `{root}` has no `{attribute}`")
        value = getattr(value, attribute)
    if not callable(value):
        raise AnswerError(
            f"{where}: `#| merge: {rule}` names a {type(value).__name__}, not a function that "
            "takes the labels and returns the merged result"
        )
    return value


def limited_merge(function: Callable[..., Any], limits: Limits, stage: str) -> Callable[..., Any]:
    """A pool's merge function under the stage limits: it runs wherever the labels are
    merged (the pipeline, the owner's preview and downloads), and one that hangs or
    grows without end is stopped there with a MergeError naming it."""
    name = getattr(function, "__name__", repr(function))

    @functools.wraps(function)
    def merge(labels: Any) -> Any:
        try:
            return call_limited(
                function, (labels,), limits, f"the merge function `{name}` of stage `{stage}`"
            )
        except Limited as stopped:
            raise MergeError(stopped.stop.detail) from None

    return merge


def gold_answers(
    namespace: Mapping[str, Any],
    notebook: Notebook,
    stage: Stage,
    ids: Mapping[str, Any],
    choices: tuple[str, ...],
) -> dict[str, str]:
    """A pool's gold answers by item key, from the mapping its `#| gold:` names; an
    AnswerError, naming the annotation's cell and line, when an item is not one of the
    pool's (`ids`, item key -> id) or an answer is not one of its `choices`."""
    name = stage.options.get("gold")
    if not name:
        return {}
    where = f"stage `{stage.name}`, {annotation_place(notebook, stage, 'gold')}"
    value = namespace.get(str(name))
    if not isinstance(value, Mapping):
        what = "is not defined" if value is None else f"is a {type(value).__name__}"
        raise AnswerError(
            f"{where}: `#| gold: {name}` {what}; it must be a mapping of item id to the "
            "correct answer"
        )
    known = {}
    for item, answer in value.items():
        try:
            key = item_key(item)
        except (TypeError, ValueError):
            key = None
        if key not in ids:
            raise AnswerError(f"{where}: gold item {item!r} is not one of the pool's items")
        if answer not in choices:
            raise AnswerError(
                f"{where}: the gold answer {answer!r} of item {item!r} is not one of the "
                f"choices {list(choices)}"
            )
        known[key] = answer
    return known


def _unpicklable(values: dict[str, Any]) -> str | None:
    """The first name whose value cannot be stored, if one alone is to blame."""
    for name, value in values.items():
        try:
            cloudpickle.dumps(value, protocol=5)
        except Exception:
            return name
    return None


def raw_annotations(pool: Pool, rows: list[pools.Row]) -> list[dict[str, Any]]:
    """Every raw label of a pool as its widget's `annotations` holds them."""
    return [
        {
            "item": pool.ids[r.item_key],
            "labeler": r.user_id,
            "label": r.label,
            "time": r.created_at.isoformat(),
        }
        for r in rows
        if r.item_key in pool.ids
    ]


def labels_by_id(pool: Pool, rows: list[pools.Row]) -> dict[Hashable, dict[Hashable, Hashable]]:
    """Each item's label by labeler (user id), by item id."""
    by_item: dict[Hashable, dict[Hashable, Hashable]] = {}
    for row in rows:
        if row.item_key in pool.ids:
            by_item.setdefault(pool.ids[row.item_key], {})[row.user_id] = row.label
    return by_item


def gold_by_id(pool: Pool) -> dict[Hashable, str]:
    return {pool.ids[key]: answer for key, answer in pool.gold.items()}


def merged_labels(pool: Pool, rows: list[pools.Row], floor: float | None = None) -> Merged:
    """A pool's labels merged by its rule, by item id, with the labelers whose gold
    accuracy is below `floor` left out; a MergeError when its own function fails."""
    by_item = labels_by_id(pool, rows)
    return merge_labels(
        pool.merge, by_item, pool.choices, gold_by_id(pool), floor, pool.merge_function
    )


def give_merged(widget: Any, merged: Merged, raw: list[dict[str, Any]]) -> None:
    """Hand a pool stage's widget everyone's labels as the stages after it see them: the
    merged labels, the probability of each, the items whose top labels tie, each
    labeler's confusion matrix, and every raw label (`raw`, the rows as
    `raw_annotations` gives them)."""
    widget.labels = merged.labels
    widget.probabilities = merged.probabilities
    widget.ties = {item: list(tied) for item, tied in merged.ties.items()}
    widget.confusion = merged.confusion
    widget.annotations = raw


def review_stage(name: str) -> str:
    """The name a pool's review queue is registered under: no stage can have it."""
    return name + REVIEW_SUFFIX


def to_review(pool: Pool, rows: list[pools.Row], merged: Merged, rule: object) -> list[str]:
    """The keys of the items a pool's `#| review:` picks, in the pool's order: those whose
    labels are not all the same (`disagreement`), or whose merged label's probability is
    under `rule` (a number). Gold items have their known answer: none is reviewed."""
    given: dict[str, set[str]] = {}
    for row in rows:
        given.setdefault(row.item_key, set()).add(row.label)
    picked = []
    for key, item in pool.ids.items():
        if key in pool.gold or key not in given:
            continue
        if rule == "disagreement":
            if len(given[key]) > 1:
                picked.append(key)
        elif merged.probabilities.get(item, 1.0) < float(rule):  # type: ignore[arg-type]
            picked.append(key)
    return picked


@dataclass(frozen=True)
class Decision:
    """A reviewer's decision on an item: the label, who gave it (user id), when."""

    label: str
    reviewer: int
    at: Any


def decisions(store: Store, name: str) -> dict[str, Decision]:
    """The review decisions of pool `name`, by item key."""
    rows = pools.annotations(store, review_stage(name))
    return {r.item_key: Decision(r.label, r.user_id, r.created_at) for r in rows}


def with_decisions(pool: Pool, merged: Merged, decided: Mapping[str, Decision]) -> Merged:
    """The merge with each reviewed item's label the reviewer's, at probability 1."""
    labels, probabilities = dict(merged.labels), dict(merged.probabilities)
    ties = dict(merged.ties)
    for key, decision in decided.items():
        if key in pool.ids:
            item = pool.ids[key]
            labels[item], probabilities[item] = decision.label, 1.0
            ties.pop(item, None)
    return Merged(labels, probabilities, ties, merged.confusion, merged.left_out)


@dataclass
class StageStatus:
    """Where a shared stage stands, why, and what it displayed."""

    state: str = WAITING
    reason: str = ""
    error: str | None = None  # the traceback, for the owner only
    outputs: list[dict[str, Any]] = field(default_factory=list)
    key: str | None = None
    seconds: float = 0.0
    cached: bool = False


class Silent:
    """A client that drops everything: for sessions with no page."""

    def send_frame(self, frame: str | bytes) -> None:
        pass

    def disconnect(self, reason: str) -> None:
        pass


class HeadlessSession(Session):
    """A session with no page: what its code displays is recorded, not sent, and while
    nothing records it, not even formatted."""

    recording: list[dict[str, Any]] | None = None

    def muted(self) -> bool:
        return self.quiet or self.recording is None

    def emit(self, message: dict[str, Any], buffers: Any = ()) -> None:
        if self.recording is not None and message["type"] in ("output", "clear_output"):
            if "widget" not in message:  # a widget of the shared session has no page
                self.recording.append(message)


@dataclass(frozen=True)
class _ModuleRef:
    name: str


def _star_names(module: types.ModuleType) -> dict[str, Any]:
    """What `from module import *` binds, as Python takes it."""
    names = getattr(module, "__all__", None)
    if names is None:
        names = [n for n in vars(module) if not n.startswith("_")]
    return {name: getattr(module, name) for name in names}


class Pipeline:
    """The shared namespace and the state of every shared stage."""

    def __init__(
        self,
        notebook: Notebook,
        store: Store,
        cache_dir: Path,
        pool: Executor,
        *,
        limits: Limits,
        progress: Callable[[str], None] = lambda line: None,
    ) -> None:
        self.notebook = notebook
        self.store = store
        self.cache_dir = cache_dir
        self.limits = limits
        self.progress = progress
        self.executor = pool
        self.session = HeadlessSession(notebook, Silent(), pool)
        self.session.shell.on_error = self._on_error
        self.shared = [s for s in notebook.stages if s.scope == "shared"]
        self.status = {s.name: StageStatus() for s in self.shared}
        self.pools: dict[str, Pool] = {}
        # Each pool's gold-accuracy floor as the database had it at the last advance
        # (`runtime.store.floors`): a floor another process set is read on catching up.
        self.floors: dict[str, float] = {}
        self.version = 0  # bumped on every change, for pages that wait
        self.changed = asyncio.Event()
        self._lock = asyncio.Lock()
        self._failure: tuple[dict[str, Any], str] | None = None
        self._soon = False
        self.started = False  # every shared stage has been looked at once since start
        # The database's marks (`Store.shared_marks`) the shared stages were last brought
        # up to date with, and the catch-ups under way, by the marks they catch up with.
        self.seen: frozenset[tuple[str | None, ...]] | None = None
        self._catching_up: dict[frozenset[tuple[str | None, ...]], asyncio.Task[None]] = {}

    def soon(self) -> None:
        """Advance once more shortly: the submissions of a second cost one advance (which
        counts each open pool's labels)."""
        if not self._soon:
            self._soon = True
            asyncio.get_running_loop().call_later(SOON_SECONDS, self._advance_now)

    def _advance_now(self) -> None:
        self._soon = False
        asyncio.get_running_loop().create_task(advance_in_background(self.advance))

    @property
    def namespace(self) -> dict[str, Any]:
        return self.session.namespace

    def done(self, name: str) -> bool:
        """Is the shared stage `name` done (user stages are never in the pipeline)?"""
        status = self.status.get(name)
        return status is None or status.state == DONE

    async def advance(self) -> None:
        """Run every shared stage that can run now, in notebook order."""
        async with self._lock:
            self.floors = accuracy_floors(self.store)
            for number, stage in enumerate(self.shared, start=1):
                status = self.status[stage.name]
                if status.state in (DONE, FAILED):
                    continue
                pending = [d for d in stage.depends_on if not self.done(d)]
                if pending:
                    self._set(stage, WAITING, f"waits for {', '.join(pending)}")
                    continue
                if stage.input == "pool":
                    await self._pool(stage, f"[{number}/{len(self.shared)}]")
                    continue
                answer = None
                if stage.input == "owner":
                    answer = self.store.answers(self.store.owner().id).get(stage.name)
                    if answer is None:
                        self._set(stage, WAITING, "waits for the owner's answer")
                        continue
                await self._run(stage, answer, f"[{number}/{len(self.shared)}]")
            self.started = True

    def set_accuracy_floor(self, name: str, floor: float | None) -> None:
        """Leave out of pool `name`'s merge the labelers whose accuracy on its gold items
        is below `floor` (a share from 0 to 1); None leaves nobody out. Lowering it brings
        them back. Kept in the database, so every process merges with it; it counts from
        the pool's next merge (its preview at once), so it is set while the pool is open.
        A ValueError says what is wrong otherwise."""
        stage = self.notebook.stage(name)
        if stage is None or stage.input != "pool":
            raise ValueError(f"`{name}` is not a pool stage")
        if not stage.options.get("gold"):
            raise ValueError(f"pool `{name}` has no gold answers (`#| gold:`) to score labelers")
        if self.done(name):
            raise ValueError(f"pool `{name}` is closed: its labels are merged already")
        try:
            set_accuracy_floor(self.store, name, floor)
        except FloorRefused as refused:
            raise ValueError(f"pool `{name}`: {refused}") from None
        self.floors = accuracy_floors(self.store)
        self._bump()

    def gold_scores(self, name: str) -> dict[Hashable, GoldAccuracy]:
        """Each labeler's (user id's) accuracy on the gold items of open pool `name`, with
        its 95% Wilson interval: what an owner sets the accuracy floor by. Empty for a
        pool with no gold, or not opened yet."""
        pool = self.pools.get(name)
        if pool is None or not pool.gold:
            return {}
        rows = pools.annotations(self.store, name)
        return gold_accuracy(labels_by_id(pool, rows), gold_by_id(pool))

    def catch_up(self, marks: frozenset[tuple[str | None, ...]]) -> asyncio.Task[None]:
        """Bring the shared stages up to date with the database's `marks`, read just
        now: advance once (replaying an answer of the owner another process took,
        loading from the cache what another process ran, closing a pool it closed),
        then remember them. One task for all the requests that found the same marks."""
        task = self._catching_up.get(marks)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._catch_up(marks))
            self._catching_up[marks] = task
            task.add_done_callback(lambda done: self._catching_up.pop(marks, None))
        return task

    async def _catch_up(self, marks: frozenset[tuple[str | None, ...]]) -> None:
        # The advance reads the database after the marks were read: it sees at least
        # what they mark, so nothing marked is left out; a change it also saw only
        # costs the next request one more advance.
        await self.advance()
        self.seen = marks

    def _set(self, stage: Stage, state: str, reason: str = "") -> None:
        status = self.status[stage.name]
        if (status.state, status.reason) != (state, reason):
            status.state, status.reason = state, reason
            self._bump()

    def _bump(self) -> None:
        self.version += 1
        self.changed.set()
        self.changed = asyncio.Event()

    def _key(self, stage: Stage, answer: dict[str, Any] | None) -> str:
        code = [c.text for c in self.notebook.cells_of(stage) if c.type == "code"]
        inputs = [self.status[d].key for d in stage.depends_on]
        material = json.dumps([code, inputs, answer], sort_keys=True, default=str)
        return hashlib.sha256(material.encode()).hexdigest()

    async def _run(self, stage: Stage, answer: dict[str, Any] | None, counter: str) -> None:
        status = self.status[stage.name]
        key = self._key(stage, answer)
        self._set(stage, RUNNING)
        started = time.monotonic()
        if stage.kind == "compute" and self._load(stage, key):
            status.cached = True
        else:
            status.outputs = []
            self._failure = None
            self.session.recording = status.outputs
            try:
                stop = await run_limited(
                    self.session.call,
                    self._execute,
                    (stage, answer),
                    self.limits,
                    f"stage `{stage.name}`",
                )
            finally:
                self.session.recording = None
            if stop is not None:
                self._stopped(stage, stop)
        status.key, status.seconds = key, time.monotonic() - started
        if self._failure:
            report, trace = self._failure
            status.error = trace
            self._set(stage, FAILED, report["message"])
            self.progress(f"{counter} {stage.name}: failed: {report['message']}")
            self.store.set_stage_run(stage.name, FAILED, key, trace)
            return
        if stage.kind == "compute" and not status.cached:
            self._save(stage, key, status.outputs)
        if stage.input == "pool":
            return  # a pool is done when its items are labeled, not when its code ran
        how = "from the cache" if status.cached else f"in {status.seconds:.1f} s"
        self.progress(f"{counter} {stage.name}: done {how}")
        self.store.set_stage_run(stage.name, DONE, key)
        self._set(stage, DONE)

    async def _pool(self, stage: Stage, counter: str) -> None:
        """Open a pool stage for labeling, or close it once every item has its labels."""
        if stage.name not in self.pools:
            await self._run(stage, None, counter)
            if self.status[stage.name].state == FAILED:
                return
            try:
                widget = stage_widget(self.session, stage)
            except AnswerError as error:
                self._fail(stage, str(error))
                return
            if not isinstance(widget, Labeling):
                self._fail(
                    stage,
                    f"stage `{stage.name}` is `input: pool`, but it shows a "
                    f"{type(widget).__name__}, which is not a labeling widget (it needs "
                    "item_ids, labels, choices and show(); see docs/labeling.md)",
                )
                return
            ids = dict(zip(item_keys(widget.item_ids), widget.item_ids, strict=True))
            options = stage.options
            choices = tuple(str(c) for c in widget.choices)
            try:
                function = merge_function(self.namespace, self.notebook, stage)
                gold = gold_answers(self.namespace, self.notebook, stage, ids, choices)
            except AnswerError as error:
                self._fail(stage, str(error))
                return
            self.pools[stage.name] = Pool(
                widget,
                ids,
                choices,
                int(options.get("overlap", 1)),
                int(options.get("overlap_max", options.get("overlap", 1))),
                int(options.get("batch", 10)),
                int(options.get("lease_seconds", 600)),
                str(options.get("merge", "majority")),
                function and limited_merge(function, self.limits, stage.name),
                gold,
                float(options.get("gold_rate", 0.0)) if gold else 0.0,
            )
            pool = self.pools[stage.name]
            overlap = (pool.overlap_min, pool.overlap_max)
            pools.register_items(
                self.store, stage.name, list(ids), overlap=overlap, gold=list(pool.gold)
            )
        pool = self.pools[stage.name]
        # Off the event loop: counting reads every item of the pool.
        loop = asyncio.get_running_loop()
        progress = await loop.run_in_executor(self.executor, pools.progress, self.store, stage.name)
        if not progress.done:
            reason = f"{progress.complete} of {progress.items} items have all their labels"
            self._set(stage, LABELING, reason)
            return
        rows = pools.annotations(self.store, stage.name)
        raw = raw_annotations(pool, rows)
        floor = self.floors.get(stage.name)
        # What the merge depends on: the labels, the pool's code and inputs (its rule, its
        # gold, the function) and the floor. The stages after it are cached under it.
        material = json.dumps([raw, self._key(stage, None), floor], sort_keys=True, default=str)
        key = hashlib.sha256(material.encode()).hexdigest()
        if pool.failed_merge == key:
            return  # the same labels would fail the same way: wait for a change
        if pool.merged is None or pool.merged[0] != key:
            failure: list[str] = []
            found: list[Merged] = []

            def merge() -> None:
                try:
                    found.append(merged_labels(pool, rows, floor))
                except MergeError as error:
                    failure.append(str(error))

            await self.session.call(merge)
            if failure:
                pool.failed_merge = key
                self.status[stage.name].error = f"stage `{stage.name}`: {failure[0]}"
                self.progress(f"{counter} {stage.name}: merge failed: {failure[0]}")
                reason = f"waits: its labels could not be merged: {failure[0]}"
                self._set(stage, LABELING, reason)
                return
            pool.merged = (key, found[0])
        merged = pool.merged[1]
        if "review" in stage.options:
            reviewed = await self._review(stage, pool, rows, merged)
            if reviewed is None:
                return
            merged = with_decisions(pool, merged, reviewed)
            # The stages after the pool are cached under its decisions too.
            material = json.dumps([key, sorted((k, d.label) for k, d in reviewed.items())])
            key = hashlib.sha256(material.encode()).hexdigest()
        await self.session.call(give_merged, pool.widget, merged, raw)
        status = self.status[stage.name]
        pool.failed_merge, status.error, status.key = None, None, key
        self.progress(f"{counter} {stage.name}: labeled ({len(rows)} labels)")
        self.store.set_stage_run(stage.name, DONE, status.key)
        self._set(stage, DONE)

    async def _review(
        self, stage: Stage, pool: Pool, rows: list[pools.Row], merged: Merged
    ) -> dict[str, Decision] | None:
        """Put the items a pool's `#| review:` picks in its review queue, and give their
        decisions once every one has its own; None while some wait (the stage is then
        `reviewing`)."""
        keys = to_review(pool, rows, merged, stage.options["review"])
        if pool.review_keys != keys:
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(
                self.executor,
                lambda: pools.register_items(
                    self.store, review_stage(stage.name), keys, overlap=(1, 1)
                ),
            )
            pool.review_keys = keys
        decided = decisions(self.store, stage.name)
        wanted = {k: decided[k] for k in keys if k in decided}
        if len(wanted) < len(keys):
            self._set(stage, REVIEWING, f"{len(wanted)} of {len(keys)} items reviewed")
            return None
        return wanted

    def review_progress(self, name: str) -> dict[str, int] | None:
        """How far pool `name`'s review is: the items to review and those decided; None
        before its labels are all in (or with no `#| review:`)."""
        pool = self.pools.get(name)
        if pool is None or pool.review_keys is None:
            return None
        decided = decisions(self.store, name)
        return {
            "items": len(pool.review_keys),
            "reviewed": sum(k in decided for k in pool.review_keys),
        }

    def _fail(self, stage: Stage, message: str) -> None:
        self.status[stage.name].error = message
        self.store.set_stage_run(stage.name, FAILED, None, message)
        self._set(stage, FAILED, message)

    def _execute(self, stage: Stage, answer: dict[str, Any] | None) -> None:
        if stage.input == "pool":
            # A pool's shared widget is on no page: it shows nothing, so it draws and
            # encodes none of the pool's items (each labeler's page builds its batch).
            with showing_first(()):
                run_cells(self.session, self.notebook, stage)
            return
        run_cells(self.session, self.notebook, stage)
        if answer is not None and self._failure is None:
            try:
                apply_answer(stage_widget(self.session, stage), answer)
            except AnswerError as error:
                self._failure = ({"message": str(error)}, str(error))

    def _stopped(self, stage: Stage, stop: Stop) -> None:
        """A stage stopped at a limit: what it bound so far dropped and its memory given
        back; a stage whose thread is stuck in C keeps its session, and the stages after
        it go on in a new one over the same namespace."""
        self._failure = ({"message": stop.message}, stop.detail)
        for name in stage.defines:
            self.namespace.pop(name, None)
        if stop.stuck:
            self.session.shell.on_error = None
            self.session = HeadlessSession(
                self.notebook, Silent(), self.executor, namespace=self.namespace
            )
            self.session.shell.on_error = self._on_error
        release_memory()

    def _on_error(self, report: dict[str, Any], trace: str) -> None:
        if self._failure is None:
            self._failure = (report, trace)

    def _cache_file(self, stage: Stage, key: str) -> Path:
        return self.cache_dir / f"{stage.name}-{key[:32]}.pickle"

    def _save(self, stage: Stage, key: str, outputs: list[dict[str, Any]]) -> None:
        values: dict[str, Any] = {}
        starred: dict[str, Any] = {}
        for module in stage.star_imports:
            starred |= _star_names(importlib.import_module(module))
        for name in stage.defines:
            value = self.namespace.get(name)
            if name in starred and starred[name] is value:
                continue  # _load imports it again: a module's own objects need no pickle
            values[name] = (
                _ModuleRef(value.__name__) if isinstance(value, types.ModuleType) else value
            )
        try:
            # cloudpickle stores what the notebook defines (functions, classes, lambdas)
            # by value, where the standard pickle can only name importable ones.
            data = cloudpickle.dumps({"values": values, "outputs": outputs}, protocol=5)
        except Exception as error:  # anything can fail to pickle; then the stage reruns
            blocker = _unpicklable(values)
            what = f"its value '{blocker}' cannot be stored" if blocker else "it cannot be stored"
            self.progress(
                f"      {stage.name}: not cached: {what} ({type(error).__name__}: {error}); "
                "it runs again after a restart"
            )
            return
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        target = self._cache_file(stage, key)
        # A partial file of this write's own: processes sharing the bundle may store the
        # same stage at once, and each replace must find its own file (the last one wins;
        # they hold the same values).
        with tempfile.NamedTemporaryFile(
            dir=self.cache_dir, prefix=target.stem, suffix=".partial", delete=False
        ) as partial:
            partial.write(data)
        Path(partial.name).replace(target)

    def _load(self, stage: Stage, key: str) -> bool:
        path = self._cache_file(stage, key)
        if not path.exists():
            return False
        try:
            data = pickle.loads(path.read_bytes())  # our own file, written by _save
            values: dict[str, Any] = {}
            # A star import's names, whether the compiler listed them or not: the stage's
            # own values after it (which come last) win, as they did when it ran.
            for module in stage.star_imports:
                values |= _star_names(importlib.import_module(module))
            values |= {
                name: importlib.import_module(v.name) if isinstance(v, _ModuleRef) else v
                for name, v in data["values"].items()
            }
        except Exception as error:
            log.warning("cache of stage %s is unreadable (%s); recomputing", stage.name, error)
            return False
        self.namespace.update(values)
        self.status[stage.name].outputs = data["outputs"]
        return True
