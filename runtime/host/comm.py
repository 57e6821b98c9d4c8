"""Our `comm` implementation: widget comms that belong to a session, not a kernel.

ipywidgets and anywidget create every comm through `comm.create_comm` and find comms
through `comm.get_comm_manager`; the `comm` package lets a host replace both. We do,
so that a widget created by a session's code is registered with that session's
`SessionComms` (found through a `ContextVar` the session sets while its code runs,
widget callbacks included) and its messages go out over that session's WebSocket. The
process-wide ipywidgets registry is replaced by a per-session one for the same reason:
isolation, and memory that is given back when the session closes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from typing import Any

import comm
import ipywidgets.widgets.widget as ipywidgets_widget
from comm.base_comm import BaseComm, CommManager
from ipywidgets.widgets.widget import Widget, _put_buffers

from runtime.host import frontends
from runtime.host.scoped import ScopedDict
from runtime.host.wire import Buffer, ProtocolError, summary

log = logging.getLogger(__name__)

# Front-end modules the page bundles, with the major version it has of each.
BUNDLED_MODULES = {
    "@jupyter-widgets/base": "2",
    "@jupyter-widgets/controls": "2",
    "@jupyter-widgets/output": "1",
    "anywidget": "0",
}

Emit = Callable[[dict[str, Any], Sequence[Buffer]], None]

_current: ContextVar[SessionComms | None] = ContextVar("nbfreeze_comms", default=None)
_widgets: ContextVar[dict[str, Widget] | None] = ContextVar("nbfreeze_widgets", default=None)
_reported: set[tuple[str, str]] = set()


class SessionComms(CommManager):
    """One session's comms and widgets, and how their messages reach its page."""

    def __init__(self, emit: Emit) -> None:
        super().__init__()
        self.widgets: dict[str, Widget] = {}
        self.page_made: set[str] = set()  # comms of models the page's code created
        # The session's own of widgets a library makes one of per process (singletons.py).
        self.singletons: dict[str, Widget] = {}
        self._emit = emit
        self._hidden: set[str] = set()  # comms whose front-end module is not bundled

    def shown(self, comm_id: str) -> bool:
        """Whether the page has (or will have) a model for this comm."""
        return comm_id not in self._hidden

    def publish(
        self,
        comm: Comm,
        msg_type: str,
        data: dict[str, Any],
        metadata: dict[str, Any] | None,
        buffers: Sequence[Buffer] | None,
        target_name: str | None = None,
    ) -> None:
        """Send one comm message of a widget to the page."""
        if msg_type == "comm_open" and unbundled_module(data.get("state", {})):
            self._hidden.add(comm.comm_id)  # reported once the widget registers itself
        if comm.comm_id in self._hidden:
            return
        message: dict[str, Any] = {"type": msg_type, "comm_id": comm.comm_id}
        if msg_type == "comm_open":
            message |= {"target_name": target_name, "data": data, "metadata": metadata or {}}
        elif msg_type == "comm_msg":
            message["data"] = data
        self._emit(message, buffers or ())

    def registered(self, widget: Widget) -> None:
        """Report a widget whose front end is not bundled, on the page and in the log."""
        state = {k: getattr(widget, k, None) for k in _MODULE_KEYS}
        module = unbundled_module(state)
        if module is None:
            return
        cls = type(widget)
        name = f"{cls.__module__}.{cls.__qualname__}"
        message = (
            f"{name} is not supported here: its front-end module {module} is not bundled "
            f"(bundled: {', '.join(BUNDLED_MODULES)}) and not installed as a labextension "
            "or nbextension where Jupyter looks (`jupyter --paths`), so it is not shown. "
            "Install the Python package that provides it."
        )
        if (name, module) not in _reported:
            _reported.add((name, module))
            log.warning("%s", message)
        report = {"class_name": name, "module": module, "message": message}
        self._emit({"type": "unsupported", "comm_id": widget.model_id} | report, ())

    def receive(self, message: dict[str, Any], buffers: list[memoryview]) -> None:
        """Apply a decoded page message; a refused one raises `ProtocolError`."""
        comm_id = message["comm_id"]
        if message["type"] == "comm_open":
            self._opened_by_page(message, buffers)
            return
        comm = self.comms.get(comm_id)
        if comm is None or not self.shown(comm_id):
            raise ProtocolError(f"unknown comm id {comm_id!r}", summary(message))
        kernel_message = {
            "header": {"msg_type": message["type"], "msg_id": message.get("msg_id", "")},
            "parent_header": {},
            "metadata": {},
            "content": {"comm_id": comm_id, "data": message.get("data", {})},
            "buffers": buffers,
        }
        if message["type"] == "comm_close":
            del self.comms[comm_id]
            self.widgets.pop(comm_id, None)
            comm._closed = True
            comm.handle_close(kernel_message)
            return
        data = message["data"]
        widget = self.widgets.get(comm_id)
        if data["method"] == "update" and widget is not None:
            _check_update(widget, data, buffers, message, made_on_page=comm_id in self.page_made)
        comm.handle_msg(kernel_message)

    def _opened_by_page(self, message: dict[str, Any], buffers: list[memoryview]) -> None:
        """Make the widget for a model the page's code created, as ipywidgets does in a
        kernel: a class registered for the model's name and modules, given the state."""
        comm_id, state = message["comm_id"], message["data"]["state"]
        request = summary(message)
        if comm_id in self.comms:
            raise ProtocolError(f"comm id {comm_id!r} is taken", request)
        if len(self.page_made) >= MAX_PAGE_COMMS:
            raise ProtocolError(f"a page may open at most {MAX_PAGE_COMMS} comms", request)
        try:
            cls = ipywidgets_widget._registry.get(*(state[key] for key in _CLASS_KEYS))
        except (KeyError, TypeError):
            names = {key: state.get(key) for key in _CLASS_KEYS}
            raise ProtocolError(f"no widget class is registered for {names}", request) from None
        _check_state(cls, message["data"], buffers, message, made_on_page=True)
        opened = Comm(self, comm_id=comm_id, primary=False, target_name=message["target_name"])
        self.comms[comm_id] = opened
        widget = None
        try:
            widget = cls(comm=opened)
            widget.set_state(state)
        except Exception as error:  # any refusal by the class's traits
            if widget is not None:
                widget.close()
            self.comms.pop(comm_id, None)
            self.widgets.pop(comm_id, None)
            reason = str(error)[:300]
            raise ProtocolError(f"{cls.__name__} refused the state: {reason}", request) from None
        self.page_made.add(comm_id)

    def close(self) -> None:
        """Close every widget and comm of the session so that nothing keeps them alive."""
        for widget in list(self.widgets.values()):
            widget.close()
        for opened in list(self.comms.values()):
            opened.close()
        self.widgets.clear()
        self.singletons.clear()
        self.comms.clear()
        self.targets.clear()


class Comm(BaseComm):
    """A comm whose messages go to the session that created it, from any thread."""

    def __init__(self, manager: SessionComms, **kwargs: Any) -> None:
        self.manager = manager
        super().__init__(**kwargs)

    def publish_msg(
        self,
        msg_type: str,
        data: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
        buffers: list[bytes] | None = None,
        **keys: Any,
    ) -> None:
        self.manager.publish(
            self, msg_type, data or {}, metadata, buffers, target_name=keys.get("target_name")
        )

    def close(
        self,
        data: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
        buffers: list[bytes] | None = None,
        deleting: bool = False,
    ) -> None:
        # Unregister from our own manager: `comm.get_comm_manager()` depends on which
        # session is running, and a widget may be closed by the garbage collector.
        if self._closed:
            return
        self._closed = True
        self.publish_msg("comm_close", data=data or self._close_data, metadata=metadata)
        self.manager.comms.pop(self.comm_id, None)


class _WidgetRegistry(ScopedDict):
    """ipywidgets' `_instances`, per session; tells the session of each new widget."""

    def __setitem__(self, key: Any, value: Any) -> None:
        super().__setitem__(key, value)
        manager = _current.get()
        if manager is not None:
            manager.registered(value)


def _drop(message: dict[str, Any], buffers: Sequence[Buffer]) -> None:
    log.debug("dropped %s of a widget made outside any session", message.get("type"))


# Widgets made outside any session (at import time, or in a thread the session did not
# start) get comms that go nowhere, as they would in a kernel with no front end.
_outside = SessionComms(_drop)
_registry = _WidgetRegistry(_widgets)
_MODULE_KEYS = ("_model_module", "_model_module_version", "_view_module", "_view_module_version")
_CLASS_KEYS = (
    "_model_module",
    "_model_module_version",
    "_model_name",
    "_view_module",
    "_view_module_version",
    "_view_name",
)
MAX_PAGE_COMMS = 1000  # models a page's own code may create (a Controller makes ~20)


def install() -> None:
    """Make `comm` and ipywidgets use per-session comms and registries, once per process."""
    if ipywidgets_widget._instances is _registry:
        return
    _registry.fallback.update(ipywidgets_widget._instances)
    ipywidgets_widget._instances = _registry
    comm.create_comm = create_comm
    comm.get_comm_manager = get_comm_manager


def activate(manager: SessionComms) -> None:
    """Make `manager` the current session's comms in the calling context."""
    _current.set(manager)
    _widgets.set(manager.widgets)


def create_comm(**kwargs: Any) -> Comm:
    return Comm(get_comm_manager(), **kwargs)


def get_comm_manager() -> SessionComms:
    return _current.get() or _outside


def unbundled_module(state: dict[str, Any]) -> str | None:
    """`module@version` of a model or view module the page can load from nowhere (not
    bundled, and no front end of that name installed where Jupyter looks), else None."""
    for kind in ("model", "view"):
        module, version = state.get(f"_{kind}_module"), state.get(f"_{kind}_module_version")
        if module is None:
            continue
        major = str(version or "").lstrip("^~=v").split(".")[0]
        if BUNDLED_MODULES.get(module) == major:
            continue
        if module in BUNDLED_MODULES or not frontends.installed().installed(str(module)):
            return f"{module}@{version}"
    return None


# What a widget's front end loads and runs: the page may not choose it (docs/security.md).
_CODE_TRAITS = frozenset({"_esm", "_css", "_anywidget_id"})


def _page_may_not_set(name: str) -> bool:
    """Whether `name` is a trait that names or holds front-end code: the model and view
    classes, and an anywidget's module and style sheet."""
    if name in _CODE_TRAITS:
        return True
    return name.startswith(("_model_", "_view_")) and name != "_view_count"


def _check_update(
    widget: Widget,
    data: dict[str, Any],
    buffers: list[memoryview],
    message: dict[str, Any],
    made_on_page: bool = False,
) -> None:
    """Refuse an update whose values the widget's traits would not accept."""
    _check_state(type(widget), data, buffers, message, made_on_page, widget)


def _check_state(
    cls: type[Widget],
    data: dict[str, Any],
    buffers: list[memoryview],
    message: dict[str, Any],
    made_on_page: bool,
    widget: Widget | None = None,
) -> None:
    """Refuse state (`data["state"]`) that the class's traits would not accept. As in a
    kernel, a page may set read-only traits (a Controller's front end sets its `buttons`
    and `axes`), but not change the model and view names, nor an anywidget's code. A key
    the model does not declare is dropped with a debug line, as ipywidgets' `set_state`
    ignores it in a kernel: front ends send such keys (plotly's FigureWidget does, a
    Controller's button has a `description` on the page)."""
    name_of, state = cls.__name__, data["state"]
    declared = cls.class_traits(sync=True) if widget is None else widget.traits(sync=True)
    try:
        _put_buffers(state, data.get("buffer_paths", []), buffers)
    except (LookupError, TypeError):
        raise ProtocolError("buffer_paths do not fit the state", summary(message)) from None
    keys = declared.keys() if widget is None else set(widget.keys) & declared.keys()
    undeclared = [name for name in state if name not in keys]
    for name in undeclared:
        del state[name]
    if undeclared:
        log.debug("%s has no synced trait %s: ignored, as a kernel ignores it", name_of, undeclared)
    for name, value in state.items():
        trait = declared[name]
        if widget is None:
            continue  # a new widget's values are checked by its traits as it is made
        if _page_may_not_set(name):
            if value == getattr(widget, name):
                continue  # the page repeating what it was told
            raise ProtocolError(f"{name_of}.{name} is read-only", summary(message))
        from_json = widget.trait_metadata(name, "from_json", widget._trait_from_json)
        try:
            trait._validate(widget, from_json(value, widget))
        except Exception as error:  # any refusal by a trait or its validators
            reason = str(error)[:300]
            message_text = f"{name_of}.{name} refused the value: {reason}"
            raise ProtocolError(message_text, summary(message)) from None
