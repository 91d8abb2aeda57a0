"""Accounts: whose, which, and how the API shows them (contract section 8).

Every query starts from the customer, who was found in the caller's institution, so an account of
another institution or another user does not exist. ``$filter`` accepts exactly ``category eq
'<CATEGORY>'`` and ``id eq '<id>'`` (OData string literals, '' for a quote); anything else is
ACC_00005. The value is only ever a bound parameter.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from pwreset.accounts.catalogue import CATEGORIES, minor_units
from pwreset.accounts.errors import AccountNotFound, BadFilter, UserParameters
from pwreset.accounts.models import Account
from pwreset.customers import repository as customers
from pwreset.customers.errors import CustomerNotFound
from pwreset.customers.models import Customer

_FILTER = re.compile(r"\s*(category|id)\s+eq\s+'((?:[^']|'')*)'\s*")
_MAX_FILTER = 200


def parse_filter(value: str | None) -> tuple[str, str] | None:
    """``(field, value)`` of a supported ``$filter``, or None without one."""
    if value is None:
        return None
    matched = _FILTER.fullmatch(value) if len(value) <= _MAX_FILTER else None
    if matched is None:
        raise BadFilter("$filter supports category eq '<category>' or id eq '<id>'")
    field, literal = matched.group(1), matched.group(2).replace("''", "'")
    if field == "category" and literal not in CATEGORIES:
        raise BadFilter(f"category must be one of {', '.join(CATEGORIES)}")
    return field, literal


async def find_user(
    session: AsyncSession, *, institution_id: str, own_customer_id: str | None, host_user_id: str | None,
    login_id: str | None,
) -> Customer:
    """The user whose accounts are asked for: a customer token's own customer, or the one named by
    exactly one of ``hostUserId`` and ``loginId`` for an institution token."""
    if own_customer_id is not None:
        if host_user_id is not None or login_id is not None:
            raise UserParameters("a customer token reads its own accounts: no hostUserId or loginId")
        found = await customers.by_customer_id(session, institution_id=institution_id, customer_id=own_customer_id)
    elif (host_user_id is None) == (login_id is None):
        raise UserParameters()
    elif host_user_id is not None:
        if not host_user_id or len(host_user_id) > 64:
            raise UserParameters("hostUserId must be 1 to 64 characters")
        found = await customers.by_host_user_id(session, institution_id=institution_id, host_user_id=host_user_id)
    else:
        assert login_id is not None
        if not login_id or len(login_id) > 128:
            raise UserParameters("loginId must be 1 to 128 characters")
        found = await customers.by_login_id(session, institution_id=institution_id, login_id=login_id)
    if found is None:
        raise CustomerNotFound()
    return found


async def list_accounts(
    session: AsyncSession, *, customer: Customer, where: tuple[str, str] | None = None
) -> Sequence[Account]:
    stmt = select(Account).where(Account.customer_pk == customer.id, Account.institution_id == customer.institution_id)
    if where is not None:
        field, value = where
        stmt = stmt.where(Account.category == value if field == "category" else Account.id == value)
    return (await session.scalars(stmt.order_by(Account.position))).all()


async def get_account(session: AsyncSession, *, customer: Customer, account_id: str) -> Account:
    found = (await list_accounts(session, customer=customer, where=("id", account_id)))
    if not found:
        raise AccountNotFound()
    return found[0]


def _money(currency: str | None, amount: Decimal | None) -> dict[str, str] | None:
    if currency is None or amount is None:
        return None
    places = minor_units(currency)
    quantum = Decimal(1).scaleb(-places)
    return {"currencyCode": currency, "amount": str(amount.quantize(quantum, rounding=ROUND_HALF_EVEN))}


def account_view(account: Account, customer: Customer, *, unmasked: bool) -> dict[str, Any]:
    """One account as contract section 8 shows it; the number cut to its last four characters
    unless the token holds ``accounts:read_unmasked``."""
    return {
        "id": account.id,
        "institutionId": account.institution_id,
        "institutionUserId": customer.id,
        "accountNumber": account.account_number if unmasked else account.account_number[-4:],
        "nickName": account.nick_name,
        "description": account.description,
        "type": {"value": account.type_value, "fiAccountType": account.fi_account_type,
                 "description": account.type_description},
        "category": account.category,
        "primaryHolderName": account.primary_holder_name,
        "currentBalance": _money(account.current_currency, account.current_amount),
        "availableBalance": _money(account.available_currency, account.available_amount),
        "status": account.status,
        "allowedActions": account.allowed_actions,
        "routingNumber": account.routing_number,
    }
