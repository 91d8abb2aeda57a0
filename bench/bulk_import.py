"""Bulk import benchmark (issue 5): a million customers into PostgreSQL, and lookups at that size.

1. Generates a JSON Lines file of N customers, each with an SMS and an EMAIL contact method and a
   checking and a savings account (streamed to disk, not held in memory).
2. ``pwreset customers import`` of the first 10,000 into a fresh database; then the latency of
   ``GET .../contact-methods`` at 10,000 customers (one connection, wrk, sequential requests).
3. ``pwreset customers import`` of the whole file (wall time, peak resident memory of the process);
   then the lookup latency again at N customers, and its ratio to step 2.
4. The same import again: every line "unchanged" (wall time, memory).

    python -m bench.bulk_import [--customers 1000000]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from bench.harness import ROOT, SECRET_KEY, create_client, lua, prepare_database, serve, wrk

INSTITUTION = "07675"


def generate(path: Path, count: int) -> None:
    with path.open("w") as out:
        for n in range(1, count + 1):
            out.write(json.dumps({
                "customerId": f"B{n:07d}", "loginId": f"bulk{n:07d}", "hostUserId": f"H{n:07d}",
                "memberNumber": str(n), "firstName": "Bulk", "lastName": f"Customer {n}",
                "contactMethods": [
                    {"id": "s", "protocol": "SMS", "telephoneCountryCode": "1",
                     "contactInfo": f"202555{n % 10000:04d}", "isActivated": True, "primary": True},
                    {"id": "e", "protocol": "EMAIL", "contactInfo": f"b{n:07d}@example.com", "isActivated": True},
                ],
                "accounts": [
                    {"id": "chk", "accountNumber": f"1{n:011d}", "type": {"value": "CHECKING"},
                     "currentBalance": {"currencyCode": "USD", "amount": f"{n % 100000}.{n % 100:02d}"}},
                    {"id": "sav", "accountNumber": f"2{n:011d}", "type": {"value": "SAVINGS"},
                     "currentBalance": {"currencyCode": "USD", "amount": f"{n % 7000}.00"}},
                ],
            }, separators=(",", ":")) + "\n")


def run_import(url: str, path: Path) -> dict[str, Any]:
    """One import in its own process: wall time, peak resident memory (this process's children)."""
    env = {**os.environ, "PWRESET_DATABASE_URL": url, "PWRESET_SECRET_KEY": SECRET_KEY, "PWRESET_LOG_JSON": "false"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "pwreset", "customers", "import", str(path), "--institution",
                           INSTITUTION], env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(done.stderr[-2000:])
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return {"seconds": round(seconds, 1), "peak_rss_mb": round(max(peak, before) / 1024),
            "summary": done.stdout.strip().splitlines()[-1]}


def lookup_latency(url: str, shared: str, secret: str, customers: int, seconds: int = 10) -> dict[str, float]:
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
        wrk(base + "/", seconds=2, connections=1, script=script)
        result = wrk(base + "/", seconds=seconds, connections=1, script=script)
    return {"mean_ms": round(1000 / result["rps"], 3), "p99_ms": result["p99_ms"], "non_2xx": result["non_2xx"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=1_000_000)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install wrk")
    folder = Path(tempfile.mkdtemp(prefix="pwreset-bench-import-"))
    full, small = folder / "customers.jsonl", folder / "first-10000.jsonl"
    started = time.perf_counter()
    generate(full, args.customers)
    with full.open() as source, small.open("w") as out:
        for _, line in zip(range(10_000), source, strict=False):
            out.write(line)
    print(f"generated {args.customers:,} customers ({full.stat().st_size / 1e6:,.0f} MB) in "
          f"{time.perf_counter() - started:.0f} s", flush=True)
    url = prepare_database("pwreset_bench_import")
    shared, secret = create_client(url, "institution-users:read")
    first = run_import(url, small)
    at_10k = lookup_latency(url, shared, secret, 10_000)
    print(f"10,000 customers: import {first['seconds']} s; contact-methods mean {at_10k['mean_ms']} ms", flush=True)
    load = run_import(url, full)
    print(f"import of {args.customers:,}: {load['seconds']} s, peak RSS {load['peak_rss_mb']} MB "
          f"({load['summary']})", flush=True)
    at_full = lookup_latency(url, shared, secret, args.customers)
    again = run_import(url, full)
    print(f"re-import: {again['seconds']} s ({again['summary']})", flush=True)
    ratio = at_full["mean_ms"] / at_10k["mean_ms"]
    result = {"customers": args.customers, "import": load, "reimport": again, "lookup_10k": at_10k,
              "lookup_full": at_full, "lookup_ratio": round(ratio, 3)}
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "bulk_import.json").write_text(json.dumps(result, indent=2))
    print(f"contact-methods at {args.customers:,}: mean {at_full['mean_ms']} ms = {ratio:.2f}x the 10,000 figure "
          "(target <= 1.2)")
    print(f"targets: import < 60 s ({load['seconds']} s), peak RSS < 300 MB ({load['peak_rss_mb']} MB)")
    shutil.rmtree(folder)


if __name__ == "__main__":
    main()
