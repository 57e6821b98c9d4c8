"""Two `nbfreeze serve` processes on one database, and no sticky sessions.

What one process changes in the shared stages (the owner's answer, a pool closed) must
be what the other answers from at once: the next request a labeler sends to the other
process finds the next stage open (or a retryable 503 first), never a 409 from that
process's older view, and a pool closed by one is closed on the other.
"""

from __future__ import annotations

import html
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
from conftest import notebook_from
from tornado.httpclient import HTTPClient, HTTPRequest
from tornado.testing import bind_unused_port

ROOT = Path(__file__).resolve().parent.parent
ROUNDS = 5
ITEMS = 6


def rounds_notebook() -> tuple[str, ...]:
    """An owner stage, a compute stage after it, and a labeler's stage after that, for
    each round."""
    cells = ["from ipywidgets import Checkbox, IntSlider"]
    for k in range(ROUNDS):
        cells += [
            f"#| stage: thresholds{k}\n#| input: owner\n#| title: Distance thresholds {k}\n"
            f"slider{k} = IntSlider(value=1)\nslider{k}",
            f"#| stage: limit{k}\nlimit{k} = slider{k}.value * 2",
            f"#| stage: host{k}\n#| input: each\n#| title: Is it the host? {k}\n"
            f"host{k} = Checkbox(description=f'within {{limit{k}}}')\nhost{k}",
        ]
    return tuple(cells)


POOL_NOTEBOOK = (
    "from freezer.widgets import ChoiceLabeler\n"
    f"items = {{i: f'item {{i}}' for i in range({ITEMS})}}",
    f"#| stage: label\n#| input: pool\n#| batch: {ITEMS}\n"
    "labeler = ChoiceLabeler(items, choices=['a', 'b'], render=str)\nlabeler",
    "#| stage: after\n#| show: true\nprint(len(labeler.labels))",
)


class Server:
    """One `nbfreeze serve` process of this worktree's code, serving `bundle`."""

    def __init__(self, bundle: Path, url: str) -> None:
        sock, port = bind_unused_port()
        sock.close()
        self.base = f"http://127.0.0.1:{port}"
        command = [sys.executable, "-m", "freezer", "serve", str(bundle), "--db", url]
        command += ["--port", str(port)]
        env = os.environ | {"PYTHONPATH": str(ROOT)}
        self.process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env
        )
        lines: list[str] = []
        while not any(line.startswith("Ready.") for line in lines):
            line = self.process.stdout.readline()  # type: ignore[union-attr]
            assert line, "".join(lines)
            lines.append(line)
        printed = "".join(lines)
        self.owner = re.search(r"Owner:\s+\S+\?token=(\S+)", printed).group(1)  # type: ignore[union-attr]
        self.invite = re.search(r"Invite:\s+\S+\?token=(\S+)", printed).group(1)  # type: ignore[union-attr]

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


class Person:
    """Someone with their cookies, who may send each request to either process."""

    def __init__(self, client: HTTPClient, server: Server, token: str) -> None:
        self.client = client
        self.cookies: dict[str, str] = {}
        self.call(server, f"/?token={token}")
        self.call(server, "/api/v1/stages")  # the _xsrf cookie
        self.requests = 0

    def call(self, server: Server, path: str, body: dict | None = None) -> tuple[int, dict]:
        headers = {
            "Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items()),
            "X-XSRFToken": self.cookies.get("_xsrf", ""),
        }
        request = HTTPRequest(
            server.base + path,
            method="GET" if body is None else "POST",
            body=None if body is None else json.dumps(body),
            headers=headers,
            follow_redirects=False,
        )
        response = self.client.fetch(request, raise_error=False)
        for header in response.headers.get_list("Set-Cookie"):
            name, _, rest = header.partition("=")
            self.cookies[name] = rest.split(";", 1)[0]
        if response.code == 503:
            assert response.headers.get("Retry-After"), "a 503 says when to ask again"
        try:
            return response.code, json.loads(response.body or b"{}")
        except ValueError:
            return response.code, {}

    def submit(self, server: Server, name: str, state: dict) -> dict:
        self.requests += 1
        body = {"request_id": f"r{self.requests}", **state}
        status, reply = self.call(server, f"/api/v1/stages/{name}/submit", body)
        assert status == 200, reply
        return reply

    def until_answered(self, server: Server, path: str) -> tuple[int, dict]:
        """The answer to `path` once it is not a 503 (the process bringing its shared
        stages up to date), as a page asks again after the Retry-After."""
        for _ in range(100):
            status, reply = self.call(server, path)
            if status != 503:
                return status, reply
            time.sleep(reply.get("retry_after", 1))
        raise AssertionError(f"{path} stayed unavailable")


def bundle_of(tmp: Path, cells: tuple[str, ...]) -> Path:
    notebook = tmp / "app.ipynb"
    nbformat.write(notebook_from(cells), notebook)
    bundle = tmp / "app.nbfreeze"
    command = [sys.executable, "-m", "freezer", "build", str(notebook), "-o", str(bundle)]
    subprocess.run(command, check=True, env=os.environ | {"PYTHONPATH": str(ROOT)})
    return bundle


@pytest.fixture
def two_servers(request, tmp_path: Path, database_url: str):
    bundle = bundle_of(tmp_path, request.param)
    servers = [Server(bundle, database_url), Server(bundle, database_url)]
    try:
        yield servers
    finally:
        for server in servers:
            server.stop()


@pytest.mark.postgres
@pytest.mark.parametrize("two_servers", [rounds_notebook()], indirect=True, ids=["rounds"])
def test_owner_answer_on_one_process_opens_the_next_stage_on_the_other(two_servers):
    client = HTTPClient()
    first, second = two_servers
    owner = Person(client, first, first.owner)
    labeler = Person(client, first, first.invite)
    for k in range(ROUNDS):
        a, b = (first, second) if k % 2 == 0 else (second, first)
        status, page = labeler.call(b, f"/api/v1/stages/host{k}")
        assert status == 409 and "waits for" in page["error"], page  # not open before
        owner.submit(a, f"thresholds{k}", {"state": {"": {"value": k + 3}}})
        status, page = labeler.until_answered(b, f"/api/v1/stages/host{k}")
        assert status == 200, f"round {k}: {page}"
        assert page["state"] == "open"
        # The other process replayed the owner's answer: the labeler's answer is checked
        # against the stages after it, run there.
        reply = labeler.submit(b, f"host{k}", {"state": {"": {"value": True}}})
        assert reply["next"] != f"/stage/host{k}"
    client.close()


@pytest.mark.postgres
@pytest.mark.parametrize("two_servers", [POOL_NOTEBOOK], indirect=True, ids=["pool"])
def test_pool_closed_on_one_process_is_closed_on_the_other(two_servers):
    client = HTTPClient()
    a, b = two_servers
    owner = Person(client, a, a.owner)
    labeler = Person(client, a, a.invite)
    status, batch = labeler.call(b, "/api/v1/stages/label/batch")
    assert status == 200 and len(batch["items"]) == ITEMS
    labeler.submit(a, "label", {"labels": dict.fromkeys(batch["items"], "a")})
    for _ in range(100):  # the process that took the last labels closes the pool
        _, pipeline = owner.until_answered(a, "/api/v1/pipeline")
        if pipeline["stages"]["label"]["state"] == "done":
            break
        time.sleep(0.1)
    else:
        raise AssertionError("the pool did not close")
    status, page = labeler.until_answered(b, "/api/v1/stages/label")
    assert page.get("state") != "open", page
    status, pages = labeler.until_answered(b, "/api/v1/stages")
    states = {stage["name"]: stage["state"] for stage in pages["stages"]}
    assert states == {"label": "done", "after": "open"}
    assert pages["next"] == "/stage/after"
    client.close()


GOLD_NOTEBOOK = (
    "from freezer.widgets import ChoiceLabeler\nitems = {f't{i}': f'text {i}' for i in range(4)}"
    "\nanswers = {'t0': 'good', 't1': 'good'}",
    # Half of each batch gold: each labeler's batch of 4 is both gold items and t2, t3.
    "#| stage: label\n#| input: pool\n#| overlap: 3\n#| batch: 4\n#| gold: answers\n"
    "#| gold_rate: 0.5\nlabeler = ChoiceLabeler(items, choices=['good', 'bad'])\nlabeler",
    "#| stage: report\n#| show: true\nprint(sorted(labeler.labels.items()))",
)


def reported(person: Person, server: Server) -> str:
    """What the report after the pool shows on `server` with the labels so far."""
    status, preview = person.until_answered(server, "/api/v1/stages/label/preview")
    assert status == 200, preview
    return html.unescape("".join(preview["stages"]["report"]))


def left_out(person: Person, server: Server) -> tuple[float | None, list[bool]]:
    """The floor `server`'s dashboard shows, and whom it shows as left out."""
    status, data = person.until_answered(server, "/api/v1/dashboard")
    gold = next(stage for stage in data["stages"] if stage["name"] == "label")["gold"]
    return gold["floor"], [labeler["left_out"] for labeler in gold["labelers"]]


@pytest.mark.postgres
@pytest.mark.parametrize("two_servers", [GOLD_NOTEBOOK], indirect=True, ids=["gold"])
def test_a_floor_set_on_one_process_changes_the_merge_the_other_serves(two_servers):
    client = HTTPClient()
    a, b = two_servers
    owner = Person(client, a, a.owner)
    for label in ("bad", "good"):  # a sloppy labeler, then a careful one
        labeler = Person(client, a, a.invite)
        status, batch = labeler.call(a, "/api/v1/stages/label/batch")
        assert status == 200 and len(batch["items"]) == 4, batch
        labeler.submit(a, "label", {"labels": dict.fromkeys(batch["items"], label)})
    assert "('t2', 'bad')" in reported(owner, b)  # a tie keeps the first label
    assert left_out(owner, b) == (None, [False, False])
    status, reply = owner.call(a, "/api/v1/stages/label/floor", {"floor": 0.5})
    assert status == 200, reply
    assert "('t2', 'good'), ('t3', 'good')" in reported(owner, b)
    assert left_out(owner, b) == (0.5, [True, False])
    status, reply = owner.call(b, "/api/v1/stages/label/floor", {"floor": None})
    assert status == 200, reply
    assert "('t2', 'bad')" in reported(owner, a)
    assert left_out(owner, a) == (None, [False, False])
    client.close()
