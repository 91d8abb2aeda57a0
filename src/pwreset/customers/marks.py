"""Which customers an import run named, for ``--prune``: kept in the database, not in memory, so a
million-customer file costs no more memory with ``--prune`` than without. Each run has its own id
and removes only its own marks, so two runs at once cannot prune each other's customers; marks
left by a crashed run are removed a day later."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import cast

from sqlalchemy import String, Table, delete, exists, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from pwreset.customers.models import Customer
from pwreset.db import Base, Database, UTCDateTime, copy_rows


class ImportMark(Base):
    __tablename__ = "import_marks"

    institution_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    run_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


_MARKS = cast(Table, ImportMark.__table__)


async def clear(db: Database, *, institution_id: str, run_id: str) -> None:
    """Forget this run's marks."""
    async with db.engine.begin() as conn:
        await conn.execute(delete(_MARKS).where(_MARKS.c.institution_id == institution_id, _MARKS.c.run_id == run_id))


async def clear_stale(db: Database, *, before: datetime) -> None:
    """Forget the marks of runs that crashed long ago."""
    async with db.engine.begin() as conn:
        await conn.execute(delete(_MARKS).where(_MARKS.c.created_at < before))


async def add(
    conn: AsyncConnection, *, institution_id: str, run_id: str, customer_ids: list[str], at: datetime
) -> None:
    """Mark the customers a batch named, in the batch's own transaction."""
    rows = [{"institution_id": institution_id, "run_id": run_id, "customer_id": c, "created_at": at}
            for c in customer_ids]
    await copy_rows(conn, _MARKS, rows)


async def absent(session: AsyncSession, *, institution_id: str, run_id: str) -> Sequence[Customer]:
    """The institution's customers the run did not name."""
    named = exists().where(
        _MARKS.c.institution_id == institution_id, _MARKS.c.run_id == run_id,
        _MARKS.c.customer_id == Customer.customer_id,
    )
    stmt = select(Customer).where(Customer.institution_id == institution_id, ~named)
    return (await session.scalars(stmt)).all()
