"""Which customer a request may see: the one place that decides (wire contract section 5).

An institution token (``client_credentials``) sees every customer of its institution and no other:
another institution's customer does not exist. A customer token (``password``, ``refresh_token``)
sees its own customer only; naming any other is ``auth.wrong_customer``, never a 404, so it learns
nothing about who else exists. The ux-users, institution-users and Accounts routes all come here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from pwreset.access.principal import Principal, WrongCustomer
from pwreset.accounts.errors import UserParameters
from pwreset.customers import repository, service
from pwreset.customers.errors import CustomerNotFound
from pwreset.customers.models import Customer
from pwreset.customers.service import DirectoryEntry
from pwreset.db import Database


class _Named(Protocol):
    @property
    def customer_id(self) -> str: ...


Found = TypeVar("Found", bound=_Named)


async def _visible(principal: Principal, user_id: str, id_type: str, find: Callable[[], Awaitable[Found]]) -> Found:
    own = principal.customer_id
    if own is not None and id_type == "CUSTOMER_ID" and user_id != own:
        raise WrongCustomer()
    try:
        found = await find()
    except CustomerNotFound:
        if own is not None:
            raise WrongCustomer() from None
        raise
    if own is not None and found.customer_id != own:
        raise WrongCustomer()
    return found


async def customer(
    session: AsyncSession, principal: Principal, *, user_id: str, id_type: str, allowed: tuple[str, ...]
) -> Customer:
    """The customer ``user_id`` names under ``id_type`` (one of ``allowed``), if the token may see it."""
    return await _visible(principal, user_id, id_type, lambda: service.find_customer(
        session, institution_id=principal.institution_id, user_id=user_id, id_type=id_type, allowed=allowed
    ))


async def entry(db: Database, principal: Principal, *, user_id: str, id_type: str) -> DirectoryEntry:
    """:func:`customer` as a directory entry (one prepared query, no ORM session): the hot paths."""
    return await _visible(principal, user_id, id_type, lambda: service.directory_entry(
        db, institution_id=principal.institution_id, user_id=user_id, id_type=id_type
    ))


async def accounts_user(
    session: AsyncSession, principal: Principal, *, host_user_id: str | None, login_id: str | None
) -> Customer:
    """Whose accounts: a customer token's own customer (no ``hostUserId`` or ``loginId``), or the
    one named by exactly one of them for an institution token."""
    institution_id = principal.institution_id
    if principal.customer_id is not None:
        if host_user_id is not None or login_id is not None:
            raise UserParameters("a customer token reads its own accounts: no hostUserId or loginId")
        found = await repository.by_customer_id(
            session, institution_id=institution_id, customer_id=principal.customer_id
        )
    elif (host_user_id is None) == (login_id is None):
        raise UserParameters()
    elif host_user_id is not None:
        if not host_user_id or len(host_user_id) > 64:
            raise UserParameters("hostUserId must be 1 to 64 characters")
        found = await repository.by_host_user_id(session, institution_id=institution_id, host_user_id=host_user_id)
    else:
        assert login_id is not None
        if not login_id or len(login_id) > 128:
            raise UserParameters("loginId must be 1 to 128 characters")
        found = await repository.by_login_id(session, institution_id=institution_id, login_id=login_id)
    if found is None:
        raise CustomerNotFound()
    return found


