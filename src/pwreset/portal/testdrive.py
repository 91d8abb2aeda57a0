"""The test drive: one call of the API, made by the portal on the developer's behalf against their sandbox.

The call goes through the whole service in process (the same ASGI application, its middleware, dispatcher,
limits and audit), with a token the portal issued on the server; the browser sees the request without that
token, and the response as the service gave it.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
from starlette.types import ASGIApp

#: Response headers worth showing (the rest are the same on every answer).
SHOWN = ("content-type", "retry-after", "www-authenticate", "allow")
BODY_LIMIT = 8 * 1024
MAX_DEPTH = 32


class TrialRefused(ValueError):
    """Input the test drive will not send, with the field it concerns."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Trial:
    method: str
    target: str
    request_headers: list[tuple[str, str]]
    request_body: str | None
    status: int
    response_headers: list[tuple[str, str]]
    response_body: str
    elapsed_ms: float


def target_of(path: str, values: dict[str, str], query: dict[str, str]) -> str:
    """The path with its parameters filled in (each one path segment), and the query string."""
    filled = path
    for name, value in values.items():
        value = value.strip()
        if not value or len(value) > 200:
            raise TrialRefused(f"Enter {name} (at most 200 characters)", field=f"path_{name}")
        filled = filled.replace("{" + name + "}", quote(value, safe=""))
    pairs = [(k, v.strip()) for k, v in query.items() if v.strip()]
    if any(len(v) > 200 for _, v in pairs):
        raise TrialRefused("Use at most 200 characters", field="query")
    return filled + ("?" + "&".join(f"{quote(k)}={quote(v, safe='')}" for k, v in pairs) if pairs else "")


def parse_body(text: str) -> Any:
    if not text.strip():
        return None
    if len(text.encode()) > BODY_LIMIT:
        raise TrialRefused("The body is too large for the test drive (8 KB at most)", field="body")
    depth = 0
    for char in text:  # nesting is bounded before parsing (the parser recurses once per level)
        depth += char in "[{"
        if depth > MAX_DEPTH:
            raise TrialRefused(f"The body nests more than {MAX_DEPTH} levels deep", field="body")
        depth -= char in "]}"
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as error:
        raise TrialRefused(f"The body is not JSON: {error}", field="body") from None


async def call(
    app: ASGIApp, *, base_url: str, method: str, target: str, body: Any, token: str, institution_id: str
) -> Trial:
    headers = {"correlationId": str(uuid.uuid4()), "transactionId": str(uuid.uuid4()),
               "institutionId": institution_id, "Accept": "application/json"}
    sent_body = None if body is None else json.dumps(body, indent=2)
    if sent_body is not None:
        headers["Content-Type"] = "application/json"
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base_url) as client:
        started = time.perf_counter()
        response = await client.request(method, target, headers={**headers, "Authorization": f"Bearer {token}"},
                                        content=sent_body)
        elapsed = (time.perf_counter() - started) * 1000
    try:
        shown = json.dumps(response.json(), indent=2)
    except ValueError:
        shown = response.text[:4000]
    return Trial(
        method=method, target=target,
        request_headers=[("Authorization", "Bearer (a sandbox token issued on the server; not shown)"),
                         *headers.items()],
        request_body=sent_body, status=response.status_code,
        response_headers=[(k, v) for k, v in response.headers.items() if k.lower() in SHOWN],
        response_body=shown, elapsed_ms=round(elapsed, 1),
    )
