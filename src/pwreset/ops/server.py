"""uvicorn's HTTP protocol with deadlines for what it would otherwise wait on forever.

uvicorn times out an idle keep-alive connection, but not a request that arrives slowly: a client that
sends one header byte every ten seconds (slowloris), or announces a body and never sends it, holds a
connection and its request task for as long as it likes. This protocol arms a deadline while a
request's headers are being read (``PWRESET_HEADER_TIMEOUT``, from the first byte of the request, or
from the connection's opening) and another while its body is (``PWRESET_BODY_TIMEOUT``, from the end
of the headers); at either deadline the connection is answered 408 if nothing was answered yet, and
closed. Bodies larger than the API takes are refused from their ``Content-Length`` before they are
read (``api/operations.Call.body``).

It subclasses uvicorn's httptools protocol (uvicorn[standard]) and touches only the parser callbacks
and ``data_received``, which every uvicorn release since 0.30 has kept; ``tests/test_slow_clients.py``
checks the behaviour against a real server. ``pwreset serve`` and the sandbox select it; behind a
reverse proxy with its own timeouts (docs/operations.md) it costs nothing.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

_TIMEOUT_RESPONSE = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\nconnection: close\r\n"
    b"content-length: 62\r\n\r\n"
    b'{"code":"REQUEST_TIMEOUT","message":"the request was too slow"}'
)


def _seconds(name: str, default: float) -> float:
    try:
        value = float(os.environ.get(name, default))
    except ValueError:
        return default
    return value if value > 0 else default


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    #: Read from the environment once per process (the protocol is made per connection).
    header_timeout = _seconds("PWRESET_HEADER_TIMEOUT", 10.0)
    body_timeout = _seconds("PWRESET_BODY_TIMEOUT", 10.0)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self._reading_request = False
        self._in_headers = False

    def _arm(self, seconds: float) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, self._too_slow)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _too_slow(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        # 408 to a request not answered yet: one whose headers are still coming, or whose handler
        # waits for its body. One already answered (refused before its body was read) is just closed.
        if self._in_headers or (self.cycle is not None and not self.cycle.response_started):
            self.transport.write(_TIMEOUT_RESPONSE)
        self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._reading_request = self._in_headers = True
        self._arm(self.header_timeout)

    def data_received(self, data: bytes) -> None:
        if not self._reading_request:  # the first byte of the next request on a kept-alive connection
            self._reading_request = self._in_headers = True
            self._arm(self.header_timeout)
        super().data_received(data)

    def on_headers_complete(self) -> None:
        self._in_headers = False
        super().on_headers_complete()
        if self._reading_request:
            self._arm(self.body_timeout)

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._reading_request = False
        self._disarm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)
