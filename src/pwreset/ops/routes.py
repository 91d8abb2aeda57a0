"""Health, readiness and the API description (wire contract section 9)."""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable

import yaml
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from pwreset.config import Settings
from pwreset.errors import json_response
from pwreset.ops.metrics import metrics_endpoint

log = logging.getLogger(__name__)
Endpoint = Callable[[Request], Awaitable[Response]]


async def healthz(request: Request) -> Response:
    return json_response({"status": "ok"})


async def readyz(request: Request) -> Response:
    try:
        await request.app.state.services.db.ping()
    except Exception as exc:
        log.warning("not ready: database unreachable (%s)", type(exc).__name__)
        return json_response({"status": "unavailable", "database": "unreachable"}, 503)
    return json_response({"status": "ready", "database": "ok"})


async def openapi(request: Request) -> Response:
    return json_response(request.app.state.openapi)


async def openapi_yaml(request: Request) -> Response:
    """The same document as YAML, rendered once per process."""
    state = request.app.state
    if getattr(state, "openapi_yaml", None) is None:
        state.openapi_yaml = yaml.safe_dump(state.openapi, sort_keys=False, allow_unicode=True)
    return Response(state.openapi_yaml, media_type="application/yaml")


async def docs(request: Request) -> Response:
    """The API's documentation: the portal's catalogue, rendered here from /openapi.json (no CDN, no script)."""
    return RedirectResponse("/portal/apis", status_code=302)


def protected_metrics(token: str) -> Endpoint:
    """/metrics behind ``Authorization: Bearer <PWRESET_METRICS_TOKEN>`` (compared in constant time)."""
    expected = f"Bearer {token}".encode()

    async def endpoint(request: Request) -> Response:
        given = request.headers.get("authorization", "").encode("latin-1", "replace")
        if not hmac.compare_digest(given, expected):
            return json_response({"code": "UNAUTHORIZED", "message": "metrics need the metrics token"}, 401,
                                 {"WWW-Authenticate": 'Bearer realm="pwreset-metrics"'})
        return await metrics_endpoint(request)

    return endpoint


def routes(settings: Settings) -> list[Route]:
    """Health always; /metrics unless it has its own port, behind its token if one is set; the API
    description unless turned off (PWRESET_DOCS=false)."""
    out = [Route("/healthz", healthz, methods=["GET"]), Route("/readyz", readyz, methods=["GET"])]
    if settings.metrics_port is None:
        token = settings.metrics_token
        out.append(Route("/metrics", protected_metrics(token.get_secret_value()) if token else metrics_endpoint,
                         methods=["GET"]))
    if settings.docs:
        out += [
            Route("/openapi.json", openapi, methods=["GET"]),
            Route("/openapi.yaml", openapi_yaml, methods=["GET"]),
            Route("/docs", docs, methods=["GET"]),
        ]
    return out
