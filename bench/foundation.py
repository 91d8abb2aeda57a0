"""Load benchmark of the token service and the bearer check (issue 2).

Serves, one after the other with the same server (uvicorn) and worker count: the bare ASGI floor,
then the real service on PostgreSQL, and drives each with wrk from this machine:

- ``POST /oauth2/v1/token`` (client_credentials, a new token row per request);
- ``GET /v1/bench-noop`` behind the bearer check (one token, as a partner's server reuses it).

The floor is measured before and after the service and averaged, and every figure is a ratio to
it, so the result means something on a shared, noisy machine. Usage:

    python -m bench.foundation [--workers 2] [--seconds 10] [--connections 64] [--rounds 3]

Needs wrk (``apt-get install wrk``) and PostgreSQL (``PWRESET_BENCH_POSTGRES_URL``, default the
local server); writes bench/results/foundation.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import uuid
from typing import Any

import httpx

from bench.harness import PORTAL_ON, ROOT, SECRET_KEY, create_client, lua, prepare_database, serve, wrk


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-access-log", dest="access_log", action="store_false",
                        help="turn the per-request access log off (it is on by default, as in production)")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install wrk")

    import base64

    url = prepare_database()
    shared, secret = create_client(url)
    env = {
        "PWRESET_DATABASE_URL": url,
        "PWRESET_SECRET_KEY": SECRET_KEY,
        "PWRESET_ACCESS_LOG": "true" if args.access_log else "false",
        "PWRESET_LOG_JSON": "true",
        "PWRESET_DB_POOL_SIZE": "20",
        "PWRESET_INPROCESS_WORKER": "false",
        **PORTAL_ON,
    }
    basic = base64.b64encode(f"{shared}:{secret}".encode()).decode()
    token_script = lua(
        "POST",
        {
            "Authorization": f"Basic {basic}",
            "Content-Type": "application/x-www-form-urlencoded",
            "transactionId": str(uuid.uuid4()),
            "institutionId": "07675",
        },
        "grant_type=client_credentials",
    )
    run = {"seconds": args.seconds, "connections": args.connections}
    rounds = [measure_round(args.workers, env, run, token_script, shared, secret) for _ in range(args.rounds)]
    token_ratio = statistics.median(r["token_ratio"] for r in rounds)
    bearer_ratio = statistics.median(r["bearer_ratio"] for r in rounds)
    results = {
        "workers": args.workers, **run, "access_log": args.access_log, "rounds": rounds,
        "token_ratio": token_ratio, "bearer_ratio": bearer_ratio,
    }
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "foundation.json").write_text(json.dumps(results, indent=2))
    for number, r in enumerate(rounds, 1):
        print(
            f"round {number}: floor {r['floor']:,.0f} req/s | token {r['token']['rps']:,.0f} req/s "
            f"({r['token_ratio']:.3f}, p99 {r['token']['p99_ms']:.1f} ms) | bearer {r['bearer']['rps']:,.0f} req/s "
            f"({r['bearer_ratio']:.3f}, p99 {r['bearer']['p99_ms']:.1f} ms) | non-2xx "
            f"{r['token']['non_2xx'] + r['bearer']['non_2xx']:.0f}"
        )
    print(
        f"median of {args.rounds} rounds, {args.workers} workers, access log {'on' if args.access_log else 'off'}:\n"
        f"  POST /oauth2/v1/token  {token_ratio:.3f} of the bare ASGI floor (target >= 0.20)\n"
        f"  GET bearer no-op       {bearer_ratio:.3f} of the bare ASGI floor (target >= 0.30)"
    )


def measure_round(
    workers: int, env: dict[str, str], run: dict[str, int], token_script: str, shared: str, secret: str
) -> dict[str, Any]:
    """Floor, token endpoint, bearer route, floor again; ratios against the mean of both floors."""
    connections = run["connections"]
    with serve("bench.apps:floor", workers=workers, env={}, factory=False) as base:
        wrk(base + "/", seconds=2, connections=connections)  # warm-up
        floor_before = wrk(base + "/", **run)
    with serve("bench.apps:service", workers=workers, env=env, factory=True) as base:
        wrk(base + "/oauth2/v1/token", seconds=2, connections=connections, script=token_script)
        token_stats = wrk(base + "/oauth2/v1/token", **run, script=token_script)
        token = httpx.post(
            base + "/oauth2/v1/token", auth=(shared, secret), data={"grant_type": "client_credentials"},
            headers={"transactionId": str(uuid.uuid4()), "institutionId": "07675"},
        ).json()["access_token"]
        noop_script = lua("GET", {"Authorization": f"Bearer {token}", "correlationId": str(uuid.uuid4())})
        wrk(base + "/v1/bench-noop", seconds=2, connections=connections, script=noop_script)
        bearer_stats = wrk(base + "/v1/bench-noop", **run, script=noop_script)
    with serve("bench.apps:floor", workers=workers, env={}, factory=False) as base:
        floor_after = wrk(base + "/", **run)
    floor = (floor_before["rps"] + floor_after["rps"]) / 2
    return {
        "floor": floor, "floor_before": floor_before["rps"], "floor_after": floor_after["rps"],
        "token": token_stats, "bearer": bearer_stats,
        "token_ratio": round(token_stats["rps"] / floor, 3), "bearer_ratio": round(bearer_stats["rps"] / floor, 3),
    }


if __name__ == "__main__":
    main()
