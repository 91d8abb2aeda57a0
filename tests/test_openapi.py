"""pwreset's own OpenAPI document: served as JSON and YAML, null-free, every status declared, and
the response check every test's client runs (tests/openapi_check.py) really refuses mismatches."""

from __future__ import annotations

import json

import pytest
import yaml

from tests.openapi_check import OpenApiMismatch, ResponseChecker


async def test_served_as_json_and_yaml(api, openapi_document):
    as_json = (await api.get("/openapi.json")).json()
    response = await api.get("/openapi.yaml")
    assert response.status_code == 200 and response.headers["content-type"].startswith("application/yaml")
    assert yaml.safe_load(response.text) == as_json
    assert as_json["paths"].keys() >= openapi_document["paths"].keys()  # (plus the tests' probe routes)
    assert "/ux-users/v1/customers/{customerId}/contact-methods" in as_json["paths"]  # the spec's own path


def test_no_schema_admits_null(openapi_document):
    text = json.dumps(openapi_document)
    assert '"null"' not in text and '"default": null' not in text


def test_every_operation_declares_what_the_endpoint_can_answer(openapi_document):
    for path, item in openapi_document["paths"].items():
        for method, operation in item.items():
            statuses = set(operation["responses"])
            assert "500" in statuses, (method, path)
            if operation.get("security", [{}])[0].get("bearer") is not None:
                assert {"401", "403", "429"} <= statuses, (method, path, statuses)
    reset = openapi_document["paths"]["/v1/customers/{customerId}:reset-password"]["put"]
    assert "UXU_40029" in reset["responses"]["429"]["description"]
    verify = openapi_document["paths"]["/v1/customers/{customerId}:verify-passcode"]["post"]
    assert verify["x-pwreset-extension"] is True
    assert "x-pwreset-extension" not in reset


def test_candescents_schema_names(openapi_document):
    schemas = openapi_document["components"]["schemas"]
    for name in ("Account", "AccountsResponse", "Money", "AccountType", "AccountStatus", "Actions",
                 "CustomerInformation", "ContactMethod", "ContactMethodResponse", "Destination", "InstitutionUser",
                 "InstitutionCustomer", "ContactMethod1", "AccessTokenResponseV2", "ResetPasswordRequest",
                 "ErrorResponse", "Error"):
        assert name in schemas, name
    assert schemas["AccessTokenResponseV2"]["properties"]["expires_in"]["type"] == "string"
    assert schemas["Money"]["properties"]["amount"]["type"] == "number"


@pytest.mark.parametrize(("status", "body", "wrong"), [
    (200, b'{"accounts": [{"id": "a"}]}', "required"),
    (200, b'{"accounts": [], "totalGroupCount": "1"}', "not of type 'integer'"),
    (418, b'{"code": "x", "message": "y"}', "not documented"),
    (404, b'{"code": "ACC_00101"}', "'message' is a required property"),
])
def test_the_response_check_refuses_what_the_document_does_not_say(openapi_document, status, body, wrong):
    check = ResponseChecker(openapi_document)
    with pytest.raises(OpenApiMismatch, match=wrong):
        check.check("GET", "/digitalbanking/db-accounts/v1/accounts", status, "application/json", body)
    before = check.checked
    check.check("GET", "/v1/accounts", 200, "application/json", b'{"accounts": []}')  # a good one passes
    assert check.checked == before + 1
