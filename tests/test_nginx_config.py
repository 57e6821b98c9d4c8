"""`nbfreeze deploy nginx` writes a site nginx accepts: every process in a round-robin
upstream, WebSockets upgraded, the forwarded headers set by nginx, TLS with plain HTTP
sent to HTTPS, the body limit and WebSocket-long timeouts; bad flags are refused with a
message naming the flag."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from proxy import check, main_config, self_signed

from runtime.nginx import Site, config

ROOT = Path(__file__).resolve().parents[1]


def deploy(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "freezer", "deploy", "nginx", *args]
    env = os.environ | {"PYTHONPATH": str(ROOT)}
    return subprocess.run(command, capture_output=True, text=True, env=env)


def directives(text: str, name: str) -> list[str]:
    return re.findall(rf"^\s*{name} (.*);$", text, re.M)


def test_every_process_is_in_the_upstream_and_none_is_sticky():
    text = config(Site(upstreams=("127.0.0.1:8001", "10.0.0.2:8001", "[::1]:8003")))
    upstream = re.search(r"upstream nbfreeze \{(.*?)\}", text, re.S).group(1)
    assert directives(upstream, "server") == [
        f"{address} max_fails=1 fail_timeout=10s"
        for address in ("127.0.0.1:8001", "10.0.0.2:8001", "[::1]:8003")
    ]
    for sticky in ("ip_hash", "hash ", "sticky", "least_conn"):
        assert sticky not in upstream


def test_websockets_are_upgraded_and_the_forwarded_headers_are_nginxs():
    text = config(Site(root_path="/labels/"))
    headers = dict(h.split(" ", 1) for h in directives(text, "proxy_set_header"))
    assert headers == {
        "Host": "$http_host",
        "X-Forwarded-For": "$proxy_add_x_forwarded_for",
        "X-Forwarded-Proto": "$scheme",
        "X-Forwarded-Host": "$http_host",
        "Upgrade": "$http_upgrade",
        "Connection": "$nbfreeze_connection",
    }
    assert directives(text, "proxy_http_version") == ["1.1"]
    assert directives(text, "proxy_read_timeout") == ["1h"]  # longer than a ping's 30 s
    # The prefix is passed on: no URI after the upstream, which would strip it.
    assert directives(text, "proxy_pass") == ["http://nbfreeze"]
    assert "location /labels/ {" in text and "return 301 /labels/;" in text


def test_a_dead_process_leaves_the_rotation_and_no_post_is_sent_twice():
    text = config(Site())
    # Connection errors and timeouts go to the next process; never a POST once sent.
    assert directives(text, "proxy_next_upstream") == ["error timeout"]
    assert "non_idempotent" not in text


def test_the_body_limit_is_the_servers_unless_told():
    assert directives(config(Site()), "client_max_body_size") == ["64k"]
    assert directives(config(Site(max_body="2m")), "client_max_body_size") == ["2m"]


def test_without_a_certificate_the_site_is_plain_http_on_its_port():
    text = config(Site(listen="127.0.0.1:8080"))
    assert directives(text, "listen") == ["127.0.0.1:8080"]
    assert "ssl_certificate" not in text and "return 301 https" not in text


def test_with_a_certificate_http_is_sent_to_https(tmp_path):
    site = Site(tls_cert="/etc/ssl/a.pem", tls_key="/etc/ssl/a.key", tls_listen="8443")
    text = config(site)
    assert directives(text, "listen") == ["80", "8443 ssl"]
    assert directives(text, "return") == ["301 https://$host:8443$request_uri"]
    assert directives(text, "ssl_certificate") == ["/etc/ssl/a.pem"]
    standard = config(Site(tls_cert="/etc/ssl/a.pem", tls_key="/etc/ssl/a.key"))
    assert directives(standard, "return") == ["301 https://$host$request_uri"]


@pytest.mark.nginx
def test_nginx_accepts_the_plain_and_the_tls_site(tmp_path):
    cert, key = self_signed(tmp_path)
    for site in (
        Site(listen="127.0.0.1:18080", root_path="/labels/", access_log=str(tmp_path / "a.log")),
        Site(
            upstreams=("127.0.0.1:8001", "127.0.0.1:8002"),
            server_names=("labels.example.org",),
            listen="127.0.0.1:18080",
            tls_listen="127.0.0.1:18443",
            tls_cert=str(cert),
            tls_key=str(key),
            access_log=str(tmp_path / "a.log"),
        ),
    ):
        verdict = check(main_config(tmp_path, config(site)))
        assert verdict.returncode == 0, verdict.stderr
        assert "test is successful" in verdict.stderr


def test_the_command_prints_or_writes_the_site(tmp_path):
    printed = deploy("--upstream", "127.0.0.1:8001", "--upstream", "127.0.0.1:8002")
    assert printed.returncode == 0, printed.stderr
    assert [d.split()[0] for d in directives(printed.stdout, "server")] == [
        "127.0.0.1:8001",
        "127.0.0.1:8002",
    ]
    written = deploy("--root-path", "labels", "-o", str(tmp_path / "nbfreeze"))
    assert written.returncode == 0, written.stderr
    assert "location /labels/ {" in (tmp_path / "nbfreeze").read_text()
    assert "nginx -t" in written.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--upstream", "localhost"], "--upstream 'localhost': expected HOST:PORT"),
        (["--tls-cert", "/etc/ssl/a.pem"], "--tls-cert and --tls-key go together"),
        (["--server-name", "a;b"], "--server-name 'a;b': expected a host name"),
        (["--max-body", "lots"], "--max-body 'lots': expected a size"),
        (["--root-path", "/a b/"], "is not a root path"),
        (["--listen", "80; evil"], "--listen '80; evil'"),
    ],
)
def test_a_bad_flag_is_refused_naming_it(args, message):
    refused = deploy(*args)
    assert refused.returncode == 1
    assert message in refused.stderr and "Traceback" not in refused.stderr
    assert refused.stdout == ""
