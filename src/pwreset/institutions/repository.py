from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from pwreset.institutions.models import Institution


async def get(session: AsyncSession, institution_id: str) -> Institution | None:
    return await session.get(Institution, institution_id)


async def list_all(session: AsyncSession) -> Sequence[Institution]:
    return (await session.scalars(select(Institution).order_by(Institution.id))).all()


async def add(session: AsyncSession, institution: Institution) -> None:
    session.add(institution)
    await session.flush()
