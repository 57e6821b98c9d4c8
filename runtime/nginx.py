"""The nginx site that puts nbfreeze processes behind one address (`nbfreeze deploy nginx`).

nginx hands each request to the next process in turn (round robin, no stickiness: any
process serves any labeler, docs/serving.md), upgrades the stage pages' WebSockets,
tells the processes who asked (`X-Forwarded-For`, `-Proto`, `-Host`, which they believe
of the addresses given to `nbfreeze serve --trusted-proxy` alone), terminates TLS and
sends plain HTTP to HTTPS. The path is passed on as it is, root path included, so the
processes are started with the same `--root-path` (docs/deploy.md).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from runtime.urls import root_path

UPSTREAM = "nbfreeze"  # the upstream's name, and the prefix of the site's other names
# A host (a name, an IPv4 address or a bracketed IPv6 one) and a port.
_ADDRESS = re.compile(r"([A-Za-z0-9.-]+|\[[0-9A-Fa-f:]+\]):[0-9]{1,5}")
_LISTEN = re.compile(r"(([A-Za-z0-9.-]+|\[[0-9A-Fa-f:]+\]):)?[0-9]{1,5}")
_SERVER_NAME = re.compile(r"[A-Za-z0-9*_.-]+")
_SIZE = re.compile(r"[0-9]+[kKmM]?")
_PATH = re.compile(r"[^\s;{}'\"\\$#]+")  # a file path nginx reads as one word


@dataclass(frozen=True)
class Site:
    """What the site serves and how: the processes' addresses, the names and ports it
    answers on, the certificate, the root path, the body limit and the access log."""

    upstreams: tuple[str, ...] = ("127.0.0.1:8866",)
    server_names: tuple[str, ...] = ("_",)
    listen: str = "80"
    tls_listen: str = "443"
    tls_cert: str | None = None
    tls_key: str | None = None
    root_path: str = "/"
    max_body: str = "64k"  # the server's own limit (runtime.server.MAX_BODY_BYTES)
    access_log: str = "/var/log/nginx/nbfreeze.access.log"

    def __post_init__(self) -> None:
        object.__setattr__(self, "root_path", root_path(self.root_path))
        if not self.upstreams:
            raise ValueError("--upstream: give the address of at least one nbfreeze process")
        _check("--upstream", self.upstreams, _ADDRESS, "HOST:PORT, such as 127.0.0.1:8866")
        _check(
            "--server-name",
            self.server_names,
            _SERVER_NAME,
            "a host name such as labels.example.org",
        )
        _check(
            "--listen", (self.listen, self.tls_listen), _LISTEN, "PORT or ADDRESS:PORT, such as 443"
        )
        _check("--max-body", (self.max_body,), _SIZE, "a size such as 64k or 1m")
        given = [p for p in (self.tls_cert, self.tls_key) if p is not None]
        if len(given) == 1:
            raise ValueError("--tls-cert and --tls-key go together: give both, or neither")
        _check("--tls-cert/--tls-key/--access-log", (*given, self.access_log), _PATH, "a file path")

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None


def _check(flag: str, values: tuple[str, ...], pattern: re.Pattern[str], expected: str) -> None:
    for value in values:
        if not pattern.fullmatch(value):
            raise ValueError(f"{flag} {value!r}: expected {expected}")


def config(site: Site) -> str:
    """The nginx configuration of `site`, for nginx's `http` block (a file in Debian's
    /etc/nginx/sites-available/)."""
    names = " ".join(site.server_names)
    servers = "".join(
        f"    server {address} max_fails=1 fail_timeout=10s;\n" for address in site.upstreams
    )
    head = f"""# nbfreeze behind nginx, written by `nbfreeze deploy nginx` (docs/deploy.md).

# Every process, in turn: any of them serves any labeler, so no stickiness is needed.
# A process that fails one request (it died: its connection refused or broken) is left
# out of the rotation for 10 s, then tried again by one request; a refused connection
# costs that request nothing, as nginx passes it to the next process.
upstream {UPSTREAM} {{
{servers}    keepalive 32;
}}

# A stage page's WebSocket is upgraded; other requests keep their upstream connection.
map $http_upgrade ${UPSTREAM}_connection {{
    default upgrade;
    '' '';
}}

# Which process answered each request: upstream=ADDRESS.
log_format {UPSTREAM} '$remote_addr [$time_local] "$request" $status $body_bytes_sent '
                    'upstream=$upstream_addr $request_time';
"""
    if site.tls:
        port = site.tls_listen.rsplit(":", 1)[-1]
        authority = "$host" if port == "443" else f"$host:{port}"
        head += f"""
# Plain HTTP goes to HTTPS.
server {{
    listen {site.listen};
    server_name {names};
    return 301 https://{authority}$request_uri;
}}
"""
    tls = (
        f"""    ssl_certificate {site.tls_cert};
    ssl_certificate_key {site.tls_key};
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_cache shared:{UPSTREAM}:10m;
"""
        if site.tls
        else ""
    )
    root = site.root_path
    bare = (
        f"    location = {root[:-1]} {{\n        return 301 {root};\n    }}\n"
        if root != "/"
        else ""
    )
    return (
        head
        + f"""
server {{
    listen {site.tls_listen + " ssl" if site.tls else site.listen};
    server_name {names};
{tls}    access_log {site.access_log} {UPSTREAM};
    # The processes refuse bodies over 64 KiB themselves; nginx says 413 first.
    client_max_body_size {site.max_body};
    # Redirects keep the address the browser used.
    absolute_redirect off;

{bare}    location {root} {{
        # The path goes on as it is, {root} included: serve with --root-path {root}.
        proxy_pass http://{UPSTREAM};
        proxy_http_version 1.1;
        proxy_set_header Host $http_host;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header X-Forwarded-Proto $scheme;
        proxy_set_header X-Forwarded-Host $http_host;
        proxy_set_header Upgrade $http_upgrade;
        proxy_set_header Connection ${UPSTREAM}_connection;
        proxy_connect_timeout 5s;
        # A request whose process could not be reached goes to the next one. Once sent, a
        # POST is not sent again (nginx's default): a labeler's page sends it again itself
        # where that is safe, and a submit's request id makes it saved once.
        proxy_next_upstream error timeout;
        # A WebSocket stays open for a labeler's whole session (the server pings it
        # every 30 s), and the owner's notebook download runs the notebook first.
        proxy_read_timeout 1h;
        proxy_send_timeout 1h;
    }}
}}
"""
    )
