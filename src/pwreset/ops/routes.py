"""Health, readiness and the API description (wire contract section 9)."""

from __future__ import annotations

import logging

import yaml
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from pwreset.api.openapi import SWAGGER_HTML
from pwreset.errors import json_response
from pwreset.ops.metrics import metrics_endpoint

log = logging.getLogger(__name__)


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
    return HTMLResponse(SWAGGER_HTML)


ROUTES = [
    Route("/healthz", healthz, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
    Route("/metrics", metrics_endpoint, methods=["GET"]),
    Route("/openapi.json", openapi, methods=["GET"]),
    Route("/openapi.yaml", openapi_yaml, methods=["GET"]),
    Route("/docs", docs, methods=["GET"]),
]
