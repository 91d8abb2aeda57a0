"""Passcode and ticket queries. Counters move with single conditional UPDATEs, so concurrent
requests cannot both win a passcode or push a count past its cap."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import case, literal, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from pwreset.customers.models import Customer
from pwreset.db import UTCDateTime
from pwreset.resets.models import Passcode, ResetTicket


async def latest_passcodes(session: AsyncSession, *, customer_pk: str, limit: int = 5) -> Sequence[Passcode]:
    stmt = (
        select(Passcode).where(Passcode.customer_pk == customer_pk).order_by(Passcode.created_at.desc()).limit(limit)
    )
    return (await session.scalars(stmt)).all()


async def supersede_active(session: AsyncSession, *, customer_pk: str) -> None:
    await session.execute(
        update(Passcode)
        .where(Passcode.customer_pk == customer_pk, Passcode.status == "active")
        .values(status="superseded")
    )


async def claim(session: AsyncSession, *, passcode_id: str, at: datetime) -> bool:
    """Spend an active passcode; ``False`` if someone else already did."""
    result = await session.execute(
        update(Passcode)
        .where(Passcode.id == passcode_id, Passcode.status == "active")
        .values(status="used", used_at=at)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def count_wrong_try(session: AsyncSession, *, passcode_id: str, max_attempts: int) -> int | None:
    """One more wrong try, never past ``max_attempts``; the count, or None if the passcode was
    no longer active (ended by someone else's try or a success)."""
    result = await session.execute(
        update(Passcode)
        .where(Passcode.id == passcode_id, Passcode.status == "active", Passcode.attempts < max_attempts)
        .values(
            attempts=Passcode.attempts + 1,
            status=case((Passcode.attempts + 1 >= max_attempts, "exhausted"), else_=Passcode.status),
        )
    )
    if not result.rowcount:  # type: ignore[attr-defined]
        return None
    return int((await session.scalar(select(Passcode.attempts).where(Passcode.id == passcode_id))) or 0)


async def count_reset_failure(
    session: AsyncSession, *, customer_pk: str, now: datetime, window_start: datetime
) -> int:
    """One more consecutive wrong passcode for the customer, in a window that restarts when stale."""
    stale = (Customer.reset_failures_since.is_(None)) | (Customer.reset_failures_since < window_start)
    await session.execute(
        update(Customer)
        .where(Customer.id == customer_pk)
        .values(
            failed_reset_count=case((stale, 1), else_=Customer.failed_reset_count + 1),
            reset_failures_since=case((stale, literal(now, UTCDateTime())), else_=Customer.reset_failures_since),
        )
    )
    return int((await session.scalar(select(Customer.failed_reset_count).where(Customer.id == customer_pk))) or 0)


async def lock_customer(session: AsyncSession, *, customer_pk: str) -> None:
    """Hold the customer's row until the transaction ends (SQLite serialises writers anyway)."""
    await session.execute(select(Customer.id).where(Customer.id == customer_pk).with_for_update())


async def void_tickets(session: AsyncSession, *, customer_pk: str, at: datetime) -> None:
    """End every unspent ticket of the customer (a new reset, or a completed one)."""
    await session.execute(
        update(ResetTicket)
        .where(ResetTicket.customer_pk == customer_pk, ResetTicket.used_at.is_(None))
        .values(used_at=at)
    )


async def ticket_by_hash(session: AsyncSession, *, ticket_hash: str) -> ResetTicket | None:
    return (await session.scalars(select(ResetTicket).where(ResetTicket.ticket_hash == ticket_hash))).first()


async def spend_ticket(session: AsyncSession, *, ticket_id: str, at: datetime) -> bool:
    result = await session.execute(
        update(ResetTicket).where(ResetTicket.id == ticket_id, ResetTicket.used_at.is_(None)).values(used_at=at)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]
