"""Test fixtures: every test that takes ``backend`` runs on SQLite and on PostgreSQL.

PostgreSQL and Redis are used when reachable (``PWRESET_TEST_POSTGRES_URL``, default the local
server; ``PWRESET_TEST_REDIS_URL``, default the local Redis). In CI (``CI=true``) or with
``PWRESET_TEST_REQUIRE_SERVICES=1`` an unreachable one fails the run instead of being skipped; on a
laptop without them, SQLite and the in-process fallbacks stand in.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

import pwreset.models  # noqa: F401
from pwreset.app import create_app
from pwreset.config import Settings
from pwreset.container import Container, build_container
from pwreset.db import Base, async_url
from pwreset.kit.clock import FrozenClock
from pwreset.migrate import upgrade
from tests.directory_support import DIRECTORY, World, load
from tests.openapi_check import checker
from tests.support import PROBE_OPERATIONS, FakeDirectory, get_token

POSTGRES_ADMIN_URL = os.environ.get("PWRESET_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
#: pytest-xdist's worker (gw0, gw1, ...): each gets its own PostgreSQL databases (named by process id) and
#: its own Redis databases (15, 13, ... for the suite; 14, 12, ... for the browser tests' server).
WORKER = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)
REDIS_URL = os.environ.get("PWRESET_TEST_REDIS_URL", f"redis://127.0.0.1:6379/{15 - 2 * WORKER}")
REQUIRE_SERVICES = os.environ.get("CI", "").lower() == "true" or os.environ.get(
    "PWRESET_TEST_REQUIRE_SERVICES"
) == "1"
#: A key `pwreset keys generate` printed (a fixed one, so that failures reproduce).
TEST_SECRET_KEY = "Kst54BhfPu5HtcOhREAyo0uJN9iBeSS8oq0LJMoMfi1mzKJ2CG_DLDBzlFdDUf33"


def _reachable(url: str, default_port: int) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or default_port), timeout=1):
            return True
    except OSError:
        return False


POSTGRES_UP = _reachable(POSTGRES_ADMIN_URL, 5432)
REDIS_UP = _reachable(REDIS_URL, 6379)


def pytest_sessionstart(session: pytest.Session) -> None:
    if REQUIRE_SERVICES and not (POSTGRES_UP and REDIS_UP):
        raise pytest.UsageError(
            f"CI needs PostgreSQL ({POSTGRES_ADMIN_URL}: {'up' if POSTGRES_UP else 'unreachable'}) and "
            f"Redis ({REDIS_URL}: {'up' if REDIS_UP else 'unreachable'})"
        )


def pytest_report_header() -> list[str]:
    return [
        f"pwreset backends: sqlite, postgresql={'yes' if POSTGRES_UP else 'no (skipped)'}, "
        f"redis={'yes' if REDIS_UP else 'no (in-process fallbacks)'}"
    ]


async def _admin(sql: str) -> None:
    engine = create_async_engine(async_url(POSTGRES_ADMIN_URL), isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.execute(text(sql))
    finally:
        await engine.dispose()


@pytest.fixture(scope="session")
def database_urls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """One migrated database per backend for the whole session."""
    urls = {"sqlite": f"sqlite:///{tmp_path_factory.mktemp('db') / 'pwreset-test.db'}"}
    pg_name = f"pwreset_test_{os.getpid()}"
    if POSTGRES_UP:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{pg_name}"'))
        asyncio.run(_admin(f'CREATE DATABASE "{pg_name}"'))
        urls["postgresql"] = POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + "/" + pg_name
    for url in urls.values():
        upgrade(url)
    yield urls
    if POSTGRES_UP:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)'))


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    if request.param == "postgresql" and not POSTGRES_UP:
        pytest.skip("PostgreSQL is not reachable (CI requires it)")
    return str(request.param)


async def empty_tables(url: str) -> None:
    engine = create_async_engine(async_url(url))
    try:
        async with engine.begin() as conn:
            tables = list(reversed(Base.metadata.sorted_tables))
            if conn.dialect.name == "postgresql":
                names = ", ".join(t.name for t in tables)
                await conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
            else:
                for table in tables:
                    await conn.execute(table.delete())
    finally:
        await engine.dispose()


@pytest.fixture
async def database_url(backend: str, database_urls: dict[str, str]) -> str:
    url = database_urls[backend]
    await empty_tables(url)
    return url


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(
        database_url=database_url, secret_key=TEST_SECRET_KEY, log_json=False, access_log=False,
        revocation_bound=5.0, argon2_memory_kib=1024, argon2_time_cost=1,  # fast hashes; same algorithm
        _env_file=None,  # type: ignore[call-arg]
    )


@pytest.fixture(params=["", "/digitalbanking/ux-users"], ids=["gateway", "digitalbanking"])
def ux(request: pytest.FixtureRequest) -> str:
    """Both URL styles of the ux-users family (contract section 1)."""
    return str(request.param)


@pytest.fixture
def clock() -> FrozenClock:
    # Now, rounded down to the hour: sliding-window limits then behave the same in every run.
    return FrozenClock(start=float(int(time.time()) // 3600 * 3600))


@pytest.fixture
def directory() -> FakeDirectory:
    return FakeDirectory()


@pytest.fixture
async def services(settings: Settings, clock: FrozenClock, directory: FakeDirectory) -> AsyncIterator[Container]:
    container = build_container(settings, clock=clock, directory=directory)
    yield container
    await container.close()


@pytest.fixture(scope="session")
def openapi_document() -> dict:
    """pwreset's own /openapi.json, without the tests' probe routes."""
    from pwreset.api.openapi import build_openapi
    from pwreset.app import all_operations

    return build_openapi(all_operations())


@pytest.fixture
async def api(services: Container, openapi_document: dict) -> AsyncIterator[httpx.AsyncClient]:
    """The app in process. Every response is checked against /openapi.json (tests/openapi_check.py)."""
    app = create_app(services.settings, container=services, extra_operations=PROBE_OPERATIONS, background=False)
    transport = httpx.ASGITransport(app=app)
    _, hook = checker(openapi_document)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://pwreset.test", event_hooks={"response": [hook]}
    ) as client:
        yield client


@dataclass
class PartnerClient:
    institution_id: str
    shared_key: str
    secret_key: str
    client_id: str

    @property
    def auth(self) -> tuple[str, str]:
        return (self.shared_key, self.secret_key)


@pytest.fixture
def make_partner(services: Container):  # type: ignore[no-untyped-def]
    from pwreset.institutions import repository as institutions
    from pwreset.institutions.service import create_institution

    async def make(
        institution_id: str = "07675", scopes: str = "institution-users:read institution-users:write",
        grant_types: str | None = None,
    ) -> PartnerClient:
        async with services.db.transaction() as session:
            if await institutions.get(session, institution_id) is None:
                await create_institution(
                    session, institution_id=institution_id, name=f"Institution {institution_id}",
                    clock=services.clock,
                )
            created = await services.oauth.create_client(
                session, institution_id=institution_id, scope=scopes, grant_types=grant_types
            )
        return PartnerClient(institution_id, created.client.shared_key, created.secret_key, created.client.id)

    return make


def new_uuid() -> str:
    return str(uuid.uuid4())


REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
async def world(api, make_partner, services) -> World:
    """Customers in two institutions, loaded by the real importer (tests/directory_support.py)."""
    scopes = "institution-users:read institution-users:write"
    partner = await make_partner("07675", scopes=scopes)
    other = await make_partner("11111", scopes=scopes)
    for institution_id, records in DIRECTORY.items():
        report = await load(services, institution_id, records)
        assert not report.refused, report.refused
    token = (await get_token(api, partner.auth)).json()["access_token"]
    other_token = (await get_token(api, other.auth, institution_id="11111")).json()["access_token"]
    return World(partner, other, token, other_token)
