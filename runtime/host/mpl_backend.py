"""The matplotlib backend of a process serving sessions (`module://runtime.host.mpl_backend`).

matplotlib calls one backend for the process; this one hands each call to the backend
the running session chose with `%matplotlib` (`runtime.host.figures`): the inline
backend's, or ipympl's. Each of those keeps a list of figures to show for the whole
process; a figure is taken back out of it as soon as it is made and queued in its
session's own list instead, so no session shows, or keeps alive, another's figures.
matplotlib imports this module when pyplot first needs its backend.
"""

from __future__ import annotations

from typing import Any

import matplotlib
import matplotlib_inline.backend_inline as backend_inline
from matplotlib._pylab_helpers import Gcf
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from runtime.host import figures

FigureCanvas = FigureCanvasAgg  # what pyplot asks of a backend's canvas: no GUI toolkit


def new_figure_manager(num: int, *args: Any, FigureClass: type = Figure, **kwargs: Any) -> Any:
    return new_figure_manager_given_figure(num, FigureClass(*args, **kwargs))


def new_figure_manager_given_figure(num: int, figure: Figure) -> Any:
    session = figures.current()
    if session.backend == figures.IPYMPL:
        from ipympl import backend_nbagg

        ipympl = backend_nbagg._Backend_ipympl
        manager = ipympl.new_figure_manager_given_figure(num, figure)
        with backend_nbagg._lock:  # the lock ipympl holds while it changes the list
            while figure in ipympl._to_show:
                ipympl._to_show.remove(figure)
        if matplotlib.is_interactive() and figure not in session.to_show:
            session.to_show.append(figure)
        return manager
    manager = backend_inline.new_figure_manager_given_figure(num, figure)
    # The inline backend's queue is emptied only by its own `show`; the session's
    # flush shows and closes every open figure instead.
    while figure in backend_inline.show._to_draw:
        backend_inline.show._to_draw.remove(figure)
    return manager


def draw_if_interactive() -> None:
    if figures.current().backend == figures.IPYMPL:
        from ipympl import backend_nbagg

        backend_nbagg._Backend_ipympl.draw_if_interactive()


def show(*args: Any, **kwargs: Any) -> None:
    """`plt.show()`: the inline backend shows every open figure as a PNG and closes
    them; ipympl shows the current figure's canvas, which then is not shown again at
    the end of the cell."""
    session = figures.current()
    if session.backend != figures.IPYMPL:
        backend_inline.show(*args, **kwargs)
        return
    from ipympl import backend_nbagg

    manager = Gcf.get_active()
    if manager is not None and manager.canvas.figure in session.to_show:
        session.to_show.remove(manager.canvas.figure)
    backend_nbagg._Backend_ipympl.show(*args, **kwargs)
