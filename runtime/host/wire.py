"""WebSocket frames <-> protocol messages (docs/protocol.md), and nothing else.

Every frame a page sends passes through `decode` before any other code sees it, so a
malformed or unexpected frame becomes one `ProtocolError` with a message a person can
read, never an exception deep inside the session.
"""

from __future__ import annotations

import base64
import datetime
import json
import re
import struct
from collections.abc import Sequence
from typing import Any

PAGE_METHODS = ("update", "request_state", "custom")
MAX_PARTS = 1024
MAX_ID_LENGTH = 200

Buffer = bytes | memoryview


class ProtocolError(ValueError):
    """A frame from the page that is refused; `request` summarises it when it parsed."""

    def __init__(self, message: str, request: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.request = request


def encode(message: dict[str, Any], buffers: Sequence[Buffer] = ()) -> str | bytes:
    """A text frame, or a binary frame in Jupyter's layout when there are buffers."""
    text = json.dumps(message, default=_json_default, separators=(",", ":"), allow_nan=False)
    if not buffers:
        return text
    parts = [text.encode(), *(bytes(b) for b in buffers)]
    offsets = []
    position = 4 * (len(parts) + 1)
    for part in parts:
        offsets.append(position)
        position += len(part)
    return struct.pack(f"!{len(parts) + 1}I", len(parts), *offsets) + b"".join(parts)


def decode(frame: str | bytes) -> tuple[dict[str, Any], list[memoryview]]:
    """The message and buffers of a page's frame, checked against the protocol."""
    if isinstance(frame, str):
        message, buffers = _json_message(frame), []
    else:
        message, buffers = _binary_message(frame)
    _check(message, len(buffers))
    return message, buffers


def summary(message: dict[str, Any]) -> dict[str, Any]:
    """What a refused message was, small enough to send back in a `reply_error`."""
    data = message.get("data")
    method = data.get("method") if isinstance(data, dict) else None
    keys = {"type": message.get("type"), "comm_id": message.get("comm_id"), "method": method}
    return {k: v for k, v in keys.items() if isinstance(v, str)}


def _json_message(text: str) -> dict[str, Any]:
    message = read_json(text, "the frame")
    if not isinstance(message, dict):
        raise ProtocolError("the frame is not a JSON object")
    return message


def read_json(text: str | bytes, what: str) -> Any:
    """JSON a page or a client sent (`what` names it in the refusal): refused when it is
    not JSON, nests too deeply for Python's parser, or holds text that is not Unicode."""
    try:
        value = json.loads(text)
    except ValueError as error:
        raise ProtocolError(f"{what} is not JSON: {error}") from None
    except RecursionError:
        raise ProtocolError(f"{what} is not JSON this server reads: it nests too deeply") from None
    suspect = not isinstance(text, str) or _SURROGATE_ESCAPE.search(text)
    if suspect and not is_unicode(value):
        raise ProtocolError(f"{what} is refused: {NOT_UNICODE}")
    return value


# JSON may escape half of a UTF-16 surrogate pair on its own ("\ud800"): Python reads it
# as a string that no UTF-8 text (a database's, a page's) can hold.
_SURROGATE_ESCAPE = re.compile(r"\\[uU][dD][89a-fA-F]")
NOT_UNICODE = "the text holds a lone surrogate escape (such as \\ud800), which is not Unicode"


def is_unicode(value: Any) -> bool:
    """Whether every string in a parsed JSON value is Unicode text (no lone surrogates)."""
    try:
        json.dumps(value, ensure_ascii=False).encode()
    except UnicodeEncodeError:
        return False
    return True


def _binary_message(frame: bytes) -> tuple[dict[str, Any], list[memoryview]]:
    view = memoryview(frame)
    if len(view) < 4:
        raise ProtocolError("the binary frame is too short to hold its part count")
    (count,) = struct.unpack_from("!I", view)
    if not 1 <= count <= MAX_PARTS or len(view) < 4 * (count + 1):
        raise ProtocolError(f"the binary frame declares {count} parts, which it cannot hold")
    offsets = [*struct.unpack_from(f"!{count}I", view, 4), len(view)]
    spans = list(zip(offsets, offsets[1:], strict=False))
    if offsets[0] != 4 * (count + 1) or any(a > b for a, b in spans):
        raise ProtocolError("the binary frame's part offsets are out of order or out of range")
    # Each buffer is a copy of its own, as a kernel gives each message part: a memoryview
    # of the whole frame would keep it alive and show code (`.obj`, numpy's `.base`) the
    # frame instead of the bytes.
    parts = [memoryview(bytes(view[a:b])) for a, b in spans]
    try:
        text = bytes(parts[0]).decode()
    except UnicodeDecodeError:
        raise ProtocolError("the binary frame's first part is not UTF-8") from None
    return _json_message(text), parts[1:]


def _check(message: dict[str, Any], buffer_count: int) -> None:
    kind, comm_id, data = message.get("type"), message.get("comm_id"), message.get("data")
    request = summary(message)
    if kind not in ("comm_open", "comm_msg", "comm_close", "ready"):
        raise ProtocolError(f"unknown message type {kind!r}", request)
    msg_id = message.get("msg_id")
    if msg_id is not None and (not isinstance(msg_id, str) or len(msg_id) > MAX_ID_LENGTH):
        raise ProtocolError("msg_id must be a short string", request)
    if kind == "ready":
        return
    if not isinstance(comm_id, str) or not 0 < len(comm_id) <= MAX_ID_LENGTH:
        raise ProtocolError("the message has no valid comm_id", request)
    if kind == "comm_close":
        return
    if kind == "comm_open":
        # A model the page's own code makes (a Controller's buttons and axes), as a
        # front end opens it to a kernel.
        if message.get("target_name") != "jupyter.widget":
            raise ProtocolError("a page may open comms of target jupyter.widget only", request)
        if not isinstance(data, dict) or not isinstance(data.get("state"), dict):
            raise ProtocolError("a comm_open needs data with a state object", request)
        _check_buffer_paths(data.get("buffer_paths", []), buffer_count, request)
        return
    if not isinstance(data, dict) or data.get("method") not in PAGE_METHODS:
        raise ProtocolError(f"data.method must be one of {', '.join(PAGE_METHODS)}", request)
    if data["method"] == "update":
        if not isinstance(data.get("state"), dict):
            raise ProtocolError("an update needs a state object", request)
        _check_buffer_paths(data.get("buffer_paths", []), buffer_count, request)
    elif data["method"] == "custom" and "content" not in data:
        raise ProtocolError("a custom message needs content", request)


def _check_buffer_paths(paths: object, buffer_count: int, request: str) -> None:
    if not isinstance(paths, list) or not all(_is_path(p) for p in paths):
        raise ProtocolError("buffer_paths must be a list of key paths", request)
    if len(paths) != buffer_count:
        raise ProtocolError(
            f"{len(paths)} buffer paths but {buffer_count} buffers in the frame", request
        )


def _is_path(path: object) -> bool:
    return (
        isinstance(path, list)
        and len(path) > 0
        and all(
            isinstance(k, str) or (isinstance(k, int) and not isinstance(k, bool)) for k in path
        )
    )


def _json_default(value: object) -> object:
    """JSON for what widget state holds besides JSON: bytes, dates, numpy scalars."""
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    if hasattr(value, "tolist"):  # numpy scalars and arrays, without importing numpy
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")
