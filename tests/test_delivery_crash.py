"""A worker process killed with SIGKILL mid-send loses nothing; SIGTERM exits cleanly.

1,000 messages are queued; a real `pwreset worker` process delivers them to a local webhook
provider, which holds every request from the 300th on unanswered, so sends are in flight when the
worker is killed. A second worker takes over after the lease. Every message must reach the
provider; the only repeats are sends whose acceptance the first worker never recorded, and they
carry the message's idempotency key, so the provider drops them.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select

from pwreset.delivery.models import OutboxMessage
from pwreset.delivery.outbox import Message
from pwreset.institutions.service import create_institution
from tests.conftest import TEST_SECRET_KEY
from tests.provider_server import fake_provider
from tests.servers import REPO_ROOT

pytestmark = pytest.mark.slow
COUNT = 1000
CONCURRENCY = 16


def start_worker(database_url: str, hook: str, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ, "PWRESET_DATABASE_URL": database_url, "PWRESET_SECRET_KEY": TEST_SECRET_KEY,
        "PWRESET_SMS_PROVIDER": "webhook", "PWRESET_WEBHOOK_URL": hook,
        "PWRESET_WEBHOOK_SECRET": "crash-test-webhook-secret-0123456789", "PWRESET_OUTBOX_LEASE": "7",
        "PWRESET_WORKER_CONCURRENCY": str(CONCURRENCY), "PWRESET_PROVIDER_TIMEOUT": "1", "PWRESET_LOG_JSON": "false",
    }
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", "pwreset", "worker"], env=env, cwd=REPO_ROOT, stdout=out,
                                stderr=subprocess.STDOUT)


async def statuses(services) -> dict[str, int]:
    async with services.db.reading() as session:
        stmt = select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status)
        return {status: int(n) for status, n in (await session.execute(stmt)).all()}


async def test_a_killed_worker_loses_nothing_and_sigterm_exits_cleanly(services, database_url, tmp_path):
    async with services.db.transaction() as session:
        await create_institution(session, institution_id="07675", name="Credit Union", clock=services.clock)
        ids = {
            (await services.outbox.enqueue(session, Message(
                institution_id="07675", kind="passcode", channel="SMS", destination=f"+1202555{n:04d}",
                variables={"code": f"{n:06d}", "minutes": 10},
            ))).id
            for n in range(COUNT)
        }
    log = tmp_path / "worker.log"
    async with fake_provider() as fake:
        fake.hold_after = 300
        first = start_worker(database_url, fake.url + "/hook", log)
        try:
            await asyncio.wait_for(fake.until(lambda f: len(f.requests) >= 300 + CONCURRENCY // 2), timeout=60)
        finally:
            first.send_signal(signal.SIGKILL)
            await asyncio.to_thread(first.wait)
        in_flight = len(fake.requests) - 300
        assert in_flight > 0, "the kill must land while sends are in flight"
        recorded = (await statuses(services)).get("sent", 0)
        unrecorded = len(fake.accepted_keys) - recorded  # accepted by the provider, not yet marked sent
        fake.hold_after = None
        fake.release()  # the held requests now get 503: nothing of theirs was accepted
        second = start_worker(database_url, fake.url + "/hook", log)
        try:
            await asyncio.wait_for(fake.until(lambda f: len(f.accepted_keys) >= COUNT), timeout=120)
            second.send_signal(signal.SIGTERM)
            assert await asyncio.to_thread(second.wait, 30) == 0, log.read_text()[-3000:]
        finally:
            if second.poll() is None:
                second.kill()
    assert fake.accepted_keys == ids  # every message reached the provider
    # Repeats are bounded by what the first worker had sent but not yet recorded when it died.
    # The only repeats are the sends the first worker had made but not yet recorded.
    assert fake.repeats <= unrecorded, (fake.repeats, unrecorded, in_flight)
    assert await statuses(services) == {"sent": COUNT}
    assert "Traceback" not in log.read_text()
