"""Bulk import benchmark (issue 5): a million customers into PostgreSQL, and lookups at that size.

1. Generates a JSON Lines file of N customers, each with an SMS and an EMAIL contact method and a
   checking and a savings account (streamed to disk, not held in memory).
2. ``pwreset customers import`` of the first 10,000 into one fresh database, and of the whole file
   into another (wall time, peak resident memory of the import process).
3. The same whole import again: every line "unchanged".
4. The latency of ``GET .../contact-methods`` (one connection, wrk, sequential requests for random
   customers) on the 10,000 database and on the N database, alternately, three rounds each (this
   machine is noisy); the ratio of the medians.

    python -m bench.bulk_import [--customers 1000000]
    python -m bench.bulk_import --lookups-only   # step 4 on the databases a full run left
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from bench.harness import ADMIN_URL, ROOT, SECRET_KEY, create_client, lua, prepare_database, serve, wrk

INSTITUTION = "07675"


def generate(path: Path, count: int) -> None:
    with path.open("w") as out:
        for n in range(1, count + 1):
            out.write(json.dumps({
                "customerId": f"B{n:07d}", "loginId": f"bulk{n:07d}", "hostUserId": f"H{n:07d}",
                "memberNumber": str(n), "firstName": "Bulk", "lastName": f"Customer {n}",
                "contactMethods": [
                    # A different valid number for each customer (202-2XX-XXXX), as in a real directory.
                    {"id": "s", "protocol": "SMS", "telephoneCountryCode": "1",
                     "contactInfo": f"202{n // 10000 % 800 + 200:03d}{n % 10000:04d}", "isActivated": True,
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


def run_import(url: str, path: Path) -> dict[str, Any]:
    """One import in its own process: wall time, and the peak of the resident memory of the import
    process and its worker processes together (sampled every 0.2 s)."""
    env = {**os.environ, "PWRESET_DATABASE_URL": url, "PWRESET_SECRET_KEY": SECRET_KEY, "PWRESET_LOG_JSON": "false"}
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
    return {"seconds": round(seconds, 1), "peak_rss_mb": round(peak / 1024), "summary": stdout.strip().splitlines()[-1]}


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
            f'  return wrk.format(nil, string.format("/v1/customers/B%07d/contact-methods", '
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


SMALL_DB, FULL_DB = "pwreset_bench_import_10k", "pwreset_bench_import"


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
    again = run_import(full_url, full)
    print(f"re-import: {again['seconds']} s ({again['summary']})", flush=True)
    lookups = compare_lookups(small_url, full_url, args.customers)
    result = {"customers": args.customers, "import_10k": first, "import": load, "reimport": again, "lookups": lookups}
    (out / "bulk_import.json").write_text(json.dumps(result, indent=2))
    print(f"contact-methods mean latency: 10,000 customers {lookups['at_10000_ms']} ms, "
          f"{args.customers:,} customers {lookups['at_full_ms']} ms; ratio of medians {lookups['ratio']} "
          "(target <= 1.2)")
    print(f"targets: import < 60 s ({load['seconds']} s), peak RSS < 300 MB ({load['peak_rss_mb']} MB)")
    shutil.rmtree(folder)


if __name__ == "__main__":
    main()
