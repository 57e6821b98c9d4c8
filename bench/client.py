"""The one client every benchmark talks to a server through: a person's cookies, HTTP/1.1
connections, JSON calls, and the widget WebSocket.

The benches simulate people: each opens an invite link, keeps the cookies it sets
(`nbfreeze_user`, `_xsrf`), and sends them back, with `X-XSRFToken` on every POST, as
`docs/api.md` says. Two connections carry the same calls:

- `Connection`: HTTP/1.1 over one keep-alive socket, on plain asyncio streams. It is
  what a load needs: one per simulated person, as a browser keeps one, and little enough
  Python per request that 200 of them in the bench's one process do not become the
  bottleneck the bench would then measure.
- `TornadoConnection`: tornado's AsyncHTTPClient, whose simple client opens a new TCP
  connection for every request, as `tests/test_scale_out.py` makes its calls. The
  benches that time one visitor at a time use it, so that their figures stay those of
  the client they were first measured with.

The WebSocket is tornado's client, connected with the person's cookies to the widget
socket (`/api/v1/ws`, or `/api/v1/ws?stage=…` for a stage's page), or to any other
path (Voilà's kernel channels); `decode` reads the binary frames in Jupyter's layout.
"""

from __future__ import annotations

import asyncio
import json
import struct
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote

from tornado.httpclient import AsyncHTTPClient, HTTPRequest
from tornado.websocket import WebSocketClientConnection, websocket_connect

HOST = "127.0.0.1"
TIMEOUT = 120.0  # seconds: a ceiling for one call, never reached when the server is well

Frame = str | bytes
WebSocket = WebSocketClientConnection


@dataclass
class Response:
    status: int
    headers: list[tuple[str, str]]  # names in lower case, in the order received
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def cookies(self) -> dict[str, str]:
        """The cookies this response sets, by name."""
        found = {}
        for name, value in self.headers:
            if name == "set-cookie":
                key, _, rest = value.partition("=")
                found[key] = rest.split(";", 1)[0].strip('"')
        return found


def expect(response: Response, status: int, what: str) -> Response:
    """`response`, if its status is `status`; else an error that says what failed."""
    if response.status != status:
        raise RuntimeError(f"{what}: HTTP {response.status}: {response.body[:300]!r}")
    return response


class Person:
    """One person's cookie jar: what the invite link (and any later answer) set, sent
    back with every call, and the XSRF token beside it on a POST."""

    def __init__(self) -> None:
        self.cookies: dict[str, str] = {}

    def take(self, response: Response) -> None:
        self.cookies.update(response.cookies)

    def headers(self, post: bool = False) -> dict[str, str]:
        found = {}
        if self.cookies:
            found["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        if post:
            found["X-XSRFToken"] = self.cookies["_xsrf"]
            found["Content-Type"] = "application/json"
        return found

    async def join(self, connection: HTTP, token: str) -> Response:
        """Open a link (`/?token=…`): its redirect sets `nbfreeze_user` and `_xsrf`."""
        response = await connection.request("GET", f"/?token={token}", {})
        if response.status != 302 or not {"nbfreeze_user", "_xsrf"} <= response.cookies.keys():
            raise RuntimeError(f"the invite link: HTTP {response.status} {response.body[:200]!r}")
        self.take(response)
        return response


class HTTP:
    """A connection to one server, and the calls the benches make over its `request`."""

    base: str

    async def open(self) -> None:
        pass

    async def request(
        self, method: str, target: str, headers: dict[str, str], body: bytes = b""
    ) -> Response:
        raise NotImplementedError

    def close(self) -> None:
        pass

    # Plain functions handing back `request`'s coroutine: no second coroutine per call.
    def get(self, target: str, person: Person | None = None) -> Awaitable[Response]:
        """A GET with the person's cookies (the answer's cookies are theirs to `take`)."""
        return self.request("GET", target, person.headers() if person else {})

    def post_json(
        self, target: str, body: Any, person: Person | None = None
    ) -> Awaitable[Response]:
        """A POST of `body` as JSON, with the person's cookies and XSRF token (with no
        person, as the floors take it: the JSON alone)."""
        headers = person.headers(post=True) if person else {"Content-Type": "application/json"}
        return self.request("POST", target, headers, json.dumps(body).encode())


class Connection(HTTP):
    """One keep-alive HTTP/1.1 connection, reused for request after request, opened on
    the first (or by `open`) and again after the server closes it."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.base = f"http://{HOST}:{port}"
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(HOST, self.port)

    async def request(
        self, method: str, target: str, headers: dict[str, str], body: bytes = b""
    ) -> Response:
        if self.writer is None:
            await self.open()
        assert self.reader is not None and self.writer is not None
        lines = [f"{method} {target} HTTP/1.1", f"Host: {HOST}:{self.port}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        if method == "POST":
            lines.append(f"Content-Length: {len(body)}")
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        head = (await self.reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        status_line, *header_lines = head.split("\r\n")
        status = int(status_line.split(" ", 2)[1])
        received = []
        for line in header_lines:
            if line:
                name, _, value = line.partition(":")
                received.append((name.strip().lower(), value.strip()))
        fields = dict(received)
        close = "connection" in fields and fields["connection"].lower() == "close"
        if "transfer-encoding" in fields and fields["transfer-encoding"].lower() == "chunked":
            chunks = []
            while size := int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16):
                chunks.append((await self.reader.readexactly(size + 2))[:-2])
            while await self.reader.readuntil(b"\r\n") != b"\r\n":
                pass  # trailers
            data = b"".join(chunks)
        elif "content-length" in fields:
            length = int(fields["content-length"])
            data = await self.reader.readexactly(length) if length else b""
        elif status in (204, 304):
            data = b""
        else:
            data, close = await self.reader.read(), True
        if close:
            self.close()
        return Response(status, received, data)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


class TornadoConnection(HTTP):
    """The same calls through tornado's AsyncHTTPClient (a new TCP connection for every
    request). The client is the event loop's one instance: `max_clients` counts only
    for the first connection made in a loop."""

    def __init__(self, port: int, max_clients: int = 10, timeout: float = TIMEOUT) -> None:
        self.base = f"http://{HOST}:{port}"
        self.timeout = timeout
        self.client = AsyncHTTPClient(max_clients=max_clients)

    async def request(
        self, method: str, target: str, headers: dict[str, str], body: bytes = b""
    ) -> Response:
        request = HTTPRequest(
            self.base + target,
            method=method,
            headers=headers,
            body=body if method == "POST" else None,
            follow_redirects=False,
            request_timeout=self.timeout,
        )
        response = await self.client.fetch(request, raise_error=False)
        if response.code == 599:  # no HTTP answer at all: refused, reset, timed out
            return Response(599, [], str(response.error).encode())
        received = [(name.lower(), value) for name, value in response.headers.get_all()]
        return Response(response.code, received, response.body or b"")


Made = TypeVar("Made", bound=HTTP)


async def open_all(make: Callable[[], Made], count: int, at_once: int = 16) -> list[Made]:
    """`count` connections, opened `at_once` at a time (a server's listen backlog is 128)."""
    made = [make() for _ in range(count)]
    gate = asyncio.Semaphore(at_once)

    async def one(connection: Made) -> None:
        async with gate:
            await connection.open()

    await asyncio.gather(*(one(c) for c in made))
    return made


# ---- the WebSocket


async def websocket(
    base: str,
    path: str,
    person: Person | None = None,
    on_message: Callable[[Frame | None], None] | None = None,
) -> WebSocket:
    """A WebSocket to `path` on the server at `base`, with the person's cookies and the
    page's origin, as a browser connects it. Frames go to `on_message` (None: the
    close), or else wait for `read_message`."""
    request = HTTPRequest(
        base.replace("http", "ws", 1) + path,
        headers={**(person.headers() if person else {}), "Origin": base},
        request_timeout=TIMEOUT,
    )
    return await websocket_connect(
        request, on_message_callback=on_message, ping_interval=None, max_message_size=1 << 30
    )


async def widget_socket(
    base: str,
    person: Person,
    stage: str | None = None,
    on_message: Callable[[Frame | None], None] | None = None,
) -> WebSocket:
    """The widget WebSocket (docs/protocol.md): a stage page's (`/api/v1/ws?stage=…`),
    or with no stage the per-visitor one (`/api/v1/ws`)."""
    path = "/api/v1/ws" + (f"?stage={quote(stage)}" if stage else "")
    return await websocket(base, path, person, on_message)


def decode(frame: Frame) -> tuple[dict[str, Any], Sequence[memoryview]]:
    """A frame's message and buffers: a text frame is the JSON alone; a binary frame is
    in Jupyter's layout (a big-endian uint32 count of parts, their offsets, then the
    parts: the JSON message first, the buffers after it)."""
    if isinstance(frame, str):
        return json.loads(frame), ()
    (count,) = struct.unpack_from("!I", frame)
    offsets = [*struct.unpack_from(f"!{count}I", frame, 4), len(frame)]
    view = memoryview(frame)  # the buffers are views of the frame, not copies
    buffers = [view[a:b] for a, b in zip(offsets[1:], offsets[2:], strict=False)]
    return json.loads(frame[offsets[0] : offsets[1]]), buffers
