"""Process-wide dicts of libraries, made per-session.

ipywidgets keeps every widget in a module-level registry and matplotlib keeps every
open figure in `Gcf.figs`. Many sessions share one process, so each of those globals is
replaced by a `ScopedDict`: a mapping that, whenever it is used, is the running
session's own dict (found through a `ContextVar` the session sets while its code runs).
Closing a session then frees what it made, and no session sees another's objects.
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from contextvars import ContextVar
from typing import Any


class ScopedDict(MutableMapping[Any, Any]):
    """The dict in `var` when a session is running, else a process-wide `fallback`."""

    def __init__(self, var: ContextVar[dict[Any, Any] | None]) -> None:
        self._var = var
        self.fallback: dict[Any, Any] = {}

    def current(self) -> dict[Any, Any]:
        scoped = self._var.get()
        return self.fallback if scoped is None else scoped

    def __getitem__(self, key: Any) -> Any:
        return self.current()[key]

    def __setitem__(self, key: Any, value: Any) -> None:
        self.current()[key] = value

    def __delitem__(self, key: Any) -> None:
        del self.current()[key]

    def __iter__(self) -> Iterator[Any]:
        return iter(list(self.current()))

    def __len__(self) -> int:
        return len(self.current())

    def values(self) -> list[Any]:  # type: ignore[override]
        # matplotlib's Gcf reverses this, which a dict view of a mapping cannot do.
        return list(self.current().values())

    def move_to_end(self, key: Any, last: bool = True) -> None:
        """The one OrderedDict method matplotlib's Gcf uses."""
        if not last:
            raise NotImplementedError("only move_to_end(key, last=True) is supported")
        scoped = self.current()
        scoped[key] = scoped.pop(key)
