"""Behind Debian's nginx, as docs/deploy.md sets it up: two `nbfreeze serve` processes on
one PostgreSQL under `--root-path /labels/`, nginx in front with the site `nbfreeze
deploy nginx` wrote, TLS from a certificate openssl made, plain round robin. A labeler
walks a pool through the proxy, by the API, over a stage page's WebSocket and in
Chromium, and nginx's log shows both processes answered them."""

from __future__ import annotations

import asyncio
import os
import re
import ssl
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from browser import READY
from databases import fresh_postgres_database
from playwright.sync_api import expect
from proxy import Nginx, main_config, nginx_binary, self_signed
from runtime_harness import Page
from test_shared_freshness import Person, bundle_of
from tornado.httpclient import HTTPClient, HTTPRequest
from tornado.testing import bind_unused_port
from tornado.websocket import websocket_connect

ROOT = Path(__file__).resolve().parent.parent
ITEMS, BATCH = 12, 3
POOL = (
    "from freezer.widgets import ChoiceLabeler\n"
    f"items = {{i: f'item {{i}}' for i in range({ITEMS})}}",
    f"#| stage: label\n#| input: pool\n#| batch: {BATCH}\n"
    "labeler = ChoiceLabeler(items, choices=['a', 'b'], render=str)\nlabeler",
    "#| stage: after\n#| show: true\nprint(f'{len(labeler.labels)} labeled')",
)
ANSWER_TIMEOUT_MS = 20_000


def free_port() -> int:
    sock, port = bind_unused_port()
    sock.close()
    return port


class Process:
    """`nbfreeze serve` as docs/deploy.md starts it behind nginx."""

    def __init__(self, bundle: Path, db: str, port: int, *flags: str) -> None:
        self.address = f"127.0.0.1:{port}"
        command = [sys.executable, "-m", "freezer", "serve", str(bundle), "--db", db]
        command += ["--port", str(port), "--root-path", "/labels/"]
        command += ["--trusted-proxy", "127.0.0.1", *flags]
        env = os.environ | {"PYTHONPATH": str(ROOT)}
        self.process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env
        )
        lines: list[str] = []
        while not any(line.startswith("Ready.") for line in lines):
            line = self.process.stdout.readline()  # type: ignore[union-attr]
            assert line, "".join(lines)
            lines.append(line)
        self.printed = "".join(lines)
        self.owner = re.search(r"Owner:\s+\S+\?token=(\S+)", self.printed).group(1)  # type: ignore[union-attr]
        self.invite = re.search(r"Invite:\s+\S+\?token=(\S+)", self.printed).group(1)  # type: ignore[union-attr]

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


@dataclass
class Proxied:
    """The app as people reach it: nginx's addresses, the processes behind it."""

    base: str  # https://127.0.0.1:PORT/labels, as Person takes it
    plain: str  # http://127.0.0.1:PORT
    processes: list[Process]
    cert: Path
    log: Path

    def upstreams(self) -> set[str]:
        """The processes nginx's log says answered."""
        return set(re.findall(r"upstream=(\S+)", self.log.read_text()))


@pytest.fixture
def proxied(tmp_path: Path) -> Iterator[Proxied]:
    nginx_binary()
    db, drop = fresh_postgres_database()
    bundle = bundle_of(tmp_path, POOL)
    processes: list[Process] = []
    server = None
    try:
        processes = [Process(bundle, db, free_port()) for _ in range(2)]
        cert, key = self_signed(tmp_path)
        plain, tls = free_port(), free_port()
        log = tmp_path / "access.log"
        site = tmp_path / "nbfreeze.conf"
        deploy = [sys.executable, "-m", "freezer", "deploy", "nginx"]
        for process in processes:
            deploy += ["--upstream", process.address]
        deploy += ["--listen", f"127.0.0.1:{plain}", "--tls-listen", f"127.0.0.1:{tls}"]
        deploy += ["--tls-cert", str(cert), "--tls-key", str(key), "--root-path", "/labels/"]
        deploy += ["--access-log", str(log), "-o", str(site)]
        env = os.environ | {"PYTHONPATH": str(ROOT)}
        subprocess.run(deploy, check=True, capture_output=True, env=env)
        server = Nginx(main_config(tmp_path, site.read_text()), tls)
        yield Proxied(
            f"https://127.0.0.1:{tls}/labels", f"http://127.0.0.1:{plain}", processes, cert, log
        )
    finally:
        if server is not None:
            server.stop()
        for process in processes:
            process.stop()
        drop()


def label_a_batch(proxied: Proxied, labeler: Person) -> set[str]:
    """Ask for a batch and label it, through nginx, each call to either process."""
    _, batch = labeler.until_answered(proxied, "/api/v1/stages/label/batch")  # type: ignore[arg-type]
    assert len(batch["items"]) == BATCH, batch
    reply = labeler.submit(proxied, "label", {"labels": dict.fromkeys(batch["items"], "a")})  # type: ignore[arg-type]
    assert reply["next"] == "/labels/stage/label"
    return {str(item) for item in batch["items"]}


async def socket_shows_a_batch(proxied: Proxied, person: Person) -> set[str]:
    """Open the pool's stage page socket through nginx (wss), as the page does: the
    items its widget shows."""
    origin = proxied.base.rsplit("/labels", 1)[0]
    request = HTTPRequest(
        proxied.base.replace("https", "wss", 1) + "/api/v1/ws?stage=label",
        headers={
            "Cookie": "; ".join(f"{k}={v}" for k, v in person.cookies.items()),
            "Origin": origin,
        },
        ssl_options=ssl.create_default_context(cafile=str(proxied.cert)),
    )
    page = Page(await websocket_connect(request), 0)
    await page.until_idle()
    keys = [m["_keys"] for m in page.models.values() if isinstance(m.get("_keys"), list)]
    page.ws.close()
    return {str(key) for key in keys[0]} if keys else set()


def walk_by_the_api(proxied: Proxied) -> None:
    """The HTTP client's part: the redirect to HTTPS, the cookie, an invite link, two
    batches by the API and the stage page's socket in between."""
    client = HTTPClient(defaults={"ca_certs": str(proxied.cert)})
    first = proxied.processes[0]

    # Plain HTTP is sent to HTTPS, the path and the token kept.
    response = client.fetch(
        f"{proxied.plain}/labels/?token={first.invite}", follow_redirects=False, raise_error=False
    )
    assert response.code == 301
    assert response.headers["Location"] == f"{proxied.base}/?token={first.invite}"

    # nginx said https, from an address the processes trust: the cookie is Secure.
    entered = client.fetch(
        f"{proxied.base}/?token={first.invite}", follow_redirects=False, raise_error=False
    )
    assert entered.code == 302 and entered.headers["Location"] == "/labels/welcome"
    cookie = next(c for c in entered.headers.get_list("Set-Cookie") if c.startswith("nbfreeze_"))
    assert "; Secure" in cookie and "Path=/labels/" in cookie

    owner = Person(client, proxied, first.owner)  # type: ignore[arg-type]
    _, made = owner.call(proxied, "/api/v1/invites", {"name": "bob"})  # type: ignore[arg-type]
    assert made["link"].startswith(f"{proxied.base}/?token=")

    labeler = Person(client, proxied, first.invite)  # type: ignore[arg-type]
    _, stages = labeler.until_answered(proxied, "/api/v1/stages")  # type: ignore[arg-type]
    assert stages["next"] == "/labels/stage/label"
    label_a_batch(proxied, labeler)
    # The stage page's socket through the proxy: the session shows the labeler's next
    # batch, which the API then hands the same labeler.
    shown = asyncio.run(socket_shows_a_batch(proxied, labeler))
    assert len(shown) == BATCH
    assert label_a_batch(proxied, labeler) == shown
    # The page held the batch after that one too (ChoiceLabeler holds a batch ahead):
    # the API hands it to the same labeler next, and they label it.
    assert len(label_a_batch(proxied, labeler) & shown) == 0
    client.close()


@pytest.mark.postgres
@pytest.mark.nginx
@pytest.mark.browser
def test_a_labeler_walks_a_pool_through_nginx_to_two_processes(proxied, browser):
    # Playwright holds this thread's event loop: the HTTP client and the socket get a
    # thread of their own.
    with ThreadPoolExecutor(1) as thread:
        thread.submit(walk_by_the_api, proxied).result()

    # In Chromium: the invite link, the welcome page, the last batch, and the next page.
    first = proxied.processes[0]
    context = browser.new_context(ignore_https_errors=True)
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{proxied.base}/?token={first.invite}")
    page.wait_for_url("**/labels/welcome")
    page.get_by_label("Your name").fill("carol")
    page.get_by_role("button", name="Continue").click()
    page.wait_for_url("**/labels/stage/label")
    page.wait_for_function(READY, timeout=ANSWER_TIMEOUT_MS)
    page.locator(".nbfc-card").first.focus()
    for key in "2" * BATCH:
        page.keyboard.press(key)
    page.get_by_text(f"{BATCH} of {BATCH} labeled").wait_for()
    page.get_by_role("button", name="Submit").click()  # over the socket, through nginx
    # The last labels close the pool: the page goes on to the stage after it.
    page.wait_for_url("**/labels/stage/after", timeout=ANSWER_TIMEOUT_MS)
    page.get_by_text(f"{ITEMS} labeled").wait_for()

    # The owner's dashboard reads its figures from the API under the root path.
    owner = browser.new_context(ignore_https_errors=True).new_page()
    owner.on("pageerror", lambda error: errors.append(str(error)))
    owner.goto(f"{proxied.base}/?token={first.owner}")  # the owner's cookie
    owner.goto(f"{proxied.base}/owner")
    labels = owner.get_by_role("img", name="Labels given", exact=False)
    expect(labels).to_have_attribute(
        "aria-label", f"Labels given: {ITEMS} of {ITEMS} labels (100%)", timeout=ANSWER_TIMEOUT_MS
    )
    assert errors == []
    owner.context.close()
    context.close()

    assert proxied.upstreams() == {p.address for p in proxied.processes}
