"""Database plumbing: the declarative base, engines and the unit of work.

Repositories flush and never commit; whoever opened the unit of work (a request, a CLI command, a
worker job) commits once, so a state change and everything it implies land together or not at all.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Generic, TypeVar, cast

import asyncpg
import asyncpg.exceptions._base as asyncpg_errors
from sqlalchemy import DateTime, MetaData, Numeric, String, Table, event, insert, text
from sqlalchemy.engine import Connection, Dialect, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase, Session
from sqlalchemy.sql.expression import Select
from sqlalchemy.types import TypeDecorator

T = TypeVar("T")

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


class ExactDecimal(TypeDecorator[Decimal]):
    """Money and other exact amounts: NUMERIC(20, 4) on PostgreSQL; on SQLite, whose NUMERIC would
    keep a float, the decimal's text. Never a float in storage."""

    impl = Numeric(20, 4)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> Any:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(32))
        return dialect.type_descriptor(Numeric(20, 4, asdecimal=True))

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if not isinstance(value, Decimal):
            raise TypeError("amounts are Decimal, never float")
        return str(value) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        return None if value is None else Decimal(value)


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
        engine = create_async_engine(target, hide_parameters=True)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        # A deferred transaction that reads and then writes fails at once (SQLITE_BUSY) when
        # another connection wrote in between; taking the write lock up front makes concurrent
        # units of work wait their turn (busy_timeout) instead.
        event.listen(engine.sync_engine, "begin", _begin_immediate)
        return engine
    return create_async_engine(
        target,
        pool_size=pool_size,
        # No overflow: a connection opened for a burst would be closed again on check-in, so
        # every request beyond the pool size paid a new connection (TLS negotiation included).
        # Requests beyond it wait for a pooled connection instead, up to pool_timeout.
        max_overflow=0,
        pool_timeout=10,
        pool_pre_ping=False,
        # A failed statement's message must not carry its values (login ids, customer ids) into logs.
        hide_parameters=True,
    )


#: SQLSTATE classes that mean the database, not the statement, failed: connection exception,
#: insufficient resources (too many connections, disk full), operator intervention (shutdown,
#: pg_terminate_backend, starting up).
_OUTAGE_SQLSTATE_CLASSES = frozenset({"08", "53", "57"})
#: asyncpg's InterfaceErrors that are about the call, not the connection.
_ASYNCPG_CLIENT_ERRORS = (
    asyncpg_errors.DataError, asyncpg_errors.ClientConfigurationError, asyncpg_errors.UnsupportedClientFeatureError,
)
#: OSErrors of local files, never of a server.
_LOCAL_OS_ERRORS = (FileNotFoundError, FileExistsError, PermissionError, IsADirectoryError, NotADirectoryError)


def is_outage(exc: BaseException) -> bool:
    """Whether ``exc`` says a dependency is unavailable (answered with the family's 503) rather than
    that the code is wrong (a 500 and a traceback). Follows SQLAlchemy's wrapping down to the
    driver's own exception: raw asyncpg errors reach the hot paths unwrapped (``Database.fetch``,
    the group commits)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, PoolTimeout | ConnectionError | TimeoutError):
            return True
        if isinstance(current, OSError) and not isinstance(current, _LOCAL_OS_ERRORS):
            return True  # (a refused or unreachable server: asyncio's "Multiple exceptions" has no errno)
        if isinstance(current, DBAPIError) and current.connection_invalidated:
            return True
        if isinstance(current, _ASYNCPG_CLIENT_ERRORS):
            return False  # the statement's own values or the client's setup: a bug, not an outage
        if isinstance(current, asyncpg.PostgresConnectionError | asyncpg.InterfaceError | asyncpg.InternalClientError):
            # InterfaceError: "connection is closed"; InternalClientError: a connection left out of
            # step with its protocol by a drop mid-operation.
            return True
        state = getattr(current, "sqlstate", None) or getattr(current, "pgcode", None)
        if isinstance(state, str) and state[:2] in _OUTAGE_SQLSTATE_CLASSES:
            return True
        if isinstance(current, sqlite3.OperationalError):
            return True  # locked, busy, disk I/O: the file, not the statement
        current = getattr(current, "orig", None) or current.__cause__
    return False


class Database:
    """An engine plus the session factory; the one place that opens units of work."""

    def __init__(self, url: str, *, pool_size: int = 10) -> None:
        self.url = url
        self.engine = create_engine(url, pool_size=pool_size)
        self.pool_size = pool_size
        self._raw_pool: asyncpg.Pool | None = None
        self._raw_lock = asyncio.Lock()
        self._compiled: dict[Select[Any], tuple[str, tuple[str, ...]]] = {}
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

    async def fetch(self, statement: Select[Any], params: dict[str, Any]) -> Sequence[Mapping[str, Any]]:
        """Rows of one read-only statement, as mappings: the path of the hottest reads.

        On PostgreSQL it goes straight through asyncpg, on a small pool of its own with the same
        connection arguments as the engine: the statement is compiled once, and asyncpg keeps it
        prepared per connection, so a read costs no SQLAlchemy work at all (about 40 % of the CPU
        of a directory read through Core). Elsewhere it runs through Core in autocommit.
        """
        if self.dialect != "postgresql":
            async with self.autocommit() as conn:
                return cast(Sequence[Mapping[str, Any]], (await conn.execute(statement, params)).mappings().all())
        compiled = self._compiled.get(statement)
        if compiled is None:
            done = statement.compile(dialect=self.engine.dialect)
            compiled = self._compiled[statement] = (str(done), tuple(done.positiontup or ()))
        sql, names = compiled
        values = [params[name] for name in names]
        pool = self._raw_pool or await self._open_raw_pool()
        try:
            return await _fetch_on(pool, sql, values)
        except Exception as exc:
            if not is_outage(exc):
                raise
        # A pooled connection the server dropped (a restart, a failover, pg_terminate_backend): a
        # read is safe to run again, once, on a fresh connection.
        return await _fetch_on(pool, sql, values)

    async def _open_raw_pool(self) -> asyncpg.Pool:
        async with self._raw_lock:
            if self._raw_pool is None:
                args, kwargs = self.engine.dialect.create_connect_args(self.engine.url)
                self._raw_pool = await asyncpg.create_pool(
                    # min_size 0: no background task that reconnects (and logs) while the server is down.
                    *args, **kwargs, min_size=0, max_size=max(2, self.pool_size // 2),
                    # Single autocommit SELECTs leave no session state: skip the reset round trip
                    # (RESET ALL, UNLISTEN *, ...) asyncpg makes on every release by default.
                    reset=_no_reset,
                )
        return self._raw_pool

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        if self._raw_pool is not None:
            await self._raw_pool.close()
            self._raw_pool = None
        await self.engine.dispose()


async def _fetch_on(pool: asyncpg.Pool, sql: str, values: list[Any]) -> Sequence[Mapping[str, Any]]:
    conn = await pool.acquire()
    try:
        return cast(Sequence[Mapping[str, Any]], await conn.fetch(sql, *values))
    except Exception as exc:
        if not isinstance(exc, asyncpg.PostgresError) or is_outage(exc):
            conn.terminate()  # a connection in an unknown state never goes back into the pool
        raise
    finally:
        await pool.release(conn)


async def _no_reset(_conn: Any) -> None:
    return None


class GroupCommit(Generic[T]):
    """Group commit: work items from concurrent requests share one transaction.

    Each caller waits until its item is committed, so durability is the same as a transaction per
    request; under load, items that arrive while a commit is in flight go together in the next one,
    so the database sees a few multi-row statements instead of one BEGIN/.../COMMIT per request.
    At low load an item is written at once, alone: no timer, no added latency.

    ``write`` receives a batch and owns its transaction. If a batch of several items fails, each is
    retried alone, so one bad item fails only its own caller; a failure always leaves nothing of
    the failed transaction behind.
    """

    def __init__(
        self, write: Callable[[list[T]], Awaitable[None]], *, max_batch: int = 500, max_inflight: int = 4
    ) -> None:
        self.write = write
        self.max_batch = max_batch
        self.max_inflight = max_inflight
        self._pending: list[tuple[T, asyncio.Future[None]]] = []
        self._inflight = 0
        self._tasks: set[asyncio.Task[None]] = set()

    async def submit(self, item: T) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
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
                if not await self._settle(batch) and len(batch) > 1:
                    for one in batch:  # find the bad item(s): everyone else still gets committed
                        await self._settle([one])
        finally:
            self._inflight -= 1

    async def _settle(self, batch: list[tuple[T, asyncio.Future[None]]]) -> bool:
        try:
            await self.write([item for item, _ in batch])
        except Exception as exc:
            if len(batch) == 1 and not batch[0][1].done():
                batch[0][1].set_exception(exc)
            return False
        except BaseException as exc:
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            raise
        for _, future in batch:
            if not future.done():
                future.set_result(None)
        return True


async def copy_rows(conn: AsyncConnection, table: Table, rows: list[dict[str, Any]]) -> None:
    """Insert ``rows`` in the connection's transaction: COPY on PostgreSQL, executemany elsewhere.

    On PostgreSQL the values go through each column's bind processor (JSON, UTC datetimes) but
    skip the rest of SQLAlchemy's per-row statement machinery, which is most of the cost at volume.
    Every row must carry the same keys.
    """
    if not rows:
        return
    if conn.dialect.name != "postgresql":
        await conn.execute(insert(table), rows)
        return
    dialect = conn.dialect
    columns = [column for column in table.columns if column.name in rows[0]]
    processors = [column.type.dialect_impl(dialect).bind_processor(dialect) for column in columns]
    names = [column.name for column in columns]
    records = [
        tuple(
            process(row[name]) if process is not None else row[name]
            for name, process in zip(names, processors, strict=True)
        )
        for row in rows
    ]
    driver = (await conn.get_raw_connection()).driver_connection
    assert driver is not None
    await driver.copy_records_to_table(table.name, records=records, columns=names)


class GroupCommitter(GroupCommit[dict[str, Any]]):
    """Group commit for one hot insert (decision 0003)."""

    def __init__(self, db: Database, table: Table, *, max_batch: int = 500, max_inflight: int = 4) -> None:
        super().__init__(self._write, max_batch=max_batch, max_inflight=max_inflight)
        self.db = db
        self.table = table

    async def insert(self, row: dict[str, Any]) -> None:
        await self.submit(row)

    async def _write(self, rows: list[dict[str, Any]]) -> None:
        async with self.db.engine.begin() as conn:
            await copy_rows(conn, self.table, rows)
