"""Security events an institution hears of on its own webhook (``pwreset webhooks set``).

``passcode.sent``, ``passcode.failed``, ``reset.suspended``, ``reset.completed``, ``contact.changed``,
``sim_swap.refused`` (and ``webhook.test``). Each is an outbox message on the ``WEBHOOK`` channel,
written in the same transaction as what it reports, so it is delivered at least once with the outbox's
retries, and the outbox rows with their attempts and errors are the delivery log
(``pwreset webhooks log``). Without a webhook, nothing is queued.

The body (JSON): ``id`` (the event's, also the ``Idempotency-Key``), ``type``, ``occurredAt``,
``institutionId``, ``customerId``, ``data``. It is signed as the delivery webhook is
(``X-Pwreset-Signature: t=<unix seconds>,v1=<HMAC-SHA256 of "<t>.<body>">``) under the institution's
own secret.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from pwreset.delivery.outbox import Message, Outbox
from pwreset.institutions.cache import InstitutionCache
from pwreset.institutions.models import Institution
from pwreset.kit.clock import Clock
from pwreset.kit.crypto import new_id

CHANNEL = "WEBHOOK"
KIND = "security_event"
TYPES = (
    "passcode.sent", "passcode.failed", "reset.suspended", "reset.completed", "contact.changed", "sim_swap.refused",
    "webhook.test",
)


def target(url: str) -> str:
    """What the delivery log shows of a webhook's address: its host."""
    return urlsplit(url).netloc or "webhook"


class SecurityEvents:
    def __init__(self, *, outbox: Outbox, institutions: InstitutionCache, clock: Clock) -> None:
        self.outbox = outbox
        self.institutions = institutions
        self.clock = clock

    def message(
        self, institution_id: str, event_type: str, *, url: str | None, customer_id: str | None = None,
        client_id: str | None = None, correlation_id: str | None = None, data: dict[str, Any] | None = None,
    ) -> Message | None:
        """The event as an outbox message for the webhook at ``url``; ``None`` without one."""
        assert event_type in TYPES, event_type
        if not url:
            return None
        event_id = new_id()
        body = {
            "id": event_id, "type": event_type, "occurredAt": self.clock.now().isoformat(),
            "institutionId": institution_id, "customerId": customer_id, "data": data or {},
        }
        return Message(
            institution_id=institution_id, kind=KIND, channel=CHANNEL, destination=url, variables={"event": body},
            customer_id=customer_id, client_id=client_id, correlation_id=correlation_id,
        )

    async def emit(self, session: AsyncSession, institution_id: str, event_type: str, **fields: Any) -> str | None:
        """Queue the event in the caller's unit of work (the webhook read in it too: on SQLite a second
        connection would wait for this one's lock); the outbox message's id, if one was queued."""
        url = await session.scalar(select(Institution.webhook_url).where(Institution.id == institution_id))
        message = self.message(institution_id, event_type, url=url, **fields)
        if message is None:
            return None
        return (await self.outbox.enqueue(session, message)).id

    async def row(self, institution_id: str, event_type: str, **fields: Any) -> dict[str, Any] | None:
        """The event's outbox row, for a writer that inserts in bulk outside any transaction (the worker's
        outcomes): the webhook from the institution cache."""
        url = (await self.institutions.get(institution_id)).webhook_url
        message = self.message(institution_id, event_type, url=url, **fields)
        return None if message is None else self.outbox.row(message)
