"""Password and refresh grants (rotation, reuse detection), revocation and introspection.

Customers come with the directory issue; a fake directory stands in for it through the same port.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from pwreset.audit.models import AuditEvent
from tests.directory_support import C1
from tests.support import bearer, get_token, tx

PASSWORD = "correct horse battery staple"


@pytest.fixture
async def partner(make_partner, directory):
    directory.add("07675", "Pat.Doe", C1, PASSWORD)
    return await make_partner()


async def sign_in(api, partner, **extra):
    response = await get_token(
        api, partner.auth, grant_type="password", username="pat.doe", password=PASSWORD, **extra
    )
    assert response.status_code == 200, response.text
    return response.json()


async def refresh(api, partner, refresh_token, **extra):
    return await get_token(
        api, partner.auth, institution_id=None, grant_type="refresh_token", refresh_token=refresh_token, **extra
    )


async def test_password_grant_issues_a_customer_token_and_a_refresh_token(api, partner):
    body = await sign_in(api, partner)
    assert body["refresh_token"].startswith("pwr_rt_")
    assert body["refresh_token_expires_in"] == str(30 * 86400)
    probe = await api.get("/v1/probe", headers=bearer(body["access_token"]))
    assert probe.status_code == 200
    assert probe.json()["customerId"] == C1 and probe.json()["institutionId"] == "07675"


async def test_refresh_rotates_and_keeps_the_family_lifetime(api, partner, clock):
    first = await sign_in(api, partner)
    clock.advance(3600)
    response = await refresh(api, partner, first["refresh_token"])
    assert response.status_code == 200, response.text
    second = response.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert second["refresh_token_expires_in"] == str(30 * 86400 - 3600)
    assert (await api.get("/v1/probe", headers=bearer(second["access_token"]))).status_code == 200


async def test_reusing_a_spent_refresh_token_revokes_the_whole_family(api, partner, services):
    first = await sign_in(api, partner)
    second = (await refresh(api, partner, first["refresh_token"])).json()
    assert (await api.get("/v1/probe", headers=bearer(second["access_token"]))).status_code == 200
    reuse = await refresh(api, partner, first["refresh_token"])
    assert reuse.status_code == 400 and reuse.json()["code"] == "CMN_90016"
    # Everything of that family is dead now: the rotated refresh token and every access token.
    assert (await refresh(api, partner, second["refresh_token"])).json()["code"] == "CMN_90016"
    for token in (first["access_token"], second["access_token"]):
        probe = await api.get("/v1/probe", headers=bearer(token))
        assert probe.status_code == 401 and probe.json()["code"] == "UXU_10001"
    async with services.db.reading() as session:
        events = (await session.scalars(select(AuditEvent.event_type))).all()
    assert "token.refresh_reuse" in events


async def test_another_sign_in_is_another_family(api, partner):
    one = await sign_in(api, partner)
    two = await sign_in(api, partner)
    await refresh(api, partner, one["refresh_token"])
    await refresh(api, partner, one["refresh_token"])  # reuse: ends family one only
    assert (await api.get("/v1/probe", headers=bearer(two["access_token"]))).status_code == 200


async def test_expired_refresh_token_is_cmn_90016(api, partner, clock):
    body = await sign_in(api, partner)
    clock.advance(30 * 86400 + 1)
    assert (await refresh(api, partner, body["refresh_token"])).json()["code"] == "CMN_90016"


async def test_refresh_token_of_another_client_is_cmn_90016(api, partner, make_partner):
    body = await sign_in(api, partner)
    other = await make_partner()
    assert (await refresh(api, other, body["refresh_token"])).json()["code"] == "CMN_90016"
    # And the rightful client can still use it: the other client's attempt did not spend it.
    assert (await refresh(api, partner, body["refresh_token"])).status_code == 200


async def test_refresh_of_a_locked_customer_is_refused(api, partner, directory):
    body = await sign_in(api, partner)
    directory.locked.add(C1)
    assert (await refresh(api, partner, body["refresh_token"])).json()["code"] == "CMN_90016"


async def test_refresh_may_narrow_but_not_widen(api, partner):
    body = await sign_in(api, partner, scopes="institution-users:read")
    assert body["scope"] == "institution-users:read"
    wider = await refresh(api, partner, body["refresh_token"], scope="institution-users:read institution-users:write")
    assert wider.json()["code"] == "CMN_90012"
    # The refused request did not spend the refresh token.
    assert (await refresh(api, partner, body["refresh_token"])).status_code == 200


async def test_refresh_with_another_institution_is_cmn_90005(api, partner, make_partner):
    await make_partner("11111")
    body = await sign_in(api, partner)
    response = await get_token(
        api, partner.auth, institution_id="11111", grant_type="refresh_token", refresh_token=body["refresh_token"]
    )
    assert response.json()["code"] == "CMN_90005"


# Revocation (contract section 3)


@pytest.mark.parametrize("method", ["DELETE", "POST"])
@pytest.mark.parametrize("prefix", ["", "/digitalbanking"])
async def test_revoking_an_access_token_takes_effect_at_once(api, partner, method, prefix):
    token = (await get_token(api, partner.auth)).json()["access_token"]
    assert (await api.get("/v1/probe", headers=bearer(token))).status_code == 200  # cached now
    response = await api.request(
        method, f"{prefix}/oauth2/v1/revoke", auth=partner.auth, headers=tx(), data={"token": token}
    )
    assert response.status_code == 204 and response.content == b""
    probe = await api.get("/v1/probe", headers=bearer(token))
    assert probe.status_code == 401 and probe.json()["code"] == "UXU_10001"


async def test_revoking_a_refresh_token_revokes_the_access_tokens_issued_from_it(api, partner):
    first = await sign_in(api, partner)
    second = (await refresh(api, partner, first["refresh_token"])).json()
    response = await api.request(
        "DELETE", "/oauth2/v1/revoke", auth=partner.auth, headers=tx(), data={"token": second["refresh_token"]}
    )
    assert response.status_code == 204
    for token in (first["access_token"], second["access_token"]):
        assert (await api.get("/v1/probe", headers=bearer(token))).status_code == 401


async def test_revoke_answers_204_for_unknown_tokens_and_other_clients_tokens(api, partner, make_partner):
    other = await make_partner()
    token = (await get_token(api, partner.auth)).json()["access_token"]
    for value in ("pwr_at_unknown", "garbage", token):
        response = await api.request(
            "DELETE", "/oauth2/v1/revoke", auth=other.auth, headers=tx(), data={"token": value}
        )
        assert response.status_code == 204
    assert (await api.get("/v1/probe", headers=bearer(token))).status_code == 200  # not the other's to revoke


async def test_revoke_errors(api, partner):
    missing = await api.request("DELETE", "/oauth2/v1/revoke", auth=partner.auth, headers=tx(), data={})
    assert (missing.status_code, missing.json()["code"]) == (400, "CMN_90011")
    no_auth = await api.request("DELETE", "/oauth2/v1/revoke", headers=tx(), data={"token": "x"})
    assert (no_auth.status_code, no_auth.json()["code"]) == (401, "CMN_90004")
    no_tx = await api.request("DELETE", "/oauth2/v1/revoke", auth=partner.auth, data={"token": "x"})
    assert (no_tx.status_code, no_tx.json()["code"]) == (400, "CMN_90008")


# Introspection (contract section 4)


async def test_introspection_describes_active_tokens(api, partner, clock):
    body = await sign_in(api, partner)
    response = await api.post("/oauth2/v1/introspect", auth=partner.auth, data={"token": body["access_token"]})
    assert response.status_code == 200
    info = response.json()
    assert info["active"] is True and info["sub"] == C1 and info["institution_id"] == "07675"
    assert info["client_id"] == partner.shared_key and info["token_type"] == "Bearer"
    assert info["exp"] - info["iat"] == 1800 and int(clock.timestamp()) - info["iat"] in (0, 1)
    refresh_info = (
        await api.post("/digitalbanking/oauth2/v1/introspect", auth=partner.auth, data={"token": body["refresh_token"]})
    ).json()
    assert refresh_info["active"] is True and refresh_info["token_type"] == "refresh_token"


async def test_introspection_is_inactive_for_expired_spent_foreign_and_unknown(api, partner, make_partner, clock):
    body = await sign_in(api, partner)
    other = await make_partner()

    async def active(client, token):
        response = await api.post("/oauth2/v1/introspect", auth=client.auth, data={"token": token})
        assert response.status_code == 200
        return response.json()

    assert await active(other, body["access_token"]) == {"active": False}
    assert await active(partner, "pwr_at_nope") == {"active": False}
    await refresh(api, partner, body["refresh_token"])
    assert await active(partner, body["refresh_token"]) == {"active": False}  # spent
    clock.advance(1801)
    assert await active(partner, body["access_token"]) == {"active": False}


# Rotation with overlap (issue 13, item 3: `clients rotate --grace 24h`)


async def test_a_rotation_with_grace_keeps_the_old_secret_working_until_it_ends(api, make_partner, services, clock):
    from datetime import timedelta

    partner = await make_partner()
    async with services.db.transaction() as session:
        rotated = await services.oauth.rotate_client_secret(
            session, shared_key=partner.shared_key, grace=timedelta(hours=24)
        )
    new = (partner.shared_key, rotated.secret_key)
    assert (await get_token(api, new)).status_code == 200
    assert (await get_token(api, partner.auth)).status_code == 200  # the old one, within the grace period
    clock.advance(24 * 3600 + 1)
    assert (await get_token(api, partner.auth)).status_code == 401
    assert (await get_token(api, new)).status_code == 200


async def test_a_rotation_without_grace_or_a_second_one_ends_the_older_secret_at_once(api, make_partner, services):
    from datetime import timedelta

    partner = await make_partner()
    async with services.db.transaction() as session:
        first = await services.oauth.rotate_client_secret(session, shared_key=partner.shared_key,
                                                          grace=timedelta(hours=1))
    async with services.db.transaction() as session:
        second = await services.oauth.rotate_client_secret(session, shared_key=partner.shared_key,
                                                           grace=timedelta(hours=1), force=True)
    assert (await get_token(api, partner.auth)).status_code == 401  # two rotations back
    assert (await get_token(api, (partner.shared_key, first.secret_key))).status_code == 200
    async with services.db.transaction() as session:
        third = await services.oauth.rotate_client_secret(session, shared_key=partner.shared_key)
    assert (await get_token(api, (partner.shared_key, second.secret_key))).status_code == 401
    assert (await get_token(api, (partner.shared_key, third.secret_key))).status_code == 200


async def test_a_grace_period_is_bounded_and_ends_with_a_revocation(api, make_partner, services):
    from datetime import timedelta

    from pwreset.oauth.errors import InvalidClientSettings

    partner = await make_partner()
    async with services.db.transaction() as session:
        with pytest.raises(InvalidClientSettings):
            await services.oauth.rotate_client_secret(session, shared_key=partner.shared_key,
                                                      grace=timedelta(days=31))
    async with services.db.transaction() as session:
        await services.oauth.rotate_client_secret(session, shared_key=partner.shared_key, grace=timedelta(days=1))
    async with services.db.transaction() as session:
        await services.oauth.revoke_client(session, shared_key=partner.shared_key)
    assert (await get_token(api, partner.auth)).status_code == 401


async def test_a_leaked_secret_cannot_keep_a_grace_period_and_a_rerun_does_not_end_one(make_partner, services):
    """Security read of the rotation: --revoke-tokens with --grace would keep a leaked secret minting
    tokens; a second --grace rotation by mistake would end the secret the partner still uses."""
    from datetime import timedelta

    from pwreset.oauth.errors import InvalidClientSettings

    partner = await make_partner()
    async with services.db.transaction() as session:
        with pytest.raises(InvalidClientSettings, match="drop --grace"):
            await services.oauth.rotate_client_secret(session, shared_key=partner.shared_key, revoke_tokens=True,
                                                      grace=timedelta(hours=1))
    async with services.db.transaction() as session:
        await services.oauth.rotate_client_secret(session, shared_key=partner.shared_key, grace=timedelta(hours=1))
    async with services.db.transaction() as session:
        with pytest.raises(InvalidClientSettings, match="--force"):
            await services.oauth.rotate_client_secret(session, shared_key=partner.shared_key,
                                                      grace=timedelta(hours=1))
    async with services.db.transaction() as session:
        await services.oauth.rotate_client_secret(session, shared_key=partner.shared_key, grace=timedelta(hours=1),
                                                  force=True)
