"""A dropped database connection is the family's 503, never a 500 with a traceback (issue 12, item 8)."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import text

from pwreset.db import is_outage
from tests.directory_support import C1, World
from tests.support import get_token


async def _terminate_every_other_connection(services) -> int:
    async with services.db.autocommit() as conn:
        result = await conn.execute(text(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ))
        return int(result.scalar_one())


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
async def test_every_hot_path_answers_503_or_recovers_when_connections_are_dropped(
    api, world: World, services, caplog
):
    caplog.set_level(logging.INFO)

    async def calls() -> list:
        return [
            await get_token(api, world.partner.auth),
            await api.get(f"/v1/customers/{C1}/contact-methods", headers=world.headers()),
            await api.get(f"/v1/customers/{C1}", headers=world.headers()),
            await api.put(f"/v1/customers/{C1}:reset-password", headers=world.headers(),
                          json={"contactMethodId": "101"}),
            await api.post(f"/v1/customers/{C1}:verify-passcode", headers=world.headers(),
                           json={"passcode": "000000"}),
            await api.get(f"/v1/institution-users/{C1}", headers={**world.headers(), "transactionId": "t-1"}),
        ]

    await calls()  # every pool holds connections now
    for _ in range(3):
        assert await _terminate_every_other_connection(services) >= 1
        for response in await calls():
            assert response.status_code != 500, response.text
            if response.status_code == 503:
                assert response.json()["code"] in ("CMN_30001", "UXU_30001", "ISR_30001"), response.text
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage() for r in errors]
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"


def test_connection_failures_are_recognised_as_outages():
    import asyncpg

    assert is_outage(asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed"))
    assert is_outage(asyncpg.exceptions.AdminShutdownError("terminating connection"))
    assert is_outage(asyncpg.exceptions.CannotConnectNowError("the database system is starting up"))
    assert is_outage(asyncpg.exceptions.TooManyConnectionsError("too many"))
    assert is_outage(asyncpg.exceptions.InterfaceError("connection is closed"))
    assert is_outage(ConnectionResetError())
    assert not is_outage(asyncpg.exceptions.UniqueViolationError("duplicate"))
    assert not is_outage(ValueError("bug"))
    # From the security review: the call's own mistakes are bugs, whatever their base class.
    import asyncpg.exceptions._base as client_errors

    assert not is_outage(client_errors.DataError("invalid input for query argument $1"))
    assert not is_outage(FileNotFoundError("/etc/ssl/missing.pem"))
    assert is_outage(OSError("Multiple exceptions: [Errno 111] Connect call failed"))


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
async def test_a_database_that_goes_away_gives_only_503s_and_is_used_again_when_it_returns(
    settings, clock, make_partner, services, caplog
):
    """Every family answers its own 503 while the database is unreachable, with no ERROR line, and the
    same process serves again when it is back."""
    from urllib.parse import urlsplit

    import httpx

    from pwreset.app import create_app
    from pwreset.container import build_container
    from tests.directory_support import DIRECTORY, load
    from tests.tcp_proxy import Proxy

    partner = await make_partner("07675", scopes="institution-users:read institution-users:write accounts:read")
    await load(services, "07675", DIRECTORY["07675"])
    real = urlsplit(settings.database_url)
    proxy = await Proxy(real.hostname or "127.0.0.1", real.port or 5432).start()
    via_proxy = settings.database_url.replace(f"{real.hostname}:{real.port}", f"127.0.0.1:{proxy.port}")
    node = build_container(settings.model_copy(update={"database_url": via_proxy}), clock=clock)
    app = create_app(node.settings, container=node, background=False)
    caplog.set_level(logging.INFO)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as api:
            token = (await get_token(api, partner.auth)).json()["access_token"]
            headers = {"Authorization": f"Bearer {token}", "correlationId": "0f8fad5b-d9cb-469f-a165-70867728950e",
                       "transactionId": "t-1"}

            async def calls() -> list[httpx.Response]:
                return [
                    await get_token(api, partner.auth),
                    await api.get(f"/v1/customers/{C1}/contact-methods", headers=headers),
                    await api.put(f"/v1/customers/{C1}:reset-password", headers=headers,
                                  json={"contactMethodId": "103"}),
                    await api.get("/v1/accounts?hostUserId=HOST001", headers=headers),
                    await api.get(f"/v1/institution-users/{C1}?userIdType=CUSTOMER_ID", headers=headers),
                ]

            assert all(r.status_code < 500 for r in await calls())
            await proxy.cut()
            down = await calls()
            assert [(r.status_code, r.json()["code"]) for r in down] == [
                (503, "CMN_30001"), (503, "UXU_30001"), (503, "UXU_30001"), (503, "ACC_30001"), (503, "ISR_30001"),
            ]
            assert all(r.headers["retry-after"] == "1" for r in down)
            await proxy.restore()
            node.cache.clear()
            back = await calls()
            assert [r.status_code for r in back][:2] == [200, 200], [r.text for r in back]
            assert all(r.status_code < 500 for r in back), [r.text for r in back]
    finally:
        await node.close()
        await proxy.cut()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], [r.getMessage() for r in caplog.records]
    assert not [r for r in caplog.records if r.exc_info and r.name.startswith("pwreset")]
