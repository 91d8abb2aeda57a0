"""Passcode and ticket queries. Counters move with single conditional UPDATEs, so concurrent
requests cannot both win a passcode or push a count past its cap."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    ARRAY,
    String,
    Table,
    any_,
    bindparam,
    case,
    delete,
    literal,
    literal_column,
    select,
    union_all,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from pwreset.audit.models import AuditEvent
from pwreset.customers.errors import CustomerNotFound
from pwreset.customers.models import Customer, PasswordHistory
from pwreset.db import Database, UTCDateTime, copy_rows
from pwreset.delivery.models import OutboxMessage
from pwreset.kit.crypto import new_id
from pwreset.resets.errors import CustomerInactive
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


async def void_pending_first(session: AsyncSession, *, customer_pk: str) -> None:
    """Two-channel assurance: first channels verified and waiting for their second no longer count."""
    held = select(ResetTicket.id).where(
        (ResetTicket.passcode_id == Passcode.id) | (ResetTicket.first_passcode_id == Passcode.id)
    )
    await session.execute(
        update(Passcode).where(Passcode.customer_pk == customer_pk, Passcode.status == "used", ~held.exists())
        .values(status="voided").execution_options(synchronize_session=False)
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


async def pending_first(
    session: AsyncSession, *, customer_pk: str, since: datetime, exclude: str | None = None
) -> Sequence[Passcode]:
    """With two-channel assurance: the customer's passcodes verified since ``since`` that no reset ticket
    holds yet (a first channel waiting for its second), newest first."""
    held = select(ResetTicket.id).where(
        (ResetTicket.passcode_id == Passcode.id) | (ResetTicket.first_passcode_id == Passcode.id)
    )
    statement = select(Passcode).where(
        Passcode.customer_pk == customer_pk, Passcode.status == "used", Passcode.used_at >= since, ~held.exists(),
    )
    if exclude is not None:
        statement = statement.where(Passcode.id != exclude)
    return (await session.scalars(statement.order_by(Passcode.used_at.desc()))).all()


async def password_history(session: AsyncSession, *, customer_pk: str, limit: int) -> Sequence[str]:
    """The customer's last ``limit`` password hashes, newest first."""
    rows = await session.scalars(
        select(PasswordHistory.password_hash).where(PasswordHistory.customer_pk == customer_pk)
        .order_by(PasswordHistory.created_at.desc(), PasswordHistory.id.desc()).limit(limit)
    )
    return rows.all()


async def remember_password(session: AsyncSession, *, customer_pk: str, password_hash: str, at: datetime,
                            keep: int) -> None:
    """Add the new password's hash to the history and forget all but the newest ``keep``."""
    session.add(PasswordHistory(id=new_id(), customer_pk=customer_pk, password_hash=password_hash, created_at=at))
    await session.flush()
    kept = (
        select(PasswordHistory.id).where(PasswordHistory.customer_pk == customer_pk)
        .order_by(PasswordHistory.created_at.desc(), PasswordHistory.id.desc()).limit(keep)
    )
    await session.execute(
        delete(PasswordHistory).where(PasswordHistory.customer_pk == customer_pk, PasswordHistory.id.not_in(kept))
    )


async def ticket_by_hash(session: AsyncSession, *, hashes: Sequence[str]) -> ResetTicket | None:
    """The ticket stored under one of ``hashes`` (its hash under each key of the ring)."""
    match = ResetTicket.ticket_hash == hashes[0] if len(hashes) == 1 else ResetTicket.ticket_hash.in_(hashes)
    return (await session.scalars(select(ResetTicket).where(match))).first()


async def spend_ticket(session: AsyncSession, *, ticket_id: str, at: datetime) -> bool:
    result = await session.execute(
        update(ResetTicket).where(ResetTicket.id == ticket_id, ResetTicket.used_at.is_(None)).values(used_at=at)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def issued_since(
    db: Database, *, customer_pk: str, destination_hash: str, since: datetime
) -> tuple[list[datetime], list[datetime]]:
    """When passcodes were issued since ``since``: to the customer, and to the destination (any customer
    of any institution), oldest first. The durable record the send limits fall back on: one prebuilt
    statement on the hot-read path (two index ranges, a handful of rows)."""
    rows = await db.fetch(
        cast(Any, _ISSUED), {"customer_pk": customer_pk, "destination_hash": destination_hash, "since": since}
    )
    by_customer = sorted(row["created_at"] for row in rows if row["who"] == "c")
    by_destination = sorted(row["created_at"] for row in rows if row["who"] == "d")
    return by_customer, by_destination


@dataclass(frozen=True)
class RequestedReset:
    """Everything one accepted reset request writes: its passcode, its message, its audit event."""

    customer_pk: str
    at: datetime
    passcode: dict[str, Any]
    message: dict[str, Any]
    event: dict[str, Any]


_PASSCODES = cast(Table, Passcode.__table__)
_OUTBOX = cast(Table, OutboxMessage.__table__)
_AUDIT = cast(Table, AuditEvent.__table__)
_TICKETS = cast(Table, ResetTicket.__table__)
_customers = Customer.__table__.c
_tickets = _TICKETS.c
_passcodes = _PASSCODES.c
_ISSUED = union_all(
    select(literal_column("'c'").label("who"), _passcodes.created_at).where(
        _passcodes.customer_pk == bindparam("customer_pk"), _passcodes.created_at > bindparam("since")
    ),
    select(literal_column("'d'").label("who"), _passcodes.created_at).where(
        _passcodes.destination_hash == bindparam("destination_hash"), _passcodes.created_at > bindparam("since")
    ),
)


def _batch_statements(among: Callable[[Any], Any]) -> tuple[Any, Any, Any]:
    lock = (
        select(_customers.id, _customers.active).where(among(_customers.id)).order_by(_customers.id).with_for_update()
    )
    void = (
        update(_TICKETS)
        .where(among(_tickets.customer_pk), _tickets.used_at.is_(None))
        .values(used_at=bindparam("at"))
    )
    supersede = update(_PASSCODES).where(among(_passcodes.customer_pk), _passcodes.status == "active")
    return lock, void, supersede.values(status="superseded")


# Built once; the batch writer runs them for hundreds of resets at a time. PostgreSQL gets one
# array parameter (``= ANY($1)``), so every batch size shares one prepared statement; SQLite an
# expanding IN list.
_BATCH = {
    "postgresql": _batch_statements(lambda column: column == any_(bindparam("pks", type_=ARRAY(String)))),
    "sqlite": _batch_statements(lambda column: column.in_(bindparam("pks", expanding=True))),
}


async def write_requested(conn: AsyncConnection, batch: Sequence[RequestedReset]) -> None:
    """Write a batch of accepted reset requests in the connection's transaction.

    Per customer, as a request at a time would: the customer's row is held (in id order, so two
    batches cannot deadlock), unspent tickets and the active passcode end, and only the newest
    passcode of the batch stays active.
    """
    pks = sorted({reset.customer_pk for reset in batch})
    newest: dict[str, RequestedReset] = {}
    for reset in batch:
        newest[reset.customer_pk] = reset
    lock, void, supersede = _BATCH[conn.dialect.name]
    held = {row.id: row.active for row in (await conn.execute(lock, {"pks": pks})).all()}
    # The request's checks ran on a snapshot; under the lock, the customer must still exist and be
    # active (deleted by a --prune import, or deactivated, in between). A batch that fails here is
    # retried one request at a time (db.GroupCommit), so only the affected request is refused.
    if any(pk not in held for pk in pks):
        raise CustomerNotFound()
    if not all(held.values()):
        raise CustomerInactive()
    await conn.execute(void, {"pks": pks, "at": max(reset.at for reset in batch)})
    await conn.execute(supersede, {"pks": pks})
    passcodes = [
        reset.passcode if newest[reset.customer_pk] is reset else {**reset.passcode, "status": "superseded"}
        for reset in batch
    ]
    await copy_rows(conn, _PASSCODES, passcodes)
    await copy_rows(conn, _OUTBOX, [reset.message for reset in batch])
    await copy_rows(conn, _AUDIT, [reset.event for reset in batch])
