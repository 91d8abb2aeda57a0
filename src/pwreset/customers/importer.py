"""``pwreset customers import``: JSON Lines or CSV in the format of contract section 10.

The pipeline: upsert by customer id, so re-running a file changes nothing. Lines are validated a
batch at a time (``lines.py``; in worker processes when the file has more than one batch, while the
previous batch is written), then each batch is written in one transaction by the database's write
path (``bulk.py`` on PostgreSQL, ``rowwise.py`` elsewhere): all or nothing, so a re-run after a
crash picks up where the file left off. A bad line is reported with its number and reason and
nothing of it is written. Which field fills which column: ``shapes.py``.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from itertools import chain, islice
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from pwreset.audit import service as audit
from pwreset.customers import marks
from pwreset.customers.bulk import BulkWriter
from pwreset.customers.lines import (
    Line,
    LineError,
    Raw,
    Tally,
    as_lines,
    prepare_plain,
    start_worker,
)
from pwreset.customers.lines import read_records as read_records
from pwreset.customers.rowwise import RowWriter
from pwreset.db import Database
from pwreset.institutions import repository as institutions
from pwreset.institutions.errors import InstitutionNotFound
from pwreset.kit.clock import Clock
from pwreset.kit.crypto import new_id
from pwreset.oauth.service import OAuthService
from pwreset.passwords.hashing import PasswordHashing

__all__ = ["ImportReport", "Importer", "LineError", "read_records"]

BATCH = 500  # lines per transaction, row by row (SQLite)
#: Customers created, updated or pruned by one run past which it refreshes the planner's statistics.
ANALYZE_AFTER = 10_000
BULK_BATCH = 2500  # lines per transaction on PostgreSQL's bulk path (up to 2 jobs + 1 batches held at once)


def default_jobs() -> int:
    """Validating processes for a large file: one per core, at most four."""
    return max(1, min(os.cpu_count() or 1, 4))


@dataclass
class ImportReport(Tally):
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
        bulk_path = db.dialect == "postgresql"
        self.writer: BulkWriter | RowWriter = (BulkWriter if bulk_path else RowWriter)(
            db=db, hashing=hashing, clock=clock, oauth=oauth
        )
        self.batch_size = batch_size or (BULK_BATCH if bulk_path else BATCH)
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
        await self.writer.write(lines, institution_id=institution_id, tally=report, run_id=run_id)

    async def _mark(self, conn: AsyncConnection, lines: list[Line], institution_id: str, run_id: str | None) -> None:
        if run_id is not None:
            await marks.add(conn, institution_id=institution_id, run_id=run_id,
                            customer_ids=[line.customer_id for line in lines], at=self.clock.now())

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

