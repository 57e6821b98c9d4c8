"""A widget a library makes once per process, made once per session: ipycanvas' manager.

ipycanvas draws through a widget of its own: every `Canvas` (and `RoughCanvas`,
`MultiCanvas`' layers) sends its drawing commands as custom messages of a
`_CanvasManager`, and a canvas's `_canvas_manager` trait, synced to the page, names
the manager its front end listens to. ipycanvas makes one manager when it is imported
(`ipycanvas.canvas._CANVAS_MANAGER`), the default of that trait for every canvas, and
`hold_canvas()` batches the drawing through it. A widget belongs to the session whose
code made it, so in a process of many sessions that one manager would be the first
importer's (or nobody's, when imported before any session runs): other pages never get
its model and their canvases do not draw, and when that session closes, it is closed
for everyone.

`install()` gives each session a manager of its own, made in the session's context the
first time one of its canvases (or `hold_canvas()`) needs it, kept in the session's
`SessionComms.singletons` and closed with its other widgets. It works whether
ipycanvas is imported before `install()` or later, in a session's cell: a finder on
`sys.meta_path` changes the module as soon as it has run, before any canvas exists.
A canvas given a manager of its own (`Canvas(_canvas_manager=...)`) keeps it.

Of the other widget libraries we test (bqplot, ipydatagrid, ipyleaflet, pythreejs,
ipyvuetify, ipympl), only ipyvuetify makes widgets at import: ipyvue's `ForceLoad`,
which every Vue widget's `_jupyter_vue` names, but only so that Jupyter loads the
jupyter-vue front end early (its front end never looks the model up, and our page loads
front ends as it meets their models); and `ipyvuetify.theme`, which no widget refers to.
Neither is made per session.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import Any

from ipywidgets import Widget
from traitlets import Undefined

from runtime.host import comm

CANVAS_MODULE = "ipycanvas.canvas"
_KEY = "ipycanvas"  # the manager's key in a session's `SessionComms.singletons`


def install() -> None:
    """Give each session its own canvas manager from now on; once per process."""
    if not any(isinstance(finder, _Finder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _Finder())
    module = sys.modules.get(CANVAS_MODULE)
    if module is not None:
        _own_managers(module)


def canvas_manager(make: type[Widget]) -> Widget:
    """The running session's canvas manager (outside any session, the process's), made
    with `make()` in the session's context when it has none or has closed it."""
    owner = comm.get_comm_manager()
    manager = owner.singletons.get(_KEY)
    if manager is None or manager.comm is None:
        manager = owner.singletons[_KEY] = make()
    return manager


class _RunningSessions:
    """`_CANVAS_MANAGER` as `hold_canvas()` uses it: the running session's manager."""

    def __init__(self, make: type[Widget]) -> None:
        object.__setattr__(self, "_make", make)

    def __getattr__(self, name: str) -> Any:
        return getattr(canvas_manager(self._make), name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(canvas_manager(self._make), name, value)


def _own_managers(module: ModuleType) -> None:
    """Make `ipycanvas.canvas` give each session its own manager."""
    made = module._CANVAS_MANAGER
    if isinstance(made, _RunningSessions):
        return
    make = module._CanvasManager
    # The manager made at import is the importing session's (or, outside any session, the
    # process's), unless ipycanvas was imported before our comms were installed.
    opened = getattr(made, "comm", None)
    if isinstance(opened, comm.Comm):
        opened.manager.singletons.setdefault(_KEY, made)
    trait = module._CanvasBase.class_traits()["_canvas_manager"]
    # traitlets makes a default with `make_dynamic_default` when there is no static one.
    trait.default_value = Undefined
    trait.make_dynamic_default = lambda: canvas_manager(make)
    module._CANVAS_MANAGER = _RunningSessions(make)


class _Finder(importlib.abc.MetaPathFinder):
    """Finds `ipycanvas.canvas` as the other finders do, and changes it once it has run."""

    def find_spec(
        self, name: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if name != CANVAS_MODULE:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return None
        spec.loader = _ThenOwnManagers(spec.loader)
        return spec


class _ThenOwnManagers(importlib.abc.Loader):
    """A module's own loader, followed by `_own_managers`."""

    def __init__(self, loader: importlib.abc.Loader) -> None:
        self._loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self._loader.exec_module(module)
        _own_managers(module)

    def __getattr__(self, name: str) -> Any:  # get_source, get_filename, ...
        return getattr(self._loader, name)
