"""Prometheus metrics. With several workers, set PROMETHEUS_MULTIPROC_DIR (docs/operations.md)."""

from __future__ import annotations

import os

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest, multiprocess
from starlette.requests import Request
from starlette.responses import Response

HTTP_REQUESTS = Counter(
    "pwreset_http_requests_total", "HTTP requests by route and status", ["method", "route", "status"]
)
HTTP_LATENCY = Histogram(
    "pwreset_http_request_duration_seconds", "HTTP request latency by route", ["route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
TOKENS_ISSUED = Counter("pwreset_tokens_issued_total", "Access tokens issued", ["grant_type"])
DEPENDENCY_UNAVAILABLE = Counter(
    "pwreset_dependency_unavailable_total", "Requests answered 503 because the database or Redis was unavailable"
)
VELOCITY_LIMITED = Counter(
    "pwreset_velocity_limited_total", "Requests refused by a per-client or per-institution velocity limit", ["limit"]
)
AUTH_FAILURES_REFUSED = Counter(
    "pwreset_auth_failures_refused_total", "Failed authentications answered 429 (over the limit)", ["subject"]
)


async def metrics_endpoint(request: Request) -> Response:
    if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        data = generate_latest(registry)
    else:
        data = generate_latest()
    return Response(data, media_type=CONTENT_TYPE_LATEST)
