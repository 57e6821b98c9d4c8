"""Where an app lives on its server: its root path (`--root-path /labels/`).

A proxy passes the whole path on, prefix included (nginx's `proxy_pass` without a
URI), so the server answers under the same prefix whether a browser reaches it
through nginx or directly. Every path the app writes (a page's link, a redirect, an
API answer's `next`, a cookie's path) is an app path such as `/stage/check` put under
the root here, in one place, so handlers and templates keep writing app paths.
"""

from __future__ import annotations

import re
from typing import Any

import tornado.web

from runtime.host.request_log import Redacted

# Letters, digits and the few marks a URL path segment takes without escaping.
_SEGMENT = re.compile(r"[A-Za-z0-9._~-]+")


def root_path(text: str) -> str:
    """`text` as a root path that starts and ends with `/` (`labels` → `/labels/`), or
    a ValueError saying what a root path may hold."""
    segments = [part for part in text.strip().split("/") if part]
    for part in segments:
        if not _SEGMENT.fullmatch(part) or part in (".", ".."):
            raise ValueError(
                f"{text!r} is not a root path: give path segments of letters, digits, "
                "'.', '_', '~' and '-', such as /labels/"
            )
    return "/" + "".join(f"{part}/" for part in segments)


def under(root: str, path: str) -> str:
    """The app path `path` (`/stage/check`) as the browser asks for it under `root`;
    a full URL, or a path already under `root`, is left as it is."""
    if not path.startswith("/") or path.startswith("//") or root == "/":
        return path
    if path.startswith(root) or path == root[:-1]:
        return path
    return root + path[1:]


def rooted(root: str, routes: list[Any]) -> list[Any]:
    """Tornado `routes` (tuples whose first item is an app path pattern) served under
    `root`, and the root without its last slash sent to the root."""
    if root == "/":
        return routes
    moved = [(root + route[0][1:], *route[1:]) for route in routes]
    return [(re.escape(root[:-1]), tornado.web.RedirectHandler, {"url": root}), *moved]


class Rooted(Redacted):
    """A handler that writes app paths and has them put under the app's root: its
    redirects, its `url()`, and its cookies (scoped to the root, `Secure` when the
    request came over https, directly or through a trusted proxy)."""

    def url(self, path: str) -> str:
        return under(self.settings.get("root_path", "/"), path)

    def redirect(self, url: str, permanent: bool = False, status: int | None = None) -> None:
        super().redirect(self.url(url), permanent, status)

    def set_cookie(self, name: str, value: str | bytes, **kwargs: Any) -> None:  # type: ignore[override]
        kwargs["path"] = self.settings.get("root_path", "/")
        kwargs["secure"] = bool(kwargs.get("secure")) or self.request.protocol == "https"
        super().set_cookie(name, value, **kwargs)
