"""Who really sent a request that came through a proxy, believed only of the proxy.

nginx tells the server the browser's address, scheme and host in `X-Forwarded-For`,
`-Proto` and `-Host`. Anyone can send those headers, so they count only on a request
whose connection comes from an address given with `--trusted-proxy`; Tornado's own
`xheaders` would believe them from everyone. Believed, they make `request.protocol`
`https` behind a proxy that terminates TLS, so the cookies are set `Secure`.
"""

from __future__ import annotations

import ipaddress
import re

import tornado.httputil
import tornado.netutil
import tornado.web

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_HOST = re.compile(r"[A-Za-z0-9.-]+(:[0-9]{1,5})?|\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?")


def network(text: str) -> Network:
    """A `--trusted-proxy` value (an address, or a network such as 10.0.0.0/8), or a
    ValueError saying what is expected."""
    try:
        return ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        raise ValueError(
            f"{text!r} is not a proxy's address: give an IP address such as 127.0.0.1 "
            "or a network such as 10.0.0.0/8"
        ) from None


def _within(address: str, trusted: tuple[Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in trusted)


def _last(value: str) -> str:
    """The value the nearest proxy added: the last of a comma-separated list."""
    return value.rsplit(",", 1)[-1].strip()


def believe(request: tornado.httputil.HTTPServerRequest, trusted: tuple[Network, ...]) -> None:
    """Take the browser's address, scheme and host from the `X-Forwarded-*` headers of
    `request` when its connection comes from a trusted proxy; else leave it alone."""
    if not trusted or not _within(request.remote_ip or "", trusted):
        return
    hops = [hop.strip() for hop in request.headers.get("X-Forwarded-For", "").split(",")]
    for hop in reversed(hops):  # the nearest first; the first one not a proxy is the browser
        if not tornado.netutil.is_valid_ip(hop):
            break
        request.remote_ip = hop
        if not _within(hop, trusted):
            break
    proto = _last(request.headers.get("X-Forwarded-Proto", "")).lower()
    if proto in ("http", "https"):
        request.protocol = proto
    host = _last(request.headers.get("X-Forwarded-Host", ""))
    if _HOST.fullmatch(host):
        request.host = host
        request.host_name = tornado.httputil.split_host_and_port(host.lower())[0]


class Application(tornado.web.Application):
    """A Tornado application that believes its trusted proxies (setting
    `trusted_proxies`, a tuple of networks) before it routes a request."""

    def find_handler(
        self, request: tornado.httputil.HTTPServerRequest, **kwargs: object
    ) -> tornado.web._HandlerDelegate:
        believe(request, self.settings.get("trusted_proxies", ()))
        return super().find_handler(request, **kwargs)
