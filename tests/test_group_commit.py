"""Group commit: concurrent rows share transactions, every caller waits for its own commit."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from sqlalchemy import func, select

from pwreset.audit.models import AuditEvent
from pwreset.db import GroupCommitter


def row(outcome: str, event_type: str | None = "test") -> dict[str, object]:
    return {
        "occurred_at": datetime.now(UTC), "event_type": event_type, "outcome": outcome, "actor": "test",
        "institution_id": None, "client_id": None, "customer_id": None, "correlation_id": None, "details": {},
    }


async def count(services) -> int:
    async with services.db.reading() as session:
        return int(await session.scalar(select(func.count()).select_from(AuditEvent)) or 0)


def counting(writer: GroupCommitter) -> list[int]:
    """Record the size of every transaction the writer makes."""
    sizes: list[int] = []
    write = writer.write

    async def recorded(rows):
        sizes.append(len(rows))
        await write(rows)

    writer.write = recorded
    return sizes


async def test_concurrent_inserts_share_transactions_and_all_commit(services):
    writer = GroupCommitter(services.db, AuditEvent.__table__, max_inflight=1)
    sizes = counting(writer)
    await asyncio.gather(*(writer.insert(row(str(i))) for i in range(200)))
    assert await count(services) == 200
    assert sum(sizes) == 200 and len(sizes) < 20, sizes


async def test_a_bad_row_fails_only_its_caller(services):
    writer = GroupCommitter(services.db, AuditEvent.__table__, max_inflight=1)
    sizes = counting(writer)
    results = await asyncio.gather(
        writer.insert(row("good")), writer.insert(row("bad", event_type=None)), return_exceptions=True
    )
    assert results[0] is None and isinstance(results[1], Exception), results
    assert sizes == [2, 1, 1]  # the shared transaction failed and wrote nothing; then one by one
    assert await count(services) == 1
    await writer.insert(row("again"))  # the writer keeps working afterwards
    assert await count(services) == 2


async def test_a_lone_row_is_written_at_once_alone(services):
    writer = GroupCommitter(services.db, AuditEvent.__table__)
    sizes = counting(writer)
    await asyncio.wait_for(writer.insert(row("lone")), timeout=5)
    assert await count(services) == 1 and sizes == [1]
