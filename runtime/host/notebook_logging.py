"""A notebook's own loggers, one set per session.

A notebook names its logger `logging.getLogger(__name__)`, that is `__main__`, as it
would in a kernel, and may add handlers to it (ipywidgets' Output Widget example logs
into an Output widget). In one process that would be one logger for every visitor: each
visitor's handler would get every visitor's records, and stay after its session closed.
So `__main__` and the loggers under it are made per session, while their records still
propagate to the process's root logger. Other loggers (libraries', the root) stay the
process's own, as the server's log needs them; a notebook that configures the root
logger (`logging.basicConfig`) configures it for every session.
"""

from __future__ import annotations

import logging
from contextvars import ContextVar

_NOTEBOOK = "__main__"
_current: ContextVar[SessionLoggers | None] = ContextVar("nbfreeze_loggers", default=None)
_process_get_logger = logging.getLogger


class SessionLoggers(logging.Manager):
    """The loggers named `__main__` and `__main__.*` of one session."""

    def __init__(self) -> None:
        super().__init__(logging.root)

    @property  # type: ignore[override]
    def disable(self) -> int:
        return logging.root.manager.disable  # `logging.disable()` applies here too

    @disable.setter
    def disable(self, value: int) -> None:
        pass  # set through the process's manager only

    def close(self) -> None:
        """Detach and close every handler the session's code added."""
        for logger in list(self.loggerDict.values()):
            if isinstance(logger, logging.Logger):
                for handler in list(logger.handlers):
                    logger.removeHandler(handler)
                    handler.close()
        self.loggerDict.clear()


def install() -> None:
    """Have `logging.getLogger` give a session's code that session's notebook loggers."""
    logging.getLogger = get_logger


def activate(loggers: SessionLoggers) -> None:
    """Make `loggers` the current session's notebook loggers in the calling context."""
    _current.set(loggers)


def get_logger(name: str | None = None) -> logging.Logger:
    own = _current.get()
    if own is not None and name and (name == _NOTEBOOK or name.startswith(_NOTEBOOK + ".")):
        return own.getLogger(name)
    return _process_get_logger(name)
