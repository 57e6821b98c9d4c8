"""`nbfreeze serve` as a real subprocess for the benches: started, waited for until it
prints `Ready.`, and stopped with Ctrl-C however the bench ends. One loop, shared by
bench/pools.py and bench/dashboard.py, so both time a start the same way."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, all its threads."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Server:
    """A running server: its process, what it printed until `Ready.`, the seconds until
    then and until it started the shared stages, and the owner's and an invite token."""

    process: subprocess.Popen[bytes]
    log: str
    ready_seconds: float
    serving_seconds: float

    def token(self, who: str) -> str:
        """The token of the `Owner:` or `Invite:` link it printed."""
        return re.search(rf"{who}:\s+\S+\?token=(\S+)", self.log).group(1)


@contextmanager
def served(argv: list[str], directory: Path, timeout: float = 600.0) -> Iterator[Server]:
    """Run `argv` (an `nbfreeze serve` command) in `directory`, logging to server.log
    there; yield once it is ready; stop it (SIGINT, then kill after 30 s) at the end."""
    log_path = directory / "server.log"
    with open(log_path, "wb") as log:
        started = time.monotonic()
        process = subprocess.Popen(argv, cwd=directory, stdout=log, stderr=subprocess.STDOUT)
        try:
            serving = None
            while True:
                text = log_path.read_text(errors="replace")
                if serving is None and "Running the shared stages:" in text:
                    serving = time.monotonic() - started
                if "Ready." in text:
                    break
                if process.poll() is not None:
                    raise RuntimeError(f"the server exited:\n{text[-3000:]}")
                if time.monotonic() - started > timeout:
                    raise RuntimeError(f"not ready after {timeout:g} s:\n{text[-3000:]}")
                time.sleep(0.02)
            ready = time.monotonic() - started
            yield Server(process, text, ready, serving or ready)
        finally:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
