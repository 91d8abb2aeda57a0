"""The token endpoint: success shapes and every row of the contract's error table (section 2)."""

from __future__ import annotations

import base64

import pytest
from sqlalchemy import select, text

from pwreset.audit.models import AuditEvent
from pwreset.oauth.models import Token
from tests.directory_support import C1
from tests.support import get_token, tx

PREFIXES = ["", "/digitalbanking"]


@pytest.fixture(params=PREFIXES, ids=["gateway", "digitalbanking"])
def prefix(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def test_client_credentials_issues_an_opaque_institution_token(api, make_partner, services, prefix):
    partner = await make_partner()
    headers = {**tx(), "institutionId": "07675"}
    response = await api.post(
        f"{prefix}/oauth2/v1/token", auth=partner.auth, headers=headers, data={"grant_type": "client_credentials"}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "scope"}
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == "1800"  # a JSON string of digits, as Candescent's spec types it
    assert body["scope"] == "institution-users:read institution-users:write"
    assert body["access_token"].startswith("pwr_at_") and len(body["access_token"]) >= 7 + 43
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["transactionId"] == headers["transactionId"]
    # Stored as a keyed hash only, tied to the institution.
    async with services.db.reading() as session:
        rows = (await session.scalars(select(Token))).all()
    assert len(rows) == 1
    assert rows[0].token_hash != body["access_token"] and len(rows[0].token_hash) == 64
    assert rows[0].institution_id == "07675" and rows[0].customer_id is None and rows[0].kind == "access"


async def test_no_secret_is_stored_in_plain_text(api, make_partner, services, backend):
    partner = await make_partner()
    token = (await get_token(api, partner.auth)).json()["access_token"]
    async with services.db.reading() as session:
        for table in ("api_clients", "tokens", "audit_events"):
            dump = str((await session.execute(text(f"SELECT * FROM {table}"))).all())  # noqa: S608
            assert partner.secret_key not in dump and partner.secret_key[7:] not in dump
            assert token not in dump and token[7:] not in dump


@pytest.mark.parametrize("field", ["scopes", "scope"])
async def test_a_request_may_narrow_the_scopes(api, make_partner, field):
    partner = await make_partner()
    response = await get_token(api, partner.auth, **{field: "institution-users:read"})
    assert response.status_code == 200
    assert response.json()["scope"] == "institution-users:read"


@pytest.mark.parametrize(
    "requested",
    ["accounts:read, institution-users:read", "accounts:read,institution-users:read",
     "accounts:read institution-users:read", " accounts:read ,  institution-users:read "],
)
async def test_scope_lists_may_be_separated_by_commas_spaces_or_both(api, make_partner, requested):
    """Candescent's examples write scope lists as ``accounts:read, transactions:read``."""
    partner = await make_partner(scopes="institution-users:read institution-users:write accounts:read")
    response = await get_token(api, partner.auth, scopes=requested)
    assert response.status_code == 200, response.text
    assert response.json()["scope"] == "accounts:read institution-users:read"


async def test_client_credentials_never_gets_a_refresh_token(api, make_partner):
    partner = await make_partner()
    body = (await get_token(api, partner.auth)).json()
    assert "refresh_token" not in body and "refresh_token_expires_in" not in body


async def test_token_lifetime_is_configurable(make_partner, api, services):
    services.settings.access_token_ttl = 600
    partner = await make_partner()
    assert (await get_token(api, partner.auth)).json()["expires_in"] == "600"


def basic(raw: str) -> str:
    return "Basic " + base64.b64encode(raw.encode()).decode()


async def expect(response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.json() == {"code": code, "message": response.json()["message"]}
    assert response.json()["message"]


# CMN_90004


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer abc", "Basic !!!notbase64", basic("no-colon"), basic(":secret"), basic("key:")],
    ids=["missing", "wrong-scheme", "not-base64", "no-colon", "empty-key", "empty-secret"],
)
async def test_malformed_client_credentials_are_cmn_90004(api, make_partner, prefix, authorization):
    await make_partner()
    headers = {**tx(), "institutionId": "07675"}
    if authorization:
        headers["Authorization"] = authorization
    response = await api.post(f"{prefix}/oauth2/v1/token", headers=headers, data={"grant_type": "client_credentials"})
    await expect(response, 401, "CMN_90004")
    assert response.headers["www-authenticate"].startswith("Basic")
    assert response.headers["transactionId"] == headers["transactionId"]


async def test_wrong_secret_and_unknown_client_are_cmn_90004(api, make_partner, prefix):
    partner = await make_partner()
    await expect(await get_token(api, (partner.shared_key, partner.secret_key + "x"), prefix=prefix), 401, "CMN_90004")
    await expect(await get_token(api, ("pwr_ck_unknown", partner.secret_key), prefix=prefix), 401, "CMN_90004")


async def test_a_revoked_client_is_cmn_90004(api, make_partner, services, prefix):
    partner = await make_partner()
    assert (await get_token(api, partner.auth)).status_code == 200  # now cached on this node
    async with services.db.transaction() as session:
        await services.oauth.revoke_client(session, shared_key=partner.shared_key)
    await expect(await get_token(api, partner.auth, prefix=prefix), 401, "CMN_90004")


async def test_a_rotated_secret_replaces_the_old_one_at_once(api, make_partner, services):
    partner = await make_partner()
    assert (await get_token(api, partner.auth)).status_code == 200
    async with services.db.transaction() as session:
        rotated = await services.oauth.rotate_client_secret(session, shared_key=partner.shared_key)
    await expect(await get_token(api, partner.auth), 401, "CMN_90004")
    assert (await get_token(api, (partner.shared_key, rotated.secret_key))).status_code == 200


# CMN_90005


@pytest.mark.parametrize("institution", [None, "99999", "11111"], ids=["missing", "unknown", "other-institution"])
async def test_institution_missing_unknown_or_not_granted_is_cmn_90005(api, make_partner, prefix, institution):
    partner = await make_partner("07675")
    await make_partner("11111")
    await expect(await get_token(api, partner.auth, institution_id=institution, prefix=prefix), 400, "CMN_90005")


async def test_institution_id_may_come_as_a_form_field(api, make_partner):
    partner = await make_partner()
    response = await get_token(api, partner.auth, institution_id=None, institutionId="07675")
    assert response.status_code == 200


# CMN_90006 / CMN_90007


async def test_a_grant_the_client_may_not_use_is_cmn_90006(api, make_partner, prefix):
    partner = await make_partner(grant_types="client_credentials")
    response = await get_token(api, partner.auth, prefix=prefix, grant_type="password", username="a", password="b")
    await expect(response, 403, "CMN_90006")


@pytest.mark.parametrize("grant", ["", "implicit", "authorization_code"])
async def test_unknown_or_missing_grant_type_is_cmn_90007(api, make_partner, prefix, grant):
    partner = await make_partner()
    await expect(await get_token(api, partner.auth, prefix=prefix, grant_type=grant), 400, "CMN_90007")


async def test_a_body_that_is_not_a_form_is_cmn_90007(api, make_partner):
    partner = await make_partner()
    response = await api.post(
        "/oauth2/v1/token", auth=partner.auth, headers={**tx(), "institutionId": "07675"},
        json={"grant_type": "client_credentials"},
    )
    await expect(response, 400, "CMN_90007")


# CMN_90008


@pytest.mark.parametrize("transaction_id", [None, "", "not-a-uuid", "1234"])
async def test_transaction_id_missing_or_not_a_uuid_is_cmn_90008(api, make_partner, prefix, transaction_id):
    partner = await make_partner()
    headers = {"institutionId": "07675"}
    if transaction_id is not None:
        headers["transactionId"] = transaction_id
    response = await api.post(
        f"{prefix}/oauth2/v1/token", auth=partner.auth, headers=headers, data={"grant_type": "client_credentials"}
    )
    await expect(response, 400, "CMN_90008")


async def test_tracing_header_names_are_case_insensitive(api, make_partner):
    partner = await make_partner()
    value = tx()["transactionId"]
    response = await api.post(
        "/oauth2/v1/token", auth=partner.auth, headers={"transactionid": value, "INSTITUTIONID": "07675"},
        data={"grant_type": "client_credentials"},
    )
    assert response.status_code == 200
    assert response.headers["transactionid"] == value


# CMN_90011 / CMN_90016 (refresh grant details in test_refresh.py)


async def test_refresh_grant_without_refresh_token_is_cmn_90011(api, make_partner, prefix):
    partner = await make_partner()
    await expect(await get_token(api, partner.auth, prefix=prefix, grant_type="refresh_token"), 400, "CMN_90011")


async def test_unknown_refresh_token_is_cmn_90016(api, make_partner, prefix):
    partner = await make_partner()
    response = await get_token(api, partner.auth, prefix=prefix, grant_type="refresh_token", refresh_token="pwr_rt_x")
    await expect(response, 400, "CMN_90016")


async def test_an_access_token_is_not_a_refresh_token(api, make_partner):
    partner = await make_partner()
    access = (await get_token(api, partner.auth)).json()["access_token"]
    response = await get_token(api, partner.auth, grant_type="refresh_token", refresh_token=access)
    await expect(response, 400, "CMN_90016")


# CMN_90012


@pytest.mark.parametrize("scope", ["accounts:write", "institution-users:read bogus", "accounts:read"])
async def test_unknown_or_not_allowed_scope_is_cmn_90012(api, make_partner, prefix, scope):
    partner = await make_partner()  # allowed: institution-users:read/write only
    await expect(await get_token(api, partner.auth, prefix=prefix, scopes=scope), 400, "CMN_90012")


# CMN_90013 / CMN_90014 / CMN_90015


async def test_password_grant_without_username_is_cmn_90013(api, make_partner, prefix):
    partner = await make_partner()
    response = await get_token(api, partner.auth, prefix=prefix, grant_type="password", password="x")
    await expect(response, 400, "CMN_90013")


async def test_password_grant_without_password_is_cmn_90014(api, make_partner, prefix):
    partner = await make_partner()
    response = await get_token(api, partner.auth, prefix=prefix, grant_type="password", username="pat")
    await expect(response, 400, "CMN_90014")


async def test_wrong_username_or_password_is_cmn_90015(api, make_partner, directory, prefix):
    partner = await make_partner()
    directory.add("07675", "pat.doe", C1, "correct horse battery staple")
    for username, password in [("pat.doe", "wrong"), ("nobody", "correct horse battery staple")]:
        response = await get_token(
            api, partner.auth, prefix=prefix, grant_type="password", username=username, password=password
        )
        await expect(response, 401, "CMN_90015")
    directory.locked.add(C1)
    response = await get_token(
        api, partner.auth, prefix=prefix, grant_type="password", username="pat.doe",
        password="correct horse battery staple",
    )
    await expect(response, 401, "CMN_90015")


# CMN_90000


async def test_an_internal_error_is_cmn_90000_without_detail(api, make_partner, directory, prefix):
    partner = await make_partner()

    async def explode(*args, **kwargs):
        raise RuntimeError("secret internal detail at /srv/pwreset")

    directory.authenticate = explode
    response = await get_token(api, partner.auth, prefix=prefix, grant_type="password", username="a", password="b")
    await expect(response, 500, "CMN_90000")
    assert "detail" not in response.text and "RuntimeError" not in response.text


# Audit


async def test_issue_failures_are_audited_without_secrets(api, make_partner, services):
    partner = await make_partner()
    headers = {**tx(), "institutionId": "07675"}
    await api.post(
        "/oauth2/v1/token", auth=(partner.shared_key, "pwr_cs_wrong"), headers=headers,
        data={"grant_type": "client_credentials"},
    )
    await get_token(api, partner.auth, scopes="bogus")
    async with services.db.reading() as session:
        events = (
            await session.scalars(select(AuditEvent).where(AuditEvent.event_type == "token.issue_failed"))
        ).all()
    outcomes = sorted(e.outcome for e in events)
    assert outcomes == ["oauth.invalid_client", "oauth.invalid_scope"]
    failed_auth = next(e for e in events if e.outcome == "oauth.invalid_client")
    assert failed_auth.correlation_id == headers["transactionId"]
    scoped = next(e for e in events if e.outcome == "oauth.invalid_scope")
    assert scoped.client_id == partner.client_id and scoped.institution_id == "07675"
    assert "pwr_cs_" not in str([e.details for e in events])
