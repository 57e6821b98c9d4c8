"""Debian's nginx for the tests: a site written by `nbfreeze deploy nginx`, in a main
configuration of the test's own (loopback ports, pid, logs and temporary files in the
test's directory, `daemon off`), never the system's service; and a self-signed
certificate made by openssl."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

NGINX = Path("/usr/sbin/nginx")


def nginx_binary() -> Path:
    if not NGINX.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{NGINX} is missing under CI: the nginx tests cannot run")
        pytest.skip(f"{NGINX} is missing")
    return NGINX


def main_config(directory: Path, site: str) -> Path:
    """`site` (an `http`-block file) in a main configuration that keeps everything
    nginx writes inside `directory`."""
    (directory / "site.conf").write_text(site)
    temp = directory / "temp"
    temp.mkdir(exist_ok=True)
    paths = "\n".join(
        f"    {kind}_temp_path {temp / kind};" for kind in ("client_body", "proxy", "fastcgi")
    )
    main = directory / "nginx.conf"
    main.write_text(
        f"""daemon off;
worker_processes 1;
pid {directory / "nginx.pid"};
error_log {directory / "error.log"} info;
events {{ worker_connections 256; }}
http {{
{paths}
    uwsgi_temp_path {temp / "uwsgi"};
    scgi_temp_path {temp / "scgi"};
    include {directory / "site.conf"};
}}
"""
    )
    return main


def check(main: Path) -> subprocess.CompletedProcess[str]:
    """`nginx -t` on the configuration: its verdict and messages."""
    command = [str(nginx_binary()), "-t", "-c", str(main), "-p", str(main.parent)]
    return subprocess.run(command, capture_output=True, text=True)


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, made by openssl."""
    openssl = shutil.which("openssl")
    assert openssl, "openssl is needed to make the test's certificate"
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2"]
        + ["-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1"]
        + ["-addext", "subjectAltName=IP:127.0.0.1"],
        check=True,
        capture_output=True,
    )
    return cert, key


class Nginx:
    """nginx running `main` in the foreground until `stop()`."""

    def __init__(self, main: Path, port: int) -> None:
        command = [str(nginx_binary()), "-c", str(main), "-p", str(main.parent)]
        self.process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
        for _ in range(200):  # until it listens
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    return
            assert self.process.poll() is None, self.process.stderr.read()  # type: ignore[union-attr]
            time.sleep(0.05)
        raise AssertionError(f"nginx did not listen on {port}")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)
