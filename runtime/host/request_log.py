"""What the server's logs say of a request: never the token of a link. A log is read by
more people than the links are for, and an invite or owner token in it lets them in."""

from __future__ import annotations

import re
from types import TracebackType

import tornado.httputil
import tornado.web
from tornado.log import app_log

_TOKEN = re.compile(r"(?<=[?&])token=[^&#]*")


def request_summary(request: tornado.httputil.HTTPServerRequest) -> str:
    """A request as the log shows it: method, address and caller, a link's token left out."""
    return f"{request.method} {_TOKEN.sub('token=…', request.uri or '')} ({request.remote_ip})"


class Redacted(tornado.web.RequestHandler):
    """A handler whose log lines leave a link's token out, those of its errors too
    (Tornado's own print the whole request, its address with the token)."""

    def _request_summary(self) -> str:
        return request_summary(self.request)

    def log_exception(
        self,
        typ: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if isinstance(value, tornado.web.HTTPError):
            super().log_exception(typ, value, tb)  # a warning line, by _request_summary
            return
        app_log.error("Uncaught exception %s", self._request_summary(), exc_info=(typ, value, tb))
