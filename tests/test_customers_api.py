"""Contract 6.1 and 7: contact methods, profiles, unlock, institution users; tenant isolation."""

from __future__ import annotations

import re
import uuid

import pytest
from sqlalchemy import select, update

from pwreset.customers.models import ContactMethod, Customer
from pwreset.institutions.models import Institution
from tests.directory_support import C1, C2, C7, PAT_PASSWORD, X1, World, customer, load, sms
from tests.support import get_token, ux_error


@pytest.fixture
def directory():
    return None  # the real customer directory behind the password grant


async def test_contact_methods_by_customer_id(api, world: World, ux):
    headers = world.headers()
    response = await api.get(f"{ux}/v1/customers/{C1}/contact-methods", headers=headers)
    assert response.status_code == 200
    assert response.headers["correlationId"] == headers["correlationId"]
    assert response.json() == {
        "customerId": C1,
        "contactMethods": [
            {"id": "101", "telephoneCountryCode": "1", "contactInfo": "2025550143", "protocol": "SMS",
             "isActivated": True, "enrolledDateTime": "2022-03-31T00:00:00.000Z"},
            {"id": "102", "telephoneCountryCode": "1", "contactInfo": "2025550143", "protocol": "VOICE",
             "isActivated": True},
            {"id": "103", "contactInfo": "pat@example.com", "protocol": "EMAIL", "isActivated": True},
        ],
    }


async def test_contact_methods_by_login_id_is_case_insensitive(api, world: World, ux):
    response = await api.get(f"{ux}/v1/customers/PAT.DOE/contact-methods?userIdType=LOGIN_ID", headers=world.headers())
    assert response.status_code == 200 and response.json()["customerId"] == C1


async def test_unknown_customer_is_uxu_10000(api, world: World, ux):
    ux_error(await api.get(f"{ux}/v1/customers/nobody/contact-methods", headers=world.headers()), 404, "UXU_10000")


@pytest.mark.parametrize("path", [f"/v1/customers/{X1}/contact-methods",
                                  "/v1/customers/other.pat/contact-methods?userIdType=LOGIN_ID",
                                  f"/v1/customers/{X1}", f"/v1/customers/{X1}:unlock-user"])
async def test_another_institutions_customer_does_not_exist(api, world: World, path):
    method = "PUT" if path.endswith("unlock-user") else "GET"
    ux_error(await api.request(method, path, headers=world.headers()), 404, "UXU_10000")
    # ...while that institution's own token sees it.
    response = await api.request(method, path, headers=world.headers(world.other_token))
    assert response.status_code in (200, 204)


async def test_unknown_user_id_type_is_uxu_10014(api, world: World, ux):
    response = await api.get(f"{ux}/v1/customers/{C1}/contact-methods?userIdType=EMAIL", headers=world.headers())
    ux_error(response, 400, "UXU_10014")


async def test_an_overlong_path_parameter_is_uxu_10012(api, world: World):
    ux_error(await api.get(f"/v1/customers/{'x' * 200}/contact-methods", headers=world.headers()), 400, "UXU_10012")


async def test_reading_needs_the_read_scope(api, world: World, make_partner):
    writer = await make_partner("07675", scopes="institution-users:write")
    token = (await get_token(api, writer.auth)).json()["access_token"]
    ux_error(await api.get(f"/v1/customers/{C1}/contact-methods", headers=world.headers(token)), 403, "UXU_10002")


async def test_an_institution_can_mask_contact_info(api, world: World, services):
    async with services.db.transaction() as session:
        await session.execute(update(Institution).where(Institution.id == "07675").values(mask_contact_info=True))
    methods = (await api.get(f"/v1/customers/{C1}/contact-methods", headers=world.headers())).json()["contactMethods"]
    assert [m["contactInfo"] for m in methods] == ["20•••••0143", "20•••••0143", "p•••@example.com"]


async def test_profile(api, world: World, ux, services):
    """The spec's CustomerInformation: ``userId`` upper-case hex, ``loginId`` the lower-case
    authentication id, the login name in ``userName``, ContactMethod with ``activated``."""
    async with services.db.reading() as session:
        pk = await session.scalar(select(Customer.id).where(Customer.customer_id == C1))
    body = (await api.get(f"{ux}/v1/customers/{C1}", headers=world.headers())).json()
    assert body["userId"] == pk.upper() and re.fullmatch(r"[0-9A-F]{32}", body["userId"])
    assert body["loginId"] == pk.lower() and re.fullmatch(r"[0-9a-f]{32}", body["loginId"])
    assert body["userName"] == "Pat.Doe" and body["fiId"] == "07675" and body["fullName"] == "Pat Doe"
    assert body["userStatus"] == {"active": True, "onHold": False, "locked": False, "reset": False,
                                  "registered": True, "approved": True, "rejected": False, "acceptedDisclosure": True}
    assert body["customers"] == [
        {"customerId": C1, "memberNumber": "100200300", "customerType": "RETAIL", "hostLoginId": "HOST001"}
    ]
    assert body["failedLoginCount"] == 0 and body["failedPasswordResetCount"] == 0
    assert body["emailAddress"] == "pat@example.com" and body["userType"] == "RETAIL"
    assert body["contactMethods"][0] == {"id": "101", "telephoneCountryCode": "1", "contactInfo": "2025550143",
                                         "protocol": "SMS", "activated": True, "validated": False, "primary": False,
                                         "enrolledDateTime": "2022-03-31"}
    assert all("isActivated" not in m for m in body["contactMethods"])
    assert "argon2" not in str(body) and "passwordHash" not in body
    assert response_nulls(body) == []


def response_nulls(value, where="$") -> list[str]:
    if value is None:
        return [where]
    if isinstance(value, dict):
        return [n for k, v in value.items() for n in response_nulls(v, f"{where}.{k}")]
    if isinstance(value, list):
        return [n for i, v in enumerate(value) for n in response_nulls(v, f"{where}[{i}]")]
    return []


async def test_unlock_clears_the_lock_and_failed_logins(api, world: World, services, ux):
    async with services.db.transaction() as session:
        await session.execute(update(Customer).where(Customer.customer_id == C1).values(locked=True,
                                                                                          failed_login_count=6))
    response = await api.put(f"{ux}/v1/customers/{C1}:unlock-user", headers=world.headers())
    assert response.status_code == 204
    body = (await api.get(f"/v1/customers/{C1}", headers=world.headers())).json()
    assert body["userStatus"]["locked"] is False and body["failedLoginCount"] == 0


async def _pat_key(services) -> str:
    async with services.db.reading() as session:
        return await session.scalar(select(Customer.id).where(Customer.customer_id == C1))


@pytest.mark.parametrize("prefix", ["", "/digitalbanking/db-users", "/digitalbanking/stage/db-users"])
@pytest.mark.parametrize(("value", "id_type"), [
    ("{INSTITUTION_USER_ID}", None), ("{INSTITUTION_USER_ID}", "INSTITUTION_USER_ID"), ("pat.doe", "LOGIN_ID"),
    (C1, "CUSTOMER_ID"), (C1, "LEGACY_USER_GUID"), ("HOST001", "HOST_USER_ID"), ("{USER_ID}", "USER_ID"),
])
async def test_institution_users(api, world: World, services, prefix, value, id_type):
    """Every userIdType of the spec finds Pat, the default (INSTITUTION_USER_ID) with the id the
    response itself shows."""
    pk = await _pat_key(services)
    value = value.format(INSTITUTION_USER_ID=pk.upper(), USER_ID=pk.lower())
    query = f"?userIdType={id_type}" if id_type else ""
    headers = {"Authorization": f"Bearer {world.token}", "transactionId": "tx-123"}
    response = await api.get(f"{prefix}/v1/institution-users/{value}{query}", headers=headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["institutionUserId"] == pk.upper() and body["userId"] == pk.lower()
    assert body["institutionId"] == "07675" and body["institutionUserType"] == "RETAIL"
    assert body["userName"] == "Pat.Doe"
    assert body["failedLoginCount"] == 0 and body["failedPasswordResetCount"] == 0
    assert body["additionalInfo"] == {"entry": [{"key": "legacyUserGuid", "value": C1}]}
    assert body["institutionCustomers"] == [{
        "institutionCustomerId": C1, "memberNumber": "100200300", "customerType": "RETAIL", "hostLoginId": "HOST001",
    }]  # no "primary": the spec gives it for business banking only
    assert body["userStatus"] == {"active": True, "registered": True, "approved": True}  # only the true flags
    assert "contactMethods" not in body and "postalAddresses" not in body
    assert response.headers["transactionId"] == "tx-123"
    again = await api.get(f"/v1/institution-users/{body['institutionUserId']}", headers=headers)
    assert again.status_code == 200 and again.json() == body


async def test_institution_user_expand(api, world: World, services):
    pk = await _pat_key(services)
    headers = {"Authorization": f"Bearer {world.token}", "transactionId": "t"}
    url = f"/v1/institution-users/{pk.upper()}"
    body = (await api.get(url, params={"$expand": "contactMethods,postalAddresses,subUsers"}, headers=headers)).json()
    assert [m["id"] for m in body["contactMethods"]] == ["101", "102", "103"]
    assert body["contactMethods"][0] == {"id": "101", "telephoneCountryCode": "1", "contactInfo": "2025550143",
                                         "protocol": "SMS", "activated": True, "validated": False, "primary": False,
                                         "enrolledDateTime": "2022-03-31T00:00:00.000Z"}
    assert body["postalAddresses"] == [] and body["subUsers"] == []
    bad = await api.get(url, params={"$expand": "identificationDocuments"}, headers=headers)
    assert bad.status_code == 400 and bad.json()["code"] == "ISR_11008"


@pytest.mark.parametrize(("expand", "ids"), [
    ("contactMethods($filter=(validated eq true) and (protocol eq 'VOICE'))", ["102"]),
    ("contactMethods($filter=protocol eq 'SMS' or protocol eq 'EMAIL')", ["101", "103"]),
    ("contactMethods($filter=validated eq false)", ["101", "103"]),
    ("contactMethods($filter=contains(contactInfo, '@')),postalAddresses($filter=state eq 'CA')", ["103"]),
    ("contactMethods($filter=enrolledDateTime ge '2022-01-01'),subUsers($filter=lastName eq 'Taylor')", ["101"]),
    ("contactMethods($filter=host eq true)", []),  # a field pwreset does not have: equal to nothing
    ("contactMethods($filter=toupper(protocol) ne 'SMS')", ["102", "103"]),
])
async def test_institution_user_expand_filters(api, world: World, services, expand, ids):
    """Each ``$expand`` segment may carry its own OData filter, as the spec's examples and the
    Profile and Status collection use them."""
    async with services.db.transaction() as session:  # Sam's voice number is validated, the others not
        await session.execute(update(ContactMethod).where(ContactMethod.method_id == "102").values(validated=True))
    pk = await _pat_key(services)
    response = await api.get(f"/v1/institution-users/{pk.upper()}", params={"$expand": expand},
                             headers={"Authorization": f"Bearer {world.token}", "transactionId": "t"})
    assert response.status_code == 200, response.text
    assert [m["id"] for m in response.json()["contactMethods"]] == ids
    if "postalAddresses" in expand:
        assert response.json()["postalAddresses"] == []


@pytest.mark.parametrize(("expand", "code"), [
    ("contactMethods($filter=validated eq)", "ISR_10009"),
    ("contactMethods($filter=colour eq 'red')", "ISR_10009"),
    ("contactMethods($filter=validated eq 'true' or)", "ISR_10009"),
    ("contactMethods($filter=validated eq true", "ISR_11008"),
    ("contactMethods,accounts", "ISR_11008"),
    ("contactMethods($top=1)", "ISR_11008"),
    ("contactMethods($filter=validated eq true),contactMethods", "ISR_11008"),  # twice: one would drop the filter
])
async def test_bad_expand_filters_are_refused(api, world: World, services, expand, code):
    pk = await _pat_key(services)
    response = await api.get(f"/v1/institution-users/{pk.upper()}", params={"$expand": expand},
                             headers={"Authorization": f"Bearer {world.token}", "transactionId": "t"})
    assert response.status_code == 400 and response.json()["code"] == code, response.text


async def test_a_masking_institutions_numbers_cannot_be_probed_by_filter(api, world: World, services):
    async with services.db.transaction() as session:
        await session.execute(update(Institution).where(Institution.id == "07675").values(mask_contact_info=True))
    pk = await _pat_key(services)
    response = await api.get(f"/v1/institution-users/{pk.upper()}",
                             params={"$expand": "contactMethods($filter=contains(contactInfo, '5550143'))"},
                             headers={"Authorization": f"Bearer {world.token}", "transactionId": "t"})
    assert response.status_code == 200 and response.json()["contactMethods"] == []


async def test_institution_user_errors(api, world: World):
    auth = {"Authorization": f"Bearer {world.token}"}
    missing = await api.get("/v1/institution-users/nobody", headers={**auth, "transactionId": "t"})
    assert missing.status_code == 404 and missing.json() == {"code": "ISR_10001", "message": missing.json()["message"]}
    no_tx = await api.get("/v1/institution-users/pat.doe?userIdType=LOGIN_ID", headers=auth)
    assert no_tx.status_code == 400 and no_tx.json()["code"] == "ISR_11005"
    other = await api.get("/v1/institution-users/other.pat?userIdType=LOGIN_ID", headers={**auth, "transactionId": "t"})
    assert other.status_code == 404
    bad_type = await api.get("/v1/institution-users/x?userIdType=EMAIL", headers={**auth, "transactionId": "t"})
    assert bad_type.status_code == 400 and bad_type.json()["code"] == "ISR_11008"
    no_token = await api.get("/v1/institution-users/x", headers={"transactionId": "t"})
    assert no_token.status_code == 401 and no_token.json()["code"] == "ISR_11001"
    bad_token = await api.get("/v1/institution-users/x", headers={"transactionId": "t", "Authorization": "Bearer no"})
    assert bad_token.status_code == 401 and bad_token.json()["code"] == "ISR_11002"


async def test_a_customer_token_reaches_only_its_own_customer(api, world: World, ux):
    signed_in = await get_token(api, world.partner.auth, grant_type="password", username="pat.doe",
                                password=PAT_PASSWORD)
    assert signed_in.status_code == 200, signed_in.text
    token = signed_in.json()["access_token"]
    assert (await api.get(f"{ux}/v1/customers/{C1}/contact-methods", headers=world.headers(token))).status_code == 200
    for path in (f"/v1/customers/{C2}/contact-methods", "/v1/customers/sam/contact-methods?userIdType=LOGIN_ID",
                 "/v1/customers/nobody", f"/v1/customers/{C2}:unlock-user"):
        method = "PUT" if path.endswith("unlock-user") else "GET"
        ux_error(await api.request(method, f"{ux}{path}", headers=world.headers(token)), 403, "UXU_10011")


async def test_correlation_id_rules_apply(api, world: World):
    headers = {"Authorization": f"Bearer {world.token}"}
    ux_error(await api.get(f"/v1/customers/{C1}", headers=headers), 400, "UXU_10006")
    ux_error(await api.get(f"/v1/customers/{C1}", headers={**headers, "correlationId": "nope"}), 400, "UXU_10007")
    lower_case = {**headers, "correlationid": str(uuid.uuid4())}
    assert (await api.get(f"/v1/customers/{C1}", headers=lower_case)).status_code == 200


async def test_a_login_id_with_a_colon_is_reachable(api, world: World, services):
    """Login ids may hold ":", so a path parameter must not stop at one (the custom methods'
    separator): ``/v1/customers/bob:smith:reset-password`` is bob:smith's reset."""
    await load(services, "07675", [customer(C7, "bob:smith", sms("701", "2025550199"))])
    headers = world.headers()
    found = await api.get("/v1/customers/bob:smith/contact-methods?userIdType=LOGIN_ID", headers=headers)
    assert found.status_code == 200 and found.json()["customerId"] == C7
    sent = await api.put("/v1/customers/bob:smith:reset-password?userIdType=LOGIN_ID", headers=headers,
                         json={"contactMethodId": "701"})
    assert sent.status_code == 204, sent.text
