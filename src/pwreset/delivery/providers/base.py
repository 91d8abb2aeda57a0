"""The port every delivery adapter implements, and how provider answers are classified.

An adapter returns :class:`Accepted` when the provider took the message, raises
:class:`TransientFailure` when trying again later may work (timeouts, dropped connections, 5xx,
408, 429 with its ``Retry-After``), and :class:`PermanentFailure` when it will not (other 4xx, a
refused recipient). Every send carries the message id as its idempotency key.
"""

from __future__ import annotations

from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import httpx


@dataclass(frozen=True)
class Outgoing:
    """A rendered message, ready for a provider."""

    id: str  # also the idempotency key
    institution_id: str
    institution_name: str
    kind: str
    channel: str
    destination: str
    language: str
    subject: str | None
    text: str
    html: str | None = None


@dataclass(frozen=True)
class Accepted:
    provider_ref: str | None = None


class DeliveryFailure(Exception):
    permanent = False

    def __init__(self, reason: str, *, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason[:500]
        self.retry_after = retry_after


class TransientFailure(DeliveryFailure):
    pass


class PermanentFailure(DeliveryFailure):
    permanent = True


class Provider(Protocol):
    name: str

    async def send(self, message: Outgoing) -> Accepted: ...

    async def close(self) -> None: ...


def retry_after(value: str | None, *, now: float) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - now)
    except (TypeError, ValueError):
        return None


def check_http(response: httpx.Response, *, now: float) -> None:
    """Raise the failure an HTTP answer means; return for any 2xx."""
    status = response.status_code
    if 200 <= status < 300:
        return
    detail = f"HTTP {status}"
    if status in (408, 429) or status >= 500:
        raise TransientFailure(detail, retry_after=retry_after(response.headers.get("retry-after"), now=now))
    raise PermanentFailure(detail)


async def post(
    client: httpx.AsyncClient, url: str, *, now: float, **kwargs: object
) -> httpx.Response:
    """POST and classify: transport errors and timeouts are transient."""
    import httpx

    try:
        response = await client.post(url, **kwargs)  # type: ignore[arg-type]
    except httpx.TimeoutException:
        raise TransientFailure("timeout") from None
    except httpx.TransportError as error:
        raise TransientFailure(f"connection failed: {type(error).__name__}") from None
    check_http(response, now=now)
    return response
