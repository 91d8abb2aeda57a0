"""``pwreset customers import``: JSON Lines or CSV in the format of contract section 10.

Upsert by customer id, so re-running a file changes nothing. Lines are validated a batch at a time
(``lines.py``; in worker processes when the file has more than one batch, while the previous batch
is written), then each batch is written in one transaction: all or nothing, so a re-run after a
crash picks up where the file left off. A bad line is reported with its number and reason and
nothing of it is written.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from itertools import chain, islice
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from pwreset.accounts.models import Account
from pwreset.audit import service as audit
from pwreset.customers import bulk, marks
from pwreset.customers.lines import (
    ACCOUNT_COLUMNS,
    ALL,
    BIT,
    FIELDS,
    METHOD_FIELDS,
    Line,
    LineError,
    Raw,
    as_lines,
    prepare_plain,
    start_worker,
)
from pwreset.customers.lines import read_records as read_records
from pwreset.customers.models import ContactMethod, Customer
from pwreset.db import Database
from pwreset.institutions import repository as institutions
from pwreset.institutions.errors import InstitutionNotFound
from pwreset.kit.clock import Clock
from pwreset.kit.crypto import new_id, ordered_id, ordered_ids
from pwreset.oauth.service import OAuthService
from pwreset.passwords.hashing import PasswordHashing

__all__ = ["ImportReport", "Importer", "LineError", "read_records"]

BATCH = 500  # lines per transaction, row by row (SQLite)
#: Customers created, updated or pruned by one run past which it refreshes the planner's statistics.
ANALYZE_AFTER = 10_000
BULK_BATCH = 2500  # lines per transaction on PostgreSQL's bulk path (up to 2 jobs + 1 batches held at once)
_ACTIVE = FIELDS.index("active")  # in Line.values
# Each key of the batch is looked up on its own, through the unique index, whatever the planner's
# statistics say. A plain join of unnest() with customers was planned, on a table a load was filling
# and nobody had analysed yet, as a scan of all the institution's customers into a hash: 0.1 ms a
# batch at the start, 130 ms at a million customers, 54 s of a 121 s import (PostgreSQL's statement
# log). "= ANY(array)" was worse (a full scan testing every row against the array: 7 s a batch at
# 50,000). OFFSET 0 keeps the planner from flattening the LATERAL subquery into such a join, so the
# plan stays a nested loop of index lookups (4 ms a batch at a million).
_EXISTING = text(
    "SELECT c.id, c.customer_id, c.login_key, c.has_password, c.active "
    "FROM unnest(CAST(:ids AS text[])) AS x(customer_id) "
    "CROSS JOIN LATERAL (SELECT c.id, c.customer_id, c.login_key, c.password_hash IS NOT NULL AS has_password, "
    "c.active FROM customers c WHERE c.institution_id = :i AND c.customer_id = x.customer_id OFFSET 0) AS c"
)
_LOGIN_HOLDERS = text(
    "SELECT c.login_key, c.customer_id FROM unnest(CAST(:keys AS text[])) AS x(login_key) "
    "CROSS JOIN LATERAL (SELECT c.login_key, c.customer_id FROM customers c "
    "WHERE c.institution_id = :i AND c.login_key = x.login_key OFFSET 0) AS c"
)


def default_jobs() -> int:
    """Validating processes for a large file: one per core, at most four."""
    return max(1, min(os.cpu_count() or 1, 4))


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


def _batches(records: Iterable[tuple[int, Raw]], size: int) -> Iterator[list[tuple[int, Raw]]]:
    iterator = iter(records)
    while batch := list(islice(iterator, size)):
        yield batch


class Importer:
    """Reads lines in batches: each batch is validated in full first (a bad line is refused with its
    number and reason, and nothing of it is written), then written in one transaction, so a batch is
    all or nothing and a re-run after a crash picks up where the file left off (upserts). On
    PostgreSQL the batch goes through the bulk path (``bulk.py``: COPY, then set-based upserts);
    elsewhere row by row.

    A file of more than one batch is validated by ``jobs`` worker processes, up to ``2 * jobs``
    batches ahead of the one being written, so validation (the costly part: pydantic, phonenumbers,
    email-validator) runs on every core while the database writes, and a worker that finishes a
    batch early has the next one waiting (with ``jobs`` ahead they stood idle now and then).
    Batches are written in file order, and at most ``2 * jobs + 1`` are held at once, so memory
    stays flat whatever the file size. ``jobs=0`` validates in this process."""

    def __init__(
        self, *, db: Database, hashing: PasswordHashing, clock: Clock, oauth: OAuthService | None = None,
        batch_size: int | None = None, jobs: int | None = None,
    ) -> None:
        self.db = db
        self.hashing = hashing
        self.clock = clock
        self.oauth = oauth  # revokes the tokens of customers a file deactivates or prunes
        self.batch_size = batch_size or (BULK_BATCH if db.dialect == "postgresql" else BATCH)
        self.jobs = default_jobs() if jobs is None else jobs

    async def run(
        self,
        records: Iterable[tuple[int, Raw]],
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
        pool: ProcessPoolExecutor | None = None
        pending: deque[Awaitable[tuple[list[tuple[Any, ...]], list[tuple[int, str]]]]] = deque()
        loop = asyncio.get_running_loop()

        async def write_next() -> None:
            lines, refused = await pending.popleft()
            await self._batch(as_lines(lines), refused, institution_id, report, run_id if prune else None)
            if progress is not None:
                progress(report)

        try:
            batches = _batches(records, self.batch_size)
            ahead = [batch for batch in (next(batches, None), next(batches, None)) if batch is not None]
            if len(ahead) == 2 and self.jobs > 0:  # more than one batch: a pool pays
                # "spawn": a fresh interpreter, not a fork of this one with its event loop and threads.
                pool = ProcessPoolExecutor(
                    self.jobs, mp_context=multiprocessing.get_context("spawn"), initializer=start_worker,
                    initargs=(os.getpid(),),
                )
            for batch in chain(ahead, batches):
                report.read += len(batch)
                if pool is None:
                    done: asyncio.Future[tuple[list[tuple[Any, ...]], list[tuple[int, str]]]] = loop.create_future()
                    done.set_result(prepare_plain(batch))
                    pending.append(done)
                else:
                    pending.append(loop.run_in_executor(pool, prepare_plain, batch))
                if len(pending) > 2 * self.jobs:
                    await write_next()
            while pending:
                await write_next()
        finally:
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)
        if prune and not dry_run:
            if report.refused or not (report.created + report.updated + report.unchanged):
                report.prune_skipped = True  # a partial or empty file must not delete anyone
            else:
                report.pruned = await self._prune(institution_id, run_id)
            await marks.clear(self.db, institution_id=institution_id, run_id=run_id)
        if self.db.dialect == "postgresql" and report.created + report.updated + report.pruned >= ANALYZE_AFTER:
            await self._analyze()
        if progress is not None:
            progress(report)
        return report

    async def _analyze(self) -> None:
        """Fresh planner statistics after a large load. Without them (a new table, or a server whose
        autovacuum has not got there yet, or is off) PostgreSQL guessed a thousand contact methods
        a customer and read a customer's methods with a bitmap scan: 2.3 ms instead of 0.4 ms."""
        async with self.db.engine.begin() as conn:
            await conn.execute(text("ANALYZE customers, contact_methods, accounts"))

    async def _batch(
        self, lines: list[Line], refused: list[tuple[int, str]], institution_id: str, report: ImportReport,
        run_id: str | None,
    ) -> None:
        """Write a validated batch; with ``run_id`` (``--prune``), mark its customers in the same
        transaction."""
        report.refused.extend(refused)
        if report.dry_run or not lines:
            report.valid += len(lines)
            return
        if self.db.dialect == "postgresql":
            await self._write_bulk(lines, institution_id, report, run_id)
        else:
            await self._write_rows(lines, institution_id, report, run_id)

    async def _mark(self, conn: AsyncConnection, lines: list[Line], institution_id: str, run_id: str | None) -> None:
        if run_id is not None:
            await marks.add(conn, institution_id=institution_id, run_id=run_id,
                            customer_ids=[line.customer_id for line in lines], at=self.clock.now())

    async def _write_rows(
        self, lines: list[Line], institution_id: str, report: ImportReport, run_id: str | None = None
    ) -> None:
        """Row by row, each line in its own savepoint; what the batch's lines refer to is read first,
        in three queries (one query per line and relationship made SQLite import 44 lines/s)."""
        async with self.db.transaction() as session:
            customers = {
                c.customer_id: c for c in (await session.scalars(select(Customer).where(
                    Customer.institution_id == institution_id,
                    Customer.customer_id.in_([line.customer_id for line in lines]),
                ))).all()
            }
            holders = _Holders((await session.execute(
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
                    report.refused.append((line.number, str(exc)))
                    continue
                except IntegrityError as exc:
                    report.refused.append((line.number, f"conflicts with another customer ({_constraint(exc)})"))
                    continue
                holders.took(line, previous_key)
                setattr(report, outcome, getattr(report, outcome) + 1)
            await self._mark(await session.connection(), lines, institution_id, run_id)

    async def _write_bulk(
        self, lines: list[Line], institution_id: str, report: ImportReport, run_id: str | None
    ) -> None:
        now = self.clock.now()
        async with self.db.engine.begin() as conn:
            ids = [line.customer_id for line in lines]
            existing = {
                row.customer_id: row for row in (await conn.execute(_EXISTING, {"i": institution_id, "ids": ids})).all()
            }
            holders = _Holders((await conn.execute(
                _LOGIN_HOLDERS, {"i": institution_id, "keys": [line.login_key for line in lines]}
            )).all())
            new = bulk.New(institution_id=institution_id, now=now)
            old: list[bulk.Staged] = []
            # Keys for every row the batch may add (a customer, its methods and accounts), drawn at once.
            keys = iter(ordered_ids(sum(1 + len(line.methods) + len(line.accounts or ()) for line in lines)))
            for line in lines:
                if (taken := holders.refusal(line)) is not None:
                    report.refused.append((line.number, taken))
                    continue
                found = existing.get(line.customer_id)
                if found is None:
                    new.add(line, next(keys), keys, password_hash=self._password_hash(line, None))
                else:
                    old.append(self._stage(line, found, keys))
                holders.took(line, found.login_key if found is not None else None)
            outcomes = await bulk.write(conn, new, old, institution_id=institution_id, now=now, oauth=self.oauth)
            await self._mark(conn, lines, institution_id, run_id)
        for outcome in outcomes.values():
            setattr(report, outcome, getattr(report, outcome) + 1)

    def _stage(self, line: Line, found: Any, keys: Iterator[str]) -> bulk.Staged:
        """A line of a customer the database holds (``found``), for the staging tables."""
        # The SQL keeps a hash the customer has (COALESCE); hash a plain password only if needed.
        password_hash = None if found.has_password else self._password_hash(line, None)
        return bulk.Staged(
            customer_id=line.customer_id, pk=found.id, moves_login=found.login_key != line.login_key,
            customer=bulk.customer_row(found.id, line, password_hash=password_hash),
            methods=[bulk.method_row(next(keys), found.id, n, method) for n, method in enumerate(line.methods)],
            accounts=None if line.accounts is None else [
                bulk.account_row(next(keys), found.id, source_id, columns) for source_id, columns in line.accounts
            ],
            deactivates=(
                found.active and bool(line.present & BIT["active"]) and not line.values[_ACTIVE]
            ),
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
                password_hash=self._password_hash(line, None), **fields,
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
            new_hash = self._password_hash(line, customer.password_hash)
            if new_hash != customer.password_hash:
                customer.password_hash = new_hash
                changed = True
            outcome = "updated" if changed else "unchanged"
        if self._sync_methods(customer, line, institution_id) and outcome == "unchanged":
            outcome = "updated"
        if outcome == "created" and line.accounts:
            await session.flush()  # Account has no relationship to order it: the customer's row goes first
        if await self._sync_accounts(session, customer, accounts, line, now) and outcome == "unchanged":
            outcome = "updated"
        if outcome != "unchanged":
            customer.updated_at = now
        await session.flush()
        return customer, outcome

    def _password_hash(self, line: Line, current: str | None) -> str | None:
        """A file's password is an initial one: it never replaces a password the customer has.
        (``lines.prepare`` has already refused a ``passwordHash`` of an unknown scheme.)"""
        if line.password_hash is not None:
            return current or line.password_hash
        if line.password is not None and not current:
            return self.hashing.hash(line.password)
        return current

    def _sync_methods(self, customer: Customer, line: Line, institution_id: str) -> bool:
        """Make the customer's methods those of the file; whether anything changed."""
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
                customer.contact_methods.append(ContactMethod(id=ordered_id(), institution_id=institution_id, **values))
                changed = True
                continue
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
            values = {
                **dict(zip(ACCOUNT_COLUMNS, columns[:-2], strict=True)),
                "status": json.loads(columns[-2]), "allowed_actions": json.loads(columns[-1]),
            }
            for amount in ("current_amount", "available_amount"):  # (decimal strings in a Line)
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


class _Holders:
    """Who holds each login key a batch names (both write paths), kept current in file order as its
    lines move logins: a login id one line gives up, a later line may take."""

    def __init__(self, rows: Iterable[tuple[str, str]]) -> None:
        self._by_key = dict(rows)  # login key -> customer id

    def refusal(self, line: Line) -> str | None:
        """Why the line cannot have its login id, if another customer holds it."""
        holder = self._by_key.get(line.login_key)
        if holder is not None and holder != line.customer_id:
            return f"loginId {line.login_id!r} belongs to customer {holder}"
        return None

    def took(self, line: Line, previous_key: str | None) -> None:
        """The line's customer now holds its login key, and no longer ``previous_key``."""
        if previous_key is not None and self._by_key.get(previous_key) == line.customer_id:
            del self._by_key[previous_key]
        self._by_key[line.login_key] = line.customer_id


def _constraint(exc: IntegrityError) -> str:
    text = str(exc.orig).lower()
    if "login" in text:
        return "loginId"
    return "a unique field"
