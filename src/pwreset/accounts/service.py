"""Accounts: which, paged how, and how the API shows them (wire contract section 8).

Every query starts from the customer, who was found in the caller's institution
(``access/subjects.py``), so an account of another institution or another user does not exist.
``$filter`` is parsed by ``filters.py`` into bound SQL.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import orjson
from sqlalchemy import ColumnElement, select
from sqlalchemy.ext.asyncio import AsyncSession

from pwreset.accounts.catalogue import ACTION_FLAGS, OPTIONAL_STATUS_FLAGS, STATUS_FLAGS, minor_units
from pwreset.accounts.errors import AccountNotFound, BadPaging
from pwreset.accounts.models import Account
from pwreset.customers.models import Customer
from pwreset.customers.views import institution_user_id

GROUP_BY_CUSTOMER = "groupBy(customer)"
_MAX_AMOUNT = Decimal(10) ** 16
_MAX_GROUPS = 1000


@dataclass(frozen=True)
class GroupPage:
    """``$apply=groupBy(customer)`` paging: ``skip`` groups, then at most ``top``."""

    skip: int
    top: int


def parse_paging(query: Mapping[str, str]) -> GroupPage | None:
    """The grouped paging a request asks for; None without ``$apply``. ``$skipGroups`` and
    ``$topGroups`` belong to ``$apply`` and need it; both are whole numbers."""
    apply, skip, top = query.get("$apply"), query.get("$skipGroups"), query.get("$topGroups")
    if apply is None:
        if skip is not None or top is not None:
            raise BadPaging("$skipGroups and $topGroups need $apply=groupBy(customer)")
        return None
    if apply.strip() != GROUP_BY_CUSTOMER:
        raise BadPaging("$apply supports groupBy(customer) only")
    return GroupPage(skip=_count("$skipGroups", skip, default=0), top=_count("$topGroups", top, default=_MAX_GROUPS))


def _count(name: str, value: str | None, *, default: int) -> int:
    if value is None:
        return default
    if not value.isascii() or not value.isdigit() or len(value) > 6:
        raise BadPaging(f"{name} must be a whole number")
    return int(value)


async def list_accounts(
    session: AsyncSession, *, customer: Customer, where: ColumnElement[bool] | None = None
) -> Sequence[Account]:
    stmt = select(Account).where(Account.customer_pk == customer.id, Account.institution_id == customer.institution_id)
    if where is not None:
        stmt = stmt.where(where)
    return (await session.scalars(stmt.order_by(Account.position))).all()


async def get_account(session: AsyncSession, *, customer: Customer, account_id: str) -> Account:
    found = await list_accounts(session, customer=customer, where=Account.id == account_id)
    if not found:
        raise AccountNotFound()
    return found[0]


def accounts_page(views: list[dict[str, Any]], paging: GroupPage | None) -> dict[str, Any]:
    """The list body. A pwreset user is one institution customer, so grouped by customer there is
    one group: the page holds it unless skipped; ``totalGroupCount`` only with grouped paging."""
    if paging is None:
        return {"accounts": views}
    shown = paging.skip < 1 <= paging.top
    return {"accounts": views if shown else [], "totalGroupCount": 1}


def _money(currency: str | None, amount: Decimal | None) -> dict[str, Any] | None:
    """A Money object; the amount a JSON number written with the decimal's own digits (never
    through a float), to the currency's minor units."""
    if currency is None or amount is None or not amount.is_finite() or abs(amount) >= _MAX_AMOUNT:
        return None  # (the import stores none such; written another way, it is left out, not sent as bad JSON)
    quantum = Decimal(1).scaleb(-minor_units(currency))
    digits = format(amount.quantize(quantum, rounding=ROUND_HALF_EVEN), "f")
    return {"currencyCode": currency, "amount": orjson.Fragment(digits.encode())}


def _flags(stored: dict[str, Any], required: tuple[str, ...], optional: tuple[str, ...] = ()) -> dict[str, bool]:
    flags = {flag: bool(stored.get(flag, False)) for flag in required}
    flags.update((flag, bool(stored[flag])) for flag in optional if flag in stored)
    return flags


def account_view(account: Account, customer: Customer, *, unmasked: bool) -> dict[str, Any]:
    """One account as the spec's ``Account``: no nulls (an empty optional field is left out), every
    status and action flag; the number cut to its last four characters unless the token holds
    ``accounts:read_unmasked``."""
    view: dict[str, Any] = {
        "id": account.id,
        "institutionUserId": institution_user_id(customer.id),
        "institutionCustomerId": customer.customer_id,
        "institutionId": account.institution_id,
    }
    optional = {
        "description": account.description,
        "nickName": account.nick_name,
    }
    view.update((key, value) for key, value in optional.items() if value is not None)
    view["accountNumber"] = account.account_number if unmasked else account.account_number[-4:]
    view["category"] = account.category
    view["type"] = {"value": account.type_value, "fiAccountType": account.fi_account_type,
                    "description": account.type_description}
    later = {
        "primaryHolderName": account.primary_holder_name,
        "currentBalance": _money(account.current_currency, account.current_amount),
        "availableBalance": _money(account.available_currency, account.available_amount),
    }
    view.update((key, value) for key, value in later.items() if value is not None)
    view["status"] = _flags(account.status or {}, STATUS_FLAGS, OPTIONAL_STATUS_FLAGS)
    view["allowedActions"] = _flags(account.allowed_actions or {}, ACTION_FLAGS)
    if account.routing_number is not None:
        view["routingNumber"] = account.routing_number
    return view
