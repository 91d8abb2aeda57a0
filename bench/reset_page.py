"""Load benchmark of the hosted reset page's steps (issue 15), as ratios to the API's own reset request.

PostgreSQL with 100,000 customers (``bench.directory``'s), one service process set (``--workers``), wrk.
Each round measures, on the same server one after the other:

- the baseline: ``PUT /v1/customers/{id}:reset-password`` for a new customer on every request (the API's
  reset request: a passcode, its sealed message and an audit event through the group commit);
- ``GET /reset/{id}``: the first page (the institution, its look, a CSRF token);
- ``POST /reset/{id}``: a login typed (the limits, the directory lookup, a new flow and its audit event);
- ``GET /reset/{id}/choose``: a flow read and its destinations shown;
- ``POST /reset/{id}/choose``: a code sent through the page (the same reset request, plus the flow's step);
- ``GET /reset/{id}/code``: the code page (the send wait read from the limiter);
- ``POST /reset/{id}/password/check``: the live password check (the policy with zxcvbn).

Flows for the steps after the login are made beforehand (one per customer, as many as wrk will use), so that
every request is a customer's own. The page's timing floor (``PWRESET_RESET_PAGE_FLOOR``, which makes a login
on file and one that is not answer alike) is 0 here: it is a wait, not work, and would measure itself. The
per-address and per-login limits, the send limits and the velocity limits are lifted (as in bench.directory),
since one address sends everything.

    python -m bench.reset_page [--customers 100000] [--workers 2] [--seconds 10] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import shutil
import statistics
import sys
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import create_async_engine

from bench.directory import load_customers
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
from pwreset.db import async_url
from pwreset.kit.crypto import KeyedHasher, new_id, new_secret
from pwreset.web.models import ResetFlow
from pwreset.web.service import FLOW_PREFIX, H_FLOW

SCOPES = "institution-users:read institution-users:write"
LIFTED = {
    **NO_VELOCITY_LIMITS, "PWRESET_RESET_PAGE_FLOOR": "0", "PWRESET_RESET_PAGE_ADDRESS_LIMIT": "1000000000",
    "PWRESET_RESET_PAGE_LOGIN_LIMIT": "1000000000", "PWRESET_SEND_LIMIT_SHORT": "1000000000",
    "PWRESET_SEND_LIMIT_LONG": "1000000000",
}
#: The page's cookies outside the sandbox (web/routes.cookie_names).
FLOW_COOKIE, CSRF_COOKIE = "__Host-pwreset_flow", "__Host-pwreset_page_csrf"
STEPS = ("start_page", "login", "choose_page", "send", "code_page", "password_check")


async def make_flows(url: str, first: int, count: int, step: str) -> list[str]:
    """``count`` flows at ``step`` for customers ``first+1`` on; their cookie values."""
    hasher = KeyedHasher(SECRET_KEY.encode())
    now = datetime.now(UTC)
    tokens, rows = [], []
    for n in range(first + 1, first + count + 1):
        token = new_secret(FLOW_PREFIX)
        tokens.append(token)
        rows.append({
            "id": new_id(), "token_hash": hasher.digest(H_FLOW, token), "institution_id": "07675",
            "customer_pk": f"{n:032x}", "decoy": None, "step": step,
            "method_pk": "d1" if step == "code" else None,  # the email address (each customer's second method)
            "code_expires_at": now + timedelta(minutes=15) if step == "code" else None,
            "created_at": now, "expires_at": now + timedelta(hours=2),
        })
    engine = create_async_engine(async_url(url))
    async with engine.begin() as conn:
        await conn.execute(insert(ResetFlow.__table__), rows)
    await engine.dispose()
    return tokens


def _cookie_script(method: str, path: str, tokens: list[str], *, body: str | None, extra: dict[str, str],
                   csrf_cookie: str) -> str:
    """A wrk script sending each request with one of ``tokens`` as the flow's cookie, in turn."""
    listed = ",".join(f'"{t}"' for t in tokens)
    return lua(method, extra, body, request=(
        f"tokens = {{{listed}}}\ncounter = 0\n"
        "request = function()\n  counter = counter + 1\n"
        f'  wrk.headers["Cookie"] = "{FLOW_COOKIE}=" .. tokens[(counter % #tokens) + 1] .. "; {csrf_cookie}"\n'
        f'  return wrk.format(nil, "{path}")\nend'
    ))


def _csrf(base: str) -> tuple[str, str]:
    """A CSRF token and the cookie it is bound to, as a browser gets them from the first page."""
    first = httpx.get(base + "/reset/07675")
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', first.text)
    assert token is not None, first.text[:500]
    cookie = re.search(rf"{CSRF_COOKIE}=([^;]+)", first.headers.get("set-cookie", ""))
    assert cookie is not None, first.headers
    return token.group(1), f"{CSRF_COOKIE}={cookie.group(1)}"


def one_round(args: argparse.Namespace, env: dict[str, str], url: str, shared: str, secret: str,
              first: int) -> dict[str, Any]:
    run = {"seconds": args.seconds, "connections": args.connections}
    pool = args.flows
    sends = asyncio.run(make_flows(url, first, pool, "choose"))
    codes = asyncio.run(make_flows(url, first + pool, pool, "code"))
    passwords = asyncio.run(make_flows(url, first + 2 * pool, pool, "password"))
    results: dict[str, Any] = {}
    with serve("bench.apps:service", workers=args.workers, env=env, factory=True) as base:
        token = httpx.post(
            base + "/oauth2/v1/token", auth=(shared, secret), data={"grant_type": "client_credentials"},
            headers={"transactionId": str(uuid.uuid4()), "institutionId": "07675"},
        ).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}", "correlationId": str(uuid.uuid4()),
                   "Content-Type": "application/json"}
        api = lua("PUT", headers, '{\\"contactMethodId\\": \\"e\\"}', request=(
            f"counter = {first + 3 * pool}\n"
            "request = function()\n  counter = counter + 1\n"
            '  return wrk.format(nil, string.format("/v1/customers/B%06d:reset-password", counter))\nend'
        ))
        wrk(base + "/", seconds=2, connections=args.connections, script=api)
        results["api_reset"] = wrk(base + "/", **run, script=api)
        results["start_page"] = wrk(base + "/reset/07675", **run)
        csrf, csrf_cookie = _csrf(base)
        form = {"Content-Type": "application/x-www-form-urlencoded", "Cookie": csrf_cookie}
        login = lua("POST", form, None, request=(
            "counter = 0\nrequest = function()\n  counter = counter + 1\n"
            f'  local body = string.format("csrf_token={csrf}&login=bench%06d", (counter % {args.customers}) + 1)\n'
            '  return wrk.format(nil, "/reset/07675", nil, body)\nend'
        ))
        results["login"] = wrk(base + "/", **run, script=login)
        results["choose_page"] = wrk(base + "/", **run, script=_cookie_script(
            "GET", "/reset/07675/choose", sends, body=None, extra={}, csrf_cookie=csrf_cookie))
        results["send"] = wrk(base + "/", **run, script=_cookie_script(
            "POST", "/reset/07675/choose", sends, body=f"csrf_token={csrf}&destination=d1", csrf_cookie=csrf_cookie,
            extra={"Content-Type": "application/x-www-form-urlencoded"}))
        results["code_page"] = wrk(base + "/", **run, script=_cookie_script(
            "GET", "/reset/07675/code", codes, body=None, extra={}, csrf_cookie=csrf_cookie))
        results["password_check"] = wrk(base + "/", **run, script=_cookie_script(
            "POST", "/reset/07675/password/check", passwords,
            body=f"csrf_token={csrf}&password=quiet%20harbour%20lantern%2042", csrf_cookie=csrf_cookie,
            extra={"Content-Type": "application/x-www-form-urlencoded"}))
    baseline = results["api_reset"]["rps"]
    return {**results, "ratios": {step: round(results[step]["rps"] / baseline, 3) for step in STEPS}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--flows", type=int, default=3000, help="flows made per step and round")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install wrk")
    if args.customers < args.rounds * 4 * args.flows + 20_000:
        sys.exit("--customers must cover every round's flows and API requests")
    url = prepare_database("pwreset_bench_reset_page")
    shared, secret = create_client(url, SCOPES)
    asyncio.run(load_customers(url, args.customers))
    env = {
        "PWRESET_DATABASE_URL": url, "PWRESET_SECRET_KEY": SECRET_KEY, "PWRESET_DB_POOL_SIZE": "20",
        "PWRESET_INPROCESS_WORKER": "false", "PWRESET_LOG_JSON": "true", **LIFTED, **PORTAL_ON,
    }
    stride = args.customers // args.rounds
    rounds = [one_round(args, env, url, shared, secret, first=r * stride) for r in range(args.rounds)]
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "reset_page.json").write_text(json.dumps({"args": vars(args), "rounds": rounds}, indent=2))
    for number, r in enumerate(rounds, 1):
        cells = " | ".join(f"{step} {r[step]['rps']:,.0f} ({r['ratios'][step]:.2f}, non-2xx {r[step]['non_2xx']:.0f})"
                           for step in STEPS)
        print(f"round {number}: API reset {r['api_reset']['rps']:,.0f} req/s | {cells}")
    print(f"median of {args.rounds} rounds, {args.customers:,} customers, {args.workers} workers "
          "(requests a second, as a ratio to the API's PUT :reset-password):")
    for step in STEPS:
        median = statistics.median(r["ratios"][step] for r in rounds)
        rps = statistics.median(r[step]["rps"] for r in rounds)
        print(f"  {step:15} {rps:9,.0f} req/s  {median:.2f}")


if __name__ == "__main__":
    main()
