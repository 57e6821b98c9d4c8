"""What a labeler's and the owner's sessions do in a staged app, as plain functions.

A person's namespace is a shallow copy of the shared namespace plus what their own
stages bind, rebuilt by replaying their stored answers: nothing but answers is saved,
so any process can rebuild any person's session. The handlers in `runtime/app/handlers.py`
call these functions and nothing else.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Callable, Iterable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any, TypeVar

import traitlets

from freezer.widgets import Prefetching, item_key, showing_first
from runtime.app.advancing import advance_in_background
from runtime.app.pipeline import (
    LABELING,
    REVIEWING,
    HeadlessSession,
    Pipeline,
    Pool,
    Silent,
    review_stage,
)
from runtime.app.stage_run import (
    AnswerError,
    Built,
    answer_of,
    apply_answer,
    built_state,
    run_cells,
    stage_widget,
)
from runtime.app.walk import OPEN, WAITING, Page, current, lead_in, walk
from runtime.bundle import Notebook, Stage
from runtime.host import render
from runtime.host.session import Client, Session
from runtime.store import label_cache, pools
from runtime.store.database import LABELER, OWNER, REVIEWER, Store, User
from runtime.store.earlier import Earlier
from runtime.store.group_commit import GroupCommit

PROGRESS_SECONDS = 1.0


RETRY_SECONDS = 2  # what a 503's Retry-After asks for
T = TypeVar("T")


class Refused(Exception):
    """A request the person may not make; `status` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class Unavailable(Refused):
    """A request that cannot be answered now but can in a moment (the server is starting,
    its database is away): a 503 whose `retry_after` says when to ask again."""

    def __init__(self, message: str, retry_after: int = RETRY_SECONDS) -> None:
        super().__init__(503, message)
        self.retry_after = retry_after


STARTING = "the server is starting and has not yet reopened this stage; try again in a moment"
DATABASE_AWAY = "the server cannot reach its database just now; nothing saved is lost, try again"
CATCHING_UP = (
    "another server process has moved the app on (an answer of the owner, a pool closed); "
    "this one is bringing its shared stages up to date: try again in a moment"
)
CATCH_UP_SECONDS = 1.5  # how long a request waits for its process to catch up, before a 503


@dataclass(frozen=True)
class Submitted:
    """Where the person goes after a submission, and the item keys of a pool batch whose
    labels came too late to count (their lease had expired and others filled them)."""

    next: str
    late: list[str] = field(default_factory=list)
    batch: list[str] | None = None  # the next batch of a pool, when it was asked for
    left: int = 0  # items of the page's pool batch left unlabeled: they come back


@dataclass
class Staged:
    """Everything a staged app's handlers need."""

    notebook: Notebook
    store: Store
    pipeline: Pipeline
    pool: Executor
    live: dict[tuple[int, str], Session]
    # The batch each live pool page shows (item keys), by (person, stage).
    batches: dict[tuple[int, str], list[str]] = field(default_factory=dict)
    # The batch each live pool page holds ahead, unshown (`Prefetching`), by (person,
    # stage); a page whose widget cannot hold one has no entry.
    ahead: dict[tuple[int, str], list[str]] = field(default_factory=dict)
    store_calls: Executor | None = None  # threads for the store's calls, on PostgreSQL
    group: GroupCommit | None = None  # pool writes share commits, on SQLite
    _progress: dict[str, tuple[float, pools.Progress]] = field(default_factory=dict)
    _submitting: int = 0  # submissions between their arrival and their answer
    _counting: set[str] = field(default_factory=set)  # pools whose progress is being counted
    _owner: int | None = None  # the owner's user id, read once
    # What each live page's stage cells built, against which its answer is told apart.
    _built: weakref.WeakKeyDictionary[Session, Built] = field(
        default_factory=weakref.WeakKeyDictionary
    )

    async def stored(self, call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Make a store call from a handler. On PostgreSQL it runs on a thread: while it
        waits for the server, the event loop serves other people. On SQLite it runs in
        place: its work is this process's CPU, and a thread would only add a hand-off."""
        if self.store_calls is None:
            return call(*args, **kwargs)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.store_calls, lambda: call(*args, **kwargs))

    async def start(self) -> None:
        """Run the shared stages at start (or take them from the cache), as caught up
        with the database's marks read first: the first requests then need no catch-up."""
        marks = await self.stored(self.store.shared_marks, await self._owner_id())
        await self.pipeline.catch_up(marks)
        # On a thread, not awaited: each pool's labels into this process's cache, so that
        # the owner's first dashboard does not wait for a whole pool's history to be read.
        for name in list(self.pipeline.pools):
            self.pool.submit(label_cache.read_labels, self.store, name)

    async def _owner_id(self) -> int:
        if self._owner is None:
            self._owner = (await self.stored(self.store.owner)).id
        return self._owner

    async def fresh(self, patient: bool = False) -> None:
        """Make this process's shared stages what the database says now, before a request
        is answered from them: another process (behind the same load balancer) may have
        taken the owner's answer or closed a pool a moment ago. One read; when it marks
        a change, the stages catch up first. A request that is not `patient` waits for
        that CATCH_UP_SECONDS at most, then is told to retry (Unavailable)."""
        if not self.pipeline.started:
            return  # the first advance reads everything; its pages say STARTING
        marks = await self.stored(self.store.shared_marks, await self._owner_id())
        if marks == self.pipeline.seen:
            return
        catching_up = asyncio.shield(self.pipeline.catch_up(marks))
        try:
            await asyncio.wait_for(catching_up, None if patient else CATCH_UP_SECONDS)
        except TimeoutError:
            raise Unavailable(CATCHING_UP) from None

    async def written(self, work: pools.Work[T]) -> T:
        """Run a pool write from a handler, committed before this returns: on SQLite with
        the other writes of the event loop's turn (`GroupCommit`), on PostgreSQL in a
        transaction of its own, on a thread."""
        if self.group is not None:
            return await self.group.run(work)
        return await self.stored(pools.in_transaction, self.store, work)

    async def shutdown(self) -> None:
        """Close every live page session and the shared one, then the thread pools."""
        for session in [*self.live.values(), self.pipeline.session]:
            await session.close()
        self.live.clear()
        self.pool.shutdown(wait=False, cancel_futures=True)
        if self.store_calls is not None:
            self.store_calls.shutdown(wait=False, cancel_futures=True)

    def progress(self, name: str) -> pools.Progress:
        """How far the pool `name` is, as a labeler's page shows it: counted at most once
        per PROGRESS_SECONDS, since every batch handed out shows it. Counting reads every
        item of the pool (a third of a second for a million), so once a first count is
        kept, a later one is made on a thread while pages show the one before."""
        moment = time.monotonic()
        kept = self._progress.get(name)
        if kept is None:
            kept = self._progress[name] = (moment, pools.progress(self.store, name))
        elif moment - kept[0] >= PROGRESS_SECONDS and name not in self._counting:
            self._counting.add(name)
            counting = self.pool.submit(pools.progress, self.store, name)
            counting.add_done_callback(lambda done: self._counted(name, moment, done))
        return kept[1]

    def _counted(self, name: str, moment: float, done: Any) -> None:
        self._counting.discard(name)
        if done.exception() is None:
            self._progress[name] = (moment, done.result())

    def pages(self, user: User, answered: Iterable[str] | None = None) -> list[Page]:
        """The person's pages; `answered`, the stages they answered, if already read."""
        answered = set(self.store.answers(user.id) if answered is None else answered)
        open_pools = {
            name
            for name, pool in self.pipeline.pools.items()
            if self.pipeline.status[name].state == LABELING
        }
        for name in self.pipeline.pools:
            # Open, or being closed right now: either way, once nothing is left for this
            # person, the others finish it and they move on.
            if self.pipeline.done(name):
                continue
            if not pools.has_work(self.store, name, user.id):
                answered.add(name)
        return walk(
            self.notebook,
            user.role,
            answered,
            self.pipeline.done,
            lambda name: self.pipeline.status[name].reason,
            lambda name: name in open_pools,
        )

    def where(self, user: User, answered: Iterable[str] | None = None) -> str:
        """The URL of the page the person should be on now."""
        if user.role == REVIEWER:
            return self._review_where(user)
        pages = self.pages(user, answered)
        page = current(pages)
        if page is not None:
            return f"/stage/{page.stage.name}"
        if user.role == OWNER:
            return "/owner"
        return "/done" if all(p.state == "done" for p in pages) else "/waiting"

    def _review_where(self, user: User) -> str:
        """A reviewer's page: the first pool in review with an item left for them, else
        the waiting page, or the done page once no pool is left to review."""
        reviewed = [s.name for s in self.notebook.stages if "review" in s.options]
        for name in reviewed:
            if self.pipeline.status[name].state == REVIEWING and pools.has_work(
                self.store, review_stage(name), user.id
            ):
                return f"/review/{name}"
        return "/done" if all(self.pipeline.done(name) for name in reviewed) else "/waiting"

    def page_for(self, user: User, name: str, answered: Iterable[str] | None = None) -> Page:
        """The person's page `name`, or Refused when it is not theirs or not open yet."""
        if user.role == REVIEWER:
            raise Refused(403, "a reviewer's link opens the review pages only, not stages")
        stage = self.notebook.stage(name)
        if (
            stage is not None
            and stage.input == "pool"
            and user.role != OWNER
            and self.pipeline.status[name].state == LABELING
        ):
            return Page(stage, OPEN)  # the hot path of labeling: no walk of every page
        page = next((p for p in self.pages(user, answered) if p.stage.name == name), None)
        if page is None:
            raise Refused(404, f"there is no page “{name}” for you in this app")
        if page.state == WAITING and not self.pipeline.started:
            raise Unavailable(STARTING)
        if page.state not in (OPEN, "done"):
            raise Refused(409, f"“{page.stage.title}” is not open yet: it {page.reason}")
        reopen = page.stage.input == "pool" and self.pipeline.status[name].state == LABELING
        if page.state == "done" and page.stage.input not in ("each", "owner", None) and not reopen:
            raise Refused(409, f"“{page.stage.title}” is finished: its labels are read-only now")
        return page

    def closed_pool_labels(self, user: User, name: str) -> list[tuple[str, str]] | None:
        """The labels a labeler gave in the pool stage `name` once it is done or in review
        (each item id as text, and its label), or None when it is not a finished pool of
        theirs."""
        stage = self.notebook.stage(name)
        pool = self.pipeline.pools.get(name)
        if stage is None or stage.input != "pool" or user.role != LABELER or pool is None:
            return None
        if not self.pipeline.done(name) and self.pipeline.status[name].state != REVIEWING:
            return None
        mine = pools.labels_of(self.store, name, user.id)
        return [(str(pool.ids[key]), label) for key, label in mine.items() if key in pool.ids]

    def shell_cells(
        self, user: User, stage: Stage
    ) -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
        """The cells a stage's page shows: its lead-in stages', and its own (Markdown as
        HTML, code cells as empty containers the session fills)."""
        chosen = [s for s in lead_in(self.notebook, user.role, stage) if self._runs_for(user, s)]
        return (
            [cell for part in chosen for cell in self._cells(part)],
            self._cells(stage),
        )

    def _cells(self, stage: Stage) -> list[tuple[int, str]]:
        cells = []
        for cell in self.notebook.cells_of(stage):
            if cell.type == "markdown":
                cells.append((cell.index, render.markdown_html(cell.text)))
            elif cell.type == "code":
                cells.append((cell.index, ""))
        return cells

    def _runs_for(self, user: User, stage: Stage) -> bool:
        return stage.scope == "shared" or user.role != OWNER

    def batch(self, user: User, stage: Stage, ahead: bool = False) -> list[str]:
        """The keys of the items of a pool stage that the labeler works on now; with
        `ahead`, and a widget that can hold a batch ahead, two batches' worth."""
        pool = self.pipeline.pools.get(stage.name)
        if pool is None:
            raise Refused(409, f"“{stage.title}” is not open for labeling yet")
        size = self._window(pool) if ahead else pool.batch
        for _ in range(3):  # on PostgreSQL, items another process is leasing are skipped
            keys = pools.lease_batch(
                self.store,
                stage.name,
                user.id,
                batch=size,
                lease_seconds=pool.lease_seconds,
                gold_rate=pool.gold_rate,
            )
            if keys or not pools.has_work(self.store, stage.name, user.id):
                break
        # A labeler whose page holds a batch ahead holds more than a batch: the first
        # `size` of them are the batch, the rest stay theirs for the one after.
        return keys[:size]

    @staticmethod
    def _window(pool: Pool) -> int:
        """How many items a labeler's page leases at once: the batch it shows, and the
        next one too when the stage's widget can hold it ahead (`Prefetching`)."""
        return 2 * pool.batch if isinstance(pool.widget, Prefetching) else pool.batch

    def open_session(
        self, user: User, stage: Stage, client: Client, back: Earlier | None = None
    ) -> Session:
        """A page's live session: the person's namespace replayed, then the stage run.
        With `back`, a pool page shows that earlier batch of the person's with their
        answers, and leases nothing: the batch they hold stays theirs, to come back to."""
        answers = self.store.answers(user.id)
        new_work = stage.input == "pool" and back is None
        window = self.batch(user, stage, ahead=True) if new_work else []
        earlier: dict[str, str] = {}
        if back is not None:  # items the notebook no longer has are left out
            ids = self.pipeline.pools[stage.name].ids
            window = [key for key in back.keys if key in ids]
            earlier = {key: label for key, label in back.labels.items() if key in ids}
        elif stage.input == "pool" and not window:
            # Nothing new for this labeler: show their last batch, to change a label.
            earlier = pools.last_batch(self.store, stage.name, user.id)
            window = list(earlier)
        size = self.pipeline.pools[stage.name].batch if new_work and not earlier else 0
        batch, held = (window[:size], window[size:]) if size else (window, [])
        shown = [s for s in lead_in(self.notebook, user.role, stage) if self._runs_for(user, s)]
        recorded = [
            m for s in shown if s.scope == "shared" for m in self.pipeline.status[s.name].outputs
        ]
        visible = {s.name for s in shown if s.scope == "user"}

        def program(session: Session) -> None:
            for message in recorded:
                session.emit(dict(message))
            session.quiet = True
            self._replay(session, user, stage, answers, skip=visible)
            session.quiet = False
            for part in shown:
                if part.name in visible:
                    run_cells(session, self.notebook, part)
            if stage.input != "pool":
                run_cells(session, self.notebook, stage)
                if stage.kind == "input":
                    widget = stage_widget(session, stage)
                    self._built[session] = built_state(widget)
                    if stage.name in answers:
                        apply_answer(widget, answers[stage.name])
                return
            with showing_first(batch):  # the labeler is built for the batch alone
                run_cells(session, self.notebook, stage)
            ids = self.pipeline.pools[stage.name].ids
            labeler = stage_widget(session, stage)
            if isinstance(labeler, Prefetching) and size:
                labeler.show([ids[key] for key in batch])
                labeler.prefetch([ids[key] for key in held])
                self.batches[(user.id, stage.name)] = batch
                self.ahead[(user.id, stage.name)] = held
            else:
                labeler.show([ids[key] for key in window])
                self.batches[(user.id, stage.name)] = window
            if earlier:
                labeler.labels = {ids[key]: label for key, label in earlier.items()}

        session = Session(
            self.notebook,
            client,
            self.pool,
            namespace=dict(self.pipeline.namespace),
            program=program,
        )
        self.live[(user.id, stage.name)] = session
        return session

    def closed(self, user: User, stage: Stage, session: Session) -> None:
        if self.live.get((user.id, stage.name)) is session:
            del self.live[(user.id, stage.name)]
            self.batches.pop((user.id, stage.name), None)
            self.ahead.pop((user.id, stage.name), None)

    async def swap_batch(
        self,
        user: User,
        stage: Stage,
        session: Session,
        keys: list[str],
        moved: list[str] | None = None,
    ) -> bool | None:
        """Show a labeler their next batch in the page they are on: no page load, no
        replay of their stages. `keys` is what the submit leased; `moved`, the held batch
        the page's Submit moved to, if it did. A page holding batches ahead is shown one
        batch; `send_ahead` then sends it the next to hold. True when the page's move
        stands (it shows the batch already), False when the server showed another batch,
        None when the widget would not take it (the page then loads the next batch as a
        new page)."""
        pool = self.pipeline.pools[stage.name]
        where = (user.id, stage.name)
        held = self.ahead.get(where)
        stands = held is not None and bool(moved) and moved == held and set(moved) <= set(keys)
        if held is None:
            shown, rest = list(keys), []
        elif stands:
            rest = [key for key in keys if key not in set(held)]
            shown, rest = list(held), rest[: pool.batch]
        else:  # the items left unlabeled come back first, then those held ahead
            before = set(self.batches.get(where, ()))
            rank = {key: (key not in before, key not in set(held)) for key in keys}
            ordered = sorted(keys, key=rank.__getitem__)
            shown, rest = ordered[: pool.batch], ordered[pool.batch : 2 * pool.batch]
        ids = pool.ids

        def swap() -> bool:
            labeler = stage_widget(session, stage)
            try:
                with labeler.hold_sync():  # the new items and no labels, in one update
                    kept = stands and labeler.advance([ids[key] for key in shown])
                    if not kept:
                        labeler.labels = {}
                        labeler.show([ids[key] for key in shown])
            except (traitlets.TraitError, ValueError, KeyError) as error:
                raise AnswerError(str(error)) from None
            return kept

        try:
            kept = await self._in_session(session, swap)
        except Refused:
            return None
        self.batches[where] = shown
        if held is not None:
            self.ahead[where] = rest
        return kept

    async def send_ahead(self, user: User, stage: Stage, session: Session) -> None:
        """Send a page the batch it holds ahead (`swap_batch` chose it): after the reply to
        its submit, so that neither the batch shown nor the reply waits for its images."""
        keys = self.ahead.get((user.id, stage.name))
        if keys is None:
            return
        ids = self.pipeline.pools[stage.name].ids
        await self._in_session(
            session, lambda: stage_widget(session, stage).prefetch([ids[key] for key in keys])
        )

    async def draft_of(self, user: User, stage: Stage, session: Session) -> dict[str, Any]:
        """What the person's page holds and has not submitted, for the page to keep
        across a reload: a pool's labels by item key, or another stage's answer."""
        if stage.input == "pool":

            def read() -> dict[str, Any]:
                labels = stage_widget(session, stage).labels
                shown = len(self.batches.get((user.id, stage.name), ()))
                given = {item_key(i): str(label) for i, label in labels.items()}
                return {"labels": given, "batch": shown}

            return await self._in_session(session, read)
        return {"answer": await self._held_answer(session, stage)}  # as a submit saves it

    async def restore_draft(self, user: User, stage: Stage, session: Session, draft: Any) -> bool:
        """Put a draft the page kept back into its fresh widget. A pool's labels count
        for the items of the batch shown now only; another stage's answer is checked as
        a submitted one is. False when nothing of it fits any more."""
        if not isinstance(draft, dict):
            return False
        if stage.input == "pool":
            pool = self.pipeline.pools.get(stage.name)
            labels = draft.get("labels")
            batch = set(self.batches.get((user.id, stage.name), ()))
            if pool is None or not isinstance(labels, dict):
                return False
            kept = {
                key: label
                for key, label in labels.items()
                if key in batch and label in pool.choices
            }
            if not kept:
                return False

            def put_labels() -> None:
                labeler = stage_widget(session, stage)
                choice = {str(c): c for c in labeler.choices}  # labels travel as text
                given = {pool.ids[key]: choice[label] for key, label in kept.items()}
                try:
                    labeler.labels = {**labeler.labels, **given}
                except (traitlets.TraitError, ValueError, KeyError) as error:
                    raise AnswerError(str(error)) from None

            await self._in_session(session, put_labels)
            return True
        answer = draft.get("answer")
        if stage.kind != "input" or not isinstance(answer, dict):
            return False
        try:
            await self._in_session(
                session, lambda: apply_answer(stage_widget(session, stage), answer)
            )
        except Refused:
            return False
        return True

    def _replay(
        self,
        session: Session,
        user: User,
        stage: Stage,
        answers: dict[str, Any],
        skip: frozenset[str] | set[str] = frozenset(),
    ) -> None:
        """Rebuild the person's own stages before `stage`, answers applied, silently."""
        if user.role == OWNER:
            return
        for earlier in self.notebook.stages:
            if earlier.name == stage.name:
                return
            if earlier.scope != "user" or earlier.name in skip:
                continue
            run_cells(session, self.notebook, earlier)
            if earlier.input == "each" and earlier.name in answers:
                try:
                    apply_answer(stage_widget(session, earlier), answers[earlier.name])
                except AnswerError:
                    pass  # the stage's widget changed shape since; its answer no longer fits

    async def drained(self, seconds: float) -> None:
        """Wait until no submission is between its arrival and its answer (at most
        `seconds`): a stopping server lets the answers being saved be saved."""
        deadline = time.monotonic() + seconds
        while self._submitting and time.monotonic() < deadline:
            await asyncio.sleep(0.05)

    async def submit(
        self,
        user: User,
        name: str,
        request_id: str,
        state: Any | None,
        next_batch: bool = False,
        ahead: bool = False,
    ) -> Submitted:
        """Save the person's answer to a stage (committed before this returns) and say
        where they go next. Without `state`, the answer is what their page's widget
        holds now; with it, it is checked against the widget, as a page's would be.
        With `next_batch`, a pool stage's answer also leases and names the next batch;
        with `ahead` too, the one after it as well, for a page that holds one ahead."""
        self._submitting += 1
        try:
            return await self._submit(user, name, request_id, state, next_batch, ahead)
        finally:
            self._submitting -= 1

    async def _submit(
        self,
        user: User,
        name: str,
        request_id: str,
        state: Any | None,
        next_batch: bool,
        ahead: bool,
    ) -> Submitted:
        named = self.notebook.stage(name)
        # Read once for the page's walk, the answer's check and the next page; a pool's
        # labels go by another way, which reads none.
        answers = None if named and named.input == "pool" else self.store.answers(user.id)
        page = self.page_for(user, name, answers)
        stage = page.stage
        if stage.input == "pool":
            ahead = ahead and (user.id, stage.name) in self.ahead
            saved, keys, left = await self._submit_labels(
                user, stage, request_id, state, next_batch, ahead
            )
            if next_batch:
                if not keys:  # PostgreSQL may have skipped items others were leasing
                    keys = await self.stored(self.batch, user, stage, ahead)
                where = f"/stage/{stage.name}" if keys else self.where(user)
                return Submitted(where, saved.late, keys, left)
            if await self.stored(pools.has_work, self.store, stage.name, user.id):
                return Submitted(f"/stage/{stage.name}", saved.late, left=left)  # the next batch
            return Submitted(self.where(user), saved.late, left=left)
        if stage.kind == "compute":
            answer: dict[str, Any] = {}
        elif state is None:
            answer = await self._live_answer(user, stage)
        else:
            answer = await self._checked_answer(user, stage, state, answers)
        self.store.submit(user.id, stage.name, answer, request_id)
        if stage.input == "owner":
            asyncio.get_running_loop().create_task(advance_in_background(self.pipeline.advance))
        return Submitted(self.where(user, {*answers, stage.name}))

    async def resubmit(self, user: User, stage: Stage, request_id: str) -> Submitted:
        """Save the answers of an earlier batch the person went back to (what their page's
        widget holds: `open_session` with `back`), then send them on to their work."""
        self._submitting += 1
        try:
            saved, _, _ = await self._submit_labels(user, stage, request_id, None, False, False)
        finally:
            self._submitting -= 1
        if await self.stored(pools.has_work, self.store, stage.name, user.id):
            return Submitted(f"/stage/{stage.name}", saved.late)
        return Submitted(self.where(user), saved.late)

    async def _submit_labels(
        self,
        user: User,
        stage: Stage,
        request_id: str,
        labels: Any | None,
        next_batch: bool,
        ahead: bool,
    ) -> tuple[pools.Saved, list[str], int]:
        """Save a batch of a pool stage: the page's labels, or `labels` keyed by item key.
        With `next_batch`, lease the labeler's next batch in the same transaction (with
        `ahead`, two batches' worth). Also says how many items of the batch the person's
        page shows were left unlabeled."""
        pool = self.pipeline.pools.get(stage.name)
        if pool is None:  # its code is running again (a restart): it reopens shortly
            raise Unavailable(STARTING)
        if labels is None:
            session = self.live.get((user.id, stage.name))
            if session is None:
                raise Refused(409, f"“{stage.title}” is not open in a page; reload it, then submit")

            # The widget's labels of the batch it shows: a widget built with labels of
            # its own (a BoxEditor's given boxes, named) holds some of items never leased.
            batch = set(self.batches.get((user.id, stage.name), ()))

            def read() -> dict[str, Any]:
                labeler = stage_widget(session, stage)
                given = {item_key(i): label for i, label in labeler.labels.items()}
                return {key: label for key, label in given.items() if key in batch}

            labels = await self._in_session(session, read)
        if not isinstance(labels, dict) or not all(isinstance(k, str) for k in labels):
            raise Refused(400, "`labels` must map item keys to labels")
        labels = {k: str(v) for k, v in labels.items()}
        how = {"choices": pool.choices, "overlap_max": pool.overlap_max}
        try:
            if next_batch:
                size = self._window(pool) if ahead else pool.batch
                how |= {
                    "batch": size,
                    "lease_seconds": pool.lease_seconds,
                    "gold_rate": pool.gold_rate,
                }
                work = pools.saving_and_leasing(stage.name, user.id, labels, request_id, **how)
                saved, keys = await self.written(work)
            else:
                saved = await self.written(
                    pools.saving(stage.name, user.id, labels, request_id, **how)
                )
                keys = []
        except pools.LabelRefused as refused:
            raise Refused(400, str(refused)) from None
        self.pipeline.soon()
        left = len(set(self.batches.get((user.id, stage.name), ())) - labels.keys())
        return saved, keys, left

    async def _live_answer(self, user: User, stage: Stage) -> dict[str, Any]:
        session = self.live.get((user.id, stage.name))
        if session is None:
            raise Refused(409, f"“{stage.title}” is not open in a page; reload it, then submit")
        return await self._held_answer(session, stage)

    async def _held_answer(self, session: Session, stage: Stage) -> dict[str, Any]:
        """The answer a page's widget holds now, with what its stage's cells built and
        nobody changed left out."""
        built = self._built.get(session)
        return await self._in_session(
            session, lambda: answer_of(stage_widget(session, stage), built)
        )

    async def _checked_answer(
        self, user: User, stage: Stage, state: Any, answers: dict[str, dict[str, Any]]
    ) -> dict[str, Any]:

        def check(session: Session) -> dict[str, Any]:
            self._replay(session, user, stage, answers)
            run_cells(session, self.notebook, stage)
            widget = stage_widget(session, stage)
            built = built_state(widget)
            apply_answer(widget, state)
            return answer_of(widget, built)

        return await self._headless(check)

    async def _headless(self, check: Callable[[Session], dict[str, Any]]) -> dict[str, Any]:
        session = HeadlessSession(
            self.notebook, Silent(), self.pool, namespace=dict(self.pipeline.namespace)
        )
        try:
            return await self._in_session(session, lambda: check(session))
        finally:
            await session.close()

    @staticmethod
    async def _in_session(session: Session, fn: Callable[[], Any]) -> Any:
        result: dict[str, Any] = {}

        def run() -> None:
            try:
                result["value"] = fn()
            except AnswerError as error:
                result["error"] = str(error)

        await session.call(run)
        if "error" in result:
            raise Refused(400, result["error"])
        if "value" not in result:
            raise Refused(500, "the stage's code failed; the owner can see why")
        return result["value"]
