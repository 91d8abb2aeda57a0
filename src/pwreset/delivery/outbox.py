"""The transactional outbox: messages are rows written with the state change that caused them.

A producer adds the row in its own transaction. On PostgreSQL it also sends ``NOTIFY
pwreset_outbox`` in that transaction, which the server delivers at commit, so workers on any node
wake at once; in-process workers are woken through ``Outbox.wake`` after commit.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from pwreset.customers.contact import mask
from pwreset.db import on_commit
from pwreset.delivery import metrics
from pwreset.delivery.models import OutboxMessage
from pwreset.kit.clock import Clock
from pwreset.kit.crypto import Sealer, new_id

CHANNEL = "pwreset_outbox"
_NOTIFY = text(f"SELECT pg_notify('{CHANNEL}', '')")


@dataclass(frozen=True)
class Message:
    institution_id: str
    kind: str
    channel: str
    destination: str
    language: str = "en"
    #: Template variables other than the institution's name; sealed with the destination.
    variables: dict[str, Any] = field(default_factory=dict)
    customer_pk: str | None = None
    customer_id: str | None = None
    contact_method_id: str | None = None
    client_id: str | None = None
    correlation_id: str | None = None
    not_after: datetime | None = None


@dataclass(frozen=True)
class Opened:
    """A message read back for sending, before rendering."""

    id: str
    institution_id: str
    kind: str
    channel: str
    destination: str
    language: str
    variables: dict[str, Any]
    #: ``subject`` and ``text`` of a row sealed by a version that rendered at request time.
    legacy: dict[str, Any] = field(default_factory=dict)


class Outbox:
    def __init__(self, *, sealer: Sealer, clock: Clock) -> None:
        self.sealer = sealer
        self.clock = clock
        self.wake = asyncio.Event()

    async def enqueue(self, session: AsyncSession, message: Message) -> OutboxMessage:
        """Add the message to the caller's unit of work; workers wake once it commits."""
        row = OutboxMessage(**self.row(message))
        session.add(row)
        await notify(await session.connection())
        on_commit(session, lambda: self.committed([message.channel]))
        return row

    def committed(self, channels: list[str]) -> None:
        """After the commit of new messages: count them, wake this process's worker."""
        for channel in channels:
            metrics.queued(channel)
        self.wake.set()

    def row(self, message: Message) -> dict[str, Any]:
        """The sealed outbox row, for a writer that inserts in bulk (it calls :func:`notify` in its
        transaction and :meth:`committed` after commit)."""
        now = self.clock.now()
        payload = orjson.dumps({"destination": message.destination, "variables": message.variables})
        return {
            "id": new_id(), "institution_id": message.institution_id, "customer_pk": message.customer_pk,
            "customer_id": message.customer_id, "contact_method_id": message.contact_method_id,
            "client_id": message.client_id, "correlation_id": message.correlation_id, "kind": message.kind,
            "channel": message.channel, "language": message.language,
            "destination_masked": (
                urlsplit(message.destination).netloc[:64] if message.channel == "WEBHOOK" else mask(message.destination)
            ),
            "sealed": self.sealer.seal(payload),
            "status": "pending", "attempts": 0, "created_at": now, "available_at": now, "not_after": message.not_after,
        }

    def open(self, row: Any) -> Opened:
        payload = orjson.loads(self.sealer.open(row.sealed))
        return Opened(
            id=row.id, institution_id=row.institution_id, kind=row.kind, channel=row.channel,
            destination=payload["destination"], language=row.language, variables=payload.get("variables", {}),
            legacy={k: payload[k] for k in ("subject", "text") if k in payload},
        )


async def notify(conn: AsyncConnection) -> None:
    """Wake the workers listening on PostgreSQL when the caller's transaction commits."""
    if conn.dialect.name == "postgresql":
        await conn.execute(_NOTIFY)
