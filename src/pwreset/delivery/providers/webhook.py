"""A generic webhook, for institutions with their own SMS, voice or email gateway.

``POST PWRESET_WEBHOOK_URL`` with a JSON body: ``messageId``, ``institutionId``, ``channel``,
``kind``, ``destination``, ``language``, ``subject``, ``text``, ``html``. Headers:

- ``Idempotency-Key``: the message id (the same on every retry of one message);
- ``X-Pwreset-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>" under
  PWRESET_WEBHOOK_SECRET>``. The receiver recomputes it, compares in constant time and refuses
  stale timestamps (replays).
"""

from __future__ import annotations

import hashlib
import hmac
import time

import httpx
import orjson

from pwreset.config import Settings
from pwreset.delivery.providers.base import Accepted, Outgoing, post

SIGNATURE_HEADER = "X-Pwreset-Signature"


def sign(secret: bytes, body: bytes, timestamp: int) -> str:
    mac = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


class WebhookProvider:
    name = "webhook"

    def __init__(self, *, url: str, secret: str, timeout: float = 10.0) -> None:
        self.url = url
        self.secret = secret.encode()
        self.client = httpx.AsyncClient(timeout=timeout)

    @classmethod
    def from_settings(cls, settings: Settings) -> WebhookProvider:
        assert settings.webhook_url and settings.webhook_secret
        return cls(url=settings.webhook_url, secret=settings.webhook_secret.get_secret_value(),
                   timeout=settings.provider_timeout)

    async def send(self, message: Outgoing) -> Accepted:
        body = orjson.dumps({
            "messageId": message.id, "institutionId": message.institution_id, "channel": message.channel,
            "kind": message.kind, "destination": message.destination, "language": message.language,
            "subject": message.subject, "text": message.text, "html": message.html,
        })
        now = time.time()
        await post(
            self.client, self.url, now=now, content=body,
            headers={
                "Content-Type": "application/json", "Idempotency-Key": message.id,
                SIGNATURE_HEADER: sign(self.secret, body, int(now)),
            },
        )
        return Accepted(None)

    async def close(self) -> None:
        await self.client.aclose()
