"""The transactional outbox: messages are rows written with the state change that caused them."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncSession

from pwreset.customers.contact import mask
from pwreset.db import on_commit
from pwreset.delivery.models import OutboxMessage
from pwreset.kit.clock import Clock
from pwreset.kit.crypto import Sealer, new_id


@dataclass(frozen=True)
class Message:
    institution_id: str
    kind: str
    channel: str
    destination: str
    text: str
    subject: str | None = None
    customer_pk: str | None = None
    customer_id: str | None = None
    contact_method_id: str | None = None
    client_id: str | None = None
    correlation_id: str | None = None
    not_after: datetime | None = None


@dataclass(frozen=True)
class Opened:
    """A message read back for sending."""

    id: str
    kind: str
    channel: str
    destination: str
    subject: str | None
    text: str
    institution_id: str


class Outbox:
    def __init__(self, *, sealer: Sealer, clock: Clock) -> None:
        self.sealer = sealer
        self.clock = clock
        self.wake = asyncio.Event()

    def enqueue(self, session: AsyncSession, message: Message) -> OutboxMessage:
        """Add the message to the caller's unit of work; workers are woken once it commits."""
        row = OutboxMessage(**self.row(message))
        session.add(row)
        on_commit(session, self.wake.set)
        return row

    def row(self, message: Message) -> dict[str, Any]:
        """The sealed outbox row, for a writer that inserts in bulk (it calls ``wake`` after commit)."""
        now = self.clock.now()
        payload = orjson.dumps({"destination": message.destination, "subject": message.subject, "text": message.text})
        return {
            "id": new_id(), "institution_id": message.institution_id, "customer_pk": message.customer_pk,
            "customer_id": message.customer_id, "contact_method_id": message.contact_method_id,
            "client_id": message.client_id, "correlation_id": message.correlation_id, "kind": message.kind,
            "channel": message.channel, "destination_masked": mask(message.destination),
            "sealed": self.sealer.seal(payload), "status": "pending", "attempts": 0, "created_at": now,
            "available_at": now, "not_after": message.not_after,
        }

    def open(self, row: OutboxMessage) -> Opened:
        payload = orjson.loads(self.sealer.open(row.sealed))
        return Opened(
            id=row.id, kind=row.kind, channel=row.channel, destination=payload["destination"],
            subject=payload["subject"], text=payload["text"], institution_id=row.institution_id,
        )
