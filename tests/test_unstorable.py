"""A NUL byte, or any text a database cannot store, is the family's 400 before any database sees it
(issue 12, item 3): on both backends, in every path and query parameter, body field, form field and
the Basic header."""

from __future__ import annotations

import base64
import logging

import pytest

from pwreset.app import all_operations
from tests.directory_support import C1, World
from tests.support import get_token, tx

pytestmark = pytest.mark.usefixtures("world")

BAD = ("a\x00b", "\x00", "x\ud800y")
#: The family's invalid path and query parameter codes.
PATH_CODE = {"ux-users": "UXU_10012", "db-accounts": "ACC_00011", "db-users": "ISR_11007"}
QUERY_CODE = {"ux-users": "UXU_10014", "db-accounts": "ACC_00011", "db-users": "ISR_11008"}
ALL_SCOPES = "institution-users:read institution-users:write accounts:read accounts:read_unmasked"


def _quote(value: str) -> str:
    from urllib.parse import quote

    return quote(value.encode("utf-8", "surrogatepass"), safe="")


def _code(response) -> str:
    return response.json()["code"]


@pytest.fixture
async def token(api, make_partner) -> str:
    partner = await make_partner("07675", scopes=ALL_SCOPES)
    return (await get_token(api, partner.auth)).json()["access_token"]


def _headers(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **tx(), "correlationId": tx()["transactionId"]}


@pytest.fixture(autouse=True)
def _no_errors_logged(caplog):
    caplog.set_level(logging.WARNING)
    yield
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], [r.getMessage() for r in caplog.records]


@pytest.mark.parametrize("bad", BAD[:2])
@pytest.mark.parametrize("op", [op for op in all_operations() if "{" in op.path], ids=lambda op: op.path)
async def test_every_path_parameter(api, token, op, bad):
    path = op.path.replace("{customerId}", _quote(bad)).replace("{institutionUserId}", _quote(bad))
    path = path.replace("{accountId}", _quote(bad))
    response = await api.request(op.method, path, headers=_headers(token), json={} if op.body else None)
    assert response.status_code == 400, response.text
    assert _code(response) == PATH_CODE[op.family.value]


@pytest.mark.parametrize("bad", BAD[:2])
@pytest.mark.parametrize(("path", "param", "family"), [
    (f"/v1/customers/{C1}/contact-methods", "userIdType", "ux-users"),
    ("/v1/accounts", "hostUserId", "db-accounts"),
    ("/v1/accounts", "loginId", "db-accounts"),
    ("/v1/accounts", "$filter", "db-accounts"),
    ("/v1/accounts/chk-1", "hostUserId", "db-accounts"),
    (f"/v1/institution-users/{C1}", "userIdType", "db-users"),
    (f"/v1/institution-users/{C1}", "$expand", "db-users"),
])
async def test_every_query_parameter(api, token, path, param, family, bad):
    response = await api.get(f"{path}?{_quote(param)}={_quote(bad)}", headers=_headers(token))
    assert response.status_code == 400, response.text
    assert _code(response) == QUERY_CODE[family]


@pytest.mark.parametrize("bad", ["a\\u0000b", "\\ud800", "\\udfff1"])
@pytest.mark.parametrize(("action", "field"), [
    ("reset-password", "contactMethodId"), ("verify-passcode", "passcode"), ("set-password", "resetTicket"),
    ("set-password", "newPassword"),
])
async def test_every_body_field(api, world: World, action, field, bad):
    body = {"reset-password": {"contactMethodId": "101"}, "verify-passcode": {"passcode": "123456"},
            "set-password": {"resetTicket": "pwr_rst_x", "newPassword": "a perfectly fine passphrase"}}[action]
    raw = dict(body)
    raw[field] = "@@"
    content = __import__("json").dumps(raw).replace('"@@"', f'"{bad}"')
    method = "POST" if action == "verify-passcode" else "PUT"
    response = await api.request(method, f"/v1/customers/{C1}:{action}", content=content,
                                 headers={**world.headers(), "Content-Type": "application/json"})
    assert response.status_code == 400, response.text
    assert _code(response) == "UXU_99999"


@pytest.mark.parametrize("bad", BAD)
async def test_the_basic_header_and_the_token_form(api, make_partner, bad):
    partner = await make_partner("07675", scopes=ALL_SCOPES, grant_types="client_credentials password")
    encoded = base64.b64encode(f"{bad}:{partner.secret_key}".encode("utf-8", "surrogatepass")).decode()
    response = await api.post("/oauth2/v1/token", headers={"Authorization": f"Basic {encoded}", **tx(),
                                                           "institutionId": "07675"},
                              data={"grant_type": "client_credentials"})
    assert response.status_code == 401 and _code(response) == "CMN_90004"
    for field in ("username", "password", "scope", "refresh_token"):
        form = {"grant_type": "password", "username": "Pat.Doe", "password": "x", field: bad}
        if field == "refresh_token":
            form["grant_type"] = "refresh_token"
        response = await api.post("/oauth2/v1/token", auth=partner.auth, headers={**tx(), "institutionId": "07675"},
                                  content="&".join(f"{k}={_quote(v)}" for k, v in form.items()),
                                  )
        assert response.status_code in (400, 401), (field, response.text)
        assert response.status_code != 500


async def test_a_bad_institution_header_on_the_token_endpoint(api, make_partner):
    partner = await make_partner("07675", scopes=ALL_SCOPES)
    response = await api.post("/oauth2/v1/token", auth=partner.auth,
                              headers={**tx(), "institutionId": "07675\x00"}, data={"grant_type": "client_credentials"})
    assert response.status_code == 400 and _code(response) == "CMN_90005"


@pytest.mark.parametrize("bad", BAD[:2])  # (a header is bytes: no surrogates)
async def test_a_bearer_token_or_a_tracing_header_with_nul(api, token, bad):
    response = await api.get(f"/v1/customers/{C1}", headers={**_headers(token), "Authorization": f"Bearer {bad}"})
    assert response.status_code == 401 and _code(response) == "UXU_10001"
    response = await api.get("/v1/accounts", headers={**_headers(token), "transactionId": f"t{bad}"})
    assert response.status_code < 500, response.text


@pytest.mark.parametrize("path", ["/oauth2/v1/token", "/oauth2/v1/revoke", "/oauth2/v1/introspect",
                                  "/digitalbanking/oauth2/v1/token"])
async def test_a_nul_in_the_query_of_a_token_route_is_not_a_500(api, make_partner, path):
    """Found by the outside probe: the oauth2 family has no invalid-query code, and fell to 500. The
    token routes read no query parameter, so the query is ignored, as before."""
    partner = await make_partner("07675", scopes=ALL_SCOPES)
    response = await api.post(f"{path}?a=%00", auth=partner.auth, headers={**tx(), "institutionId": "07675"},
                              data={"grant_type": "client_credentials", "token": "pwr_at_x"})
    assert response.status_code < 500, response.text


async def test_an_overlong_transaction_id_on_the_token_route_is_its_400_not_a_500(api, make_partner):
    """Found by the outside probe: the refusal's audit row could not hold a 65-character id."""
    partner = await make_partner("07675", scopes=ALL_SCOPES)
    for auth in (partner.auth, ("pwr_ck_nobody", "pwr_cs_wrong")):
        response = await api.post("/oauth2/v1/token", auth=auth, headers={"transactionId": "x" * 65,
                                                                         "institutionId": "07675"},
                                  data={"grant_type": "client_credentials"})
        assert response.status_code in (400, 401), response.text


async def test_a_trailing_slash_is_not_redirected_to_the_callers_host(api):
    """Found by the outside probe: Starlette's slash redirect reflected the Host header."""
    response = await api.get("/v1/accounts/", headers={"Host": "evil.example"})
    assert response.status_code == 404 and "location" not in response.headers
