"""Advancing the shared stages in the background, when the database may be away.

Every few seconds, and shortly after labels come in, the shared stages are advanced
with nobody waiting for the answer. While the database restarts that advance cannot
read it: it is said in one line of the log, and the next advance tries again, instead
of a traceback of an exception nobody retrieved.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from runtime.store.database import unavailable

log = logging.getLogger(__name__)


async def advance_in_background(advance: Callable[[], Awaitable[None]]) -> None:
    """Run `advance` (a pipeline's); a database away is a warning, not an error."""
    try:
        await advance()
    except Exception as error:
        if not unavailable(error):
            raise
        reason = str(error).splitlines()[0]
        log.warning("the shared stages wait for the database, away just now: %s", reason)
