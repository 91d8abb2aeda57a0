"""Delivery benchmark (issue 4): from the 204 of ``PUT :reset-password`` to the email at the SMTP server.

On PostgreSQL: the API (uvicorn, 2 workers, no in-process delivery) and one ``pwreset worker``
process sending email over SMTP to a local SMTP server (aiosmtpd, its own process, which writes the
arrival time of every message). A load generator sends ``PUT :reset-password`` for a new customer
at a steady rate (open loop: requests go out on schedule whatever the answers) and records when
each 204 arrived. Latency = arrival at the SMTP server - 204 at the client; lost = 204s without
an email.

Baseline, measured in the same run against the same SMTP server: one ``aiosmtplib.send`` straight
from this process (connect, EHLO, MAIL, RCPT, DATA, QUIT), the floor for any delivery by SMTP.

    python -m bench.delivery [--rate 200] [--seconds 20] [--customers 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import aiosmtplib
import httpx

from bench.directory import SCOPES, load_customers
from bench.harness import ROOT, SECRET_KEY, create_client, free_port, prepare_database, serve

SINK = """
import sys, time
from aiosmtpd.controller import Controller
out = open(sys.argv[2], "a", buffering=1)
class Sink:
    async def handle_DATA(self, server, session, envelope):
        out.write(f"{time.time()} {envelope.rcpt_tos[0]}\\n")
        return "250 2.0.0 Ok: queued"
controller = Controller(Sink(), hostname="127.0.0.1", port=int(sys.argv[1]))
controller.start()
print("ready", flush=True)
sys.stdin.read()
"""


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def baseline(port: int, n: int = 200) -> list[float]:
    times = []
    for i in range(n):
        message = EmailMessage()
        message["From"], message["To"], message["Subject"] = "bench@example.com", f"base{i}@example.com", "baseline"
        message.set_content("baseline")
        start = time.perf_counter()
        await aiosmtplib.send(message, hostname="127.0.0.1", port=port, start_tls=False)
        times.append(time.perf_counter() - start)
    return times


async def load(base: str, token: str, *, rate: int, seconds: int, first: int) -> tuple[dict[str, float], int]:
    """Open-loop load; returns {email: time of the 204} and the count of other answers."""
    answered: dict[str, float] = {}
    failures = 0
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    limits = httpx.Limits(max_connections=256, max_keepalive_connections=256)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as client:

        async def one(n: int) -> None:
            nonlocal failures
            response = await client.put(
                f"/v1/customers/B{n:06d}:reset-password", json={"contactMethodId": "e"},
                headers={**headers, "correlationId": str(uuid.uuid4())},
            )
            if response.status_code == 204:
                answered[f"b{n:06d}@example.com"] = time.time()
            else:
                failures += 1

        tasks = []
        start = time.perf_counter()
        for i in range(rate * seconds):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(first + i)))
        await asyncio.gather(*tasks)
    return answered, failures


def arrivals(path: Path) -> dict[str, float]:
    found: dict[str, float] = {}
    for line in path.read_text().splitlines():
        stamp, rcpt = line.split()
        found.setdefault(rcpt, float(stamp))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=int, default=200, help="reset requests per second")
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--customers", type=int, default=10_000)
    args = parser.parse_args()
    if args.rate * args.seconds > args.customers:
        sys.exit("--customers must cover rate x seconds (one new customer per request)")
    url = prepare_database("pwreset_bench_delivery")
    shared, secret = create_client(url, SCOPES)
    asyncio.run(load_customers(url, args.customers))
    smtp_port = free_port()
    received = Path(tempfile.mkstemp(prefix="pwreset-bench-smtp-", suffix=".log")[1])
    sink = subprocess.Popen([sys.executable, "-c", SINK, str(smtp_port), str(received)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    assert sink.stdout is not None and sink.stdout.readline().strip() == "ready"
    env = {
        "PWRESET_DATABASE_URL": url, "PWRESET_SECRET_KEY": SECRET_KEY, "PWRESET_DB_POOL_SIZE": "20",
        "PWRESET_INPROCESS_WORKER": "false", "PWRESET_LOG_JSON": "true", "PWRESET_EMAIL_PROVIDER": "smtp",
        "PWRESET_SMTP_HOST": "127.0.0.1", "PWRESET_SMTP_PORT": str(smtp_port), "PWRESET_SMTP_SECURITY": "none",
        "PWRESET_EMAIL_FROM": "reset@bench.example", "PWRESET_LOG_LEVEL": "WARNING",
    }
    worker_log = tempfile.NamedTemporaryFile(prefix="pwreset-bench-worker-", suffix=".log", delete=False)  # noqa: SIM115
    worker = subprocess.Popen([sys.executable, "-m", "pwreset", "worker"], cwd=ROOT, env={**os.environ, **env},
                              stdout=worker_log, stderr=subprocess.STDOUT)
    try:
        base_times = asyncio.run(baseline(smtp_port))
        with serve("pwreset.app:create_app_from_env", workers=2, env=env, factory=True) as base:
            token = httpx.post(
                base + "/oauth2/v1/token", auth=(shared, secret), data={"grant_type": "client_credentials"},
                headers={"transactionId": str(uuid.uuid4()), "institutionId": "07675"},
            ).json()["access_token"]
            asyncio.run(load(base, token, rate=20, seconds=2, first=args.customers - 40))  # warm-up
            answered, failures = asyncio.run(load(base, token, rate=args.rate, seconds=args.seconds, first=1))
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and len(set(answered) - set(arrivals(received))) > 0:
                time.sleep(0.2)
    finally:
        worker.terminate()
        worker.wait(timeout=30)
        sink.communicate("", timeout=10)
    got = arrivals(received)
    latencies = [got[email] - at for email, at in answered.items() if email in got]
    lost = len(set(answered) - set(got))
    result: dict[str, Any] = {
        "args": vars(args), "answered": len(answered), "failures": failures, "lost": lost,
        "p50_ms": percentile(latencies, 0.50) * 1000, "p90_ms": percentile(latencies, 0.90) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000, "max_ms": max(latencies) * 1000,
        "baseline_smtp_send_p50_ms": statistics.median(base_times) * 1000,
    }
    result["p50_over_baseline"] = round(result["p50_ms"] / result["baseline_smtp_send_p50_ms"], 1)
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "delivery.json").write_text(json.dumps(result, indent=2))
    print(f"{len(answered):,} resets answered 204 at {args.rate}/s for {args.seconds} s ({failures} other answers); "
          f"{lost} emails lost")
    print(f"204 -> email at the SMTP server: p50 {result['p50_ms']:.1f} ms (target < 100), "
          f"p90 {result['p90_ms']:.1f} ms, p99 {result['p99_ms']:.1f} ms (target < 1000), "
          f"max {result['max_ms']:.1f} ms")
    print(f"baseline, one direct SMTP send: p50 {result['baseline_smtp_send_p50_ms']:.2f} ms "
          f"(p50 above is {result['p50_over_baseline']}x that)")


if __name__ == "__main__":
    main()
