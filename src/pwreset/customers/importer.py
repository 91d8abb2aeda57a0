"""``pwreset customers import``: JSON Lines or CSV in the format of contract section 10.

Upsert by customer id, so re-running a file changes nothing. Each line is its own savepoint: a bad
line is reported with its number and reason and nothing of it is written; the rest goes in. Lines
are committed in batches.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC
from typing import Any, TextIO

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from pwreset.accounts.catalogue import TYPES
from pwreset.accounts.models import Account
from pwreset.accounts.schemas import AccountIn
from pwreset.customers import repository
from pwreset.customers.contact import InvalidContact, normalise
from pwreset.customers.models import ContactMethod, Customer
from pwreset.customers.schemas import CustomerIn
from pwreset.db import Database
from pwreset.institutions import repository as institutions
from pwreset.institutions.errors import InstitutionNotFound
from pwreset.kit.clock import Clock
from pwreset.kit.crypto import new_id
from pwreset.oauth.service import OAuthService
from pwreset.passwords.hashing import PasswordHashing, UnsupportedHash, scheme_of

BATCH = 500
_BOOLEAN_COLUMNS = {"registered", "acceptedDisclosure", "active", "locked"}
_JSON_COLUMNS = {"contactMethods", "accounts"}


class LineError(ValueError):
    pass


@dataclass
class ImportReport:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    refused: list[tuple[int, str]] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.created + self.updated + self.unchanged + len(self.refused)


def read_records(stream: TextIO, *, fmt: str) -> Iterator[tuple[int, dict[str, Any] | LineError]]:
    """(line number, record or the reason it cannot be read), streaming."""
    if fmt == "csv":
        reader = csv.DictReader(stream)
        for row in reader:
            number = reader.line_num
            try:
                yield number, _csv_record(row)
            except LineError as exc:
                yield number, exc
        return
    for number, line in enumerate(stream, 1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            yield number, LineError(f"not JSON: {exc.msg}")
            continue
        yield number, value if isinstance(value, dict) else LineError("a line must be a JSON object")


def _csv_record(row: dict[str | None, Any]) -> dict[str, Any]:
    if None in row:
        raise LineError("more values than columns")
    record: dict[str, Any] = {}
    for key, value in row.items():
        assert key is not None
        if value is None or value == "":
            continue
        if key in _BOOLEAN_COLUMNS:
            if value.lower() not in ("true", "false"):
                raise LineError(f"{key}: expected true or false")
            record[key] = value.lower() == "true"
        elif key in _JSON_COLUMNS:
            try:
                record[key] = json.loads(value)
            except json.JSONDecodeError:
                raise LineError(f"{key}: not JSON") from None
        else:
            record[key] = value
    return record


def _describe(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first.get("loc", ()))
    message = str(first.get("msg", "invalid")).removeprefix("Value error, ")
    return f"{where}: {message}" if where else message


class Importer:
    def __init__(
        self, *, db: Database, hashing: PasswordHashing, clock: Clock, oauth: OAuthService | None = None
    ) -> None:
        self.db = db
        self.hashing = hashing
        self.clock = clock
        self.oauth = oauth  # revokes the tokens of customers a file deactivates

    async def run(
        self, records: Iterable[tuple[int, dict[str, Any] | LineError]], *, institution_id: str
    ) -> ImportReport:
        async with self.db.reading() as session:
            if await institutions.get(session, institution_id) is None:
                raise InstitutionNotFound(f"no institution {institution_id}")
        report = ImportReport()
        batch: list[tuple[int, dict[str, Any] | LineError]] = []
        for item in records:
            batch.append(item)
            if len(batch) >= BATCH:
                await self._batch(batch, institution_id, report)
                batch = []
        if batch:
            await self._batch(batch, institution_id, report)
        return report

    async def _batch(
        self, batch: list[tuple[int, dict[str, Any] | LineError]], institution_id: str, report: ImportReport
    ) -> None:
        async with self.db.transaction() as session:
            for number, raw in batch:
                try:
                    if isinstance(raw, LineError):
                        raise raw
                    try:
                        record = CustomerIn.model_validate(raw)
                    except ValidationError as exc:
                        raise LineError(_describe(exc)) from None
                    async with session.begin_nested():
                        outcome = await self._upsert(session, record, institution_id)
                except LineError as exc:
                    report.refused.append((number, str(exc)))
                    continue
                except IntegrityError as exc:
                    report.refused.append((number, f"conflicts with another customer ({_constraint(exc)})"))
                    continue
                setattr(report, outcome, getattr(report, outcome) + 1)

    async def _upsert(self, session: AsyncSession, record: CustomerIn, institution_id: str) -> str:
        now = self.clock.now()
        customer = await repository.by_customer_id(
            session, institution_id=institution_id, customer_id=record.customerId
        )
        holder = await repository.by_login_id(session, institution_id=institution_id, login_id=record.loginId)
        if holder is not None and (customer is None or holder.id != customer.id):
            raise LineError(f"loginId {record.loginId!r} belongs to customer {holder.customer_id}")
        methods = [self._method(m) for m in record.contactMethods]
        values: dict[str, dict[str, Any]] = {
            "loginId": {"login_id": record.loginId.strip(), "login_key": repository.login_key(record.loginId)},
            "hostUserId": {"host_user_id": record.hostUserId},
            "memberNumber": {"member_number": record.memberNumber},
            "firstName": {"first_name": record.firstName},
            "lastName": {"last_name": record.lastName},
            "language": {"language": record.language},
            "registered": {"registered": record.registered},
            "acceptedDisclosure": {"accepted_disclosure": record.acceptedDisclosure},
            "active": {"active": record.active},
            "locked": {"locked": record.locked},
        }
        # A new customer takes every field (defaults included); an existing one only the fields
        # its line carries, so a lock or a flag set here since is not undone by an older file.
        present = record.model_fields_set if customer is not None else set(values)
        fields = {attr: value for name, group in values.items() if name in present for attr, value in group.items()}
        if customer is None:
            customer = Customer(
                id=new_id(), institution_id=institution_id, customer_id=record.customerId, created_at=now,
                updated_at=now, failed_login_count=0, failed_reset_count=0, contact_methods=[],
                password_hash=self._password_hash(record, None), **fields,
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
            new_hash = self._password_hash(record, customer.password_hash)
            if new_hash != customer.password_hash:
                customer.password_hash = new_hash
                changed = True
            outcome = "updated" if changed else "unchanged"
        if self._sync_methods(customer, methods, institution_id) and outcome == "unchanged":
            outcome = "updated"
        await session.flush()  # a new customer's row must exist before its accounts
        if await self._sync_accounts(session, customer, record, now) and outcome == "unchanged":
            outcome = "updated"
        if outcome != "unchanged":
            customer.updated_at = now
        await session.flush()
        return outcome

    def _password_hash(self, record: CustomerIn, current: str | None) -> str | None:
        """A file's password is an initial one: it never replaces a password the customer has."""
        if record.passwordHash is not None:
            try:
                scheme_of(record.passwordHash)
            except UnsupportedHash as exc:
                raise LineError(f"passwordHash: {exc}") from None
            return current or record.passwordHash
        if record.password is not None and not current:
            return self.hashing.hash(record.password)
        return current

    def _method(self, method: Any) -> dict[str, Any]:
        try:
            contact = normalise(method.protocol, method.contactInfo, method.telephoneCountryCode)
        except InvalidContact as exc:
            raise LineError(f"contactMethods[{method.id}]: {exc}") from None
        return {
            "method_id": method.id,
            "protocol": contact.protocol,
            "country_code": contact.country_code,
            "contact_info": contact.contact_info,
            "destination": contact.destination,
            "activated": method.isActivated,
            "validated": method.validated,
            "primary": method.primary,
            "enrolled_at": method.enrolledDateTime,
        }

    def _sync_methods(self, customer: Customer, methods: list[dict[str, Any]], institution_id: str) -> bool:
        """Make the customer's methods those of the file; whether anything changed."""
        existing = {m.method_id: m for m in customer.contact_methods}
        wanted = {m["method_id"] for m in methods}
        changed = False
        for gone in [m for m in customer.contact_methods if m.method_id not in wanted]:
            customer.contact_methods.remove(gone)
            changed = True
        for position, values in enumerate(methods):
            values = {**values, "position": position}
            if values["enrolled_at"] is not None and values["enrolled_at"].tzinfo is None:
                values["enrolled_at"] = values["enrolled_at"].replace(tzinfo=UTC)
            current = existing.get(values["method_id"])
            if current is None:
                customer.contact_methods.append(ContactMethod(id=new_id(), institution_id=institution_id, **values))
                changed = True
                continue
            for key, value in values.items():
                if getattr(current, key) != value:
                    setattr(current, key, value)
                    changed = True
        return changed


    async def _sync_accounts(self, session: AsyncSession, customer: Customer, record: CustomerIn, now: Any) -> bool:
        """Make the customer's accounts those of the file (by the file's account id); whether
        anything changed. The opaque API id of an account stays the same across re-imports."""
        if "accounts" not in record.model_fields_set:
            return False  # a line without accounts leaves the customer's accounts alone
        existing = {
            a.source_id: a
            for a in (await session.scalars(select(Account).where(Account.customer_pk == customer.id))).all()
        }
        wanted = {a.id for a in record.accounts}
        changed = False
        for gone in [a for key, a in existing.items() if key not in wanted]:
            await session.delete(gone)
            changed = True
        for position, account in enumerate(record.accounts):
            values = account_values(account, position)
            current = existing.get(account.id)
            if current is None:
                session.add(Account(
                    id=new_id(), institution_id=customer.institution_id, customer_pk=customer.id,
                    source_id=account.id, created_at=now, updated_at=now, **values,
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


def account_values(account: AccountIn, position: int) -> dict[str, Any]:
    """The stored columns of an imported account (the catalogue fills what the file leaves out)."""
    fi_type, description, _category = TYPES[account.type.value]
    current, available = account.currentBalance, account.availableBalance
    return {
        "position": position, "account_number": account.accountNumber, "nick_name": account.nickName,
        "description": account.description, "type_value": account.type.value,
        "fi_account_type": account.type.fiAccountType if account.type.fiAccountType is not None else fi_type,
        "type_description": account.type.description or description, "category": account.category,
        "primary_holder_name": account.primaryHolderName, "routing_number": account.routingNumber,
        "current_currency": current.currencyCode if current else None,
        "current_amount": current.decimal if current else None,
        "available_currency": available.currencyCode if available else None,
        "available_amount": available.decimal if available else None,
        "status": dict(account.status), "allowed_actions": dict(account.allowedActions),
    }


def _constraint(exc: IntegrityError) -> str:
    text = str(exc.orig).lower()
    if "login" in text:
        return "loginId"
    return "a unique field"
