"""``record_event``: the one way to write an audit event, inside the caller's transaction.

Details must never carry a secret, a passcode or a full destination; callers pass identifiers only.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from pwreset.audit.models import AuditEvent
from pwreset.kit.clock import Clock


def event_row(
    *,
    clock: Clock,
    event_type: str,
    outcome: str,
    actor: str = "api",
    institution_id: str | None = None,
    client_id: str | None = None,
    customer_id: str | None = None,
    correlation_id: str | None = None,
    details: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """An audit event as a row, for a writer that inserts in bulk (a group commit)."""
    return {
        "occurred_at": clock.now(), "event_type": event_type, "outcome": outcome, "actor": actor,
        "institution_id": institution_id, "client_id": client_id, "customer_id": customer_id,
        "correlation_id": correlation_id, "details": details or {},
    }


async def record_event(
    session: AsyncSession,
    *,
    clock: Clock,
    event_type: str,
    outcome: str,
    actor: str = "api",
    institution_id: str | None = None,
    client_id: str | None = None,
    customer_id: str | None = None,
    correlation_id: str | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    """Add an audit event to the caller's unit of work."""
    session.add(
        AuditEvent(
            **event_row(
                clock=clock, event_type=event_type, outcome=outcome, actor=actor, institution_id=institution_id,
                client_id=client_id, customer_id=customer_id, correlation_id=correlation_id, details=details,
            )
        )
    )
