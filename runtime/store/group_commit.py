"""Group commit: the pool writes that reach a SQLite server in one turn of its event loop
share one transaction and one commit.

On SQLite one process serves everything and its store calls run on the event loop, one
at a time. A labeler's submission is a dozen quick statements, but its commit writes
every page they touched to the WAL, and costs as much as all of them. When many
labelers submit at once, their requests are read in the same turn of the loop; here
their writes are queued, run one after the other in the next turn inside one
transaction, each in a savepoint of its own (a refused submission leaves no trace and
the others stand), and committed once. No caller hears back before the commit that
holds its write: what a labeler is told is saved, is.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import Engine

from runtime.store.pool_sql import Transaction, transaction

T = TypeVar("T")


class GroupCommit:
    """Runs transaction work for the event loop's callers, a turn's worth per commit."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._queued: list[tuple[Callable[[Transaction], Any], asyncio.Future[Any]]] = []

    def run(self, work: Callable[[Transaction], T]) -> asyncio.Future[T]:
        """`work`'s result once it is committed (or its exception)."""
        loop = asyncio.get_running_loop()
        if not self._queued:
            loop.call_soon(self._commit)
        future: asyncio.Future[T] = loop.create_future()
        self._queued.append((work, future))
        return future

    def _commit(self) -> None:
        queued, self._queued = self._queued, []
        try:
            with transaction(self._engine) as db:
                outcomes = [db.attempt(work) for work, _ in queued]
        except Exception as error:  # the commit failed: nothing of the turn was saved
            for _, future in queued:
                if not future.done():
                    future.set_exception(error)
            return
        for (_, future), (ok, value) in zip(queued, outcomes, strict=True):
            if future.done():  # the caller went away
                continue
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)
