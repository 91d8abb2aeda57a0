"""One pure-ASGI middleware: tracing id for the logs, access log line, request metrics, and the
security headers every response carries.

Pure ASGI on purpose: Starlette's BaseHTTPMiddleware costs a task and a stream per request.

Headers (issue 12, item 11): ``X-Content-Type-Options: nosniff``, ``Referrer-Policy: no-referrer``,
``Cache-Control: no-store`` unless the response chose its own (API responses carry tokens, profiles,
full phone numbers and balances: nothing may be kept by a cache on the way), ``Strict-Transport-
Security`` outside the sandbox, and on HTML a Content-Security-Policy unless the page set its own.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pwreset.api.operations import ROUTE_TEMPLATE
from pwreset.audit import origin
from pwreset.kit.tracing import trace_id
from pwreset.ops.access import AccessLog
from pwreset.ops.metrics import HTTP_LATENCY, HTTP_REQUESTS

_TRACE_HEADERS = (b"correlationid", b"transactionid")
#: The policy of an HTML page that sets none: nothing loads, nothing frames it.
DEFAULT_CSP = b"default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
HSTS = (b"strict-transport-security", b"max-age=31536000; includeSubDomains")


def security_headers(*, hsts: bool) -> list[tuple[bytes, bytes]]:
    headers = [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer"),
               (b"x-frame-options", b"DENY")]
    return [*headers, HSTS] if hsts else headers


class RequestContextMiddleware:
    def __init__(
        self, app: ASGIApp, *, access_log: AccessLog | None = None, headers: list[tuple[bytes, bytes]] | None = None
    ) -> None:
        self.app = app
        self.access_log = access_log
        self.headers = headers if headers is not None else security_headers(hsts=True)
        # Labelled children, looked up once: prometheus_client's labels() takes a lock per call.
        self._counters: dict[tuple[str, str, int], Any] = {}
        self._histograms: dict[str, Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        trace = None
        agent = None
        for name, value in scope["headers"]:
            if name in _TRACE_HEADERS and trace is None:
                trace = value.decode("latin-1")[:64]
            elif name == b"user-agent":
                agent = value
        token = trace_id.set(trace or uuid.uuid4().hex)
        where = origin.current.set(origin.from_scope(scope.get("client"), agent))
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", ()))
                cache = html = csp = framed = False
                for name, value in headers:
                    lowered = name.lower()
                    if lowered == b"cache-control":
                        cache = True
                    elif lowered == b"content-type":
                        html = value.startswith(b"text/html")
                    elif lowered == b"content-security-policy":
                        csp = True
                        # a page whose own policy lets named sites frame it (the reset page, per
                        # institution): X-Frame-Options cannot name them, so it is left out
                        framed = b"frame-ancestors" in value and b"frame-ancestors 'none'" not in value
                headers += [h for h in self.headers if not (framed and h[0] == b"x-frame-options")]
                if not cache:
                    headers.append((b"cache-control", b"no-store"))
                if html and not csp:
                    headers.append((b"content-security-policy", DEFAULT_CSP))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            elapsed = time.perf_counter() - started
            template = str(scope.get(ROUTE_TEMPLATE) or getattr(scope.get("route"), "path", "unmatched"))
            key: tuple[str, str, int] = (scope["method"], template, status)
            counter = self._counters.get(key)
            if counter is None:
                counter = self._counters[key] = HTTP_REQUESTS.labels(key[0], template, str(status))
            counter.inc()
            histogram = self._histograms.get(template)
            if histogram is None:
                histogram = self._histograms[template] = HTTP_LATENCY.labels(template)
            histogram.observe(elapsed)
            if self.access_log is not None:
                self.access_log.write(scope["method"], template, status, elapsed, trace_id.get())
            trace_id.reset(token)
            origin.current.reset(where)
