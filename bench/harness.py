"""Shared benchmark plumbing: a scratch PostgreSQL database, server processes, wrk."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

ROOT = Path(__file__).resolve().parent.parent
SECRET_KEY = "703rHMjkvA1E6xJS_q8GQ1WqmVeOnpkKaU5upt6CwSCgnE6HYjqa3bDdZtvlO7PH"  # (`pwreset keys generate`)
#: Benchmarks measure the service's throughput with one partner client: the velocity limits per
#: client and institution (issue 12, item 6) would stop them within the first minute, as they should
#: stop a flood; they are lifted here and only here.
NO_VELOCITY_LIMITS = {
    f"PWRESET_{name}": "1000000000" for name in (
        "CLIENT_SEND_LIMIT_MINUTE", "CLIENT_SEND_LIMIT_HOUR", "INSTITUTION_SEND_LIMIT_MINUTE",
        "INSTITUTION_SEND_LIMIT_HOUR", "CLIENT_VERIFY_FAILURE_LIMIT", "INSTITUTION_VERIFY_FAILURE_LIMIT",
    )
}
#: The developer portal mounted, as a deployment that offers it runs (issue 13: the API's hot paths keep
#: their speed with it). Ignored by versions without a portal.
PORTAL_ON = {"PWRESET_PORTAL_INSTITUTION_ID": "00001", "PWRESET_PUBLIC_URL": "http://localhost:8000"}
ADMIN_URL = os.environ.get("PWRESET_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
DB_NAME = "pwreset_bench"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def serve(
    app: str, *, workers: int, env: dict[str, str], factory: bool, log_path: Path | None = None
) -> Iterator[str]:
    """Serve ``app`` with uvicorn until the block ends; its output goes to ``log_path`` (or a temp file).

    pwreset's own apps run on the HTTP protocol `pwreset serve` uses (ops/server.py: httptools with
    slow-client deadlines); the floor on plain httptools, so the protocol's cost counts against pwreset.
    """
    port = free_port()
    if app.startswith(("bench.apps:service", "pwreset.")):
        launch = (
            "import uvicorn; from pwreset.ops.server import GuardedHttpToolsProtocol as P; "
            f"uvicorn.run({app!r}, factory={factory}, port={port}, workers={workers}, access_log=False, "
            "log_level='warning', loop='uvloop', http=P)"
        )
        args = [sys.executable, "-c", launch]
    else:
        args = [
            sys.executable, "-m", "uvicorn", app, "--port", str(port), "--workers", str(workers),
            "--no-access-log", "--log-level", "warning", "--loop", "uvloop", "--http", "httptools",
        ]
        if factory:
            args.append("--factory")
    if log_path is not None:
        log = log_path.open("wb")
    else:
        log = tempfile.NamedTemporaryFile(prefix="pwreset-bench-", suffix=".log", delete=False)  # noqa: SIM115
    process = subprocess.Popen(args, cwd=ROOT, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(base + "/healthz", timeout=0.5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(Path(log.name).read_text()[-2000:])
            time.sleep(0.1)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=20)
        log.close()


def wrk(url: str, *, seconds: int, connections: int, script: str | None = None) -> dict[str, float]:
    args = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency"]
    if script:
        args += ["-s", script]
    output = subprocess.run([*args, url], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", output)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}
    return {
        "rps": rps,
        "non_2xx": float(errors.group(1)) if errors else 0.0,
        "p99_ms": float(p99.group(1)) * scale[p99.group(2)] if p99 else float("nan"),
    }


def lua(method: str, headers: dict[str, str], body: str | None = None, *, request: str | None = None) -> str:
    """A wrk script: method, headers, body, and optionally a ``request`` function of its own."""
    lines = [f'wrk.method = "{method}"']
    for name, value in headers.items():
        lines.append(f'wrk.headers["{name}"] = "{value}"')
    if body is not None:
        lines.append(f'wrk.body = "{body}"')
    if request is not None:
        lines.append(request)
    handle = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False)  # noqa: SIM115
    handle.write("\n".join(lines) + "\n")
    handle.close()
    return handle.name


async def _admin(sql: str) -> None:
    from pwreset.db import async_url

    engine = create_async_engine(async_url(ADMIN_URL), isolation_level="AUTOCOMMIT")
    async with engine.connect() as conn:
        await conn.execute(text(sql))
    await engine.dispose()


def drop_database(name: str) -> None:
    asyncio.run(_admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


def prepare_database(name: str = DB_NAME) -> str:
    """A new, migrated database (dropped first if it exists); its URL."""
    from pwreset.migrate import upgrade

    drop_database(name)
    asyncio.run(_admin(f"CREATE DATABASE {name}"))
    url = ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    upgrade(url)
    return url


def create_client(url: str, scopes: str = "institution-users:read") -> tuple[str, str]:
    env = {**os.environ, "PWRESET_DATABASE_URL": url, "PWRESET_SECRET_KEY": SECRET_KEY}
    run = [sys.executable, "-m", "pwreset"]
    # The institution may exist already (a second client on the same database).
    subprocess.run([*run, "institutions", "create", "07675", "--name", "Bench CU"], env=env, check=False,
                   capture_output=True)
    out = subprocess.run(
        [*run, "clients", "create", "--institution", "07675", "--scopes", scopes, "--json"],
        env=env, check=True, capture_output=True, text=True,
    ).stdout
    created = json.loads(out)
    return created["sharedKey"], created["secretKey"]


