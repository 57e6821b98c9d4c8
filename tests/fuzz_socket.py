"""A fuzzer of the widget WebSocket (docs/protocol.md): a labeler's stage pages sent
malformed JSON, binary frames in and out of Jupyter's layout, oversized frames, messages
out of order and replayed, and comm messages naming another labeler's models or none.

After each frame the page sends a probe (a message the session must answer with its
`idle`): the session handled the frame and lives on, or the server closed the socket with
a clean close code. No frame the server sends holds a traceback; what people saved
changes only by a `submit` the server answered `submitted`, and only the sender's rows;
the other labeler's page, whose models were named, hears nothing of it.
"""

from __future__ import annotations

import json
import struct
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import websocket
from fuzz_live import CHOICES, ITEMS, LiveApp, Person
from fuzz_schema import ANY_JSON
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from runtime_harness import encode

from runtime.server import MAX_FRAME_BYTES
from runtime.store.database import LABELER

PAGES = ("name", "label")  # the labeler's pages fuzzed: a Text of their own, a pool batch
CLEAN_CLOSES = {1000, 1001, 1009} | set(range(4000, 5000))
# The connection ends with no close frame: how tornado answers a frame over the limit,
# while the client is still sending it (and so an oversized frame's only other answer).
DROPPED = 1006
TRACEBACK = "Traceback (most recent call last)"
# The other page reads its socket at least this often, answering the server's pings as a
# tab does: the server closes a page silent for its ping interval and timeout (60 s).
PROBE_SECONDS = 10.0
TRAITS = ("value", "description", "disabled", "index", "placeholder", "_model_name", "_esm")
TRAITS += ("_view_module", "labels", "selected", "children", "layout")


class Page:
    """One stage page's socket, as a page's own code would hold it."""

    def __init__(self, app: LiveApp, person: Person, stage: str) -> None:
        self.app, self.person, self.stage = app, person, stage
        self.comm_ids: list[str] = []
        self.probes = 0
        self.connect()

    def connect(self) -> None:
        self.ws = websocket.create_connection(
            f"ws://127.0.0.1:{self.app.port}/api/v1/ws?stage={self.stage}",
            cookie=self.person.cookie_header(),
            origin=f"http://127.0.0.1:{self.app.port}",
            timeout=120,
        )
        self.read_until(lambda m: m.get("type") == "status" and m.get("state") == "idle")

    def read_until(self, done: Any) -> tuple[list[dict[str, Any]], int | None]:
        """Frames up to the first `done` accepts, or up to a close (and its code)."""
        read = []
        while True:
            try:
                opcode, data = self.ws.recv_data(control_frame=True)
            except (websocket.WebSocketConnectionClosedException, ConnectionError):
                return read, DROPPED
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                code = struct.unpack("!H", data[:2])[0] if len(data) >= 2 else 1005
                return read, code
            if opcode not in (websocket.ABNF.OPCODE_TEXT, websocket.ABNF.OPCODE_BINARY):
                continue
            if opcode == websocket.ABNF.OPCODE_TEXT:
                text = data.decode()
                assert TRACEBACK not in text, text[:500]
                message = json.loads(text)
            else:
                (count,) = struct.unpack_from("!I", data)
                first, second = struct.unpack_from("!2I", data, 4)
                message = json.loads(data[first:second])
            read.append(message)
            if message.get("type") == "comm_open" and message["comm_id"] not in self.comm_ids:
                self.comm_ids.append(message["comm_id"])
            if done(message):
                return read, None

    def send(self, frame: str | bytes) -> None:
        if isinstance(frame, bytes):
            self.ws.send_binary(frame)
        else:
            self.ws.send(frame)

    def probe(self) -> tuple[list[dict[str, Any]], int | None]:
        """Everything the server sent up to the idle that answers a probe, or its close."""
        self.probes += 1
        probe = f"probe-{self.probes}"
        message = {"type": "comm_msg", "msg_id": probe, "comm_id": "probe", "data": {}}
        try:
            self.send(json.dumps(message | {"data": {"method": "request_state"}}))
        except (websocket.WebSocketConnectionClosedException, ConnectionError):
            return self.read_until(lambda m: False)
        return self.read_until(
            lambda m: (
                m.get("type") == "status"
                and m.get("state") == "idle"
                and m.get("parent_id") == probe
            )
        )

    def close(self) -> None:
        self.ws.close()


def pick(draw: st.DrawFn, choices: list[Any], empty: Any) -> Any:
    """One of `choices` as they are now (they grow as the run goes), or `empty`: drawn as
    a position, so that a case draws the same whatever the lists hold."""
    position = draw(st.integers(0, 10**6))
    return choices[position % len(choices)] if choices else empty


def comm_id(draw: st.DrawFn, page: Page, foreign: list[str]) -> Any:
    """A comm id: one of this page's models, one of another labeler's, none, or junk."""
    whose = draw(st.sampled_from(["own", "theirs", "junk"]))
    if whose == "own":
        return pick(draw, page.comm_ids, "none")
    if whose == "theirs":
        return pick(draw, foreign, "none")
    return draw(st.text(max_size=12) | st.integers() | st.none() | st.text(min_size=201))


@st.composite
def protocol_message(draw: st.DrawFn, page: Page, foreign: list[str]) -> dict[str, Any]:
    """A message of the protocol's shapes with values drawn from anywhere."""
    kind = draw(
        st.sampled_from(["comm_msg", "comm_open", "comm_close", "ready", "submit"])
        | st.sampled_from(["draft", "keep"])
        | st.text(max_size=10)
    )
    message: dict[str, Any] = {"type": kind}
    if draw(st.integers(0, 9)):
        message["msg_id"] = draw(st.uuids().map(str) | st.integers() | st.text(min_size=201))
    if kind.startswith("comm"):
        message["comm_id"] = comm_id(draw, page, foreign)
        method = draw(st.sampled_from(["update", "request_state", "custom"]) | st.text(max_size=6))
        state = draw(st.dictionaries(st.sampled_from(TRAITS) | st.text(max_size=8), ANY_JSON))
        data: dict[str, Any] = {"method": method, "state": state}
        if draw(st.booleans()):
            data["buffer_paths"] = draw(st.lists(st.lists(st.text(max_size=6) | st.integers())))
        if method == "custom":
            data["content"] = draw(ANY_JSON)
        message["data"] = draw(st.just(data) | ANY_JSON)
        if kind == "comm_open":
            message["target_name"] = draw(st.sampled_from(["jupyter.widget"]) | st.text())
            message["metadata"] = {"version": "2.1.0"}
    if kind == "submit":
        message["request_id"] = draw(st.uuids().map(str) | st.sampled_from(["r1", ""]) | ANY_JSON)
        if draw(st.booleans()):
            keys = st.sampled_from([json.dumps(item) for item in ITEMS]) | st.text(max_size=6)
            message["labels"] = draw(st.dictionaries(keys, st.sampled_from(CHOICES) | ANY_JSON))
            message["ahead"] = draw(st.lists(keys, max_size=3) | ANY_JSON)
    if kind == "draft":
        labels = st.dictionaries(st.text(max_size=6), st.sampled_from(CHOICES) | ANY_JSON)
        message["draft"] = draw(
            st.fixed_dictionaries({"labels": labels, "batch": ANY_JSON})
            | st.fixed_dictionaries({"answer": ANY_JSON})
            | ANY_JSON
        )
    return message


@st.composite
def frames(draw: st.DrawFn, page: Page, foreign: list[str], sent: list[Any]) -> tuple[str, Any]:
    """A frame to send, and what kind of fuzz it is."""
    kind = draw(
        st.sampled_from(
            ["message", "message", "message", "buffers", "text", "truncated", "json"]
            + ["binary", "layout", "replay", "nested"]
        )
    )
    if kind == "message":
        return kind, json.dumps(draw(protocol_message(page, foreign)))
    if kind == "buffers":
        message = draw(protocol_message(page, foreign))
        buffers = draw(st.lists(st.binary(max_size=16), min_size=1, max_size=3))
        return kind, encode(message, buffers)
    if kind == "text":
        return kind, draw(st.text())
    if kind == "truncated":
        whole = json.dumps(draw(protocol_message(page, foreign)))
        return kind, whole[: draw(st.integers(0, max(0, len(whole) - 1)))]
    if kind == "json":
        return kind, json.dumps(draw(ANY_JSON))
    if kind == "binary":
        return kind, draw(st.binary(max_size=64))
    if kind == "layout":
        count = draw(st.integers(0, 2000) | st.just(2**32 - 1))
        offsets = draw(st.lists(st.integers(0, 2**32 - 1), max_size=4))
        return kind, struct.pack(f"!{1 + len(offsets)}I", count, *offsets) + draw(st.binary())
    if kind == "replay":
        return kind, pick(draw, sent, '{"type": "ready"}')
    depth = draw(st.integers(50, 5000))
    return (
        "nested",
        '{"type": "comm_msg", "comm_id": "x", "data": ' + "[" * depth + "]" * depth + "}",
    )


@dataclass
class Figures:
    """What a socket fuzzing run did."""

    cases: int = 0
    kinds: Counter[str] = field(default_factory=Counter)
    refused: int = 0  # frames answered with a `reply_error` or `submit_error`
    submitted: int = 0
    closed: Counter[int] = field(default_factory=Counter)  # clean closes, by code


def check_frame(
    app: LiveApp, page: Page, frame: str | bytes, figures: Figures, too_big: bool = False
) -> None:
    """Send one frame, then the probe; assert what a user would notice."""
    before = app.snapshot()
    try:
        page.send(frame)
    except (websocket.WebSocketConnectionClosedException, ConnectionError):
        pass
    read, closed = page.probe()
    where = f"{page.stage}: {frame!r:.300} -> {read[-3:]!r:.600}"
    kinds = {message.get("type") for message in read}
    refusals = [m for m in read if m.get("type") in ("reply_error", "submit_error")]
    figures.refused += len(refusals) > (closed is None)  # the probe's own is one
    after = app.snapshot()
    if before != after:
        assert "submitted" in kinds, f"a frame changed what was saved: {where}"
        assert app.owners_of_changes(before, after) <= {page.person.user_id}, where
        figures.submitted += 1
    if closed is not None:
        clean = CLEAN_CLOSES | ({DROPPED} if too_big else set())
        assert closed in clean, f"closed with {closed}: {where}"
        figures.closed[closed] += 1
        page.connect()


def oversized(app: LiveApp, page: Page, figures: Figures) -> None:
    """A frame past the limit closes the socket with 1009 (too big); the page reconnects."""
    closes = sum(figures.closed.values())
    check_frame(app, page, "x" * (MAX_FRAME_BYTES + 1), figures, too_big=True)
    assert sum(figures.closed.values()) == closes + 1, "a frame over the limit was taken"
    _, closed = page.probe()
    assert closed is None, "the page could not open again after an oversized frame"


def fuzz_socket(app: LiveApp, cases: int, start: int = 0, oversized_frames: int = 0) -> Figures:
    """Send `cases` frames to a labeler's pages, another labeler's page named in them;
    then `oversized_frames` frames over the limit, each closing its page, which opens
    again."""
    alice = app.enter(LABELER, f"alice-{uuid.uuid4().hex[:6]}")
    bob = app.enter(LABELER, f"bob-{uuid.uuid4().hex[:6]}")
    victim = Page(app, bob, "name")
    pages = {stage: Page(app, alice, stage) for stage in PAGES}
    figures = Figures()
    sent: list[str | bytes] = []
    heard: list[dict[str, Any]] = []
    probed = [time.monotonic()]

    @seed(start)
    @settings(
        max_examples=cases,
        deadline=None,
        database=None,
        phases=("generate", "shrink"),
        suppress_health_check=list(HealthCheck),
    )
    @given(st.data())
    def one(data: st.DataObject) -> None:
        page = pages[data.draw(st.sampled_from(PAGES))]
        kind, frame = data.draw(frames(page, victim.comm_ids, sent))
        check_frame(app, page, frame, figures)
        if len(sent) < 200:
            sent.append(frame)
        figures.cases += 1
        figures.kinds[kind] += 1
        if time.monotonic() - probed[0] > PROBE_SECONDS:
            heard.extend(victim.probe()[0])
            probed[0] = time.monotonic()

    one()
    for number in range(oversized_frames):
        heard.extend(victim.probe()[0])
        oversized(app, pages[PAGES[number % len(PAGES)]], figures)
        figures.cases += 1
        figures.kinds["oversized"] += 1
    last, closed = victim.probe()
    heard += last
    assert closed is None, "the other labeler's page was closed"
    assert not [m for m in heard if m.get("type") == "comm_msg"], heard
    for page in [*pages.values(), victim]:
        page.close()
    return figures
