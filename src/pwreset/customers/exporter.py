"""``pwreset customers export``: an institution's directory in the import format (contract 10).

Streams: customers are read in pages by primary key (keyset pagination, one read-only query for
the page's customers, one for their contact methods, one for their accounts), each written as one
JSON line, so memory stays flat whatever the directory's size. Password hashes are left out unless
asked for. Importing the output into the same institution changes nothing.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

from sqlalchemy import select

from pwreset.accounts.models import Account
from pwreset.customers.models import ContactMethod, Customer
from pwreset.db import Database
from pwreset.institutions import repository as institutions
from pwreset.institutions.errors import InstitutionNotFound

PAGE = 1000
_customer = Customer.__table__.c
_method = ContactMethod.__table__.c
_account = Account.__table__.c


def _amount(value: Decimal) -> str:
    return format(value.normalize(), "f")


def _drop_none(values: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value is not None}


async def export(db: Database, *, institution_id: str, with_secrets: bool = False) -> AsyncIterator[dict[str, Any]]:
    """The institution's customers, one import record each, in a stable order."""
    async with db.reading() as session:
        if await institutions.get(session, institution_id) is None:
            raise InstitutionNotFound(f"no institution {institution_id}")
    after = ""
    while True:
        async with db.autocommit() as conn:
            customers = (await conn.execute(
                select(Customer.__table__)
                .where(_customer.institution_id == institution_id, _customer.id > after)
                .order_by(_customer.id).limit(PAGE)
            )).all()
            if not customers:
                return
            pks = [c.id for c in customers]
            methods: dict[str, list[Any]] = defaultdict(list)
            for m in (await conn.execute(
                select(ContactMethod.__table__).where(_method.customer_pk.in_(pks)).order_by(_method.position)
            )).all():
                methods[m.customer_pk].append(m)
            accounts: dict[str, list[Any]] = defaultdict(list)
            for a in (await conn.execute(
                select(Account.__table__).where(_account.customer_pk.in_(pks)).order_by(_account.position)
            )).all():
                accounts[a.customer_pk].append(a)
        for c in customers:
            yield _record(c, methods[c.id], accounts[c.id], with_secrets=with_secrets)
        after = customers[-1].id


def _record(c: Any, methods: list[Any], accounts: list[Any], *, with_secrets: bool) -> dict[str, Any]:
    record: dict[str, Any] = _drop_none({
        "customerId": c.customer_id, "loginId": c.login_id, "hostUserId": c.host_user_id,
        "memberNumber": c.member_number, "firstName": c.first_name, "lastName": c.last_name,
        "language": c.language, "registered": c.registered, "acceptedDisclosure": c.accepted_disclosure,
        "active": c.active, "locked": c.locked,
    })
    if with_secrets and c.password_hash:
        record["passwordHash"] = c.password_hash
    record["contactMethods"] = [
        _drop_none({
            "id": m.method_id, "protocol": m.protocol, "telephoneCountryCode": m.country_code,
            "contactInfo": m.contact_info, "isActivated": m.activated, "validated": m.validated,
            "primary": m.primary,
            "enrolledDateTime": m.enrolled_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ") if m.enrolled_at else None,
        })
        for m in methods
    ]
    record["accounts"] = [
        _drop_none({
            "id": a.source_id, "accountNumber": a.account_number, "nickName": a.nick_name,
            "description": a.description,
            "type": {"value": a.type_value, "fiAccountType": a.fi_account_type, "description": a.type_description},
            "category": a.category, "primaryHolderName": a.primary_holder_name, "routingNumber": a.routing_number,
            "currentBalance": {"currencyCode": a.current_currency, "amount": _amount(a.current_amount)}
            if a.current_amount is not None else None,
            "availableBalance": {"currencyCode": a.available_currency, "amount": _amount(a.available_amount)}
            if a.available_amount is not None else None,
            "status": a.status, "allowedActions": a.allowed_actions,
        })
        for a in accounts
    ]
    return record
