"""A local HTTP server that plays an SMS/voice/webhook provider, and a local SMTP server.

The HTTP fake records every request (method, path, headers, form or JSON body) and answers from a
script: a status (with optional headers), ``"timeout"`` (never answers until the test ends) or
``"drop"`` (closes the connection without an answer). With the script empty it answers 201 with a
Twilio-like ``sid``. It drops repeats of an ``Idempotency-Key`` it already accepted, as a provider
honouring the key would, and counts them.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web
from aiosmtpd.controller import Controller

from tests.servers import free_port


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    raw: bytes
    form: dict[str, str]
    json: Any


@dataclass
class FakeProvider:
    url: str = ""
    requests: list[Received] = field(default_factory=list)
    script: list[Any] = field(default_factory=list)
    accepted_keys: set[str] = field(default_factory=set)
    repeats: int = 0
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    #: From this many requests on, hold each one unanswered until ``release``, then answer 503
    #: (the client is gone by then: nothing was accepted).
    hold_after: int | None = None
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    _never: asyncio.Event = field(default_factory=asyncio.Event)

    async def until(self, predicate: Any) -> None:
        """Wait until ``predicate(self)`` holds; re-checked on every request and acceptance."""
        async with self.changed:
            await self.changed.wait_for(lambda: predicate(self))

    async def _notify(self) -> None:
        async with self.changed:
            self.changed.notify_all()

    def answer(self, *answers: Any) -> None:
        self.script.extend(answers)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        content_type = request.headers.get("Content-Type", "")
        form = dict(parse_qsl(raw.decode())) if "form" in content_type else {}
        body = json.loads(raw) if "json" in content_type else None
        self.requests.append(Received(request.method, request.path, dict(request.headers), raw, form, body))
        self.arrived.set()
        await self._notify()
        answer = self.script.pop(0) if self.script else 201
        if self.hold_after is not None and len(self.requests) > self.hold_after:
            await self._never.wait()
            return web.Response(status=503)
        if answer == "timeout":
            await self._never.wait()
        if answer == "drop":
            assert request.transport is not None
            request.transport.close()
            return web.Response(status=500)
        status, headers = answer if isinstance(answer, tuple) else (answer, {})
        if 200 <= status < 300:
            key = request.headers.get("Idempotency-Key")
            if key in self.accepted_keys:
                self.repeats += 1
            elif key:
                self.accepted_keys.add(key)
            await self._notify()
        return web.json_response({"sid": f"SM{len(self.requests):032d}"}, status=status, headers=headers)

    def release(self) -> None:
        self._never.set()


@asynccontextmanager
async def _serving(app: web.Application) -> AsyncIterator[str]:
    """``app`` on a free local port, for as long as the block runs; its base URL."""
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@asynccontextmanager
async def fake_provider() -> AsyncIterator[FakeProvider]:
    fake = FakeProvider()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", fake.handle)
    async with _serving(app) as fake.url:
        try:
            yield fake
        finally:
            fake.release()


@dataclass
class Mailbox:
    """What a local SMTP server received; ``refuse`` answers RCPT with a code (e.g. 450 or 550)."""

    messages: list[EmailMessage] = field(default_factory=list)
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)
    refuse: str | None = None
    loop: asyncio.AbstractEventLoop | None = None
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    ehlos: list[str] = field(default_factory=list)  # one per connection

    async def handle_EHLO(self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]):
        self.ehlos.append(hostname)
        session.host_name = hostname
        return responses

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        if self.refuse:
            return self.refuse
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(message, EmailMessage)
        self.messages.append(message)
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        if self.loop is not None:
            self.loop.call_soon_threadsafe(self.arrived.set)
        return "250 2.0.0 Ok: queued as FAKE1"


@asynccontextmanager
async def smtp_server(**controller_options: Any) -> AsyncIterator[tuple[Mailbox, int]]:
    """aiosmtpd in its own thread, on a free port."""
    mailbox = Mailbox(loop=asyncio.get_running_loop())
    port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port, **controller_options)
    await asyncio.to_thread(controller.start)
    try:
        yield mailbox, port
    finally:
        await asyncio.to_thread(controller.stop)


@dataclass
class FakeCamara:
    """A carrier's CAMARA SIM Swap API: ``POST /token`` (client credentials) and ``POST /check``."""

    url: str = ""
    swapped: set[str] = field(default_factory=set)
    #: An HTTP status (or "timeout") to answer ``/check`` with instead of a verdict.
    failure: int | str | None = None
    checks: list[dict[str, Any]] = field(default_factory=list)
    tokens_issued: int = 0
    client: tuple[str, str] = ("camara-client", "camara-secret")
    _never: asyncio.Event = field(default_factory=asyncio.Event)

    async def token(self, request: web.Request) -> web.Response:
        form = dict(parse_qsl((await request.read()).decode()))
        expected = "Basic " + base64.b64encode(f"{self.client[0]}:{self.client[1]}".encode()).decode()
        if request.headers.get("Authorization") != expected or form.get("grant_type") != "client_credentials":
            return web.json_response({"error": "invalid_client"}, status=401)
        self.tokens_issued += 1
        return web.json_response({"access_token": f"carrier-token-{self.tokens_issued}", "token_type": "Bearer",
                                  "expires_in": 3600})

    async def check(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer carrier-token-{self.tokens_issued}":
            return web.json_response({"status": 401, "code": "UNAUTHENTICATED"}, status=401)
        body = await request.json()
        self.checks.append(body)
        if self.failure == "timeout":
            await self._never.wait()
        if isinstance(self.failure, int):
            return web.json_response({"status": self.failure, "code": "ERROR"}, status=self.failure)
        return web.json_response({"swapped": body["phoneNumber"] in self.swapped})


@asynccontextmanager
async def camara_server() -> AsyncIterator[FakeCamara]:
    fake = FakeCamara()
    app = web.Application()
    app.router.add_post("/token", fake.token)
    app.router.add_post("/sim-swap/v2/check", fake.check)
    async with _serving(app) as fake.url:
        try:
            yield fake
        finally:
            fake._never.set()
