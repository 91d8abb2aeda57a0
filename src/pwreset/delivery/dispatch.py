"""Delivering outbox rows in this process, to the console sink.

Interim: the delivery issue brings the worker (leases, retries, providers). Until then messages are
printed, which is what the sandbox and development want; the service warns at start-up when it
runs this way outside the sandbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections import deque
from typing import TextIO

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from pwreset.audit import service as audit
from pwreset.customers.contact import mask
from pwreset.db import Database
from pwreset.delivery.models import OutboxMessage
from pwreset.delivery.outbox import Opened, Outbox
from pwreset.kit.clock import Clock

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 5


class ConsoleSink:
    """Prints each message and keeps the latest ones in memory (tests and the sandbox read them).

    Outside the sandbox the printed line withholds the text: a passcode must not reach a log.
    """

    def __init__(self, *, reveal: bool, stream: TextIO | None = None, keep: int = 200) -> None:
        self.reveal = reveal
        self.stream = stream
        self.sent: deque[Opened] = deque(maxlen=keep)

    async def send(self, message: Opened) -> None:
        self.sent.append(message)
        out = self.stream or sys.stdout
        text = message.text if self.reveal else f"({message.kind} message withheld: no delivery provider yet)"
        print(f"[console {message.channel} to {mask(message.destination)}] {text}", file=out, flush=True)


class Dispatcher:
    def __init__(self, *, db: Database, outbox: Outbox, sink: ConsoleSink, clock: Clock) -> None:
        self.db = db
        self.outbox = outbox
        self.sink = sink
        self.clock = clock
        self._stopping = asyncio.Event()

    async def run_once(self) -> int:
        """Deliver every pending message that is due; how many were handled."""
        now = self.clock.now()
        async with self.db.transaction() as session:
            stmt = (
                select(OutboxMessage)
                .where(OutboxMessage.status == "pending", OutboxMessage.available_at <= now)
                .order_by(OutboxMessage.created_at)
                .limit(100)
            )
            if self.db.dialect == "postgresql":
                stmt = stmt.with_for_update(skip_locked=True)
            rows = (await session.scalars(stmt)).all()
            for row in rows:
                row.attempts += 1
                if row.not_after is not None and row.not_after <= now:
                    row.status = "expired"
                    await self._audit(session, row, "message.expired", "dropped")
                    continue
                try:
                    await self.sink.send(self.outbox.open(row))
                except Exception as exc:  # one failing message must not undo or hold up the others
                    row.last_error = type(exc).__name__
                    if row.attempts >= MAX_ATTEMPTS:
                        row.status = "dead"
                        await self._audit(session, row, "message.dead", row.last_error)
                    continue
                row.status = "sent"
                row.sent_at = now
                await self._audit(session, row, "message.sent", "success")
        return len(rows)

    async def _audit(self, session: AsyncSession, row: OutboxMessage, event_type: str, outcome: str) -> None:
        await audit.record_event(
            session, clock=self.clock, event_type=event_type, outcome=outcome, actor="worker",
            institution_id=row.institution_id, client_id=row.client_id, customer_id=row.customer_id,
            correlation_id=row.correlation_id,
            details={"messageId": row.id, "kind": row.kind, "channel": row.channel,
                     "contactMethodId": row.contact_method_id, "destination": row.destination_masked},
        )

    async def run(self) -> None:
        while not self._stopping.is_set():
            try:
                await self.run_once()
            except Exception as exc:
                log.warning("delivery pass failed: %s", type(exc).__name__)
            self.outbox.wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.outbox.wake.wait(), timeout=1.0)

    def stop(self) -> None:
        self._stopping.set()
        self.outbox.wake.set()
