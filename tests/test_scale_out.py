"""Several server processes over one PostgreSQL, fifty labelers through the JSON API.

Every item of a 500-item pool with `overlap: 2` must end with exactly two labels from two
different labelers, and every submission the server acknowledged must be in the
database, also when one process is killed with SIGKILL halfway.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
from conftest import notebook_from
from databases import fresh_postgres_database
from sqlalchemy import create_engine, text
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from tornado.testing import bind_unused_port

ITEMS = 500
LABELERS = 50
CELLS = (
    "from freezer.widgets import ChoiceLabeler\n"
    f"items = {{i: f'item {{i}}' for i in range({ITEMS})}}",
    "#| stage: label\n#| input: pool\n#| overlap: 2\n#| batch: 5\n#| lease: 3s\n"
    "labeler = ChoiceLabeler(items, choices=['a', 'b'], render=str)\nlabeler",
    "#| stage: done\n#| show: true\nprint(len(labeler.labels))",
)


class Cluster:
    """`nbfreeze serve --workers 3` on PostgreSQL, as a real process tree."""

    def __init__(self, tmp: Path, url: str, workers: int) -> None:
        notebook = tmp / "pool.ipynb"
        nbformat.write(notebook_from(CELLS), notebook)
        sock, self.port = bind_unused_port()
        sock.close()
        command = [sys.executable, "-m", "freezer", "serve", str(notebook), "--db", url]
        command += ["--workers", str(workers), "--port", str(self.port)]
        self.process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
        )
        lines = []
        while not any(line.startswith("Ready.") for line in lines):
            line = self.process.stdout.readline()  # type: ignore[union-attr]
            assert line, "".join(lines)
            lines.append(line)
        self.invite = re.search(r"Invite:\s+\S+\?token=(\S+)", "".join(lines)).group(1)  # type: ignore[union-attr]
        self.workers = workers

    def children(self) -> list[int]:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            path = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
            found = [int(p) for p in path.read_text().split()]
            if len(found) == self.workers:
                return found
            time.sleep(0.2)
        raise AssertionError("the worker processes did not start")

    def stop(self) -> None:
        for child in self.children():
            os.kill(child, signal.SIGTERM)
        self.process.terminate()
        self.process.wait(timeout=30)


class Labeler:
    def __init__(self, cluster: Cluster, client: AsyncHTTPClient) -> None:
        self.base = f"http://127.0.0.1:{cluster.port}"
        self.client = client
        self.cookies: dict[str, str] = {}
        self.acknowledged: dict[str, list[str]] = {}  # request id -> item keys kept
        self.user = 0
        self.number = 0

    async def call(self, path: str, **kwargs) -> tuple[int, dict]:
        headers = {
            "Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items()),
            "X-XSRFToken": self.cookies.get("_xsrf", ""),
        }
        request = HTTPRequest(self.base + path, headers=headers, follow_redirects=False, **kwargs)
        try:
            response = await self.client.fetch(request, raise_error=False)
        except (OSError, HTTPClientError):  # the connection broke: its process was killed
            return 599, {}
        for header in response.headers.get_list("Set-Cookie"):
            name, _, rest = header.partition("=")
            self.cookies[name] = rest.split(";", 1)[0]
        try:
            return response.code, json.loads(response.body or b"{}")
        except ValueError:
            return response.code, {}

    async def work(self, invite: str) -> None:
        while not self.user:  # the process that let us in may be the one killed: again
            await self.call(f"/?token={invite}")
            status, stages = await self.call("/api/v1/stages")
            if status == 200:
                self.user = stages["user"]["id"]
            else:
                await asyncio.sleep(0.2)
        idle_rounds = 0
        while idle_rounds < 20:
            status, batch = await self.call("/api/v1/stages/label/batch")
            if status in (599, 502, 503):  # the process that served us died: ask another
                await asyncio.sleep(0.2)
                continue
            if status != 200 or not batch["items"]:
                idle_rounds += 1
                await asyncio.sleep(0.5)  # leases of others may still come back
                continue
            idle_rounds = 0
            self.number += 1
            request = f"{id(self)}-{self.number}"
            labels = {key: "a" if self.number % 2 else "b" for key in batch["items"]}
            body = json.dumps({"request_id": request, "labels": labels})
            for _ in range(5):
                status, reply = await self.call(
                    "/api/v1/stages/label/submit", method="POST", body=body
                )
                if status == 200:
                    late = set(reply.get("late", []))
                    self.acknowledged[request] = [key for key in labels if key not in late]
                    break
                if status != 599:
                    break
                await asyncio.sleep(0.2)


def run_labelers(cluster: Cluster, kill_one: bool) -> list[Labeler]:
    async def main() -> list[Labeler]:
        client = AsyncHTTPClient(max_clients=LABELERS)
        people = [Labeler(cluster, client) for _ in range(LABELERS)]
        tasks = [asyncio.ensure_future(p.work(cluster.invite)) for p in people]
        if kill_one:
            await asyncio.sleep(3)
            os.kill(cluster.children()[0], signal.SIGKILL)
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=600)
        return people

    return asyncio.run(main())


def check_database(url: str, people: list[Labeler]) -> None:
    engine = create_engine(url)
    with engine.connect() as connection:
        rows = connection.execute(
            text("SELECT item_key, user_id, request_id FROM annotations WHERE stage = 'label'")
        ).all()
    engine.dispose()
    per_item: dict[str, list[int]] = {}
    for key, user, _ in rows:
        per_item.setdefault(key, []).append(user)
    assert len(per_item) == ITEMS
    assert all(len(users) == 2 == len(set(users)) for users in per_item.values())
    saved = {(key, user) for key, user, _ in rows}
    for person in people:  # every label the server said it kept is in the database
        for keys in person.acknowledged.values():
            assert all((key, person.user) in saved for key in keys)


@pytest.mark.postgres
@pytest.mark.parametrize("kill_one", [False, True], ids=["all-alive", "one-killed"])
def test_three_processes_and_fifty_labelers_fill_the_pool_exactly(tmp_path, kill_one):
    url, drop = fresh_postgres_database()
    cluster = Cluster(tmp_path, url, workers=3)
    try:
        people = run_labelers(cluster, kill_one)
        check_database(url, people)
    finally:
        cluster.stop()
        drop()
