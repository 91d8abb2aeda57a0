"""Contract tests: each operation Candescent's spec defines, called as a partner's client would,
answers in the spec's shape (``candescent.py``, written from the spec, not from pwreset's own
document), with the spec's codes, and never a JSON null. Both databases, both URL styles."""

from __future__ import annotations

import uuid

import pytest
from jsonschema import Draft202012Validator, FormatChecker

from tests.contract import candescent as spec
from tests.directory_support import C1, PAT_PASSWORD, customer, email, load, sms, voice
from tests.support import get_token

ALL_SCOPES = "institution-users:read institution-users:write accounts:read"


def conforms(body, schema) -> None:
    errors = [f"{'/'.join(map(str, e.absolute_path)) or '$'}: {e.message}"
              for e in Draft202012Validator(schema, format_checker=FormatChecker()).iter_errors(body)]
    assert not errors, errors
    assert not list(_nulls(body)), list(_nulls(body))


def _nulls(value, where="$"):
    if value is None:
        yield where
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _nulls(item, f"{where}.{key}")
    elif isinstance(value, list):
        for n, item in enumerate(value):
            yield from _nulls(item, f"{where}[{n}]")


@pytest.fixture
def directory():
    return None  # the real directory behind the password grant


@pytest.fixture
async def partner_world(api, make_partner, services):
    partner = await make_partner("07675", scopes=ALL_SCOPES)
    accounts = [
        {"id": "chk", "accountNumber": "000123456789", "type": {"value": "CHECKING"}, "nickName": "Everyday",
         "currentBalance": {"currencyCode": "USD", "amount": "1520.35"}, "status": {"open": True}},
        {"id": "cc", "accountNumber": "4111000011112222", "type": {"value": "CREDIT_CARD_LOAN"},
         "currentBalance": {"currencyCode": "USD", "amount": -250}},
    ]
    report = await load(services, "07675", [customer(
        C1, "pat.doe", sms("101", enrolledDateTime="2022-03-31T00:00:00Z"), voice("102"), email("103"),
        password=PAT_PASSWORD, hostUserId="HOST001", memberNumber="100200300", accounts=accounts,
    )])
    assert not report.refused, report.refused
    token = await get_token(api, partner.auth, scopes="institution-users:read, institution-users:write, accounts:read")
    assert token.status_code == 200, token.text
    return partner, token.json()["access_token"]


def ux(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "correlationId": str(uuid.uuid4())}


def db(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "transactionId": str(uuid.uuid4())}


async def test_token_client_credentials_and_password(api, partner_world):
    partner, _ = partner_world
    body = (await get_token(api, partner.auth)).json()
    conforms(body, spec.TOKEN)
    assert body["expires_in"].isdigit() and body["token_type"] == "Bearer"
    signed_in = await get_token(api, partner.auth, grant_type="password", username="pat.doe", password=PAT_PASSWORD)
    conforms(signed_in.json(), spec.TOKEN)
    assert signed_in.json()["refresh_token_expires_in"].isdigit()
    wrong = await get_token(api, ("pwr_ck_nobody", "nope"))
    assert wrong.status_code == 401
    conforms(wrong.json(), spec.ERROR_RESPONSE)
    assert wrong.json()["code"] == "CMN_90004"


@pytest.mark.parametrize("path", ["/ux-users/v1", "/v1", "/digitalbanking/ux-users/v1"])
async def test_contact_methods(api, partner_world, path):
    _, token = partner_world
    response = await api.get(f"{path}/customers/{C1}/contact-methods", headers=ux(token))
    assert response.status_code == 200, response.text
    conforms(response.json(), spec.CONTACT_METHODS)
    missing = await api.get(f"{path}/customers/{'0' * 32}/contact-methods", headers=ux(token))
    assert missing.status_code == 404 and missing.json()["code"] == "UXU_10000"
    conforms(missing.json(), spec.UX_ERROR)


@pytest.mark.parametrize("path", ["/v1", "/digitalbanking/ux-users/v1"])
async def test_update_contact_info(api, partner_world, path):
    _, token = partner_world
    body = {"userIdType": "CUSTOMER_ID", "phoneNumber": {"oldPhoneNumber": "2025550143", "oldCountryCode": "1",
                                                         "newPhoneNumber": "2025550166", "newCountryCode": "1"},
            "email": {"emailAddress": "pat.doe@example.com"}}
    conforms(body, spec.CONTACT_INFO)
    response = await api.put(f"{path}/customers/{C1}:contact-info", headers=ux(token), json=body)
    assert response.status_code == 204 and response.content == b"", response.text
    login = await api.put(f"{path}/customers/pat.doe:contact-info", headers=ux(token),
                          json={"userIdType": "LOGIN_ID", "email": {"emailAddress": "pat.d@example.com"}})
    assert login.status_code == 204
    missing = await api.put(f"{path}/customers/{'0' * 32}:contact-info", headers=ux(token),
                            json={"email": {"emailAddress": "x@example.com"}})
    assert missing.status_code == 404 and missing.json()["code"] == "UXU_88888"
    conforms(missing.json(), spec.UX_ERROR)
    no_header = await api.put(f"{path}/customers/{C1}:contact-info", json=body,
                              headers={"Authorization": f"Bearer {token}"})
    assert no_header.status_code == 400 and no_header.json()["code"] == "UXU_10006"


async def test_customer_information(api, partner_world):
    _, token = partner_world
    for path in (f"/v1/customers/{C1}", "/v1/customers/pat.doe?userIdType=LOGIN_ID"):
        response = await api.get(path, headers=ux(token))
        assert response.status_code == 200, response.text
        conforms(response.json(), spec.CUSTOMER_INFORMATION)


async def test_reset_password_and_unlock(api, partner_world):
    _, token = partner_world
    sent = await api.put(f"/v1/customers/{C1}:reset-password", headers=ux(token),
                         json={"contactMethodId": "101", "protocol": "SMS"})
    assert sent.status_code == 204 and sent.content == b""
    unknown = await api.put(f"/v1/customers/{C1}:reset-password", headers=ux(token), json={"contactMethodId": "9"})
    assert unknown.status_code == 400 and unknown.json()["code"] == "UXU_88889"
    conforms(unknown.json(), spec.UX_ERROR)
    unlocked = await api.put(f"/v1/customers/{C1}:unlock-user", headers=ux(token))
    assert unlocked.status_code == 204 and unlocked.content == b""


@pytest.mark.parametrize("expand", [
    None, "contactMethods,postalAddresses,subUsers",
    "contactMethods($filter=(validated eq true) and (protocol eq 'VOICE')),postalAddresses($filter=state eq 'CA')",
])
async def test_institution_user_from_each_id_it_shows(api, partner_world, expand):
    """The documented way to find a customer id for the reset calls, from every identifier a
    response shows, the default userIdType first."""
    _, token = partner_world
    params = {"$expand": expand} if expand else {}
    first = await api.get("/v1/institution-users/HOST001", params={**params, "userIdType": "HOST_USER_ID"},
                          headers=db(token))
    assert first.status_code == 200, first.text
    body = first.json()
    conforms(body, spec.INSTITUTION_USER)
    legacy = body["additionalInfo"]["entry"][0]["value"]
    for value, id_type in ((body["institutionUserId"], None), (body["userId"], "USER_ID"),
                           (legacy, "LEGACY_USER_GUID"), (body["userName"], "LOGIN_ID")):
        query = {**params, **({"userIdType": id_type} if id_type else {})}
        again = await api.get(f"/v1/institution-users/{value}", params=query, headers=db(token))
        assert again.status_code == 200 and again.json() == body, (id_type, again.text)
    # ... and the reset flow goes on from it.
    customer_id = body["institutionCustomers"][0]["institutionCustomerId"]
    methods = (await api.get(f"/ux-users/v1/customers/{customer_id}/contact-methods", headers=ux(token))).json()
    sent = await api.put(f"/v1/customers/{customer_id}:reset-password", headers=ux(token),
                         json={"contactMethodId": methods["contactMethods"][0]["id"]})
    assert sent.status_code == 204
    for status, code, headers in ((404, "ISR_10001", db(token)), (401, "ISR_11001", {"transactionId": "t"})):
        refused = await api.get(f"/v1/institution-users/{'F' * 32}", headers=headers)
        assert (refused.status_code, refused.json()["code"]) == (status, code)
        conforms(refused.json(), spec.ERROR_RESPONSE)


async def test_accounts(api, partner_world):
    _, token = partner_world
    listed = await api.get("/v1/accounts", params={"hostUserId": "HOST001"}, headers=db(token))
    assert listed.status_code == 200, listed.text
    conforms(listed.json(), spec.ACCOUNTS)
    assert "totalGroupCount" not in listed.json()
    grouped = await api.get("/v1/accounts", params={"loginId": "pat.doe", "$apply": "groupBy(customer)",
                                                   "$topGroups": "1", "$skipGroups": "0"}, headers=db(token))
    conforms(grouped.json(), spec.ACCOUNTS)
    assert grouped.json()["totalGroupCount"] == 1
    example = await api.get("/v1/accounts", params={"hostUserId": "HOST001",
                                                   "$filter": "(category eq 'DEPOSIT') and (type eq 'CHECKING')"},
                            headers=db(token))
    assert [a["type"]["value"] for a in example.json()["accounts"]] == ["CHECKING"]
    one = listed.json()["accounts"][1]
    single = await api.get(f"/v1/accounts/{one['id']}", params={"hostUserId": "HOST001"}, headers=db(token))
    conforms(single.json(), spec.ACCOUNT)
    assert single.json()["currentBalance"] == {"currencyCode": "USD", "amount": -250}
    for status, code, params, headers in (
        (401, "ACC_00601", {"hostUserId": "HOST001"}, {"transactionId": "t"}),
        (404, "ACC_00101", {"hostUserId": "NOBODY"}, db(token)),
        (400, "ACC_00005", {"hostUserId": "HOST001", "$filter": "category eq"}, db(token)),
    ):
        refused = await api.get("/v1/accounts", params=params, headers=headers)
        assert (refused.status_code, refused.json()["code"]) == (status, code)
        conforms(refused.json(), spec.ERROR_RESPONSE)
