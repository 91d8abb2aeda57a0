"""Operator tools for the outbox and message templates (``pwreset outbox``, ``pwreset templates``).

Each function works inside the caller's unit of work and writes an audit event for every change.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from pwreset.audit import service as audit
from pwreset.delivery.models import MessageTemplate, OutboxMessage
from pwreset.delivery.rendering import CHANNELS, KINDS, LANGUAGES, Override, check_override
from pwreset.errors import PwresetError
from pwreset.institutions.models import Institution
from pwreset.kit.clock import Clock

STATUSES = ("pending", "sending", "sent", "dead", "expired")
FINISHED = ("sent", "dead", "expired")


class OutboxError(PwresetError):
    key = "request.invalid_body"


async def list_messages(
    session: AsyncSession, *, status: str | None = None, limit: int = 50
) -> Sequence[OutboxMessage]:
    if status is not None and status not in STATUSES:
        raise OutboxError(f"status must be one of {', '.join(STATUSES)}")
    stmt = select(OutboxMessage).order_by(OutboxMessage.created_at.desc()).limit(limit)
    if status is not None:
        stmt = stmt.where(OutboxMessage.status == status)
    return (await session.scalars(stmt)).all()


async def retry(session: AsyncSession, *, message_id: str, clock: Clock) -> OutboxMessage:
    """Put a dead message back in the queue, with its attempts reset."""
    row = await session.get(OutboxMessage, message_id, with_for_update=True)
    if row is None:
        raise OutboxError(f"no message {message_id}")
    now = clock.now()
    if row.status != "dead":
        raise OutboxError(f"message {message_id} is {row.status}; only dead messages can be retried")
    if row.not_after is not None and row.not_after <= now:
        raise OutboxError(
            f"message {message_id} carries a passcode that expired at {row.not_after:%Y-%m-%d %H:%M:%S}Z; "
            "the customer must ask for a new one"
        )
    row.status, row.attempts, row.available_at, row.claim = "pending", 0, now, None
    await audit.record_event(
        session, clock=clock, event_type="message.retried", outcome="requeued", actor="cli",
        institution_id=row.institution_id, customer_id=row.customer_id,
        details={"messageId": row.id, "channel": row.channel, "lastError": row.last_error},
    )
    return row


async def purge(session: AsyncSession, *, older_than: timedelta, clock: Clock) -> int:
    """Delete finished messages (sent, dead, expired) created before ``now - older_than``."""
    cutoff = clock.now() - older_than
    condition = OutboxMessage.status.in_(FINISHED) & (OutboxMessage.created_at < cutoff)
    count = int(await session.scalar(select(func.count()).select_from(OutboxMessage).where(condition)) or 0)
    await session.execute(delete(OutboxMessage).where(condition))
    await audit.record_event(
        session, clock=clock, event_type="outbox.purged", outcome="deleted", actor="cli",
        details={"deleted": count, "olderThanSeconds": int(older_than.total_seconds())},
    )
    return count


async def set_template(
    session: AsyncSession, *, institution_id: str, kind: str, channel: str, language: str, body: str,
    subject: str | None, html: str | None, clock: Clock,
) -> MessageTemplate:
    """Store an institution's template after rendering it with the longest real values."""
    if await session.get(Institution, institution_id) is None:
        raise OutboxError(f"no institution {institution_id}")
    for name, value, allowed in (("kind", kind, KINDS), ("channel", channel, CHANNELS),
                                 ("language", language, LANGUAGES)):
        if value not in allowed:
            raise OutboxError(f"{name} must be one of {', '.join(allowed)}")
    override = Override(subject, body, html)
    try:
        check_override(override, kind, channel)
    except ValueError as error:
        raise OutboxError(str(error)) from None
    key = (MessageTemplate.institution_id == institution_id) & (MessageTemplate.kind == kind) & (
        MessageTemplate.channel == channel) & (MessageTemplate.language == language)
    row = (await session.scalars(select(MessageTemplate).where(key))).first()
    if row is None:
        row = MessageTemplate(institution_id=institution_id, kind=kind, channel=channel, language=language)
        session.add(row)
    row.subject, row.body, row.html, row.updated_at = subject, body, html, clock.now()
    await audit.record_event(
        session, clock=clock, event_type="template.set", outcome="success", actor="cli",
        institution_id=institution_id, details={"kind": kind, "channel": channel, "language": language},
    )
    return row


async def list_templates(session: AsyncSession, *, institution_id: str) -> Sequence[MessageTemplate]:
    stmt = (
        select(MessageTemplate)
        .where(MessageTemplate.institution_id == institution_id)
        .order_by(MessageTemplate.kind, MessageTemplate.channel, MessageTemplate.language)
    )
    return (await session.scalars(stmt)).all()


async def delete_template(
    session: AsyncSession, *, institution_id: str, kind: str, channel: str, language: str, clock: Clock
) -> bool:
    result = await session.execute(
        delete(MessageTemplate).where(
            MessageTemplate.institution_id == institution_id, MessageTemplate.kind == kind,
            MessageTemplate.channel == channel, MessageTemplate.language == language,
        )
    )
    deleted = bool(result.rowcount)  # type: ignore[attr-defined]
    if deleted:
        await audit.record_event(
            session, clock=clock, event_type="template.deleted", outcome="success", actor="cli",
            institution_id=institution_id, details={"kind": kind, "channel": channel, "language": language},
        )
    return deleted
