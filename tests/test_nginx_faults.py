"""One process behind nginx killed with SIGKILL while fifty labelers work.

Debian's nginx runs the site `nbfreeze deploy nginx` wrote (plain round robin, no
stickiness) in front of `nbfreeze serve --workers 2` and a separate `nbfreeze serve`, all
on one PostgreSQL, as docs/deploy.md sets them up. Midway through a pool with `overlap:
2` one process is killed. Every submit that was answered 2xx must be in the database, no
item may get more labels than its overlap nor a labeler label an item twice, the pool
must finish through the processes left, the batches of labelers who left at the kill must
go to others once their lease runs out, and only requests in flight at the kill may fail
(nginx's 502, which the labelers send again with the same request id)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pytest
from browser import READY
from databases import fresh_postgres_database
from playwright.sync_api import expect
from proxy import Nginx, main_config, nginx_binary
from served import read_answer
from sqlalchemy import create_engine, text
from test_behind_nginx import ROOT, Process, free_port
from test_shared_freshness import bundle_of
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

ITEMS, OVERLAP, BATCH, LEASE_S = 500, 2, 5, 3
LABELERS = 50
WALKERS = 5  # labelers who leave at the kill, holding the batch they had leased
POOL = (
    "from freezer.widgets import ChoiceLabeler\n"
    f"items = {{i: f'item {{i}}' for i in range({ITEMS})}}",
    f"#| stage: label\n#| input: pool\n#| overlap: {OVERLAP}\n#| batch: {BATCH}\n"
    f"#| lease: {LEASE_S}s\n"
    "labeler = ChoiceLabeler(items, choices=['a', 'b'], render=str)\nlabeler",
    "#| stage: done\n#| show: true\nprint(f'{len(labeler.labels)} labeled')",
)
FAILED = (502, 504, 599)  # nginx found no process to answer, or the answer broke off
# A leased item goes to someone else once its lease has run out: the next batch asked for
# reclaims it. The labelers ask again every half second at most, so this is generous.
SLACK_S = 15


@dataclass
class Fleet:
    """nginx on `base`, and behind it `serve --workers 2` and a single `serve`."""

    base: str  # http://127.0.0.1:PORT/labels
    db: str
    workers: Process
    single: Process
    access_log: Path

    def children(self) -> list[int]:
        """The two processes `serve --workers 2` forked (it restarts one that dies)."""
        path = Path(f"/proc/{self.workers.process.pid}/task/{self.workers.process.pid}/children")
        for _ in range(150):  # while the parent forks them
            found = [int(pid) for pid in path.read_text().split()]
            if len(found) == 2:
                return found
            time.sleep(0.2)
        raise AssertionError("serve --workers 2 has not two processes")


@pytest.fixture
def fleet_of(tmp_path: Path) -> Iterator[Callable[[tuple[str, ...]], Fleet]]:
    """Start the processes of a notebook's bundle and nginx in front of them."""
    nginx_binary()
    db, drop = fresh_postgres_database()
    processes: list[Process] = []
    servers: list[Nginx] = []

    def start(cells: tuple[str, ...]) -> Fleet:
        bundle = bundle_of(tmp_path, cells)
        processes.append(Process(bundle, db, free_port(), "--workers", "2"))
        processes.append(Process(bundle, db, free_port()))
        port = free_port()
        site, access_log = tmp_path / "nbfreeze.conf", tmp_path / "access.log"
        deploy = [sys.executable, "-m", "freezer", "deploy", "nginx"]
        for process in processes:
            deploy += ["--upstream", process.address]
        deploy += ["--listen", f"127.0.0.1:{port}", "--root-path", "/labels/"]
        deploy += ["--access-log", str(access_log), "-o", str(site)]
        env = os.environ | {"PYTHONPATH": str(ROOT)}
        subprocess.run(deploy, check=True, capture_output=True, env=env)
        servers.append(Nginx(main_config(tmp_path, site.read_text()), port))
        return Fleet(
            f"http://127.0.0.1:{port}/labels",
            db,
            *processes,
            access_log,
        )

    try:
        yield start
    finally:
        for server in servers:
            server.stop()
        for process in processes:
            if process.process.poll() is None:
                process.stop()
        drop()


@dataclass
class Failure:
    """A request nginx could not get answered: when it was sent, and its status."""

    sent: float
    status: int


@dataclass
class Labeler:
    """A labeler through nginx by the JSON API, retrying as the page does: a submit that
    failed is sent again with the same request id, so it is saved once."""

    base: str
    client: AsyncHTTPClient
    walks_away: bool = False
    cookies: dict[str, str] = field(default_factory=dict)
    user: int = 0
    acknowledged: list[str] = field(default_factory=list)
    acknowledged_after_kill: int = 0
    failures: list[Failure] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    held: list[str] = field(default_factory=list)  # the batch left at the kill
    held_since: float = 0.0  # when it was leased (time.time())

    async def call(self, path: str, **kwargs) -> tuple[int, dict, dict]:
        """Status, JSON body and headers; 599 when the connection to nginx broke."""
        headers = {
            "Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items()),
            "X-XSRFToken": self.cookies.get("_xsrf", ""),
        }
        request = HTTPRequest(
            self.base + path, headers=headers, follow_redirects=False, request_timeout=120, **kwargs
        )
        sent = time.monotonic()
        try:
            response = await self.client.fetch(request, raise_error=False)
            status = response.code
        except (OSError, HTTPClientError):
            status = 599
        self.statuses.append(status)
        if status in FAILED:
            self.failures.append(Failure(sent, status))
            return status, {}, {}
        return status, *read_answer(response, self.cookies)

    async def enter(self, invite: str) -> None:
        while not self.user:
            await self.call(f"/?token={invite}")
            status, stages, _ = await self.call("/api/v1/stages")
            if status == 200:
                self.user = stages["user"]["id"]
            else:
                await asyncio.sleep(0.2)

    async def again(self, status: int, headers: dict) -> None:
        """Wait as the page does before sending a request again."""
        await asyncio.sleep(float(headers.get("Retry-After", 0.2)) if status == 503 else 0.2)

    async def submit(self, keys: list[str], number: int, killed: asyncio.Event) -> None:
        labels = {key: "ab"[number % 2] for key in keys}
        body = json.dumps({"request_id": f"{self.user}-{number}", "labels": labels})
        while True:
            status, reply, headers = await self.call(
                "/api/v1/stages/label/submit", method="POST", body=body
            )
            if status not in (*FAILED, 503):
                break
            await self.again(status, headers)
        assert status == 200, (status, reply)
        late = set(reply.get("late", []))
        self.acknowledged += [key for key in labels if key not in late]
        self.acknowledged_after_kill += killed.is_set()

    async def work(self, invite: str, killed: asyncio.Event) -> None:
        """Label batch after batch until the pool is complete."""
        await self.enter(invite)
        number = 0
        while True:
            status, batch, headers = await self.call("/api/v1/stages/label/batch")
            if status in (*FAILED, 503):
                await self.again(status, headers)
                continue
            if status == 409:  # the pool is finished
                return
            assert status == 200, (status, batch)
            if not batch["items"]:
                progress = batch["progress"]
                if progress["complete"] == progress["items"]:
                    return
                await asyncio.sleep(0.5)  # leases of others may still come back
                continue
            leased = time.time()
            if self.walks_away:
                await asyncio.sleep(0.3)  # they look at each batch a moment before labeling
            if self.walks_away and killed.is_set():
                self.held, self.held_since = [str(k) for k in batch["items"]], leased
                return
            number += 1
            await self.submit(batch["items"], number, killed)


@dataclass
class Run:
    """What the labelers saw, and when the process died (time.monotonic())."""

    people: list[Labeler]
    killed_at: float


def label_and_kill(fleet: Fleet, kill: Callable[[], None]) -> Run:
    """Fifty labelers through nginx; `kill` once a fifth of the labels are in."""

    async def main() -> Run:
        client = AsyncHTTPClient(max_clients=LABELERS, force_instance=True)
        people = [Labeler(fleet.base, client, walks_away=n < WALKERS) for n in range(LABELERS)]
        killed = asyncio.Event()
        tasks = [asyncio.ensure_future(p.work(fleet.workers.invite, killed)) for p in people]
        while sum(len(p.acknowledged) for p in people) < ITEMS * OVERLAP // 5:
            await asyncio.sleep(0.05)
        kill()
        killed_at = time.monotonic()
        killed.set()
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=600)
        client.close()
        return Run(people, killed_at)

    return asyncio.run(main())


def annotations(url: str) -> list[tuple[str, int, datetime]]:
    engine = create_engine(url)
    with engine.connect() as connection:
        rows = connection.execute(
            text("SELECT item_key, user_id, created_at FROM annotations WHERE stage = 'label'")
        ).all()
    engine.dispose()
    return [(key, user, at) for key, user, at in rows]


def kill_the_single_process(fleet: Fleet) -> None:
    fleet.single.process.send_signal(signal.SIGKILL)
    fleet.single.process.wait()


def kill_a_worker(fleet: Fleet) -> None:
    """SIGKILL one child of `serve --workers 2`, and wait until it is gone (a zombie, or
    already reaped by its parent): SIGKILL is delivered some time after `kill` returns."""
    pid = fleet.children()[0]
    os.kill(pid, signal.SIGKILL)
    stat = Path(f"/proc/{pid}/stat")
    while stat.exists():
        try:
            if stat.read_text().rsplit(")", 1)[1].split()[0] in "ZX":
                return
        except (FileNotFoundError, ProcessLookupError):
            return
        time.sleep(0.001)


@pytest.mark.postgres
@pytest.mark.nginx
@pytest.mark.parametrize(
    "kill", [kill_the_single_process, kill_a_worker], ids=["serve-killed", "worker-killed"]
)
def test_a_process_killed_behind_nginx_loses_no_label_and_the_labelers_go_on(fleet_of, kill):
    fleet = fleet_of(POOL)
    run = label_and_kill(fleet, lambda: kill(fleet))
    rows = annotations(fleet.db)

    # Every item has its overlap, from as many labelers, and no more.
    per_item: dict[str, list[int]] = {}
    for key, user, _ in rows:
        per_item.setdefault(key, []).append(user)
    assert len(per_item) == ITEMS
    assert all(len(users) == OVERLAP == len(set(users)) for users in per_item.values())
    # Every label the server acknowledged is in the database.
    saved = {(key, user) for key, user, _ in rows}
    for person in run.people:
        assert all((key, person.user) in saved for key in person.acknowledged)
    # The labelers went on through the processes left: most labels came after the kill.
    assert sum(p.acknowledged_after_kill for p in run.people) * BATCH > ITEMS
    assert not any(500 <= s < 600 and s not in FAILED for p in run.people for s in p.statuses)

    # The batches held at the kill by those who left went to others after their lease.
    walkers = [p for p in run.people if p.walks_away]
    assert all(p.held for p in walkers)
    full_at = {key: max(at for k, _, at in rows if k == key).timestamp() for key in per_item}
    for person in walkers:
        assert not any((key, person.user) in saved for key in person.held)
        for key in person.held:
            assert full_at[key] - person.held_since <= LEASE_S + SLACK_S, (key, person)

    # Only requests in flight at the kill failed: nginx took the dead process out of its
    # rotation at once, and each labeler had one request at a time.
    failures = [f for p in run.people for f in p.failures]
    assert len(failures) <= LABELERS
    assert all(f.sent <= run.killed_at for f in failures), [
        (f.sent - run.killed_at, f.status) for f in failures if f.sent > run.killed_at
    ]
    answered_by = set(re.findall(r"upstream=(\S+?),? ", fleet.access_log.read_text()))
    assert {fleet.workers.address, fleet.single.address} <= answered_by


PAGE_ITEMS, PAGE_BATCH = 12, 3
PAGE_POOL = (
    "from freezer.widgets import ChoiceLabeler\n"
    f"items = {{i: f'item {{i}}' for i in range({PAGE_ITEMS})}}",
    f"#| stage: label\n#| input: pool\n#| batch: {PAGE_BATCH}\n#| lease: 5m\n"
    "labeler = ChoiceLabeler(items, choices=['a', 'b'], render=str)\nlabeler",
    "#| stage: done\n#| show: true\nprint(f'{len(labeler.labels)} labeled')",
)
PAGE_TIMEOUT_MS = 60_000
SS_PEER = re.compile(r"^\d+\s+\d+\s+\S+:(\d+)\s+\S+.*pid=(\d+),")
SS_LASTRCV = re.compile(r"lastrcv:(\d+)")


def socket_holder(fleet: Fleet) -> int:
    """The process that last received something from nginx (the page's socket, right
    after the page sent over it): `ss` shows each connection's owner and quiet time."""
    ports = {int(p.address.rsplit(":", 1)[1]) for p in (fleet.workers, fleet.single)}
    lines = subprocess.run(
        ["ss", "-tnpiH", "state", "established"], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    quiet: dict[int, int] = {}
    for line, info in zip(lines, lines[1:], strict=False):
        peer, heard = SS_PEER.match(line), SS_LASTRCV.search(info)
        if peer and heard and int(peer.group(1)) in ports:
            pid = int(peer.group(2))
            quiet[pid] = min(quiet.get(pid, 1 << 60), int(heard.group(1)))
    return min(quiet, key=quiet.__getitem__)


@pytest.mark.postgres
@pytest.mark.nginx
@pytest.mark.browser
def test_a_submit_whose_process_died_behind_nginx_is_sent_again_and_saved_once(fleet_of, browser):
    fleet = fleet_of(PAGE_POOL)
    page = browser.new_context().new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{fleet.base}/?token={fleet.workers.invite}")
    page.wait_for_url("**/labels/welcome")
    page.get_by_label("Your name").fill("dana")
    page.get_by_role("button", name="Continue").click()
    page.wait_for_url("**/labels/stage/label")
    page.wait_for_function(READY, timeout=PAGE_TIMEOUT_MS)
    page.wait_for_timeout(1500)  # the page's loads behind it: only its socket speaks next
    page.locator(".nbfc-card").first.focus()
    for key in "2" * PAGE_BATCH:
        page.keyboard.press(key)
    page.get_by_text(f"{PAGE_BATCH} of {PAGE_BATCH} labeled").wait_for()
    page.wait_for_timeout(1000)  # the draft is sent once changes pause for half a second
    holder = socket_holder(fleet)

    # The process holding the page's socket dies as the labeler clicks Submit.
    os.kill(holder, signal.SIGSTOP)
    loads: list[str] = []
    page.on("load", lambda loaded: loads.append(loaded.url))
    page.get_by_role("button", name="Submit").click()
    page.wait_for_timeout(300)
    os.kill(holder, signal.SIGKILL)

    # The page reloads through nginx to a process left, its labels back, and sends the
    # Submit again by itself.
    status = page.locator(".nbf-submit-status")
    expect(status).to_have_text("Saved. Here is your next batch.", timeout=PAGE_TIMEOUT_MS)
    assert len(loads) == 1 and loads[0].endswith("/labels/stage/label")  # reloaded once
    expect(page.get_by_text("Reload the page to start again")).to_have_count(0)
    assert errors == []
    rows = annotations(fleet.db)
    assert len(rows) == PAGE_BATCH == len({key for key, _, _ in rows})
    page.context.close()
