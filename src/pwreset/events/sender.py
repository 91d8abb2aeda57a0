"""The ``WEBHOOK`` channel's adapter: POST a security event to the institution's webhook, signed with
the institution's secret (read, and opened, when it is sent: a rotated secret signs what is queued)."""

from __future__ import annotations

import time

import httpx
import orjson
from sqlalchemy import select

from pwreset.db import Database
from pwreset.delivery.providers.base import Accepted, Outgoing, PermanentFailure, post
from pwreset.delivery.providers.webhook import SIGNATURE_HEADER, sign
from pwreset.institutions.models import Institution
from pwreset.kit.crypto import NotOurKey, Sealer

EVENT_HEADER = "X-Pwreset-Event"


class SecurityWebhookSender:
    name = "security-webhook"

    def __init__(self, *, db: Database, sealer: Sealer, timeout: float) -> None:
        self.db = db
        self.sealer = sealer
        self.timeout = timeout
        self._client: httpx.AsyncClient | None = None  # made at the first event (its TLS set-up costs)

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.timeout, follow_redirects=False)
        return self._client

    async def send(self, message: Outgoing) -> Accepted:
        async with self.db.reading() as session:
            found = (
                await session.execute(
                    select(Institution.webhook_url, Institution.webhook_secret_sealed)
                    .where(Institution.id == message.institution_id)
                )
            ).first()
        if found is None or not found[0] or found[1] is None:
            raise PermanentFailure("the institution has no webhook any more")
        try:
            secret = self.sealer.open(found[1])
        except NotOurKey as error:
            raise PermanentFailure(f"the webhook secret does not open: {error}") from None
        body = message.text.encode()
        now = time.time()
        event = orjson.loads(body)
        await post(
            self.client, found[0], now=now, content=body,
            headers={
                "Content-Type": "application/json", "Idempotency-Key": str(event.get("id", message.id)),
                EVENT_HEADER: str(event.get("type", "")),
                SIGNATURE_HEADER: sign(secret, body, int(now)), "User-Agent": "pwreset-webhooks",
            },
        )
        return Accepted(None)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
