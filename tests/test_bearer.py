"""The bearer check every resource API uses (contract section 5)."""

from __future__ import annotations

import contextlib

import pytest
from sqlalchemy import event

from tests.directory_support import C1, C2
from tests.support import bearer, get_token, tx


@pytest.fixture
async def token(api, make_partner):
    partner = await make_partner(scopes="institution-users:read institution-users:write accounts:read")
    return (await get_token(api, partner.auth)).json()["access_token"]


@pytest.mark.parametrize("prefix", ["/v1", "/digitalbanking/ux-users/v1"])
async def test_a_valid_token_reaches_the_route_and_the_correlation_id_is_echoed(api, token, prefix):
    headers = bearer(token)
    response = await api.get(f"{prefix}/probe", headers=headers)
    assert response.status_code == 200
    assert response.json()["institutionId"] == "07675" and response.json()["customerId"] is None
    assert response.headers["correlationId"] == headers["correlationId"]


async def ux_error(response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.json() == {"status": status, "message": response.json()["message"], "code": code}


async def test_missing_authorization_is_uxu_10005(api):
    response = await api.get("/v1/probe", headers={"correlationId": "0f8fad5b-d9cb-469f-a165-70867728950e"})
    await ux_error(response, 401, "UXU_10005")
    assert response.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    "authorization",
    ["Bearer", "Bearer ", "Basic abc", "Bearer pwr_at_unknownunknownunknownunknownunknown12345", "Bearer x" * 50],
)
async def test_malformed_or_unknown_tokens_are_uxu_10001(api, token, authorization):
    response = await api.get(
        "/v1/probe", headers={"Authorization": authorization, "correlationId": "0f8fad5b-d9cb-469f-a165-70867728950e"}
    )
    await ux_error(response, 401, "UXU_10001")
    assert "invalid_token" in response.headers["www-authenticate"]


async def test_an_expired_token_is_uxu_10003(api, token, clock):
    assert (await api.get("/v1/probe", headers=bearer(token))).status_code == 200
    clock.advance(1801)
    await ux_error(await api.get("/v1/probe", headers=bearer(token)), 401, "UXU_10003")


async def test_a_token_without_the_scope_is_uxu_10002(api, make_partner):
    partner = await make_partner(scopes="institution-users:write")
    narrow = (await get_token(api, partner.auth)).json()["access_token"]
    response = await api.get("/v1/probe", headers=bearer(narrow))
    await ux_error(response, 403, "UXU_10002")
    assert "insufficient_scope" in response.headers["www-authenticate"]


async def test_correlation_id_missing_is_uxu_10006_and_not_a_uuid_is_uxu_10007(api, token):
    await ux_error(await api.get("/v1/probe", headers=bearer(token, correlation=False)), 400, "UXU_10006")
    headers = {**bearer(token), "correlationId": "abc"}
    response = await api.get("/v1/probe", headers=headers)
    await ux_error(response, 400, "UXU_10007")
    assert response.headers["correlationId"] == "abc"


@pytest.mark.parametrize("prefix", ["/v1", "/digitalbanking/db-accounts/v1"])
async def test_db_families_use_their_own_shape_and_transaction_id(api, token, prefix):
    auth = {"Authorization": f"Bearer {token}"}
    ok = await api.get(f"{prefix}/accounts-probe", headers={**auth, "transactionId": "tx-1"})
    assert ok.status_code == 200 and ok.headers["transactionId"] == "tx-1"
    missing = await api.get(f"{prefix}/accounts-probe", headers=auth)
    assert missing.status_code == 400 and missing.json() == {"code": "ACC_99998", "message": missing.json()["message"]}
    long = await api.get(f"{prefix}/accounts-probe", headers={**auth, "transactionId": "x" * 65})
    assert long.status_code == 400 and long.json()["code"] == "ACC_99997"
    unauthenticated = await api.get(f"{prefix}/accounts-probe", headers={"transactionId": "tx-2"})
    assert unauthenticated.status_code == 401 and set(unauthenticated.json()) == {"code", "message"}


async def test_a_token_of_a_revoked_client_stops_at_once(api, make_partner, services):
    partner = await make_partner()
    token = (await get_token(api, partner.auth)).json()["access_token"]
    assert (await api.get("/v1/probe", headers=bearer(token))).status_code == 200
    async with services.db.transaction() as session:
        await services.oauth.revoke_client(session, shared_key=partner.shared_key)
    await ux_error(await api.get("/v1/probe", headers=bearer(token)), 401, "UXU_10001")


async def test_customer_tokens_are_revoked_together(api, make_partner, directory, services):
    partner = await make_partner()
    directory.add("07675", "pat", C1, "pw-123456789")
    directory.add("07675", "sam", C2, "pw-987654321")
    pat = (await get_token(api, partner.auth, grant_type="password", username="pat", password="pw-123456789")).json()
    sam = (await get_token(api, partner.auth, grant_type="password", username="sam", password="pw-987654321")).json()
    async with services.db.transaction() as session:
        await services.oauth.revoke_customer_tokens(session, institution_id="07675", customer_id=C1)
    assert (await api.get("/v1/probe", headers=bearer(pat["access_token"]))).status_code == 401
    assert (await api.get("/v1/probe", headers=bearer(sam["access_token"]))).status_code == 200


async def test_a_rolled_back_revocation_changes_nothing(api, make_partner, services):
    partner = await make_partner()
    token = (await get_token(api, partner.auth)).json()["access_token"]
    with pytest.raises(RuntimeError):
        async with services.db.transaction() as session:
            await services.oauth.revoke_client(session, shared_key=partner.shared_key)
            raise RuntimeError("crash half-way")
    assert (await api.get("/v1/probe", headers=bearer(token))).status_code == 200
    assert (await get_token(api, partner.auth)).status_code == 200


@contextlib.contextmanager
def sql_statements(services):
    """Every SQL statement the service sends while the block runs."""
    statements: list[str] = []

    def record(conn, cursor, statement, *args):
        statements.append(statement)

    event.listen(services.db.engine.sync_engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(services.db.engine.sync_engine, "before_cursor_execute", record)


async def test_validating_a_known_token_costs_no_database_round_trip(api, token, services):
    assert (await api.get("/v1/probe", headers=bearer(token))).status_code == 200
    with sql_statements(services) as statements:
        for _ in range(50):
            assert (await api.get("/v1/probe", headers=bearer(token))).status_code == 200
    assert statements == []


async def test_a_token_from_another_node_is_read_once_then_served_from_cache(api, token, services):
    services.cache.clear()  # as if the token had been issued by another node
    with sql_statements(services) as statements:
        for _ in range(10):
            assert (await api.get("/v1/probe", headers=bearer(token))).status_code == 200
    assert len([s for s in statements if "tokens" in s]) == 1


async def test_without_a_revocation_feed_cached_entries_are_rechecked_after_the_bound(api, token, services, clock):
    """A revocation made elsewhere (no log read here) is honoured once the bound has passed."""
    assert (await api.get("/v1/probe", headers=bearer(token))).status_code == 200
    from sqlalchemy import update

    from pwreset.oauth.models import Token

    async with services.db.transaction() as session:  # another node's revocation: DB only
        await session.execute(update(Token).values(revoked_at=clock.now()))
    assert (await api.get("/v1/probe", headers=bearer(token))).status_code == 200  # within the bound
    clock.advance(services.settings.revocation_bound + 0.1)
    assert (await api.get("/v1/probe", headers=bearer(token))).status_code == 401


async def test_the_revocation_log_carries_revocations_to_other_nodes(api, make_partner, settings, clock):
    """A second container on the same database plays another node that reads the log."""
    from pwreset.access.principal import BearerInvalid
    from pwreset.container import build_container

    partner = await make_partner()
    token = (await get_token(api, partner.auth)).json()["access_token"]
    other = build_container(settings, clock=clock)
    try:
        await other.oauth.authenticate_bearer(f"Bearer {token}")  # now cached on the other node
        await other.feed.poll_once()  # fresh: the other node trusts its cache for a while
        revoked = await api.request(
            "DELETE", "/oauth2/v1/revoke", auth=partner.auth, headers=tx(), data={"token": token}
        )
        assert revoked.status_code == 204
        await other.oauth.authenticate_bearer(f"Bearer {token}")  # not read the log yet: still cached
        await other.feed.poll_once()
        with pytest.raises(BearerInvalid):
            await other.oauth.authenticate_bearer(f"Bearer {token}")
    finally:
        await other.close()
