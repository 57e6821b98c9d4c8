"""A visitor's session: the notebook's namespace, widgets and shell, for one page.

A session exists only while its page's WebSocket is open (a visitor who loads the page
but never connects costs nothing), runs its code one call at a time on a thread pool
(a slow cell never stalls another visitor, nor the event loop), and inside its own
`contextvars.Context`, which is how `comm` and IPython's shell find it, callbacks
included. Closing it closes its widgets and drops its namespace; `Sessions` closes the
ones that have been idle too long and gives their memory back.
"""

from __future__ import annotations

import asyncio
import contextvars
import ctypes
import ctypes.util
import gc
import logging
import secrets
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import Any, Protocol

from tornado.ioloop import IOLoop

from runtime.bundle import Notebook
from runtime.host import comm, execute, shell, wire

log = logging.getLogger(__name__)

PACE_SECONDS = 1.0  # the longest a paced page's run waits for it (docs/protocol.md)


class Client(Protocol):
    """The page end of a session: its WebSocket."""

    def send_frame(self, frame: str | bytes) -> None: ...

    def disconnect(self, reason: str) -> None: ...


class _Gone:
    """The client of a closed session: the page is gone, nothing more goes to it."""

    def send_frame(self, frame: str | bytes) -> None:
        pass

    def disconnect(self, reason: str) -> None:
        pass


_GONE = _Gone()


class Session:
    """One page's notebook run and its widgets."""

    def __init__(
        self,
        notebook: Notebook,
        client: Client,
        pool: Executor,
        *,
        namespace: dict[str, Any] | None = None,
        program: Callable[[Session], None] | None = None,
        paced: bool = False,
        pace_timeout: float = PACE_SECONDS,
    ) -> None:
        self.id = secrets.token_hex(8)
        self.notebook = notebook
        self.client = client
        self.comms = comm.SessionComms(self.emit)
        self.shell = shell.SessionShell(self.emit, notebook.name, self.comms.shown, self.muted)
        self.namespace = execute.new_namespace() if namespace is None else namespace
        self.shell.user_ns = self.namespace
        self.program = program or Session.run_notebook
        self.quiet = False  # while True (a replay), what it shows in cells goes nowhere
        self.closed = False
        self.busy = False
        # A paced page (docs/protocol.md) says when it has drawn its first widget; until
        # then, or for `pace_timeout` seconds, the rest of its notebook waits.
        self._page_ready: threading.Event | None = threading.Event() if paced else None
        self._pace_timeout = pace_timeout
        self.waiting_for_page = False
        self.last_active = time.monotonic()
        self._pool = pool
        self._loop = IOLoop.current()
        self._lock = asyncio.Lock()
        self._parent: str | None = None  # msg_id of the page message being handled
        # Frames emitted but not yet handed to the page's socket. Waking the event loop
        # costs a system call in the emitting thread: one wake-up per frame was over a
        # tenth of the session thread's time in Widget List's run (330 frames), so the
        # first frame of a burst wakes it and the others ride along.
        self._outbox: list[str | bytes] = []
        self._outbox_lock = threading.Lock()
        self._context = contextvars.Context()
        self._context.run(comm.activate, self.comms)
        self._context.run(shell.activate, self.shell)

    def emit(self, message: dict[str, Any], buffers: Sequence[wire.Buffer] = ()) -> None:
        """Send a message to the page; callable from any thread."""
        if self.closed:
            return
        if self._parent is not None:
            message["parent_id"] = self._parent
        try:
            frame = wire.encode(message, buffers)
        except (TypeError, ValueError) as error:
            log.error(
                "session %s: could not send a %s message: %s", self.id, message["type"], error
            )
            return
        with self._outbox_lock:
            self._outbox.append(frame)
            if len(self._outbox) > 1:
                return  # the wake-up for the first frame delivers this one too
        self._loop.add_callback(self._deliver)

    def muted(self) -> bool:
        """Whether what the code shows in cells goes nowhere: the shell then neither
        formats nor renders it."""
        return self.quiet

    async def start(self) -> None:
        """Run the session's program (by default every code cell, in order)."""
        await self._call(self.program, self)

    async def call(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run `fn(*args)` in the session's context, after any call already running."""
        await self._call(fn, *args)

    async def receive(self, frame: str | bytes) -> None:
        """Handle one frame from the page; a refused one gets a `reply_error`."""
        self.last_active = time.monotonic()
        try:
            message, buffers = wire.decode(frame)
        except wire.ProtocolError as error:
            self._refuse(error)
            return
        if message["type"] == "ready":
            self._release_run()  # not queued: the run it releases holds the queue
            return
        await self._call(self._apply, message, buffers, parent=message.get("msg_id"))

    def idle_for(self, now: float) -> float:
        """Seconds since the page last sent something, or 0 while code runs."""
        return 0.0 if self.busy else now - self.last_active

    async def close(self) -> None:
        """Close the widgets and drop the namespace, after the running call finishes."""
        if self.closed:
            return
        self.closed = True
        self._release_run()
        async with self._lock:
            # A copy holds the same session; it cannot clash with a call that outlived
            # its awaiting task (cancelled at shutdown) and still runs in the original.
            teardown = self._context.copy().run
            await self._loop.run_in_executor(self._pool, teardown, self._teardown)

    def run_notebook(self) -> None:
        """The program of a page per visitor: every code cell, in order.

        A paced page's run stops after the first cell that showed a widget, until the
        page has drawn it: the rest of the notebook's frames would reach the page while
        it is still starting its widget code, a task each in the browser's one thread,
        and on a machine that serves and browses both, the run would take the CPU the
        browser needs.
        """
        cells = self.notebook.code_cells
        for position, cell in enumerate(cells):
            if self.closed:
                return
            execute.run_cell(self.shell, cell.index, cell.text, self.namespace)
            ready = self._page_ready
            if ready is not None and self.shell.widgets_shown and position + 1 < len(cells):
                self.waiting_for_page = True
                ready.wait(self._pace_timeout)
                self.waiting_for_page = False
                self._page_ready = None

    def _release_run(self) -> None:
        ready = self._page_ready
        if ready is not None:
            ready.set()

    def _apply(self, message: dict[str, Any], buffers: list[memoryview]) -> None:
        try:
            self.comms.receive(message, buffers)
        except wire.ProtocolError as error:
            self._refuse(error)

    def _refuse(self, error: wire.ProtocolError) -> None:
        log.info("session %s: refused a message: %s", self.id, error)
        reply = {"type": "reply_error", "message": str(error)}
        self.emit(reply | ({"request": error.request} if error.request else {}))

    async def _call(self, fn: Callable[..., None], *args: Any, parent: str | None = None) -> None:
        async with self._lock:
            if self.closed:
                return
            self.busy = True
            try:
                await self._loop.run_in_executor(
                    self._pool, self._context.run, self._run, fn, args, parent
                )
            finally:
                self.busy = False
                self.last_active = time.monotonic()

    def _run(self, fn: Callable[..., None], args: tuple[Any, ...], parent: str | None) -> None:
        """One call on a worker thread, inside the session's context."""
        shell.route_streams()
        self._parent = parent
        self.emit({"type": "status", "state": "busy"})
        try:
            fn(*args)
        except Exception:
            self.shell.showtraceback()
        finally:
            self.shell.flush()
            self.emit({"type": "status", "state": "idle"})
            self._parent = None

    def _teardown(self) -> None:
        self.comms.close()
        self.shell.close()
        self.namespace.clear()
        self.client = _GONE  # the page's handler may outlive us; let it not pin the session

    def _deliver(self) -> None:
        with self._outbox_lock:
            frames, self._outbox = self._outbox, []
        for frame in frames:
            if self.closed:
                return
            self.client.send_frame(frame)


class Sessions:
    """Every open session of one notebook, and the thread pool they run on."""

    def __init__(
        self,
        notebook: Notebook,
        *,
        idle_timeout: float,
        workers: int = 32,
        pace_timeout: float = PACE_SECONDS,
    ) -> None:
        self.notebook = notebook
        self.idle_timeout = idle_timeout
        self.pace_timeout = pace_timeout
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="nbfreeze-session")
        self._open: dict[str, Session] = {}
        self._closed_since_collect = 0

    def __len__(self) -> int:
        return len(self._open)

    def __iter__(self) -> Iterator[Session]:
        return iter(list(self._open.values()))

    def open(self, client: Client, *, paced: bool = False) -> Session:
        """A new session for a page that just connected; its notebook starts running."""
        session = Session(
            self.notebook, client, self._pool, paced=paced, pace_timeout=self.pace_timeout
        )
        self._open[session.id] = session
        IOLoop.current().add_callback(session.start)
        log.info("session %s opened (%d open)", session.id, len(self._open))
        return session

    async def close(self, session: Session) -> None:
        if self._open.pop(session.id, None) is None:
            return
        await session.close()
        self._closed_since_collect += 1
        log.info("session %s closed (%d open)", session.id, len(self._open))

    async def cull(self, now: float | None = None) -> int:
        """Close sessions idle for longer than the timeout; return how many."""
        now = time.monotonic() if now is None else now
        idle = [s for s in self._open.values() if s.idle_for(now) > self.idle_timeout]
        count = len(idle)
        while idle:  # popped, so no reference of ours keeps a closed session alive
            await self._cull_one(idle.pop())
        if self._closed_since_collect:
            self._closed_since_collect = 0
            release_memory()
        return count

    async def _cull_one(self, session: Session) -> None:
        session.client.disconnect("idle for too long")
        await self.close(session)

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def release_memory() -> None:
    """Collect closed sessions' reference cycles and hand freed heap back to the OS."""
    gc.collect()
    # CPython's attribute cache keeps the names a session looked up (traitlets builds
    # many); each one pins a block of the heap that could otherwise be returned.
    sys._clear_type_cache()
    libc = ctypes.util.find_library("c")
    if libc:
        trim = getattr(ctypes.CDLL(libc), "malloc_trim", None)
        if trim is not None:
            trim(0)
