"""``create_app(settings)``: every route under both URL styles, middleware, errors, lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from typing import cast

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from pwreset.accounts.routes import OPERATIONS as ACCOUNT_OPERATIONS
from pwreset.api.openapi import build_openapi
from pwreset.api.operations import Operation, OperationDispatcher, routes
from pwreset.config import Settings
from pwreset.container import Container, build_container
from pwreset.customers.routes import OPERATIONS as CUSTOMER_OPERATIONS
from pwreset.errors import json_response
from pwreset.oauth.routes import OPERATIONS as OAUTH_OPERATIONS
from pwreset.ops.access import AccessLog
from pwreset.ops.deployment import claim
from pwreset.ops.logs import configure_logging
from pwreset.ops.middleware import RequestContextMiddleware, security_headers
from pwreset.ops.routes import routes as ops_routes
from pwreset.portal.routes import routes as portal_routes
from pwreset.resets.routes import OPERATIONS as RESET_OPERATIONS
from pwreset.web.routes import routes as reset_page_routes

log = logging.getLogger(__name__)


def all_operations() -> list[Operation]:
    return [*OAUTH_OPERATIONS, *CUSTOMER_OPERATIONS, *RESET_OPERATIONS, *ACCOUNT_OPERATIONS]


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}.get(exc.status_code, "HTTP_ERROR")
    return json_response({"code": code, "message": str(exc.detail)}, exc.status_code, exc.headers)


def create_app(
    settings: Settings,
    *,
    container: Container | None = None,
    extra_operations: Sequence[Operation] = (),
    background: bool = True,
) -> ASGIApp:
    """The ASGI application. ``background=False`` skips the revocation feed's loop (unit tests)."""
    services = container or build_container(settings)
    operations = [*all_operations(), *extra_operations]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        tasks = []
        # Before the first request: a production process on a sandbox database (or the reverse) stops here.
        await claim(services.db, sandbox=settings.sandbox, clock=services.clock)
        if background:
            tasks.append(asyncio.create_task(services.feed.run(), name="revocation-feed"))
            if settings.inprocess_worker:
                tasks.append(asyncio.create_task(services.worker.run(), name="delivery"))
            if not settings.sandbox and settings.metrics_port is None and settings.metrics_token is None:
                log.warning("/metrics is served on the API port to anyone; set PWRESET_METRICS_TOKEN or "
                            "PWRESET_METRICS_PORT (docs/operations.md)")
            console = [channel for channel, p in services.worker.providers.items() if p.name == "console"]
            if console and not settings.sandbox:
                log.warning(
                    "console delivery for %s: those messages are printed with their text withheld and "
                    "customers receive nothing; set PWRESET_EMAIL_PROVIDER, PWRESET_SMS_PROVIDER and "
                    "PWRESET_VOICE_PROVIDER", ", ".join(console),
                )
        try:
            yield
        finally:
            services.feed.stop()
            services.worker.stop()
            for task in tasks:
                await task
            await services.close()

    portal = portal_routes(services) if settings.docs or settings.portal_institution_id else []
    app = Starlette(
        routes=[*ops_routes(settings), *portal, *reset_page_routes(services), *routes(operations)],
        exception_handlers={HTTPException: _http_error},
        lifespan=lifespan,
    )
    # No redirect from /path/ to /path: Starlette builds it from the Host header, which a caller chooses.
    app.router.redirect_slashes = False
    app.state.services = services
    app.state.openapi = build_openapi(operations)
    access_log = AccessLog(json=settings.log_json) if settings.access_log else None
    wrapped = RequestContextMiddleware(
        OperationDispatcher(app, operations), access_log=access_log,
        headers=security_headers(hsts=not settings.sandbox),  # (the sandbox is served over plain HTTP)
    )
    app.state.asgi = wrapped  # the whole application, for the portal's test drive to call in process
    # The client's address through the trusted proxies (X-Forwarded-For), for limits and the audit trail;
    # uvicorn's own middleware, in the app so every way of serving it (serve, the factory, the sandbox)
    # believes the same proxies.
    proxied = ProxyHeadersMiddleware(wrapped, trusted_hosts=settings.trusted_proxies)  # type: ignore[arg-type]
    return cast(ASGIApp, proxied)


def create_app_from_env() -> ASGIApp:
    """Entry point for ``uvicorn --factory`` and ``pwreset serve``: settings from the environment."""
    settings = Settings()
    configure_logging(settings.log_level, json=settings.log_json)
    return create_app(settings)
