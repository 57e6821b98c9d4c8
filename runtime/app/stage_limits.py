"""Stopping a shared stage that runs too long or takes too much memory.

A stage runs on a worker thread, and Python cannot kill a thread. CPython can raise an
exception in one (`PyThreadState_SetAsyncExc`): the thread raises it at its next
bytecode, so a Python loop stops at once, its `try`/`except Exception` included, since
the exception is a `BaseException`. A thread blocked inside one C call (`time.sleep`,
a socket read, one large numpy operation) raises it only once that call returns: the
stage is reported stopped at the limit all the same, and its thread is left to end.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

_LEFT: set[int] = set()  # the threads of stopped stages still blocked, by ident

POLL_SECONDS = 0.01  # how often a running stage's time and memory are looked at
STOP_GRACE_SECONDS = 1.0  # how long a stopped stage's thread has to end before it is left


class StageStopped(BaseException):
    """Raised in a stage's thread at a limit; not an Exception, so no cell's `except
    Exception` keeps the stage going, nor the cell runner, which goes on to the next
    cell after an error."""


class StageTimeLimit(StageStopped):
    pass


class StageMemoryLimit(StageStopped):
    pass


@dataclass(frozen=True)
class Limits:
    """How long a shared stage may run, and how much the process's resident memory may
    grow while it runs (bytes; None where the process's memory cannot be read)."""

    seconds: float
    memory: int | None


@dataclass(frozen=True)
class Stop:
    """Why a stage was stopped: a line for the stage's state, the owner's detail, and
    whether its thread was still running (blocked in C) when it was left."""

    message: str
    detail: str
    stuck: bool


def machine_memory() -> int:
    """The machine's physical memory, in bytes."""
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def default_memory_mb() -> int:
    """The default `--stage-memory`: half the machine's memory, in MB."""
    return machine_memory() // 2 // 2**20


def resident_memory() -> int | None:
    """This process's resident memory in bytes, from /proc; None where there is none."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def _raise_in(thread: int, error: type[BaseException] | None) -> None:
    ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread), ctypes.py_object(error) if error else None
    )


class _Watch:
    """The thread running one stage, watched from another until it ends or is stopped."""

    def __init__(self, limits: Limits, on_stop: Callable[[], None]) -> None:
        self.limits = limits
        self.on_stop = on_stop
        self.thread: int | None = None
        self.running = False
        self.stopped: type[StageStopped] | None = None
        self.lock = threading.Lock()
        self.started = threading.Event()
        self.ended = threading.Event()

    def run(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        with self.lock:
            self.thread, self.running = threading.get_ident(), True
        self.started.set()
        try:
            fn(*args)
        finally:
            with self.lock:
                self.running = False
                if self.stopped is not None:
                    _raise_in(self.thread, None)  # not raised yet: never past this call
                _LEFT.discard(self.thread)
            self.ended.set()

    def watch(self) -> None:
        # The clock starts with the stage, not while its call waits for the session.
        while not self.started.wait(POLL_SECONDS):
            if self.ended.is_set():
                return
        started, base = time.monotonic(), resident_memory()
        while not self.ended.wait(POLL_SECONDS):
            if time.monotonic() - started > self.limits.seconds:
                self._stop(StageTimeLimit)
                return
            memory = resident_memory()
            limit = self.limits.memory
            if limit is not None and base is not None and memory is not None:
                if memory - base > limit:
                    self._stop(StageMemoryLimit)
                    return

    def _stop(self, error: type[StageStopped]) -> None:
        with self.lock:
            if self.running and self.thread is not None:
                self.stopped = error
                _raise_in(self.thread, error)
                self.on_stop()


def _stop_of(what: str, limits: Limits, error: type[StageStopped], stuck: bool) -> Stop:
    """Why `what` ("stage `name`", or a function of one) was stopped."""
    if error is StageTimeLimit:
        message = f"{what} ran longer than {limits.seconds:g} s"
        flag = "--stage-timeout"
    else:
        mb = (limits.memory or 0) / 2**20
        message = f"MemoryError: {what} took more than {mb:g} MB of memory"
        flag = "--stage-memory"
    detail = f"{message}, and was stopped (nbfreeze serve {flag} sets the limit)"
    if stuck:
        detail += (
            "; it is blocked in a call Python cannot interrupt (such as time.sleep or a "
            "read), so its thread ends when that call returns"
        )
    return Stop(message, detail, stuck)


async def run_limited(
    call: Callable[..., Awaitable[None]],
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    limits: Limits,
    what: str,
) -> Stop | None:
    """Run `fn(*args)` through `call` (a session's), stopped at `limits`; why `what`
    ("stage `name`") was stopped, or None when it ended by itself. A stopped stage's
    call is waited for STOP_GRACE_SECONDS; one still running then is left to end by
    itself (`stuck`)."""
    loop = asyncio.get_running_loop()
    stopped = asyncio.Event()
    watch = _Watch(limits, lambda: loop.call_soon_threadsafe(stopped.set))
    watcher = threading.Thread(target=watch.watch, name="nbfreeze-limits", daemon=True)
    task = asyncio.ensure_future(call(watch.run, fn, args))
    task.add_done_callback(_retrieved)
    task.add_done_callback(lambda _: watch.ended.set())  # also when it never ran
    watcher.start()
    waiter = asyncio.ensure_future(stopped.wait())
    try:
        await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
    if watch.stopped is None:
        return None
    done, _ = await asyncio.wait({task}, timeout=STOP_GRACE_SECONDS)
    with watch.lock:
        if watch.running and watch.thread is not None:
            _LEFT.add(watch.thread)
    return _stop_of(what, limits, watch.stopped, stuck=not done)


class Limited(Exception):
    """A call stopped at the limits, as an ordinary error: `stop` says why."""

    def __init__(self, stop: Stop) -> None:
        super().__init__(stop.detail)
        self.stop = stop


def call_limited(fn: Callable[..., Any], args: tuple[Any, ...], limits: Limits, what: str) -> Any:
    """`fn(*args)` on a thread of its own, stopped at `limits` as a stage is: for the
    notebook's code that runs outside a stage, from any thread (a pool's merge function,
    called by the pipeline, the owner's preview and downloads). Its result, or Limited
    naming `what` ("the merge function `vote` of stage `label`"); a call stuck in C is
    left to end by itself after STOP_GRACE_SECONDS."""
    outcome: list[Any] = []
    failure: list[BaseException] = []

    def target() -> None:
        try:
            outcome.append(fn(*args))
        except BaseException as error:  # handed to the caller, on the caller's thread
            failure.append(error)

    watch = _Watch(limits, lambda: None)
    worker = threading.Thread(target=watch.run, args=(target, ()), name="nbfreeze-limited")
    worker.daemon = True
    worker.start()
    watch.watch()  # on the caller's thread: it returns when the call ends or is stopped
    if watch.stopped is None:
        worker.join()
        if failure:
            raise failure[0]
        return outcome[0]
    worker.join(STOP_GRACE_SECONDS)
    with watch.lock:
        stuck = watch.running
        if stuck and watch.thread is not None:
            _LEFT.add(watch.thread)
    raise Limited(_stop_of(what, limits, watch.stopped, stuck))


def threads_left() -> int:
    """How many stopped stages' threads are still blocked in C: a process that ends
    must not wait for them."""
    return len(_LEFT)


def _retrieved(task: asyncio.Future[None]) -> None:
    """A stopped call ends with its StageStopped, which nobody else awaits."""
    if not task.cancelled():
        task.exception()
