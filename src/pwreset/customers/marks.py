"""Which customers an import run named, for ``--prune``: kept in the database, not in memory, so a
million-customer file costs no more memory with ``--prune`` than without."""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

from sqlalchemy import String, Table, delete, exists, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from pwreset.customers.models import Customer
from pwreset.db import Base, Database, copy_rows


class ImportMark(Base):
    __tablename__ = "import_marks"

    institution_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    run_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(64), primary_key=True)


_MARKS = cast(Table, ImportMark.__table__)


async def clear(db: Database, *, institution_id: str) -> None:
    """Forget every run's marks for the institution (an earlier run may have crashed)."""
    async with db.engine.begin() as conn:
        await conn.execute(delete(_MARKS).where(_MARKS.c.institution_id == institution_id))


async def add(db: Database, *, institution_id: str, run_id: str, customer_ids: list[str]) -> None:
    rows = [{"institution_id": institution_id, "run_id": run_id, "customer_id": c} for c in customer_ids]
    async with db.engine.begin() as conn:
        await copy_rows(conn, _MARKS, rows)


async def absent(session: AsyncSession, *, institution_id: str, run_id: str) -> Sequence[Customer]:
    """The institution's customers the run did not name."""
    named = exists().where(
        _MARKS.c.institution_id == institution_id, _MARKS.c.run_id == run_id,
        _MARKS.c.customer_id == Customer.customer_id,
    )
    stmt = select(Customer).where(Customer.institution_id == institution_id, ~named)
    return (await session.scalars(stmt)).all()
