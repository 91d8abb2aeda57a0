"""The SQLite write path of ``pwreset customers import``: row by row, through the ORM.

Each batch is one transaction and each line one savepoint in it, so a line that conflicts is
refused alone. Same rules as PostgreSQL's bulk path (``bulk.py``); the import tests run both.
Columns come from ``shapes.py`` by name.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from pwreset.accounts.models import Account
from pwreset.customers import marks
from pwreset.customers.lines import ALL, BIT, FIELDS, Holders, Line, LineError, Tally, initial_password_hash
from pwreset.customers.models import ContactMethod, Customer
from pwreset.customers.shapes import ACCOUNT, ACCOUNT_FLAGS, METHOD, names
from pwreset.db import Database
from pwreset.kit.clock import Clock
from pwreset.kit.crypto import ordered_id
from pwreset.oauth.service import OAuthService
from pwreset.passwords.hashing import PasswordHashing

METHOD_FIELDS = names(METHOD)
ACCOUNT_COLUMNS = names(ACCOUNT)
FLAG_COLUMNS = names(ACCOUNT_FLAGS)  # JSON text in a Line
AMOUNT_COLUMNS = tuple(column.name for column in ACCOUNT if column.sql == "numeric")  # decimal strings in a Line


class RowWriter:
    def __init__(self, *, db: Database, hashing: PasswordHashing, clock: Clock, oauth: OAuthService | None) -> None:
        self.db = db
        self.hashing = hashing
        self.clock = clock
        self.oauth = oauth

    async def write(self, lines: list[Line], *, institution_id: str, tally: Tally, run_id: str | None) -> None:
        """Row by row, each line in its own savepoint; what the batch's lines refer to is read first,
        in three queries (one query per line and relationship made SQLite import 44 lines/s)."""
        async with self.db.transaction() as session:
            customers = {
                c.customer_id: c for c in (await session.scalars(select(Customer).where(
                    Customer.institution_id == institution_id,
                    Customer.customer_id.in_([line.customer_id for line in lines]),
                ))).all()
            }
            holders = Holders((await session.execute(
                select(Customer.login_key, Customer.customer_id).where(
                    Customer.institution_id == institution_id,
                    Customer.login_key.in_([line.login_key for line in lines]),
                )
            )).all())
            accounts: dict[str, dict[str, Account]] = {}
            if customers:
                for account in (await session.scalars(select(Account).where(
                    Account.customer_pk.in_([c.id for c in customers.values()])
                ))).all():
                    accounts.setdefault(account.customer_pk, {})[account.source_id] = account
            for line in lines:
                customer = customers.get(line.customer_id)
                try:
                    if (taken := holders.refusal(line)) is not None:
                        raise LineError(taken)
                    previous_key = customer.login_key if customer is not None else None
                    async with session.begin_nested():
                        customer, outcome = await self._upsert(
                            session, line, institution_id, customer,
                            accounts.get(customer.id, {}) if customer is not None else {},
                        )
                except LineError as exc:
                    tally.refused.append((line.number, str(exc)))
                    continue
                except IntegrityError as exc:
                    tally.refused.append((line.number, f"conflicts with another customer ({_constraint(exc)})"))
                    continue
                holders.took(line, previous_key)
                tally.count(outcome)
            if run_id is not None:
                await marks.add(await session.connection(), institution_id=institution_id, run_id=run_id,
                                customer_ids=[line.customer_id for line in lines], at=self.clock.now())

    async def _upsert(
        self, session: AsyncSession, line: Line, institution_id: str, customer: Customer | None,
        accounts: dict[str, Account],
    ) -> tuple[Customer, str]:
        """One line onto the customer it names (None: a new one) and that customer's accounts (by the
        file's account id); the customer and created, updated or unchanged."""
        now = self.clock.now()
        # A new customer takes every field (defaults included); an existing one only the fields
        # its line carries, so a lock or a flag set here since is not undone by an older file.
        present = ALL if customer is None else line.present
        fields = {
            "login_id": line.login_id, "login_key": line.login_key,
            **{column: value for column, value in zip(FIELDS, line.values, strict=True) if present & BIT[column]},
        }
        if customer is None:
            customer = Customer(
                id=ordered_id(), institution_id=institution_id, customer_id=line.customer_id, created_at=now,
                updated_at=now, failed_login_count=0, failed_reset_count=0, contact_methods=[],
                password_hash=initial_password_hash(self.hashing, line, None), **fields,
            )
            session.add(customer)
            outcome = "created"
        else:
            changed = any(getattr(customer, key) != value for key, value in fields.items())
            deactivated = customer.active and fields.get("active") is False
            for key, value in fields.items():
                setattr(customer, key, value)
            if deactivated and self.oauth is not None:
                await self.oauth.revoke_customer_tokens(
                    session, institution_id=institution_id, customer_id=customer.customer_id
                )
            new_hash = initial_password_hash(self.hashing, line, customer.password_hash)
            if new_hash != customer.password_hash:
                customer.password_hash = new_hash
                changed = True
            outcome = "updated" if changed else "unchanged"
        if self._sync_methods(customer, line, institution_id, None if outcome == "created" else now) \
                and outcome == "unchanged":
            outcome = "updated"
        if outcome == "created" and line.accounts:
            await session.flush()  # Account has no relationship to order it: the customer's row goes first
        if await self._sync_accounts(session, customer, accounts, line, now) and outcome == "unchanged":
            outcome = "updated"
        if outcome != "unchanged":
            customer.updated_at = now
        await session.flush()
        return customer, outcome

    def _sync_methods(self, customer: Customer, line: Line, institution_id: str, now: Any) -> bool:
        """Make the customer's methods those of the file; whether anything changed. A destination that is
        new to a customer already on file is marked changed at ``now`` (the reset cool-off, issue 14)."""
        existing = {m.method_id: m for m in customer.contact_methods}
        wanted = {method[0] for method in line.methods}
        changed = False
        for gone in [m for m in customer.contact_methods if m.method_id not in wanted]:
            customer.contact_methods.remove(gone)
            changed = True
        for position, method in enumerate(line.methods):
            values = {**dict(zip(METHOD_FIELDS, method, strict=True)), "position": position}
            current = existing.get(values["method_id"])
            if current is None:
                customer.contact_methods.append(
                    ContactMethod(id=ordered_id(), institution_id=institution_id, changed_at=now, **values)
                )
                changed = True
                continue
            if now is not None and current.destination != values["destination"]:
                current.changed_at = now
            for key, value in values.items():
                if getattr(current, key) != value:
                    setattr(current, key, value)
                    changed = True
        return changed

    async def _sync_accounts(
        self, session: AsyncSession, customer: Customer, existing: dict[str, Account], line: Line, now: Any
    ) -> bool:
        """Make the customer's accounts (``existing``, by the file's account id) those of the file;
        whether anything changed. The opaque API id of an account stays the same across re-imports."""
        if line.accounts is None:
            return False  # a line without accounts leaves the customer's accounts alone
        wanted = {source_id for source_id, _ in line.accounts}
        changed = False
        for gone in [a for key, a in existing.items() if key not in wanted]:
            await session.delete(gone)
            changed = True
        for source_id, columns in line.accounts:
            values = dict(zip(ACCOUNT_COLUMNS, columns, strict=True))
            for flags in FLAG_COLUMNS:
                values[flags] = json.loads(values[flags])
            for amount in AMOUNT_COLUMNS:
                if values[amount] is not None:
                    values[amount] = Decimal(values[amount])
            current = existing.get(source_id)
            if current is None:
                session.add(Account(
                    id=ordered_id(), institution_id=customer.institution_id, customer_pk=customer.id,
                    source_id=source_id, created_at=now, updated_at=now, **values,
                ))
                changed = True
                continue
            differs = {key: value for key, value in values.items() if getattr(current, key) != value}
            if differs:
                for key, value in differs.items():
                    setattr(current, key, value)
                current.updated_at = now
                changed = True
        return changed


def _constraint(exc: IntegrityError) -> str:
    text = str(exc.orig).lower()
    if "login" in text:
        return "loginId"
    return "a unique field"
