"""Text a database can save: PostgreSQL's text columns refuse the NUL character
(`\\u0000`), so a request holding one is refused with a 400 before it reaches the store,
on SQLite as on PostgreSQL, rather than failing there."""

from __future__ import annotations

from typing import Any

NUL_REFUSED = "holds a NUL character (\\u0000), which no saved text may hold"


def holds_nul(value: Any) -> bool:
    """Whether any string in a parsed JSON value, a key or a value, holds a NUL."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(holds_nul(key) or holds_nul(item) for key, item in value.items())
    if isinstance(value, list):
        return any(holds_nul(item) for item in value)
    return False
