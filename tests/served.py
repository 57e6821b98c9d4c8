"""`nbfreeze serve` as a real process for fault tests, and labelers that use its JSON API
the way a page does: a submit answered 503 (or not answered: the process died) is sent
again, with the same request id, after its Retry-After."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

import nbformat
from conftest import notebook_from
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest, HTTPResponse
from tornado.testing import bind_unused_port


def free_port() -> int:
    sock, port = bind_unused_port()
    sock.close()
    return port


class Served:
    """One `nbfreeze serve` of a notebook, its terminal read line by line."""

    def __init__(self, notebook: Path, *flags: str, port: int | None = None) -> None:
        self.port = port or free_port()
        command = [sys.executable, "-m", "freezer", "serve", str(notebook)]
        command += ["--port", str(self.port), *flags]
        self.process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self.lines: list[str] = []
        self._new = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()
        text = self.wait_for("Ready.")
        self.owner = re.search(r"Owner:\s+\S+\?token=(\S+)", text).group(1)  # type: ignore[union-attr]
        self.invite = re.search(r"Invite:\s+\S+\?token=(\S+)", text).group(1)  # type: ignore[union-attr]

    def _read(self) -> None:
        for line in self.process.stdout:  # type: ignore[union-attr]
            with self._new:
                self.lines.append(line)
                self._new.notify_all()
        with self._new:
            self._new.notify_all()

    def wait_for(self, start: str) -> str:
        """The terminal so far, once a line starting with `start` is in it."""
        with self._new:
            for _ in range(600):  # a safety net against a hung test, not a time limit
                if any(line.startswith(start) for line in self.lines):
                    return "".join(self.lines)
                assert self.process.poll() is None, "".join(self.lines)
                self._new.wait(1)
        raise AssertionError(f"no line {start!r} in: {''.join(self.lines)}")

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> str:
        """SIGTERM, as a service manager stops it; the whole terminal."""
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=60)
        return "".join(self.lines)


def notebook(tmp: Path, cells: tuple[str, ...]) -> Path:
    path = tmp / "app.ipynb"
    nbformat.write(notebook_from(cells), path)
    return path


def read_answer(response: HTTPResponse, cookies: dict[str, str]) -> tuple[dict, dict]:
    """An answer's JSON body ({} when it has none) and headers, its cookies kept in
    `cookies` as a browser keeps them."""
    for header in response.headers.get_list("Set-Cookie"):
        name, _, rest = header.partition("=")
        cookies[name] = rest.split(";", 1)[0]
    try:
        body = json.loads(response.body or b"{}")
    except ValueError:
        body = {}
    return body, dict(response.headers)


class Person:
    """Someone with a link, through the JSON API: the cookies a browser would keep."""

    def __init__(self, port: int, client: AsyncHTTPClient) -> None:
        self.port = port
        self.client = client
        self.cookies: dict[str, str] = {}
        self.statuses: Counter[int] = Counter()

    async def call(self, path: str, **kwargs) -> tuple[int, dict, dict]:
        """Status, JSON body and headers; 599 when no answer came (the process died)."""
        headers = {
            "Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items()),
            "X-XSRFToken": self.cookies.get("_xsrf", ""),
        }
        request = HTTPRequest(
            f"http://127.0.0.1:{self.port}{path}",
            headers=headers,
            follow_redirects=False,
            request_timeout=120,
            **kwargs,
        )
        try:
            response = await self.client.fetch(request, raise_error=False)
        except (OSError, HTTPClientError):
            self.statuses[599] += 1
            return 599, {}, {}
        self.statuses[response.code] += 1
        return response.code, *read_answer(response, self.cookies)

    async def enter(self, token: str) -> int:
        """Open the link until the server answers; the person's user id."""
        while True:
            await self.call(f"/?token={token}")
            status, stages, _ = await self.call("/api/v1/stages")
            if status == 200:
                return stages["user"]["id"]
            await asyncio.sleep(0.2)


class Labeler(Person):
    """Labels a pool batch after batch until the pool is complete (or nothing came for
    `idle_rounds` half seconds), retrying as a page does; `acknowledged` holds the item
    keys of every submit answered 200."""

    def __init__(self, port: int, client: AsyncHTTPClient, stage: str = "label") -> None:
        super().__init__(port, client)
        self.stage = stage
        self.user = 0
        self.acknowledged: list[str] = []
        self.submits = 0
        self.retry_after_missing = 0

    async def again(self, status: int, headers: dict) -> None:
        if status == 503 and int(headers.get("Retry-After", "0")) <= 0:
            self.retry_after_missing += 1
        await asyncio.sleep(0.2)

    async def work(self, invite: str, idle_rounds: int = 20) -> None:
        self.user = self.user or await self.enter(invite)
        idle = 0
        while idle < idle_rounds:
            status, batch, headers = await self.call(f"/api/v1/stages/{self.stage}/batch")
            if status in (503, 599):
                await self.again(status, headers)
                continue
            if status == 200 and not batch["items"]:
                progress = batch["progress"]
                if progress["complete"] == progress["items"]:
                    return
            if status != 200 or not batch["items"]:
                idle += 1
                await asyncio.sleep(0.5)  # leases of others may still come back
                continue
            idle = 0
            self.submits += 1
            labels = {key: "a" if self.submits % 2 else "b" for key in batch["items"]}
            body = json.dumps({"request_id": f"{self.user}-{self.submits}", "labels": labels})
            while True:
                status, reply, headers = await self.call(
                    f"/api/v1/stages/{self.stage}/submit", method="POST", body=body
                )
                if status not in (503, 599):
                    break
                await self.again(status, headers)
            if status == 200:
                late = set(reply.get("late", []))
                self.acknowledged += [key for key in labels if key not in late]
