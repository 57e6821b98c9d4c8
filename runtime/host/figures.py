"""matplotlib per session: each session's figures, made by the backend its notebook chose.

matplotlib has one backend per process and keeps every open figure in `Gcf.figs`; a
notebook chooses its backend per kernel with `%matplotlib`: `inline` (the default, a PNG
of every figure at the end of a cell) or `widget`/`ipympl` (ipympl's `Canvas` widget,
with its toolbar, which takes pan, zoom and mouse events). Here the process's backend
is `runtime.host.mpl_backend`, which makes each figure with the running session's choice, and
`Gcf.figs` is a `ScopedDict`: every session has its own figures and its own list of
figures to show at the end of a cell, where ipympl and the inline backend each keep one
list for the process (their entries are taken back out as soon as they are made).

IPython turns matplotlib's interactive mode on when a notebook uses matplotlib, and so
does `install()`: it is what queues a new figure for showing and redraws a live canvas
when the code changes its figure. Like every rcParam it is process-wide, so a notebook
that calls `plt.ioff()` turns it off for every session until `plt.ion()`.
"""

from __future__ import annotations

import ast
import importlib.util
import logging
import re
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from typing import Any

from runtime.host.scoped import ScopedDict

log = logging.getLogger(__name__)

INLINE = "inline"
IPYMPL = "ipympl"
# What `%matplotlib NAME` may say, and the backend a session then uses.
BACKENDS = {
    "inline": INLINE,
    "module://matplotlib_inline.backend_inline": INLINE,
    "widget": IPYMPL,
    "ipympl": IPYMPL,
    "module://ipympl.backend_nbagg": IPYMPL,
}
BACKEND = "module://runtime.host.mpl_backend"
# `%matplotlib LINE` as IPython's transformer writes it, which is how the bundle has it.
_MAGIC = re.compile(r"""get_ipython\(\)\.run_line_magic\('matplotlib', ('(?:[^'\\]|\\.)*')\)""")

_current: ContextVar[SessionFigures | None] = ContextVar("nbfreeze_figures", default=None)
_managers: ContextVar[dict[Any, Any] | None] = ContextVar("nbfreeze_managers", default=None)


def backend_named(line: str) -> str | None:
    """The backend `%matplotlib LINE` chooses (no name is the inline backend), or None
    for one a page cannot show (a GUI toolkit's, or the classic notebook's `nbagg`)."""
    words = [word for word in line.split() if not word.startswith("-")]
    return BACKENDS.get(words[0]) if words else INLINE


def chosen_before(cells: Sequence[tuple[int, str]], index: int) -> str | None:
    """The line of the last `%matplotlib` in the code of the cells before cell `index`
    (`(index, code)` pairs), or None. A staged app's session runs only some of the
    notebook's cells, and a shared stage's results may come from the cache, so a
    stage's session takes the backend the notebook chose before it, as "Run all" would."""
    chosen = None
    for position, code in cells:
        if position >= index:
            break
        for found in _MAGIC.finditer(code):
            chosen = ast.literal_eval(found.group(1))
    return chosen


class SessionFigures:
    """A session's matplotlib: its backend, its open figures (the managers `Gcf` holds
    while the session runs), and the figures to show when the running code is done."""

    def __init__(self) -> None:
        self.backend = INLINE
        self.managers: dict[Any, Any] = {}
        self.to_show: list[Any] = []

    def use(self, line: str) -> None:
        """`%matplotlib LINE`: switch this session's backend. As matplotlib does when
        its backend changes, the session's open figures are closed."""
        backend = backend_named(line)
        if backend is None:
            log.warning("%%matplotlib %s cannot be shown in a page; using inline", line)
            backend = INLINE
        if backend != self.backend:
            self.close_all()
            self.backend = backend

    def flush(self, show: Callable[[Any], None]) -> None:
        """What a kernel does after running code: the inline backend shows every open
        figure as a PNG and closes it; ipympl shows the canvas of each figure made (or
        redrawn by pyplot) since, once, and keeps it open for the page to use."""
        if self.backend == INLINE:
            if self.managers:
                for manager in list(self.managers.values()):
                    show(manager.canvas.figure)
                self.close_all()
            return
        queued, self.to_show = self.to_show, []
        open_figures = {id(manager.canvas.figure) for manager in self.managers.values()}
        for figure in queued:
            if id(figure) in open_figures:
                show(figure.canvas)

    def stand_in(self, obj: Any) -> Any:
        """What is shown for `obj`: in an ipympl session, a figure of its own is shown as
        its live canvas (and is not shown again at the end of the cell)."""
        if self.backend != IPYMPL or not _is_ipympl_figure(obj):
            return obj
        if obj in self.to_show:
            self.to_show.remove(obj)
        return obj.canvas

    def close_all(self) -> None:
        import matplotlib.pyplot as plt

        plt.close("all")  # Gcf.figs is this session's own while its code runs
        self.managers.clear()
        self.to_show.clear()

    def close(self) -> None:
        """Drop the session's figures (their canvases are closed with its widgets)."""
        self.managers.clear()
        self.to_show.clear()


_outside = SessionFigures()  # code running outside any session: the inline backend


def activate(figures: SessionFigures) -> None:
    """Make `figures` the running session's in the calling context."""
    _current.set(figures)
    _managers.set(figures.managers)


def current() -> SessionFigures:
    return _current.get() or _outside


def install(flush_figures: Callable[[], None], select_formats: Callable[[], None]) -> None:
    """Make `runtime.host.mpl_backend` matplotlib's backend, `Gcf.figs` per session,
    interactive mode on (as IPython has it), and `flush_figures` what `interact` calls
    after a run; once per process, before any session runs."""
    try:
        import matplotlib
        import matplotlib._pylab_helpers as pylab_helpers
        import matplotlib_inline.backend_inline  # noqa: F401  (the backend needs it)
    except ImportError:
        return
    from ipywidgets.widgets import interaction

    if importlib.util.find_spec("ipympl") is not None:
        # Importing ipympl makes it the process's backend: done here, once, so that a
        # notebook's own `import ipympl` changes nothing.
        import ipympl.backend_nbagg  # noqa: F401
    matplotlib.use(BACKEND)
    matplotlib.interactive(True)
    pylab_helpers.Gcf.figs = ScopedDict(_managers)
    # `interact` shows its plots by calling the inline backend's flush when matplotlib's
    # backend is named as the inline one; ours is not, and either backend's session
    # shows its new figures in the interact's Output widget.
    interaction.show_inline_matplotlib_plots = flush_figures
    select_formats()


def _is_ipympl_figure(obj: Any) -> bool:
    try:
        from ipympl.backend_nbagg import Canvas
        from matplotlib.figure import Figure
    except ImportError:
        return False
    return isinstance(obj, Figure) and isinstance(obj.canvas, Canvas)
