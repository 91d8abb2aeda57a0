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
from pwreset.customers.shapes import ACCOUNT, CUSTOMER_OPTIONAL, METHOD, Column
from pwreset.db import Database
from pwreset.institutions import repository as institutions
from pwreset.institutions.errors import InstitutionNotFound

PAGE = 1000
_customer = Customer.__table__.c
_method = ContactMethod.__table__.c
_account = Account.__table__.c


def _amount(value: Decimal) -> str:
    return format(value.normalize(), "f")


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


def _put(record: dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``type.value`` as ``record["type"]["value"]``."""
    *parents, leaf = dotted.split(".")
    for parent in parents:
        record = record.setdefault(parent, {})
    record[leaf] = value


def _fields(columns: tuple[Column, ...], row: Any, formats: dict[str, Any] | None = None) -> dict[str, Any]:
    """A row's columns as import-format fields (``shapes.py``); a column with no value is left out."""
    record: dict[str, Any] = {}
    for column in columns:
        value = getattr(row, column.name)
        if column.field is None or value is None:
            continue
        _put(record, column.field, (formats or {}).get(column.name, lambda v: v)(value))
    return record


_METHOD_FORMATS = {"enrolled_at": lambda at: at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")}
_ACCOUNT_FORMATS = {"current_amount": _amount, "available_amount": _amount}


def _record(c: Any, methods: list[Any], accounts: list[Any], *, with_secrets: bool) -> dict[str, Any]:
    record: dict[str, Any] = {"customerId": c.customer_id, "loginId": c.login_id, **_fields(CUSTOMER_OPTIONAL, c)}
    if with_secrets and c.password_hash:
        record["passwordHash"] = c.password_hash
    record["contactMethods"] = [_fields(METHOD, m, _METHOD_FORMATS) for m in methods]
    record["accounts"] = [
        {"id": a.source_id, **_fields(ACCOUNT, a, _ACCOUNT_FORMATS)} for a in accounts
    ]
    return record
