"""ASGI apps the benchmarks serve.

``floor`` is the baseline every ratio is taken against: a bare ASGI callable returning a constant
JSON body, served by the same server with the same worker count. ``service`` is the real app with
one extra bearer-protected no-op route (``GET /v1/bench-noop``, scope institution-users:read), so
the bearer check, middleware and error mapping are all on the measured path.
"""

from __future__ import annotations

from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from pwreset.api.operations import Call, Operation
from pwreset.app import create_app
from pwreset.config import Settings
from pwreset.errors import Family, json_response
from pwreset.oauth.scopes import USERS_READ
from pwreset.ops.logs import configure_logging

BODY = b'{"status":"ok"}'
HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]


async def floor(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})


async def noop(call: Call) -> Response:
    return json_response({"status": "ok"})


NOOP = Operation("GET", "/v1/bench-noop", Family.UX_USERS, noop, "benchmark no-op", scopes=frozenset({USERS_READ}))


def service() -> ASGIApp:
    settings = Settings()
    configure_logging(settings.log_level, json=settings.log_json)
    return create_app(settings, extra_operations=[NOOP])
