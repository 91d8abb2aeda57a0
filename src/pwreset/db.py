"""Database plumbing: the declarative base, engines and the unit of work.

Repositories flush and never commit; whoever opened the unit of work (a request, a CLI command, a
worker job) commits once, so a state change and everything it implies land together or not at all.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, MetaData, Table, event, insert, text
from sqlalchemy.engine import Connection, Dialect, make_url
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase, Session
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


log = logging.getLogger(__name__)
_AFTER_COMMIT = "pwreset.after_commit"


def on_commit(session: AsyncSession | Session, callback: Callable[[], None]) -> None:
    """Run ``callback`` once the caller's transaction has committed (never if it rolls back).

    For side effects that must not run for a change that did not happen: dropping cached tokens,
    waking other nodes or delivery workers.
    """
    session.info.setdefault(_AFTER_COMMIT, []).append(callback)


@event.listens_for(Session, "after_commit")
def _run_after_commit(session: Session) -> None:
    for callback in session.info.pop(_AFTER_COMMIT, ()):
        try:
            callback()
        except Exception:
            log.exception("after-commit callback failed")


@event.listens_for(Session, "after_rollback")
def _drop_after_commit(session: Session) -> None:
    session.info.pop(_AFTER_COMMIT, None)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def async_url(url: str) -> str:
    """Map a plain ``postgresql://`` or ``sqlite:///`` URL to its async driver."""
    parsed = make_url(url.replace("postgres://", "postgresql://", 1) if url.startswith("postgres://") else url)
    backend = parsed.get_backend_name()
    if backend == "postgresql":
        parsed = parsed.set(drivername="postgresql+asyncpg")
    elif backend == "sqlite":
        parsed = parsed.set(drivername="sqlite+aiosqlite")
    else:
        raise ValueError(f"unsupported database: {backend}")
    return parsed.render_as_string(hide_password=False)


def redacted_url(url: str) -> str:
    """The URL without its password, for messages."""
    return make_url(url).render_as_string(hide_password=True)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy's "begin" event start transactions, as BEGIN IMMEDIATE (below).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    # WAL lets readers and one writer work at once, across processes; busy_timeout waits for the
    # write lock instead of failing at once when several workers or nodes share the file.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _begin_immediate(conn: Connection) -> None:
    if conn.get_execution_options().get("isolation_level") != "AUTOCOMMIT":
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def create_engine(url: str, *, pool_size: int = 10) -> AsyncEngine:
    target = async_url(url)
    if target.startswith("sqlite"):
        engine = create_async_engine(target)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        # A deferred transaction that reads and then writes fails at once (SQLITE_BUSY) when
        # another connection wrote in between; taking the write lock up front makes concurrent
        # units of work wait their turn (busy_timeout) instead.
        event.listen(engine.sync_engine, "begin", _begin_immediate)
        return engine
    return create_async_engine(
        target,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=False,
        # Transaction-level statement caching is on by default in asyncpg; keep SQLAlchemy's too.
    )


class Database:
    """An engine plus the session factory; the one place that opens units of work."""

    def __init__(self, url: str, *, pool_size: int = 10) -> None:
        self.url = url
        self.engine = create_engine(url, pool_size=pool_size)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False, autoflush=False)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """One unit of work: commits when the block ends, rolls back if it raises."""
        async with self.sessions() as session, session.begin():
            yield session

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[AsyncSession]:
        """A read-only unit of work (rolled back at the end)."""
        async with self.sessions() as session:
            yield session

    @asynccontextmanager
    async def autocommit(self) -> AsyncIterator[AsyncConnection]:
        """A connection for single read-only statements: no BEGIN and ROLLBACK round trips."""
        async with self.engine.connect() as conn:
            yield await conn.execution_options(isolation_level="AUTOCOMMIT")

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()


class GroupCommitter:
    """Group commit for one hot insert: rows from concurrent requests share one transaction.

    Each caller waits until its row is committed, so durability is the same as a transaction per
    row; under load, rows that arrive while a commit is in flight go together in the next one, so
    the database sees a few multi-row inserts instead of one BEGIN/INSERT/COMMIT per request. At
    low load a row is written at once, alone: no timer, no added latency.
    """

    def __init__(self, db: Database, table: Table, *, max_batch: int = 500, max_inflight: int = 4) -> None:
        self.db = db
        self.table = table
        self.max_batch = max_batch
        self.max_inflight = max_inflight
        self._pending: list[tuple[dict[str, Any], asyncio.Future[None]]] = []
        self._inflight = 0
        self._tasks: set[asyncio.Task[None]] = set()

    async def insert(self, row: dict[str, Any]) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((row, future))
        if self._inflight < self.max_inflight:
            self._inflight += 1
            task = asyncio.create_task(self._flush())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        await future

    async def _flush(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending[: self.max_batch], self._pending[self.max_batch :]
                try:
                    await self._write([row for row, _ in batch])
                except BaseException as exc:
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    if not isinstance(exc, Exception):
                        raise
                else:
                    for _, future in batch:
                        if not future.done():
                            future.set_result(None)
        finally:
            self._inflight -= 1

    async def _write(self, rows: list[dict[str, Any]]) -> None:
        if self.db.dialect != "postgresql":
            async with self.db.engine.begin() as conn:
                await conn.execute(insert(self.table), rows)
            return
        # PostgreSQL's bulk path: COPY on the driver connection, in one transaction. Values go
        # through each column's bind processor (JSON, UTC datetimes) but skip the rest of
        # SQLAlchemy's per-row statement machinery, which is most of the cost at this volume.
        columns = [column for column in self.table.columns if column.name in rows[0]]
        dialect = self.db.engine.dialect
        processors = [column.type.dialect_impl(dialect).bind_processor(dialect) for column in columns]
        names = [column.name for column in columns]
        records = [
            tuple(
                process(row[name]) if process is not None else row[name]
                for name, process in zip(names, processors, strict=True)
            )
            for row in rows
        ]
        async with self.db.engine.connect() as conn:
            driver = (await conn.get_raw_connection()).driver_connection
            assert driver is not None
            async with driver.transaction():
                await driver.copy_records_to_table(self.table.name, records=records, columns=names)
