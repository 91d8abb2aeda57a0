"""Bulk import benchmark (issue 5): a million customers into PostgreSQL, and lookups at that size.

1. Generates a JSON Lines file of N customers, each with an SMS and an EMAIL contact method and a
   checking and a savings account (streamed to disk, not held in memory).
2. ``pwreset customers import`` of the first 10,000 into one fresh database, and of the whole file
   into another (wall time, peak resident memory of the import process).
3. The same whole import again: every line "unchanged".
4. The floor, measured in the same run: the same customers' rows, built in Python (not timed),
   COPYed straight into the tables of a third fresh database, which is what PostgreSQL alone needs
   for them on this machine; the import is reported as a ratio to it. For every step the CPU
   seconds of the import's processes and of PostgreSQL's are reported too.
5. The latency of ``GET .../contact-methods`` (one connection, wrk, sequential requests for random
   customers) on the 10,000 database and on the N database, alternately, three rounds each (this
   machine is noisy); the ratio of the medians.

    python -m bench.bulk_import [--customers 1000000]
    python -m bench.bulk_import --lookups-only   # step 5 on the databases a full run left
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

from bench.harness import (
    ADMIN_URL,
    ROOT,
    SECRET_KEY,
    create_client,
    drop_database,
    lua,
    prepare_database,
    serve,
    wrk,
)

INSTITUTION = "07675"


def _phone(n: int) -> str:
    """Customer n's number: a different valid one for each (202-2XX-XXXX), as in a real directory."""
    return f"202{n // 10000 % 800 + 200:03d}{n % 10000:04d}"


def generate(path: Path, count: int) -> None:
    with path.open("w") as out:
        for n in range(1, count + 1):
            out.write(json.dumps({
                "customerId": f"{n:032x}", "loginId": f"bulk{n:07d}", "hostUserId": f"H{n:07d}",
                "memberNumber": str(n), "firstName": "Bulk", "lastName": f"Customer {n}",
                "contactMethods": [
                    {"id": "s", "protocol": "SMS", "telephoneCountryCode": "1",
                     "contactInfo": _phone(n), "isActivated": True,
                     "primary": True},
                    {"id": "e", "protocol": "EMAIL", "contactInfo": f"b{n:07d}@example.com", "isActivated": True},
                ],
                "accounts": [
                    {"id": "chk", "accountNumber": f"1{n:011d}", "type": {"value": "CHECKING"},
                     "currentBalance": {"currencyCode": "USD", "amount": f"{n % 100000}.{n % 100:02d}"}},
                    {"id": "sav", "accountNumber": f"2{n:011d}", "type": {"value": "SAVINGS"},
                     "currentBalance": {"currencyCode": "USD", "amount": f"{n % 7000}.00"}},
                ],
            }, separators=(",", ":")) + "\n")


def _tree_rss_kb(pid: int) -> int:
    """Resident memory of a process and all its descendants (the import's worker processes), in KiB."""
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            total += next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
            for task in Path(f"/proc/{current}/task").iterdir():
                todo += [int(child) for child in (task / "children").read_text().split()]
        except (OSError, StopIteration):
            continue  # gone meanwhile
    return total


def postgres_cpu_seconds() -> float:
    """CPU seconds of the local PostgreSQL server's processes so far, ended backends included (the
    postmaster's children's times); 0 if it is not on this machine."""
    tick, total = os.sysconf("SC_CLK_TCK"), 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if "(postgres)" in stat:
            fields = stat.rsplit(")", 1)[1].split()
            total += sum(int(value) for value in fields[11:15])  # utime, stime, cutime, cstime
    return total / tick


def _children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_import(url: str, path: Path) -> dict[str, Any]:
    """One import in its own process: wall time, and the peak of the resident memory of the import
    process and its worker processes together (sampled every 0.2 s)."""
    env = {**os.environ, "PWRESET_DATABASE_URL": url, "PWRESET_SECRET_KEY": SECRET_KEY, "PWRESET_LOG_JSON": "false"}
    python_before, postgres_before = _children_cpu_seconds(), postgres_cpu_seconds()
    start = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        process = subprocess.Popen([sys.executable, "-m", "pwreset", "customers", "import", str(path),
                                    "--institution", INSTITUTION], env=env, stdout=out, stderr=err, text=True)
        peak = 0
        while process.poll() is None:
            peak = max(peak, _tree_rss_kb(process.pid))
            time.sleep(0.2)  # a sampling interval, not a wait for something
        seconds = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if process.returncode != 0:
        raise SystemExit(stderr[-2000:])
    return {
        "seconds": round(seconds, 1), "peak_rss_mb": round(peak / 1024), "summary": stdout.strip().splitlines()[-1],
        "import_cpu_s": round(_children_cpu_seconds() - python_before, 1),
        "postgres_cpu_s": round(postgres_cpu_seconds() - postgres_before, 1),
    }


async def _copy_floor(url: str, count: int, batch: int = 2500) -> dict[str, Any]:
    import asyncpg  # the server's driver

    from pwreset.kit.crypto import ordered_ids

    conn = await asyncpg.connect(url)
    now, copying, postgres = datetime.now(UTC), 0.0, 0.0
    customer_columns = ("id", "institution_id", "customer_id", "login_id", "login_key", "host_user_id",
                        "member_number", "first_name", "last_name", "language", "registered", "accepted_disclosure",
                        "active", "locked", "failed_login_count", "failed_reset_count", "created_at", "updated_at")
    method_columns = ("id", "customer_pk", "institution_id", "method_id", "position", "protocol", "country_code",
                      "contact_info", "destination", "activated", "validated", "primary")
    account_columns = ("id", "institution_id", "customer_pk", "source_id", "position", "account_number",
                       "type_value", "fi_account_type", "type_description", "category", "current_currency",
                       "current_amount", "status", "allowed_actions", "created_at", "updated_at")
    try:
        for first in range(1, count + 1, batch):
            numbers = range(first, min(count, first + batch - 1) + 1)
            keys = iter(ordered_ids(5 * len(numbers)))
            customers: list[tuple[Any, ...]] = []
            methods: list[tuple[Any, ...]] = []
            accounts: list[tuple[Any, ...]] = []
            for n in numbers:
                pk = next(keys)
                customers.append((pk, INSTITUTION, f"{n:032x}", f"bulk{n:07d}", f"bulk{n:07d}", f"H{n:07d}", str(n),
                                  "Bulk", f"Customer {n}", "en", True, True, True, False, 0, 0, now, now))
                phone = _phone(n)
                methods.append((next(keys), pk, INSTITUTION, "s", 0, "SMS", "1", phone, f"+1{phone}", True, False,
                                True))
                methods.append((next(keys), pk, INSTITUTION, "e", 1, "EMAIL", None, f"b{n:07d}@example.com",
                                f"b{n:07d}@example.com", True, False, False))
                accounts.append((next(keys), INSTITUTION, pk, "chk", 0, f"1{n:011d}", "CHECKING", 1, "Checking",
                                 "DEPOSIT", "USD", Decimal(f"{n % 100000}.{n % 100:02d}"), '{"open": true}', "{}",
                                 now, now))
                accounts.append((next(keys), INSTITUTION, pk, "sav", 1, f"2{n:011d}", "SAVINGS", 2, "Savings",
                                 "DEPOSIT", "USD", Decimal(f"{n % 7000}.00"), '{"open": true}', "{}", now, now))
            before, started = postgres_cpu_seconds(), time.perf_counter()
            async with conn.transaction():
                await conn.copy_records_to_table("customers", columns=customer_columns, records=customers)
                await conn.copy_records_to_table("contact_methods", columns=method_columns, records=methods)
                await conn.copy_records_to_table("accounts", columns=account_columns, records=accounts)
            copying += time.perf_counter() - started
            postgres += postgres_cpu_seconds() - before
    finally:
        await conn.close()
    return {"seconds": round(copying, 1), "postgres_cpu_s": round(postgres, 1)}


def copy_floor(url: str, count: int) -> dict[str, Any]:
    """What PostgreSQL alone needs for the rows of ``count`` generated customers: each batch's rows
    built first (not timed), then COPYed straight into the tables in one transaction (timed)."""
    return asyncio.run(_copy_floor(url, count))


def lookup_latency(
    url: str, shared: str, secret: str, customers: int, seconds: int = 10, warmup: int = 15
) -> dict[str, float]:
    env = {"PWRESET_DATABASE_URL": url, "PWRESET_SECRET_KEY": SECRET_KEY, "PWRESET_INPROCESS_WORKER": "false",
           "PWRESET_ACCESS_LOG": "false"}
    with serve("bench.apps:service", workers=1, env=env, factory=True) as base:
        token = httpx.post(
            base + "/oauth2/v1/token", auth=(shared, secret), data={"grant_type": "client_credentials"},
            headers={"transactionId": str(uuid.uuid4()), "institutionId": INSTITUTION},
        ).json()["access_token"]
        script = lua("GET", {"Authorization": f"Bearer {token}", "correlationId": str(uuid.uuid4())}, None, request=(
            "request = function()\n"
            f'  return wrk.format(nil, string.format("/v1/customers/%032x/contact-methods", '
            f"math.random(1, {customers})))\nend"
        ))
        # Warm-up, long enough for the pages the random lookups touch to be in memory: production
        # serves from a warm cache, and a cold start is not what this compares.
        wrk(base + "/", seconds=warmup, connections=1, script=script)
        result = wrk(base + "/", seconds=seconds, connections=1, script=script)
    return {"mean_ms": round(1000 / result["rps"], 3), "p99_ms": result["p99_ms"], "non_2xx": result["non_2xx"]}


def compare_lookups(small_url: str, full_url: str, customers: int, rounds: int = 3) -> dict[str, Any]:
    clients = {url: create_client(url, "institution-users:read") for url in (small_url, full_url)}
    small, full = [], []
    for _ in range(rounds):
        small.append(lookup_latency(small_url, *clients[small_url], 10_000)["mean_ms"])
        full.append(lookup_latency(full_url, *clients[full_url], customers)["mean_ms"])
    ratio = statistics.median(full) / statistics.median(small)
    return {"at_10000_ms": small, "at_full_ms": full, "ratio": round(ratio, 3)}


SMALL_DB, FULL_DB, FLOOR_DB = "pwreset_bench_import_10k", "pwreset_bench_import", "pwreset_bench_import_floor"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--lookups-only", action="store_true", help="only step 4, on the databases of a full run")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install wrk")
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    base = ADMIN_URL.rsplit("/", 1)[0]
    if args.lookups_only:
        lookups = compare_lookups(f"{base}/{SMALL_DB}", f"{base}/{FULL_DB}", args.customers)
        (out / "bulk_import_lookups.json").write_text(json.dumps(lookups, indent=2))
        print(f"contact-methods mean latency: 10,000 customers {lookups['at_10000_ms']} ms, "
              f"{args.customers:,} customers {lookups['at_full_ms']} ms; ratio of medians {lookups['ratio']} "
              "(target <= 1.2)")
        return
    folder = Path(tempfile.mkdtemp(prefix="pwreset-bench-import-"))
    full, small = folder / "customers.jsonl", folder / "first-10000.jsonl"
    started = time.perf_counter()
    generate(full, args.customers)
    with full.open() as source, small.open("w") as out_small:
        for _, line in zip(range(10_000), source, strict=False):
            out_small.write(line)
    print(f"generated {args.customers:,} customers ({full.stat().st_size / 1e6:,.0f} MB) in "
          f"{time.perf_counter() - started:.0f} s", flush=True)
    small_url, full_url = prepare_database(SMALL_DB), prepare_database(FULL_DB)
    for url in (small_url, full_url):
        create_client(url, "institution-users:read")  # creates the institution too
    first = run_import(small_url, small)
    print(f"import of 10,000: {first['seconds']} s", flush=True)
    load = run_import(full_url, full)
    print(f"import of {args.customers:,}: {load['seconds']} s, peak RSS {load['peak_rss_mb']} MB "
          f"({load['summary']})", flush=True)
    print(f"  CPU: the import's processes {load['import_cpu_s']} s, PostgreSQL {load['postgres_cpu_s']} s", flush=True)
    again = run_import(full_url, full)
    print(f"re-import: {again['seconds']} s ({again['summary']}); CPU: the import's processes "
          f"{again['import_cpu_s']} s, PostgreSQL {again['postgres_cpu_s']} s", flush=True)
    floor_url = prepare_database(FLOOR_DB)
    create_client(floor_url, "institution-users:read")
    floor = copy_floor(floor_url, args.customers)
    ratio = round(load["seconds"] / floor["seconds"], 2)
    print(f"floor: COPY of the same rows straight into the tables {floor['seconds']} s (PostgreSQL CPU "
          f"{floor['postgres_cpu_s']} s); the import takes {ratio}x the floor", flush=True)
    drop_database(FLOOR_DB)
    lookups = compare_lookups(small_url, full_url, args.customers)
    result = {"customers": args.customers, "import_10k": first, "import": load, "reimport": again, "floor": floor,
              "import_to_floor": ratio, "lookups": lookups}
    (out / "bulk_import.json").write_text(json.dumps(result, indent=2))
    print(f"contact-methods mean latency: 10,000 customers {lookups['at_10000_ms']} ms, "
          f"{args.customers:,} customers {lookups['at_full_ms']} ms; ratio of medians {lookups['ratio']} "
          "(target <= 1.2)")
    print(f"targets: import < 60 s ({load['seconds']} s), peak RSS < 300 MB ({load['peak_rss_mb']} MB)")
    shutil.rmtree(folder)


if __name__ == "__main__":
    main()
