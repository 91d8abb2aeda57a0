"""Load benchmark of the Reset Password API (issue 3), on PostgreSQL with 100,000 customers.

Serves the bare ASGI floor and the real service one after the other (same server, same worker
count), and drives with wrk:

- ``GET /v1/customers/{id}/contact-methods`` for random customers (institution token);
- ``PUT /v1/customers/{id}:reset-password`` for a new customer on every request (a passcode row,
  the superseding update, its sealed outbox message and an audit event, in one transaction).

Delivery is off (``PWRESET_INPROCESS_WORKER=false``): this measures the API, the delivery issue
measures the worker. Each round measures the floor before and after; the median ratio is reported.
``--seal`` runs ``pwreset audit seal --every 2`` beside the service, as a worker would (issue 14: the
audit chain is sealed off the request path, on the same machine and database).

    python -m bench.directory [--customers 100000] [--workers 2] [--seconds 10] [--rounds 3] [--seal]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import create_async_engine

from bench.harness import (
    NO_VELOCITY_LIMITS,
    PORTAL_ON,
    ROOT,
    SECRET_KEY,
    create_client,
    lua,
    prepare_database,
    serve,
    wrk,
)
from pwreset.customers.models import ContactMethod, Customer
from pwreset.db import async_url

SCOPES = "institution-users:read institution-users:write"


async def load_customers(url: str, count: int) -> None:
    """Bulk rows straight into the tables: the setup, not what is measured."""
    engine = create_async_engine(async_url(url))
    now = datetime.now(UTC)
    batch = 10_000
    async with engine.begin() as conn:
        for start in range(1, count + 1, batch):
            customers, methods = [], []
            for n in range(start, min(start + batch, count + 1)):
                pk = f"{n:032x}"
                customers.append({
                    "id": pk, "institution_id": "07675", "customer_id": f"B{n:06d}", "login_id": f"bench{n:06d}",
                    "login_key": f"bench{n:06d}", "host_user_id": f"H{n:06d}", "member_number": str(n),
                    "first_name": "Bench", "last_name": f"Customer {n}", "language": "en", "registered": True,
                    "accepted_disclosure": True, "active": True, "locked": False, "failed_login_count": 0,
                    "failed_reset_count": 0, "created_at": now, "updated_at": now,
                })
                methods.append({
                    "id": f"s{n:031x}", "customer_pk": pk, "institution_id": "07675", "method_id": "s", "position": 0,
                    "protocol": "SMS", "country_code": "1", "contact_info": f"202555{n % 10000:04d}",
                    "destination": f"+1202555{n % 10000:04d}", "activated": True, "validated": True,
                    "primary": True, "enrolled_at": now,
                })
                methods.append({
                    "id": f"e{n:031x}", "customer_pk": pk, "institution_id": "07675", "method_id": "e", "position": 1,
                    "protocol": "EMAIL", "country_code": None, "contact_info": f"b{n:06d}@example.com",
                    "destination": f"b{n:06d}@example.com", "activated": True, "validated": True,
                    "primary": False, "enrolled_at": now,
                })
            await conn.execute(insert(Customer.__table__), customers)
            await conn.execute(insert(ContactMethod.__table__), methods)
    await engine.dispose()


def round_trip(args: argparse.Namespace, env: dict[str, str], shared: str, secret: str, first: int) -> dict[str, Any]:
    run = {"seconds": args.seconds, "connections": args.connections}
    with serve("bench.apps:floor", workers=args.workers, env={}, factory=False) as base:
        wrk(base + "/", seconds=2, connections=args.connections)
        floor_before = wrk(base + "/", **run)
    with serve("bench.apps:service", workers=args.workers, env=env, factory=True) as base:
        token = httpx.post(
            base + "/oauth2/v1/token", auth=(shared, secret), data={"grant_type": "client_credentials"},
            headers={"transactionId": str(uuid.uuid4()), "institutionId": "07675"},
        ).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}", "correlationId": str(uuid.uuid4())}
        read = lua("GET", headers, None, request=(
            "request = function()\n"
            f'  return wrk.format(nil, string.format("/v1/customers/B%06d/contact-methods", '
            f"math.random(1, {args.customers})))\nend"
        ))
        wrk(base + "/", seconds=2, connections=args.connections, script=read)
        reads = wrk(base + "/", **run, script=read)
        body = '{\\"contactMethodId\\": \\"e\\"}'
        write = lua("PUT", {**headers, "Content-Type": "application/json"}, body, request=(
            f"counter = {first}\n"
            "request = function()\n  counter = counter + 1\n"
            '  return wrk.format(nil, string.format("/v1/customers/B%06d:reset-password", counter))\nend'
        ))
        writes = wrk(base + "/", **run, script=write)
    with serve("bench.apps:floor", workers=args.workers, env={}, factory=False) as base:
        floor_after = wrk(base + "/", **run)
    floor = (floor_before["rps"] + floor_after["rps"]) / 2
    return {
        "floor": floor, "contact_methods": reads, "reset_password": writes,
        "contact_methods_ratio": round(reads["rps"] / floor, 3),
        "reset_password_ratio": round(writes["rps"] / floor, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seal", action="store_true", help="seal the audit chain beside the service")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install wrk")
    url = prepare_database("pwreset_bench_directory")
    shared, secret = create_client(url, SCOPES)
    asyncio.run(load_customers(url, args.customers))
    env = {
        "PWRESET_DATABASE_URL": url, "PWRESET_SECRET_KEY": SECRET_KEY, "PWRESET_DB_POOL_SIZE": "20",
        "PWRESET_INPROCESS_WORKER": "false", "PWRESET_LOG_JSON": "true", **NO_VELOCITY_LIMITS, **PORTAL_ON,
    }
    stride = args.customers // max(1, args.rounds)
    sealer = subprocess.Popen(
        [sys.executable, "-m", "pwreset", "audit", "seal", "--every", "2"], env={**os.environ, **env},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    ) if args.seal else None
    try:
        rounds = [round_trip(args, env, shared, secret, first=r * stride) for r in range(args.rounds)]
    finally:
        if sealer is not None:
            sealer.terminate()
            sealer.wait(timeout=60)
    reads = statistics.median(r["contact_methods_ratio"] for r in rounds)
    writes = statistics.median(r["reset_password_ratio"] for r in rounds)
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "directory.json").write_text(json.dumps({"args": vars(args), "rounds": rounds}, indent=2))
    for number, r in enumerate(rounds, 1):
        c, w = r["contact_methods"], r["reset_password"]
        print(f"round {number}: floor {r['floor']:,.0f} | contact-methods {c['rps']:,.0f} req/s "
              f"({r['contact_methods_ratio']:.3f}, p99 {c['p99_ms']:.1f} ms, non-2xx {c['non_2xx']:.0f}) | "
              f"reset-password {w['rps']:,.0f} req/s ({r['reset_password_ratio']:.3f}, p99 {w['p99_ms']:.1f} ms, "
              f"non-2xx {w['non_2xx']:.0f})")
    print(f"median of {args.rounds} rounds, {args.customers:,} customers, {args.workers} workers:\n"
          f"  GET contact-methods  {reads:.3f} of the floor (target >= 0.20)\n"
          f"  PUT reset-password   {writes:.3f} of the floor (target >= 0.10)")


if __name__ == "__main__":
    main()
