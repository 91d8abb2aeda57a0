"""``pwreset customers import``: JSON Lines or CSV in the format of contract section 10.

Upsert by customer id, so re-running a file changes nothing. Each line is its own savepoint: a bad
line is reported with its number and reason and nothing of it is written; the rest goes in. Lines
are committed in batches.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, timedelta
from typing import Any, TextIO

from pydantic import ValidationError
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from pwreset.accounts.catalogue import TYPES
from pwreset.accounts.models import Account
from pwreset.accounts.schemas import AccountIn
from pwreset.audit import service as audit
from pwreset.customers import bulk, marks, repository
from pwreset.customers.contact import InvalidContact, normalise
from pwreset.customers.models import ContactMethod, Customer
from pwreset.customers.schemas import CustomerIn
from pwreset.db import Database
from pwreset.institutions import repository as institutions
from pwreset.institutions.errors import InstitutionNotFound
from pwreset.kit.clock import Clock
from pwreset.kit.crypto import new_id, ordered_id
from pwreset.oauth.service import OAuthService
from pwreset.passwords.hashing import PasswordHashing, UnsupportedHash, scheme_of

BATCH = 500  # lines per transaction, row by row (SQLite)
BULK_BATCH = 5000  # lines per transaction on PostgreSQL's bulk path
# Joins against unnest(), not "= ANY(array)": with the table's statistics still those of a much
# smaller table mid-import, the planner scanned the whole table and tested every row against the
# 5,000-element array (7 s a batch at 50,000 customers, measured in the PostgreSQL log).
_EXISTING = text(
    "SELECT c.id, c.customer_id, c.password_hash IS NOT NULL AS has_password, c.active "
    "FROM unnest(CAST(:ids AS text[])) AS x(customer_id) "
    "JOIN customers c ON c.institution_id = :i AND c.customer_id = x.customer_id"
)
_LOGIN_HOLDERS = text(
    "SELECT c.login_key, c.customer_id FROM unnest(CAST(:keys AS text[])) AS x(login_key) "
    "JOIN customers c ON c.institution_id = :i AND c.login_key = x.login_key"
)
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
    read: int = 0
    dry_run: bool = False
    valid: int = 0  # a dry run's lines that would be written
    pruned: int = 0
    prune_skipped: bool = False

    @property
    def total(self) -> int:
        return self.read


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


@dataclass
class Prepared:
    """A line that passed validation: the record and its normalised contact methods."""

    number: int
    record: CustomerIn
    login_key: str
    methods: list[dict[str, Any]]


class Importer:
    """Reads lines in batches: each batch is validated in full first (a bad line is refused with its
    number and reason, and nothing of it is written), then written in one transaction, so a batch is
    all or nothing and a re-run after a crash picks up where the file left off (upserts). On
    PostgreSQL the batch goes through the bulk path (``bulk.py``: COPY into staging tables, then
    set-based upserts); elsewhere row by row."""

    def __init__(
        self, *, db: Database, hashing: PasswordHashing, clock: Clock, oauth: OAuthService | None = None,
        batch_size: int | None = None,
    ) -> None:
        self.db = db
        self.hashing = hashing
        self.clock = clock
        self.oauth = oauth  # revokes the tokens of customers a file deactivates or prunes
        self.batch_size = batch_size or (BULK_BATCH if db.dialect == "postgresql" else BATCH)

    async def run(
        self,
        records: Iterable[tuple[int, dict[str, Any] | LineError]],
        *,
        institution_id: str,
        dry_run: bool = False,
        prune: bool = False,
        progress: Callable[[ImportReport], None] | None = None,
    ) -> ImportReport:
        async with self.db.reading() as session:
            if await institutions.get(session, institution_id) is None:
                raise InstitutionNotFound(f"no institution {institution_id}")
        report = ImportReport(dry_run=dry_run)
        run_id = new_id()
        if prune and not dry_run:
            await marks.clear_stale(self.db, before=self.clock.now() - timedelta(days=1))
        batch: list[tuple[int, dict[str, Any] | LineError]] = []
        for item in records:
            batch.append(item)
            if len(batch) >= self.batch_size:
                await self._batch(batch, institution_id, report, run_id if prune else None)
                batch = []
                if progress is not None:
                    progress(report)
        if batch:
            await self._batch(batch, institution_id, report, run_id if prune else None)
        if prune and not dry_run:
            if report.refused or not (report.created + report.updated + report.unchanged):
                report.prune_skipped = True  # a partial or empty file must not delete anyone
            else:
                report.pruned = await self._prune(institution_id, run_id)
            await marks.clear(self.db, institution_id=institution_id, run_id=run_id)
        if progress is not None:
            progress(report)
        return report

    def _prepare(self, batch: list[tuple[int, dict[str, Any] | LineError]], report: ImportReport) -> list[Prepared]:
        """Validate and normalise a batch; refuse bad lines and repeats within the batch."""
        prepared: list[Prepared] = []
        by_customer: dict[str, int] = {}
        by_login: dict[str, tuple[str, int]] = {}
        for number, raw in batch:
            report.read += 1
            try:
                if isinstance(raw, LineError):
                    raise raw
                try:
                    record = CustomerIn.model_validate(raw)
                except ValidationError as exc:
                    raise LineError(_describe(exc)) from None
                methods = [self._method(m) for m in record.contactMethods]
                if record.passwordHash is not None:
                    try:
                        scheme_of(record.passwordHash)
                    except UnsupportedHash as exc:
                        raise LineError(f"passwordHash: {exc}") from None
                key = repository.login_key(record.loginId)
                if record.customerId in by_customer:
                    raise LineError(f"customer {record.customerId} is also on line {by_customer[record.customerId]}")
                holder = by_login.get(key)
                if holder is not None and holder[0] != record.customerId:
                    raise LineError(f"loginId {record.loginId!r} belongs to customer {holder[0]} (line {holder[1]})")
            except LineError as exc:
                report.refused.append((number, str(exc)))
                continue
            by_customer[record.customerId] = number
            by_login[key] = (record.customerId, number)
            prepared.append(Prepared(number, record, key, methods))
        return prepared

    async def _batch(
        self, batch: list[tuple[int, dict[str, Any] | LineError]], institution_id: str, report: ImportReport,
        run_id: str | None,
    ) -> None:
        prepared = self._prepare(batch, report)
        if report.dry_run or not prepared:
            report.valid += len(prepared)
            return
        if self.db.dialect == "postgresql":
            await self._write_bulk(prepared, institution_id, report)
        else:
            await self._write_rows(prepared, institution_id, report)
        if run_id is not None:
            await marks.add(self.db, institution_id=institution_id, run_id=run_id,
                            customer_ids=[p.record.customerId for p in prepared], at=self.clock.now())

    async def _write_rows(self, prepared: list[Prepared], institution_id: str, report: ImportReport) -> None:
        async with self.db.transaction() as session:
            for line in prepared:
                try:
                    async with session.begin_nested():
                        outcome = await self._upsert(session, line.record, institution_id, line.methods)
                except LineError as exc:
                    report.refused.append((line.number, str(exc)))
                    continue
                except IntegrityError as exc:
                    report.refused.append((line.number, f"conflicts with another customer ({_constraint(exc)})"))
                    continue
                setattr(report, outcome, getattr(report, outcome) + 1)

    async def _write_bulk(self, prepared: list[Prepared], institution_id: str, report: ImportReport) -> None:
        now = self.clock.now()
        async with self.db.engine.begin() as conn:
            ids = [p.record.customerId for p in prepared]
            existing = {
                row.customer_id: row for row in (await conn.execute(_EXISTING, {"i": institution_id, "ids": ids})).all()
            }
            holders = {
                row.login_key: row.customer_id
                for row in (await conn.execute(
                    _LOGIN_HOLDERS, {"i": institution_id, "keys": [p.login_key for p in prepared]}
                )).all()
            }
            staged: list[bulk.Staged] = []
            for line in prepared:
                record = line.record
                holder = holders.get(line.login_key)
                if holder is not None and holder != record.customerId:
                    report.refused.append((line.number, f"loginId {record.loginId!r} belongs to customer {holder}"))
                    continue
                found = existing.get(record.customerId)
                staged.append(self._stage(line, found))
            outcomes = await bulk.write(conn, staged, institution_id=institution_id, now=now, oauth=self.oauth)
        for outcome in outcomes.values():
            setattr(report, outcome, getattr(report, outcome) + 1)

    def _stage(self, line: Prepared, found: Any) -> bulk.Staged:
        record = line.record
        is_new = found is None
        pk = ordered_id() if is_new else found.id
        # The SQL keeps a hash the customer has (COALESCE); hash a plain password only if needed.
        password_hash = None if not is_new and found.has_password else self._password_hash(record, None)
        values = {
            "customer_id": record.customerId, "login_id": record.loginId.strip(), "login_key": line.login_key,
            **{column: getattr(record, name) for name, column in bulk.OPTIONAL_FIELDS.items()},
        }
        present = bulk.ALL if is_new else sum(
            bulk.BIT[column] for name, column in bulk.OPTIONAL_FIELDS.items() if name in record.model_fields_set
        )
        methods = []
        for position, method in enumerate(line.methods):
            enrolled = method["enrolled_at"]
            if enrolled is not None and enrolled.tzinfo is None:
                method = {**method, "enrolled_at": enrolled.replace(tzinfo=UTC)}
            methods.append(bulk.method_row(pk, position, method))
        accounts = None
        if "accounts" in record.model_fields_set:
            accounts = [bulk.account_row(pk, account_values(a, n), a.id) for n, a in enumerate(record.accounts)]
        return bulk.Staged(
            customer_id=record.customerId, pk=pk, is_new=is_new,
            customer=bulk.customer_row(pk, values, password_hash=password_hash, present=present, is_new=is_new),
            methods=methods, accounts=accounts,
            deactivates=not is_new and found.active and "active" in record.model_fields_set and not record.active,
        )

    async def _prune(self, institution_id: str, run_id: str) -> int:
        """Delete the institution's customers the file did not name; revoke their tokens first."""
        async with self.db.transaction() as session:
            gone = await marks.absent(session, institution_id=institution_id, run_id=run_id)
            for customer in gone:
                if self.oauth is not None:
                    await self.oauth.revoke_customer_tokens(
                        session, institution_id=institution_id, customer_id=customer.customer_id
                    )
                await session.delete(customer)
            if gone:
                await audit.record_event(
                    session, clock=self.clock, event_type="customers.pruned", outcome="deleted", actor="cli",
                    institution_id=institution_id, details={"count": len(gone)},
                )
        return len(gone)

    async def _upsert(
        self, session: AsyncSession, record: CustomerIn, institution_id: str, methods: list[dict[str, Any]]
    ) -> str:
        now = self.clock.now()
        customer = await repository.by_customer_id(
            session, institution_id=institution_id, customer_id=record.customerId
        )
        holder = await repository.by_login_id(session, institution_id=institution_id, login_id=record.loginId)
        if holder is not None and (customer is None or holder.id != customer.id):
            raise LineError(f"loginId {record.loginId!r} belongs to customer {holder.customer_id}")
        values: dict[str, dict[str, Any]] = {
            "loginId": {"login_id": record.loginId.strip(), "login_key": repository.login_key(record.loginId)},
            **{name: {column: getattr(record, name)} for name, column in bulk.OPTIONAL_FIELDS.items()},
        }
        # A new customer takes every field (defaults included); an existing one only the fields
        # its line carries, so a lock or a flag set here since is not undone by an older file.
        present = record.model_fields_set if customer is not None else set(values)
        fields = {attr: value for name, group in values.items() if name in present for attr, value in group.items()}
        if customer is None:
            customer = Customer(
                id=ordered_id(), institution_id=institution_id, customer_id=record.customerId, created_at=now,
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
        """A file's password is an initial one: it never replaces a password the customer has.
        (``_prepare`` has already refused a ``passwordHash`` of an unknown scheme.)"""
        if record.passwordHash is not None:
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
                customer.contact_methods.append(ContactMethod(id=ordered_id(), institution_id=institution_id, **values))
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
                    id=ordered_id(), institution_id=customer.institution_id, customer_pk=customer.id,
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
