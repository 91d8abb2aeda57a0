"""Audit evidence benchmark (issue 14): sealing, verifying and exporting a million audit events.

1. N events (default 1,000,000) of one institution, shaped as reset requests with their origin,
   are COPYed into a fresh PostgreSQL database (not timed).
2. The floor, measured in the same run: the same rows read in id order through a server-side cursor
   by asyncpg, in this process, doing nothing with them. Every step is reported as a ratio to it.
3. ``pwreset audit seal`` (every event's mac, the seals), ``pwreset audit verify`` and
   ``pwreset audit export --format jsonl`` and ``--format cef`` of the whole chain, each in its own
   process: wall time and peak resident memory. The export of the first 10,000 events alone gives
   the memory a small export takes: bounded memory means the two are close.

    python -m bench.audit [--events 1000000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg

from bench.harness import SECRET_KEY, drop_database, prepare_database

INSTITUTION = "07675"
DB = "pwreset_bench_audit"
_MEASURE = (
    "import resource, sys\n"
    "from pwreset.cli.main import main\n"
    "sys.argv = ['pwreset', *sys.argv[1:]]\n"
    "try:\n"
    "    main()\n"
    "finally:\n"
    "    print('maxrss_kib', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\n"
)


def _dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


async def load_events(url: str, count: int, start: datetime) -> None:
    conn = await asyncpg.connect(_dsn(url))
    try:
        batch = 50_000
        for first in range(0, count, batch):
            rows = [
                (start + timedelta(milliseconds=n), "reset.requested", "passcode_queued", "api", INSTITUTION,
                 "0" * 31 + "1", f"{n:032x}", str(uuid.UUID(int=n)),
                 json.dumps({"contactMethodId": "101", "protocol": "SMS"}), f"203.0.{n // 256 % 256}.{n % 256}",
                 "PartnerApp/2.1 (iOS 18)")
                for n in range(first, min(first + batch, count))
            ]
            await conn.copy_records_to_table(
                "audit_events", records=rows, columns=[
                    "occurred_at", "event_type", "outcome", "actor", "institution_id", "client_id", "customer_id",
                    "correlation_id", "details", "origin_ip", "user_agent",
                ],
            )
    finally:
        await conn.close()


async def floor(url: str) -> float:
    """Read every event in id order through a server-side cursor, 1,000 at a time."""
    conn = await asyncpg.connect(_dsn(url))
    try:
        started = time.perf_counter()
        async with conn.transaction():
            rows = 0
            async for _ in conn.cursor("SELECT * FROM audit_events WHERE institution_id = $1 ORDER BY id",
                                       INSTITUTION, prefetch=1000):
                rows += 1
        return time.perf_counter() - started
    finally:
        await conn.close()


def pwreset(url: str, *args: str) -> dict[str, Any]:
    env = {**os.environ, "PWRESET_DATABASE_URL": url, "PWRESET_SECRET_KEY": SECRET_KEY}
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", _MEASURE, *args], env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"pwreset {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    rss = int(next(line.split()[1] for line in done.stderr.splitlines() if line.startswith("maxrss_kib")))
    return {"seconds": round(elapsed, 2), "peak_rss_mib": round(rss / 1024, 1), "out": done.stdout.strip()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    args = parser.parse_args()
    url = prepare_database(DB)
    env = {**os.environ, "PWRESET_DATABASE_URL": url, "PWRESET_SECRET_KEY": SECRET_KEY}
    start = datetime.now(UTC) - timedelta(days=30)
    asyncio.run(load_events(url, args.events, start))  # (a month of events, then the institution's creation)
    subprocess.run([sys.executable, "-m", "pwreset", "institutions", "create", INSTITUTION, "--name", "Bench CU"],
                   env=env, check=True, capture_output=True)
    print(f"{args.events:,} events loaded", flush=True)
    results: dict[str, Any] = {"events": args.events}
    results["floor_seconds"] = base = round(asyncio.run(floor(url)), 2)
    results["seal"] = pwreset(url, "audit", "seal")
    results["verify"] = pwreset(url, "audit", "verify", "--institution", INSTITUTION)
    with tempfile.TemporaryDirectory() as tmp:
        small_until = (start + timedelta(milliseconds=10_000)).isoformat()
        results["export_10k"] = pwreset(url, "audit", "export", "--institution", INSTITUTION, "--until", small_until,
                                        "-o", str(Path(tmp) / "small.jsonl"))
        for fmt in ("jsonl", "cef"):
            out = Path(tmp) / f"all.{fmt}"
            results[f"export_{fmt}"] = pwreset(url, "audit", "export", "--institution", INSTITUTION, "--format", fmt,
                                               "-o", str(out))
            results[f"export_{fmt}"]["mib"] = round(out.stat().st_size / 2**20, 1)
            with out.open("rb") as lines:
                results[f"export_{fmt}"]["lines"] = sum(1 for _ in lines)
    for step in ("seal", "verify", "export_jsonl", "export_cef"):
        results[step]["ratio_to_floor"] = round(results[step]["seconds"] / base, 1)
        results[step].pop("out", None)
    results["export_10k"].pop("out", None)
    drop_database(DB)
    print(json.dumps(results, indent=2))
    print(f"\nfloor: {base:.2f} s to read {args.events:,} events")
    for step in ("seal", "verify", "export_jsonl", "export_cef", "export_10k"):
        r = results[step]
        print(f"  {step:13} {r['seconds']:8.2f} s  peak RSS {r['peak_rss_mib']:6.1f} MiB"
              + (f"  {r['ratio_to_floor']:.1f}x the floor" if "ratio_to_floor" in r else ""))


if __name__ == "__main__":
    main()
