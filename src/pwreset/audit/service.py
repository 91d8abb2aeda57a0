"""``record_event``: the one way to write an audit event, inside the caller's transaction
(``event_row`` gives the same event as a row, for writers that insert in bulk).

Details must never carry a secret, a passcode or a full destination; callers pass identifiers only.
Events are sealed into a keyed hash chain after they are written (audit/chain.py), off the request's
path.
"""

from __future__ import annotations

from typing import Any, TypedDict, Unpack

from sqlalchemy.ext.asyncio import AsyncSession

from pwreset.audit import origin
from pwreset.audit.models import AuditEvent
from pwreset.kit.clock import Clock
from pwreset.kit.text import scrub

CORRELATION_ID_LENGTH = 64  # (AuditEvent.correlation_id)


class EventFields(TypedDict, total=False):
    actor: str  # api (default), cli, worker, system
    institution_id: str | None
    client_id: str | None
    customer_id: str | None
    correlation_id: str | None
    details: dict[str, Any] | None


def event_row(*, clock: Clock, event_type: str, outcome: str, **fields: Unpack[EventFields]) -> dict[str, Any]:
    """An audit event as a row, for a writer that inserts in bulk (a group commit). It carries the
    origin of the request being served (audit/origin.py), if any."""
    where = origin.current.get()
    return {
        "occurred_at": clock.now(), "event_type": event_type, "outcome": outcome,
        "actor": fields.get("actor", "api"), "institution_id": fields.get("institution_id"),
        "client_id": fields.get("client_id"), "customer_id": fields.get("customer_id"),
        "correlation_id": _correlation(fields.get("correlation_id")), "details": fields.get("details") or {},
        "origin_ip": where.ip if where else None, "user_agent": where.user_agent if where else None,
        "originating_ip": where.originating_ip if where else None,
    }


def _correlation(value: str | None) -> str | None:
    """The caller's tracing id as the column holds it: a refusal may be of that very header (too long,
    or holding NUL), and its audit row must still be written."""
    return None if value is None else scrub(value)[:CORRELATION_ID_LENGTH]


async def record_event(
    session: AsyncSession, *, clock: Clock, event_type: str, outcome: str, **fields: Unpack[EventFields]
) -> None:
    """Add an audit event to the caller's unit of work."""
    session.add(AuditEvent(**event_row(clock=clock, event_type=event_type, outcome=outcome, **fields)))
