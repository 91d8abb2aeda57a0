"""``pwreset sandbox``: one command to a working demo, the same data on every run."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest

from tests.servers import REPO_ROOT, free_port, wait_until_ready

pytestmark = pytest.mark.slow


def start_sandbox(directory: Path, port: int) -> tuple[subprocess.Popen[bytes], Path]:
    log = directory / f"sandbox-{port}.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PWRESET_")}
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "pwreset", "sandbox", "--port", str(port)], cwd=directory, env=env,
            stdout=out, stderr=subprocess.STDOUT,
        )
    wait_until_ready(f"http://127.0.0.1:{port}", process, log)
    return process, log


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    process.wait(timeout=10)


def test_sandbox_prints_working_credentials_and_reuses_its_data(tmp_path):
    assert REPO_ROOT.exists()
    port = free_port()
    process, log = start_sandbox(tmp_path, port)
    try:
        output = log.read_text()
        shared = re.search(r"shared key:\s+(\S+)", output)
        secret = re.search(r"secret key:\s+(\S+)", output)
        curl = re.search(r"curl -s .*?grant_type=client_credentials", output, re.S)
        assert shared and secret and curl, output
        assert f"-u '{shared.group(1)}:{secret.group(1)}'" in curl.group(0)
        response = httpx.post(
            f"http://127.0.0.1:{port}/oauth2/v1/token", auth=(shared.group(1), secret.group(1)),
            headers={"transactionId": str(uuid.uuid4()), "institutionId": "00001"},
            data={"grant_type": "client_credentials"},
        )
        assert response.status_code == 200, response.text
        # A demo customer gets a passcode, printed by the console sink.
        assert all(f"5a1d0e5d3c2b4a1f9e8d7c6b5a4f000{n}" in output for n in (1, 2, 3))
        reset = httpx.put(
            f"http://127.0.0.1:{port}/v1/customers/5a1d0e5d3c2b4a1f9e8d7c6b5a4f0001:reset-password",
            headers={"Authorization": f"Bearer {response.json()['access_token']}",
                     "correlationId": str(uuid.uuid4())},
            json={"contactMethodId": "100000001"},
        )
        assert reset.status_code == 204, reset.text
        deadline = time.monotonic() + 10
        while "[console SMS to +1•••••0143]" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert re.search(r"\[console SMS to \+1•••••0143\] .* code is \d{6}", log.read_text())
        # The hosted reset page of the demo institution is linked, and answers with its form.
        page = re.search(r"(http://\S+/reset/00001)\n", output)
        assert page, output
        form = httpx.get(page.group(1).replace("localhost", "127.0.0.1"))
        assert form.status_code == 200 and 'name="login"' in form.text and "Demo" in form.text
    finally:
        stop(process)
    assert (tmp_path / "pwreset.db").exists()
    assert oct((tmp_path / "pwreset-sandbox.key").stat().st_mode & 0o777) == "0o600"

    # Second run: same database, same credentials, still valid.
    process, log = start_sandbox(tmp_path, port)
    try:
        again = log.read_text()
        assert f"secret key:   {secret.group(1)}" in again
        token = httpx.post(
            f"http://127.0.0.1:{port}/oauth2/v1/token", auth=(shared.group(1), secret.group(1)),
            headers={"transactionId": str(uuid.uuid4()), "institutionId": "00001"},
            data={"grant_type": "client_credentials"},
        )
        assert token.status_code == 200
    finally:
        stop(process)


async def test_a_sandbox_database_from_before_the_32_hex_ids_is_reseeded(services):
    """A pwreset.db seeded by the previous release holds the demo customers under their old ids and
    login ids; the seed replaces them instead of printing ids that do not exist."""
    from sqlalchemy import insert, select

    from pwreset import sandbox as sb
    from pwreset.customers.models import Customer

    await sb.seed(services)
    async with services.db.transaction() as session:
        await session.execute(Customer.__table__.delete())
        now = services.clock.now()
        await session.execute(insert(Customer), [
            {"id": f"{n:032x}", "institution_id": sb.INSTITUTION_ID, "customer_id": old, "login_id": c.login_id,
             "login_key": c.login_id, "created_at": now, "updated_at": now}
            for n, (old, c) in enumerate(zip(sb.FORMER_DEMO_IDS, sb.DEMO_CUSTOMERS, strict=True))
        ])
    await sb.seed(services)
    async with services.db.reading() as session:
        ids = set((await session.scalars(select(Customer.customer_id))).all())
    assert ids == {c.customer_id for c in sb.DEMO_CUSTOMERS}


def test_the_sandbox_refuses_a_production_database(tmp_path):
    """A pwreset.db that a production process marked is not seeded with demo data (issue 12, item 1)."""
    import asyncio

    from pwreset.db import Database
    from pwreset.kit.clock import Clock
    from pwreset.migrate import upgrade
    from pwreset.ops.deployment import claim

    url = f"sqlite:///{tmp_path / 'pwreset.db'}"
    upgrade(url)

    async def mark() -> None:
        db = Database(url)
        try:
            await claim(db, sandbox=False, clock=Clock())
        finally:
            await db.dispose()

    asyncio.run(mark())
    env = {k: v for k, v in os.environ.items() if not k.startswith("PWRESET_")}
    result = subprocess.run(
        [sys.executable, "-m", "pwreset", "sandbox", "--port", str(free_port())], cwd=tmp_path, env=env,
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "belongs to a production deployment" in result.stderr
