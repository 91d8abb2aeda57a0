"""Customer queries. Every one starts from the caller's institution (tenant isolation)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from pwreset.customers.models import ContactMethod, Customer
from pwreset.db import Database

_customers = Customer.__table__.c
_methods = ContactMethod.__table__.c
_BY = {"CUSTOMER_ID": _customers.customer_id, "LOGIN_ID": _customers.login_key}


def login_key(login_id: str) -> str:
    return login_id.strip().casefold()


async def by_customer_id(
    session: AsyncSession, *, institution_id: str, customer_id: str, for_update: bool = False
) -> Customer | None:
    stmt = select(Customer).where(Customer.institution_id == institution_id, Customer.customer_id == customer_id)
    if for_update:
        stmt = stmt.with_for_update()
    return (await session.scalars(stmt)).first()


async def by_login_id(
    session: AsyncSession, *, institution_id: str, login_id: str, for_update: bool = False
) -> Customer | None:
    """``for_update`` holds the row: a sign-in and a password reset of one customer never overlap."""
    stmt = select(Customer).where(Customer.institution_id == institution_id, Customer.login_key == login_key(login_id))
    if for_update:
        stmt = stmt.with_for_update()
    return (await session.scalars(stmt)).first()


async def by_key(session: AsyncSession, *, institution_id: str, pk: str) -> Customer | None:
    """By the row key (the spec's institution user id and authentication id are made from it)."""
    stmt = select(Customer).where(Customer.institution_id == institution_id, Customer.id == pk)
    return (await session.scalars(stmt)).first()


async def by_host_user_id(session: AsyncSession, *, institution_id: str, host_user_id: str) -> Customer | None:
    stmt = (
        select(Customer)
        .where(Customer.institution_id == institution_id, Customer.host_user_id == host_user_id)
        .order_by(Customer.created_at)
    )
    return (await session.scalars(stmt)).first()


def _entry_statement(by: Any) -> Any:
    return (
        select(
            _customers.id.label("customer_pk"), _customers.customer_id, _customers.language, _customers.registered,
            _customers.accepted_disclosure, _customers.active, _customers.reset_blocked_until,
            _methods.id.label("method_pk"), _methods.method_id, _methods.protocol, _methods.country_code,
            _methods.contact_info, _methods.destination, _methods.activated, _methods.enrolled_at, _methods.changed_at,
        )
        .select_from(Customer.__table__.outerjoin(ContactMethod.__table__, _methods.customer_pk == _customers.id))
        .where(_customers.institution_id == bindparam("institution_id"), by == bindparam("value"))
        .order_by(_methods.position)
    )


# Built once: SQLAlchemy then skips statement construction and cache-key work on every request.
_ENTRY = {id_type: _entry_statement(column) for id_type, column in _BY.items()}


async def entry_rows(db: Database, *, institution_id: str, id_type: str, value: str) -> Sequence[Mapping[str, Any]]:
    """A customer's state and contact methods in one round trip, without the ORM (the hot reads of
    6.1 and 6.2).

    One row per method (or one with empty method columns when there is none); none at all when
    the institution has no such customer.
    """
    key = login_key(value) if id_type == "LOGIN_ID" else value
    return await db.fetch(_ENTRY[id_type], {"institution_id": institution_id, "value": key})


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
