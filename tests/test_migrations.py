"""The same migrations serve SQLite and PostgreSQL, up and down, and match the models."""

from __future__ import annotations

import asyncio

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.ext.asyncio import create_async_engine

from pwreset.db import Base, async_url
from pwreset.migrate import downgrade, upgrade


def _diff(url: str) -> list[object]:
    async def run() -> list[object]:
        engine = create_async_engine(async_url(url))
        try:
            async with engine.connect() as conn:
                return await conn.run_sync(
                    lambda sync: compare_metadata(MigrationContext.configure(sync), Base.metadata)
                )
        finally:
            await engine.dispose()

    return asyncio.run(run())


def test_migrations_match_the_models_and_go_down_and_up(backend, database_urls):
    url = database_urls[backend]
    assert _diff(url) == []
    downgrade(url, "base")
    upgrade(url)
    assert _diff(url) == []
