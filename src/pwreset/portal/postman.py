"""A Postman collection (format v2.1) and environment, generated from pwreset's OpenAPI document.

The collection starts with a token request (client credentials from the environment's ``sharedKey`` and
``secretKey``) whose test script keeps ``accessToken``; every other request uses it as its bearer token.
Each request tests that the status it gets is one its documentation lists and is not a server error, and
that it succeeds where a sandbox answers with success. verify-passcode runs once the developer has put the
passcode from the sandbox inbox in ``passcode`` (it is skipped while that is empty, so a run never spends
a wrong guess), and keeps the reset ticket for set-password. Revocation runs last, since it ends the
token. ``newman run collection.json -e environment.json --env-var secretKey=...`` runs it (CI does). The
send limit (one passcode a minute per customer) refuses a second run within the minute.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

from pwreset.portal.catalogue import APIS, BY_SLUG, METHODS, example

SCHEMA = "https://schema.getpostman.com/json/collection/v2.1.0/collection.json"
#: A fresh organisation sandbox answers these with success.
SUCCEEDS = {"token_post": 200, "contact_methods_get": 200, "reset_password_put": 204, "profile_get": 200,
            "institution_user_get": 200, "list_accounts_get": 200, "get_account_get": 200,
            "verify_passcode_post": 200, "set_password_put": 204}
#: Path and body values taken from the environment.
_VARIABLES = {"customerId": "customerId", "accountId": "accountId", "institutionUserId": "institutionUserId",
              "contactMethodId": "contactMethodId", "passcode": "passcode", "loginId": "loginId",
              "hostUserId": "hostUserId", "resetTicket": "resetTicket"}
#: Optional query parameters the collection still sends (the Accounts list needs a user: hostUserId).
_SENT_OPTIONAL = {"hostUserId"}
#: Requests that need a value the developer brings (the passcode from the sandbox inbox) or an earlier
#: request sets (the reset ticket): skipped while it is empty, so a run never spends a wrong guess.
_NEEDS = {"verify_passcode_post": "passcode", "set_password_put": "resetTicket"}
_HEADER_VALUES = {"correlationId": "{{$guid}}", "transactionId": "{{$guid}}", "institutionId": "{{institutionId}}"}
_ALIAS = re.compile(r"^/(digitalbanking|ux-users)/")
_NAMESPACE = uuid.UUID("6f1b7c52-3d0e-4f4a-9a49-1f5e1d2c7a10")


def _script(lines: list[str]) -> list[dict[str, Any]]:
    return [{"listen": "test", "script": {"type": "text/javascript", "exec": lines}}]


def _tests(operation_id: str, documented: list[int]) -> list[str]:
    lines = [
        f"pm.test('answers a documented status', function () {{ pm.expect({json.dumps(documented)})"
        ".to.include(pm.response.code); });",
        "pm.test('is not a server error', function () { pm.expect(pm.response.code).to.be.below(500); });",
    ]
    if operation_id in SUCCEEDS:
        lines.append(f"pm.test('succeeds in the sandbox', function () {{ pm.response.to.have.status("
                     f"{SUCCEEDS[operation_id]}); }});")
    if operation_id == "token_post":
        lines.append("pm.environment.set('accessToken', pm.response.json().access_token);")
    if operation_id == "verify_passcode_post":
        lines.append("if (pm.response.code === 200) { pm.environment.set('resetTicket', "
                     "pm.response.json().resetTicket); }")
    return lines


def _body_value(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: (f"{{{{{_VARIABLES[k]}}}}}" if k in _VARIABLES else _body_value(v)) for k, v in value.items()}
    return value


def _request(document: dict[str, Any], path: str, method: str, operation: dict[str, Any]) -> dict[str, Any]:
    url_path = re.sub(r"\{(\w+)\}", lambda m: "{{" + _VARIABLES.get(m.group(1), m.group(1)) + "}}", path)
    headers = [{"key": p["name"], "value": _HEADER_VALUES.get(p["name"], "")}
               for p in operation.get("parameters", [])
               if p["in"] == "header" and (p.get("required") or p["name"] in _HEADER_VALUES)]
    query = [{"key": p["name"], "value": "{{" + _VARIABLES.get(p["name"], p["name"]) + "}}"}
             for p in operation.get("parameters", [])
             if p["in"] == "query" and (p.get("required") or p["name"] in _SENT_OPTIONAL)]
    request: dict[str, Any] = {
        "method": method.upper(), "header": headers,
        "url": {"raw": "{{baseUrl}}" + url_path + ("?" + "&".join(f"{q['key']}={q['value']}" for q in query)
                                                   if query else ""),
                "host": ["{{baseUrl}}"], "path": [part for part in url_path.split("/") if part], "query": query},
    }
    content = operation.get("requestBody", {}).get("content", {})
    basic = any("basic" in entry for entry in operation.get("security", []))
    if basic:
        request["auth"] = {"type": "basic", "basic": [{"key": "username", "value": "{{sharedKey}}"},
                                                      {"key": "password", "value": "{{secretKey}}"}]}
    if "application/x-www-form-urlencoded" in content:
        fields = {"grant_type": "client_credentials"} if operation["operationId"] == "token_post" else {
            "token": "{{accessToken}}"}
        request["body"] = {"mode": "urlencoded",
                           "urlencoded": [{"key": k, "value": v} for k, v in fields.items()]}
    elif "application/json" in content:
        body = _body_value(example(document, content["application/json"].get("schema")))
        request["header"].append({"key": "Content-Type", "value": "application/json"})
        request["body"] = {"mode": "raw", "raw": json.dumps(body, indent=2), "options": {"raw": {"language": "json"}}}
    return request


def collection(document: dict[str, Any], *, title: str) -> dict[str, Any]:
    """One folder per API; each operation once, at its gateway path; the token first, revocation last."""
    folders: dict[str, list[dict[str, Any]]] = {api.slug: [] for api in APIS}
    start: list[dict[str, Any]] = []
    finish: list[dict[str, Any]] = []
    for path, item in document["paths"].items():
        if _ALIAS.match(path):
            continue
        for method in METHODS:
            operation = item.get(method)
            if operation is None:
                continue
            documented = sorted(int(status) for status in operation.get("responses", {}) if status.isdigit())
            events = _script(_tests(operation["operationId"], documented))
            needed = _NEEDS.get(operation["operationId"])
            if needed is not None:
                events.insert(0, {"listen": "prerequest", "script": {"type": "text/javascript", "exec": [
                    f"if (!pm.environment.get('{needed}')) {{ pm.execution.skipRequest(); }}"]}})
            entry = {
                "name": operation.get("summary", operation["operationId"]),
                "request": _request(document, path, method, operation), "event": events,
            }
            if operation["operationId"] == "token_post":
                start.append(entry)
            elif operation["operationId"].startswith("revoke"):
                finish.append(entry)
            else:
                slug = next((api.slug for api in APIS if not api.extensions
                             and set(operation.get("tags", ())) & set(api.tags)), "extensions")
                folders[slug].append(entry)
    items = [{"name": "Get a token", "item": start}]
    items += [{"name": BY_SLUG[slug].title, "item": entries} for slug, entries in folders.items() if entries]
    items.append({"name": "Revoke the token", "item": finish})
    return {
        "info": {"_postman_id": str(uuid.uuid5(_NAMESPACE, title)), "name": title, "schema": SCHEMA,
                 "description": "Generated by pwreset from its OpenAPI document."},
        "auth": {"type": "bearer", "bearer": [{"key": "token", "value": "{{accessToken}}", "type": "string"}]},
        "item": items,
    }


def environment(*, name: str, values: dict[str, str]) -> dict[str, Any]:
    """An environment file; ``secretKey`` is left empty (the secret is shown once, never stored)."""
    entries = [{"key": key, "value": value, "enabled": True, "type": "default"} for key, value in values.items()]
    entries += [{"key": "secretKey", "value": "", "enabled": True, "type": "secret"},
                {"key": "accessToken", "value": "", "enabled": True, "type": "secret"}]
    return {"id": str(uuid.uuid5(_NAMESPACE, name)), "name": name, "values": entries,
            "_postman_variable_scope": "environment"}
