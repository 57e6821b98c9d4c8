"""What a request says of itself through a proxy is believed of trusted proxies alone:
the browser's address (the last in `X-Forwarded-For` that is not a trusted proxy), its
scheme and the host it asked for."""

from __future__ import annotations

from tornado.httputil import HTTPHeaders, HTTPServerRequest

from runtime.forwarded import believe, network

NGINX = (network("127.0.0.1"), network("10.0.0.0/8"))


def request(peer: str, **headers: str) -> HTTPServerRequest:
    made = HTTPServerRequest(
        method="GET",
        uri="/labels/",
        headers=HTTPHeaders(
            {"Host": "127.0.0.1:8001"} | {k.replace("_", "-"): v for k, v in headers.items()}
        ),
    )
    made.remote_ip = peer
    return made


def test_a_trusted_proxy_gives_the_browsers_address_scheme_and_host():
    told = request(
        "127.0.0.1",
        X_Forwarded_For="203.0.113.9",
        X_Forwarded_Proto="https",
        X_Forwarded_Host="labels.example.org",
    )
    believe(told, NGINX)
    assert (told.remote_ip, told.protocol, told.host) == (
        "203.0.113.9",
        "https",
        "labels.example.org",
    )
    assert told.host_name == "labels.example.org"


def test_an_address_the_browser_wrote_itself_is_passed_over():
    # The browser sent "6.6.6.6"; nginx appended the address it saw, then a second
    # trusted proxy appended nginx's.
    told = request("127.0.0.1", X_Forwarded_For="6.6.6.6, 198.51.100.7, 10.1.2.3")
    believe(told, NGINX)
    assert told.remote_ip == "198.51.100.7"


def test_anyone_else_changes_nothing():
    forged = request(
        "192.0.2.50",
        X_Forwarded_For="127.0.0.1",
        X_Forwarded_Proto="https",
        X_Forwarded_Host="evil.example.org",
    )
    believe(forged, NGINX)
    assert (forged.remote_ip, forged.protocol, forged.host) == (
        "192.0.2.50",
        "http",
        "127.0.0.1:8001",
    )
    untrusting = request("127.0.0.1", X_Forwarded_Proto="https")
    believe(untrusting, ())  # no --trusted-proxy: nobody is believed
    assert untrusting.protocol == "http"


def test_values_that_are_not_a_scheme_or_a_host_are_ignored():
    odd = request("127.0.0.1", X_Forwarded_Proto="gopher", X_Forwarded_Host="a b/c")
    believe(odd, NGINX)
    assert (odd.protocol, odd.host) == ("http", "127.0.0.1:8001")
