"""Delivery benchmark (issue 4): from the 204 of ``PUT :reset-password`` to the email at the SMTP server.

On PostgreSQL: the API (uvicorn, 2 workers, no in-process delivery) and one ``pwreset worker``
process sending email over SMTP to a local SMTP server (aiosmtpd, its own process, which writes the
arrival time of every message). wrk sends ``PUT :reset-password`` for a new customer on every
request at a steady rate (``--rate``; each connection pauses between requests). The 204's time is
taken from the API's own access log (each request carries a correlation id naming its customer).
Latency = arrival at the SMTP server - the API's access line for the 204; lost = 204s without an
email. Delivery starts at the commit, just before the 204 is written, so a few latencies may be
slightly negative.

Baseline, measured in the same run against the same SMTP server: one ``aiosmtplib.send`` straight
from this process (connect, EHLO, MAIL, RCPT, DATA, QUIT), the floor for any delivery by SMTP.

    python -m bench.delivery [--rate 200] [--connections 16] [--seconds 20] [--customers 40000]
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
import tempfile
import time
import uuid
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import aiosmtplib
import httpx

from bench.directory import SCOPES, load_customers
from bench.harness import (
    NO_VELOCITY_LIMITS,
    ROOT,
    SECRET_KEY,
    create_client,
    free_port,
    lua,
    prepare_database,
    serve,
    wrk,
)

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


def load_script(token: str, first: int, pause_ms: int) -> str:
    """A wrk script: PUT :reset-password for customer first+1, first+2, ..., each with a correlation
    id that names its customer (see :func:`trace_of`); each connection pauses ``pause_ms`` between
    requests, which holds the rate near connections x 1000 / pause_ms."""
    return lua("PUT", {"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
               '{\\"contactMethodId\\": \\"e\\"}', request=(
        f"counter = {first}\n"
        "request = function()\n"
        "  counter = counter + 1\n"
        "  local h = {}\n"
        "  for k, v in pairs(wrk.headers) do h[k] = v end\n"
        '  h["correlationId"] = string.format("00000000-0000-4000-8000-%012d", counter)\n'
        '  return wrk.format(nil, string.format("/v1/customers/B%06d:reset-password", counter), h)\n'
        "end\n"
        f"delay = function() return {pause_ms} end"
    ))


def trace_of(n: int) -> str:
    return f"00000000-0000-4000-8000-{n:012d}"


def answered_at(log: Path) -> dict[str, float]:
    """The API's access-log time of each 204, by the customer's email."""
    from datetime import datetime

    found: dict[str, float] = {}
    for line in log.read_text(errors="replace").splitlines():
        if '"pwreset.access"' not in line or '"status":204' not in line:
            continue
        entry = json.loads(line)
        n = int(entry["trace_id"].rsplit("-", 1)[1])
        found[f"b{n:06d}@example.com"] = datetime.fromisoformat(entry["time"].replace("Z", "+00:00")).timestamp()
    return found


def arrivals(path: Path) -> dict[str, float]:
    found: dict[str, float] = {}
    for line in path.read_text().splitlines():
        stamp, rcpt = line.split()
        found.setdefault(rcpt, float(stamp))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=int, default=200, help="reset requests per second (approximately)")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections")
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--customers", type=int, default=40_000, help="one new customer per request")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install wrk")
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
        "PWRESET_EMAIL_FROM": "reset@bench.example", "PWRESET_LOG_LEVEL": "WARNING", **NO_VELOCITY_LIMITS,
    }
    worker_log = tempfile.NamedTemporaryFile(prefix="pwreset-bench-worker-", suffix=".log", delete=False)  # noqa: SIM115
    worker = subprocess.Popen([sys.executable, "-m", "pwreset", "worker"], cwd=ROOT, env={**os.environ, **env},
                              stdout=worker_log, stderr=subprocess.STDOUT)
    try:
        base_times = asyncio.run(baseline(smtp_port))
        api_log = Path(tempfile.mkstemp(prefix="pwreset-bench-api-", suffix=".log")[1])
        with serve("pwreset.app:create_app_from_env", workers=2, env=env, factory=True, log_path=api_log) as base:
            token = httpx.post(
                base + "/oauth2/v1/token", auth=(shared, secret), data={"grant_type": "client_credentials"},
                headers={"transactionId": str(uuid.uuid4()), "institutionId": "07675"},
            ).json()["access_token"]
            pause = max(1, round(args.connections * 1000 / args.rate))
            script = load_script(token, 0, pause)
            run = wrk(base + "/", seconds=args.seconds, connections=args.connections, script=script)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                answered = answered_at(api_log)
                if not set(answered) - set(arrivals(received)):
                    break
                time.sleep(0.2)
    finally:
        worker.terminate()
        worker.wait(timeout=30)
        sink.communicate("", timeout=10)
    got = arrivals(received)
    answered = answered_at(api_log)
    if len(answered) >= args.customers:
        sys.exit(f"the load reached the last of the {args.customers:,} customers: raise --customers")
    latencies = [got[email] - at for email, at in answered.items() if email in got]
    lost = len(set(answered) - set(got))
    result: dict[str, Any] = {
        "args": vars(args), "answered": len(answered), "rate": round(run["rps"], 1), "non_2xx": run["non_2xx"],
        "lost": lost,
        "p50_ms": percentile(latencies, 0.50) * 1000, "p90_ms": percentile(latencies, 0.90) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000, "max_ms": max(latencies) * 1000,
        "baseline_smtp_send_p50_ms": statistics.median(base_times) * 1000,
    }
    result["p50_over_baseline"] = round(result["p50_ms"] / result["baseline_smtp_send_p50_ms"], 1)
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "delivery.json").write_text(json.dumps(result, indent=2))
    print(f"{len(answered):,} resets answered 204 in {args.seconds} s ({run['rps']:.0f}/s, {args.connections} "
          f"connections, {run['non_2xx']:.0f} other answers); {lost} emails lost")
    print(f"204 -> email at the SMTP server: p50 {result['p50_ms']:.1f} ms (target < 100), "
          f"p90 {result['p90_ms']:.1f} ms, p99 {result['p99_ms']:.1f} ms (target < 1000), "
          f"max {result['max_ms']:.1f} ms")
    print(f"baseline, one direct SMTP send: p50 {result['baseline_smtp_send_p50_ms']:.2f} ms "
          f"(p50 above is {result['p50_over_baseline']}x that)")


if __name__ == "__main__":
    main()
