"""Customer queries. Every one starts from the caller's institution (tenant isolation)."""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from pwreset.customers.models import Customer


def login_key(login_id: str) -> str:
    return login_id.strip().casefold()


async def by_customer_id(session: AsyncSession, *, institution_id: str, customer_id: str) -> Customer | None:
    stmt = select(Customer).where(Customer.institution_id == institution_id, Customer.customer_id == customer_id)
    return (await session.scalars(stmt)).first()


async def by_login_id(session: AsyncSession, *, institution_id: str, login_id: str) -> Customer | None:
    stmt = select(Customer).where(Customer.institution_id == institution_id, Customer.login_key == login_key(login_id))
    return (await session.scalars(stmt)).first()


async def by_host_user_id(session: AsyncSession, *, institution_id: str, host_user_id: str) -> Customer | None:
    stmt = (
        select(Customer)
        .where(Customer.institution_id == institution_id, Customer.host_user_id == host_user_id)
        .order_by(Customer.created_at)
    )
    return (await session.scalars(stmt)).first()


async def add_failed_login(session: AsyncSession, *, customer_pk: str, lock_at: int) -> tuple[int, bool]:
    """Count one failed sign-in atomically; lock at ``lock_at``. Returns (count, locked now)."""
    await session.execute(
        update(Customer).where(Customer.id == customer_pk).values(failed_login_count=Customer.failed_login_count + 1)
    )
    row = (
        await session.execute(select(Customer.failed_login_count, Customer.locked).where(Customer.id == customer_pk))
    ).one()
    count, locked = int(row[0]), bool(row[1])
    if count >= lock_at and not locked:
        await session.execute(update(Customer).where(Customer.id == customer_pk).values(locked=True))
        return count, True
    return count, False
