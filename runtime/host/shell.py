"""What a kernel would give a notebook's code, per session, without a kernel.

Code in a notebook reaches IPython in a handful of ways: `display()`, `clear_output()`,
`get_ipython()`, the value of a cell's last line, `print`, an exception, `with out:` on
an Output widget, and matplotlib (`figures`). Every one of them goes through
`InteractiveShell.instance()` or `sys.stdout`, both process-wide. `install()` makes
both of them the running session's `SessionShell` (found through a `ContextVar`), which
sends what the code shows to that session's page as protocol messages, or into the
Output widget capturing it, as IPython would. A session's shell is a few small
objects, not an `InteractiveShell`: thousands of them fit in one process.
"""

from __future__ import annotations

import base64
import logging
import re
import sys
import time
import traceback
import weakref
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from types import TracebackType
from typing import Any

from IPython.core.events import EventManager, available_events
from IPython.core.formatters import DisplayFormatter
from IPython.core.interactiveshell import InteractiveShell
from ipywidgets import Output, Widget

from runtime.host import figures, notebook_logging, render
from runtime.host.wire import Buffer

log = logging.getLogger(__name__)

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
STREAM_FLUSH_SECONDS = 0.2  # how long printed text may wait to be sent, as in ipykernel
_CELL_FILE = re.compile(r"<cell (\d+)>")

Emit = Callable[[dict[str, Any], Sequence[Buffer]], None]
Target = Output | int  # where output goes: a capturing Output widget, or a cell
ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]

_current: ContextVar[SessionShell | None] = ContextVar("nbfreeze_shell", default=None)


def cell_filename(index: int) -> str:
    """The file name a cell's code is compiled under, so tracebacks name the cell."""
    return f"<cell {index}>"


class SessionShell:
    """One session's display publisher, display hook, traceback handler, streams and
    notebook loggers."""

    kernel = None  # ipywidgets asks; there is none

    def __init__(
        self,
        emit: Emit,
        notebook: str,
        shown: Callable[[str], bool],
        muted: Callable[[], bool] = lambda: False,
    ) -> None:
        self.notebook = notebook
        self.cell: int | None = None  # the cell whose code is running, if any
        self.widgets_shown = 0  # widget views sent into cells
        self.user_ns: dict[str, Any] = {}
        self.figures = figures.SessionFigures()  # its matplotlib backend and figures
        self.display_formatter = _formatter
        self.display_pub = self
        self.events = EventManager(self, available_events)
        self.configurables: list[Any] = []
        self._emit = emit
        self._shown = shown
        self._muted = muted  # while true, what is shown in cells goes nowhere
        # Told of every error with its full traceback (the owner's view of shared stages).
        self.on_error: Callable[[dict[str, Any], str], None] | None = None
        self._captures: list[Output] = []
        self._clear_pending: weakref.WeakSet[Output] = weakref.WeakSet()
        self._stream: tuple[Target, str, list[str], float] | None = None
        self.loggers = notebook_logging.SessionLoggers()

    # -- what IPython's display machinery calls

    def publish(
        self,
        data: dict[str, Any],
        metadata: dict[str, Any] | None = None,
        source: str | None = None,
        *,
        transient: dict[str, Any] | None = None,
        update: bool = False,
        **kwargs: Any,
    ) -> None:
        if update:
            log.debug("update_display is not supported; the update was dropped")
            return
        self._show({"output_type": "display_data", "data": data, "metadata": metadata or {}})

    def clear_output(self, wait: bool = False) -> None:
        self._flush_stream()
        if self._captures:
            out = self._captures[-1]
            if wait:
                self._clear_pending.add(out)
            else:
                self._clear_pending.discard(out)
                out.outputs = ()
        elif self.cell is not None and not self._muted():
            self._emit({"type": "clear_output", "cell": self.cell, "wait": wait}, ())

    def displayhook(self, value: object) -> None:
        """Show a cell's last value, as IPython's display hook does."""
        if value is None:
            return
        data, metadata = self.display_formatter.format(value)
        if data:
            output = {"output_type": "execute_result", "execution_count": None}
            self._show(output | {"data": data, "metadata": metadata})

    def showtraceback(self, exc_tuple: ExcInfo | None = None, *args: Any, **kwargs: Any) -> None:
        """Report an error by the notebook's cell and line: on the page, or in the Output
        widget capturing it; the traceback itself goes to the server's log only."""
        etype, error, tb = exc_tuple or sys.exc_info()
        if error is None:
            return
        report = error_report(self.notebook, error, tb, self.cell)
        log.warning("%s", report["message"], exc_info=(etype, error, tb))
        if self.on_error is not None:
            self.on_error(report, "".join(traceback.format_exception(etype, error, tb)))
        self._flush_stream()
        if self._captures:
            output = {
                "output_type": "error",
                "ename": report["ename"],
                "evalue": report["evalue"],
                "traceback": [report["message"]],
            }
            self._append(self._captures[-1], output)
        elif not self._muted():
            self._emit({"type": "cell_error", **report}, ())

    def set_parent(self, parent: object) -> None:
        pass

    def get_parent(self) -> dict[str, Any]:
        return {}

    def enable_gui(self, gui: str | None = None) -> None:
        log.debug("ignored enable_gui(%r): there is no GUI event loop", gui)

    def run_line_magic(self, name: str, line: str, _stack_depth: int = 1) -> None:
        if name != "matplotlib":
            raise NotImplementedError(f"%{name} is not available: there is no kernel here")
        self.figures.use(line)

    # -- what our own code calls

    def unseen(self) -> bool:
        """Whether what the code shows now goes nowhere: the session is muted (it has no
        page, or it is replaying), and no Output widget captures it."""
        return not self._captures and self._muted()

    def shows_view(self, obj: object) -> bool:
        """Whether showing `obj` now puts its widget's view on the page, and nothing else:
        an open widget with a view the page has, displayed into a cell (not captured
        by an Output widget), whose class keeps ipywidgets' own mime bundle."""
        return (
            isinstance(obj, Widget)
            and type(obj)._repr_mimebundle_ is Widget._repr_mimebundle_
            and "_repr_mimebundle_" not in vars(obj)  # a closed widget shows only its text
            and obj._view_name is not None
            and obj.comm is not None
            and not self._captures
            and self.cell is not None
            and self._shown(obj.model_id)
        )

    def write(self, name: str, text: str) -> None:
        """Printed text, batched per target as a kernel's output stream does."""
        target = self._captures[-1] if self._captures else self.cell
        if target is None:
            return  # a callback printing with no Output widget: Jupyter shows it nowhere
        now = time.monotonic()
        if self._stream is not None and (self._stream[0] is not target or self._stream[1] != name):
            self._flush_stream()
        if self._stream is None:
            self._stream = (target, name, [], now)
        self._stream[2].append(text)
        if now - self._stream[3] > STREAM_FLUSH_SECONDS:
            self._flush_stream()

    def capture(self, out: Output) -> None:
        """Start sending output into `out` (entering `with out:`)."""
        self._flush_stream()
        self._captures.append(out)

    def release(self, out: Output) -> None:
        """Stop sending output into `out` (leaving `with out:`)."""
        self._flush_stream()
        for position in range(len(self._captures) - 1, -1, -1):
            if self._captures[position] is out:
                del self._captures[position]
                break

    def flush(self) -> None:
        """What a kernel does after running code: show new figures, send pending text."""
        self.figures.flush(lambda shown: self.publish(*self.display_formatter.format(shown)))
        self._flush_stream()

    def close(self) -> None:
        """Drop what the session's code left behind (figures, captures, namespace)."""
        self.figures.close()
        self._captures.clear()
        self._stream = None
        self.user_ns = {}
        self.loggers.close()

    # -- routing

    def _show(self, output: dict[str, Any]) -> None:
        self._flush_stream()
        output["data"] = _jsonable(output["data"])
        if self._captures:
            output["data"] = render.unrun(output["data"])
            self._append(self._captures[-1], output)
        elif self.cell is not None:
            self._send(self.cell, output)
        else:
            log.debug("dropped a display from a callback with no Output widget to go to")

    def _send(self, cell: int, output: dict[str, Any]) -> None:
        if self._muted():
            return
        data = output.get("data", {})
        view = data.get(WIDGET_VIEW)
        if isinstance(view, dict) and self._shown(str(view.get("model_id"))):
            self.widgets_shown += 1
            self._emit({"type": "output", "cell": cell, "widget": view["model_id"]}, ())
            return
        if WIDGET_VIEW in data:  # a widget the page cannot show: its text stands in
            output = output | {"data": {k: v for k, v in data.items() if k != WIDGET_VIEW}}
            if not output["data"]:
                return
        self._emit({"type": "output", "cell": cell, "html": render.output_html(output)}, ())

    def _append(self, out: Output, output: dict[str, Any]) -> None:
        outputs = () if out in self._clear_pending else out.outputs
        self._clear_pending.discard(out)
        last = outputs[-1] if outputs else None
        if (
            output["output_type"] == "stream"
            and last is not None
            and last.get("output_type") == "stream"
            and last.get("name") == output["name"]
        ):
            outputs, output = outputs[:-1], last | {"text": last["text"] + output["text"]}
        out.outputs = (*outputs, output)

    def _flush_stream(self) -> None:
        if self._stream is None:
            return
        target, name, parts, _ = self._stream
        self._stream = None
        output = {"output_type": "stream", "name": name, "text": "".join(parts)}
        if isinstance(target, int):
            self._send(target, output)
        else:
            self._append(target, output)


def error_report(
    notebook: str, error: BaseException, tb: TracebackType | None, running: int | None
) -> dict[str, Any]:
    """The `cell_error` fields of an error: where in the notebook it happened, and what."""
    cell, line = running, None
    for frame, lineno in _frames(tb):
        found = _CELL_FILE.fullmatch(frame.f_code.co_filename)
        if found:
            cell, line = int(found.group(1)), lineno
    ename, evalue = type(error).__name__, str(error)
    where = ", ".join(
        [notebook]
        + ([f"cell {cell}"] if cell is not None else [])
        + ([f"line {line}"] if line is not None else [])
    )
    message = f"{where}: {ename}: {evalue}" if evalue else f"{where}: {ename}"
    return {"cell": cell, "line": line, "ename": ename, "evalue": evalue, "message": message}


def _frames(tb: TracebackType | None) -> list[tuple[Any, int]]:
    frames = []
    while tb is not None:
        frames.append((tb.tb_frame, tb.tb_lineno))
        tb = tb.tb_next
    return frames


def _jsonable(data: dict[str, Any]) -> dict[str, Any]:
    """Binary display data (PNG, JPEG) as base64 text, as a kernel sends it."""
    return {
        mime: base64.b64encode(value).decode("ascii") if isinstance(value, bytes) else value
        for mime, value in data.items()
    }


class _Stream:
    """`sys.stdout` or `sys.stderr`: the running session's stream, else the real one."""

    def __init__(self, name: str, fallback: Any) -> None:
        self.name = name
        self.fallback = fallback

    def write(self, text: str) -> int:
        shell = _current.get()
        # What the logging module writes is the server's log (tracebacks included): it
        # goes to the server's stream, never to the page of whichever session is running,
        # however logging was configured (its last resort writes to `sys.stderr`).
        if shell is None or sys._getframe(1).f_globals.get("__name__") == "logging":
            return self.fallback.write(text)
        shell.write(self.name, str(text))
        return len(text)

    def flush(self) -> None:
        if _current.get() is None:
            self.fallback.flush()

    def isatty(self) -> bool:
        return False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.fallback, name)


def _output_enter(self: Output) -> None:
    shell = _current.get()
    if shell is None:
        return _original_enter(self)
    shell.capture(self)


def _output_exit(
    self: Output,
    etype: type[BaseException] | None,
    error: BaseException | None,
    tb: TracebackType | None,
) -> bool | None:
    shell = _current.get()
    if shell is None:
        return _original_exit(self, etype, error, tb)
    if etype is not None and error is not None:
        shell.showtraceback((etype, error, tb))
    shell.release(self)
    return True  # as in IPython: the error is shown in the Output widget, not raised


def _flush_figures() -> None:
    """What `interact` calls after each run (its plots), per session."""
    shell = _current.get()
    if shell is not None:
        shell.flush()


class _Formatter(DisplayFormatter):
    """IPython's display formatter, except for what nobody will see, which it does not
    format at all, for a widget that the page shows as a view, and for an ipympl
    session's figure, which is shown as its live canvas.

    The page never sees such a widget's other formats. Its text is a repr that walks
    every trait of the widget and of its children, and looking up the nine other
    formats costs as much again: a fifth of the server's time in a visit to Widget List.
    """

    def format(
        self, obj: Any, include: Any = None, exclude: Any = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        shell = _current.get()
        if shell is not None and shell.unseen():
            return {}, {}
        if shell is not None:
            obj = shell.figures.stand_in(obj)
        if include is None and exclude is None and shell is not None and shell.shows_view(obj):
            view = {"version_major": 2, "version_minor": 0, "model_id": obj.model_id}
            return {WIDGET_VIEW: view}, {}
        return super().format(obj, include, exclude)


_formatter = _Formatter()
_outside = SessionShell(lambda message, buffers: None, "", lambda model_id: False)
_original_enter = Output.__enter__
_original_exit = Output.__exit__


def install() -> None:
    """Route IPython's shell, the Output widget, matplotlib, the std streams and the
    notebook's loggers to the running session; once per process, before any session
    runs."""
    if Output.__enter__ is _output_enter:
        return
    _install_matplotlib()
    # From here on `get_ipython()` and `display()` find the running session's shell;
    # code outside any session gets one whose output goes nowhere.
    InteractiveShell.instance = classmethod(lambda cls, *a, **k: _current.get() or _outside)
    InteractiveShell.initialized = classmethod(lambda cls: True)
    Output.__enter__ = _output_enter
    Output.__exit__ = _output_exit
    notebook_logging.install()


def activate(shell: SessionShell) -> None:
    """Make `shell` the current session's shell in the calling context."""
    _current.set(shell)
    figures.activate(shell.figures)
    notebook_logging.activate(shell.loggers)


def route_streams() -> None:
    """Make `sys.stdout`/`sys.stderr` session-aware again if someone replaced them."""
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if not isinstance(stream, _Stream):
            setattr(sys, name, _Stream(name, stream))


def _install_matplotlib() -> None:
    from IPython.core.pylabtools import select_figure_formats

    figures.install(
        _flush_figures, lambda: select_figure_formats(_outside, {"png"}, bbox_inches="tight")
    )
