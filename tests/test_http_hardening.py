"""HTTP hardening (issue 12, item 11): cache and security headers, content types, 405s, /metrics, /docs."""

from __future__ import annotations

import re

import httpx
import pytest
from pydantic import SecretStr

from pwreset.app import create_app
from pwreset.config import Settings
from tests.directory_support import C1, World
from tests.servers import free_port, pwreset_server


def _app_client(settings: Settings, services=None) -> httpx.AsyncClient:
    app = create_app(settings, container=services, background=False)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


async def test_responses_with_customer_data_are_never_stored_and_carry_the_security_headers(api, world: World):
    headers = {**world.headers(), "transactionId": "t-1"}
    for path in (f"/v1/customers/{C1}", f"/v1/customers/{C1}/contact-methods",
                 f"/v1/institution-users/{C1}?userIdType=CUSTOMER_ID", "/v1/accounts?loginId=Pat.Doe",
                 f"/v1/customers/{C1}?userIdType=LOGIN_ID", "/healthz"):
        response = await api.get(path, headers=headers)
        assert response.headers["cache-control"] == "no-store", path
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "no-referrer"
        assert response.headers["strict-transport-security"].startswith("max-age=")
    refused = await api.get(f"/v1/customers/{C1}", headers={"correlationId": world.headers()["correlationId"]})
    assert refused.status_code == 401 and refused.headers["cache-control"] == "no-store"


async def test_the_sandbox_sends_no_hsts_and_the_docs_page_has_a_strict_policy(services):
    sandbox = Settings.for_sandbox(**services.settings.model_dump(exclude={"secret_key"}),
                                   secret_key=services.settings.secret_key)
    async with _app_client(sandbox, services) as client:
        moved = await client.get("/docs")
        docs = await client.get(moved.headers["location"])
    assert moved.status_code == 302 and moved.headers["location"] == "/portal/apis"
    assert docs.status_code == 200 and "strict-transport-security" not in docs.headers
    policy = docs.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "frame-ancestors 'none'" in policy
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    # Issue 13: the documentation is rendered by pwreset itself; nothing loads from a CDN.
    assert "script-src 'self';" in policy and "https:" not in policy and "http:" not in policy
    assert not re.search(r'(src|href)="(https?:)?//', docs.text), "the page loads something from elsewhere"


@pytest.mark.parametrize(("content_type", "body"), [
    ("text/plain", '{"contactMethodId": "101"}'), ("application/x-www-form-urlencoded", "contactMethodId=101"),
    (None, '{"contactMethodId": "101"}'), ("application/xml", "<x/>"),
])
async def test_json_routes_refuse_other_content_types(api, world: World, content_type, body):
    headers = world.headers()
    if content_type is not None:
        headers["Content-Type"] = content_type
    response = await api.put(f"/v1/customers/{C1}:reset-password", headers=headers, content=body)
    assert response.status_code == 400 and response.json()["code"] == "UXU_99999"
    assert "Content-Type" in response.json()["message"]
    fine = await api.put(f"/v1/customers/{C1}:reset-password", content='{"contactMethodId": "101"}',
                         headers={**world.headers(), "Content-Type": "application/json; charset=utf-8"})
    assert fine.status_code == 204


@pytest.mark.parametrize(("method", "path", "allow"), [
    ("GET", f"/v1/customers/{C1}:reset-password", "PUT"),
    ("POST", f"/v1/customers/{C1}:reset-password", "PUT"),
    ("PUT", f"/v1/customers/{C1}:verify-passcode", "POST"),
    ("DELETE", f"/v1/customers/{C1}:set-password", "PUT"),
    ("GET", f"/digitalbanking/ux-users/v1/customers/{C1}:unlock-user", "PUT"),
    ("POST", f"/v1/customers/{C1}", "GET, HEAD"),  # (Starlette answers HEAD on GET routes)
    ("GET", "/oauth2/v1/token", "POST"),
])
async def test_a_wrong_method_is_405_with_the_routes_allow_header(api, world: World, method, path, allow):
    response = await api.request(method, path, headers=world.headers())
    assert response.status_code == 405, response.text
    assert {m.strip() for m in response.headers["allow"].split(",")} == {m.strip() for m in allow.split(",")}


async def test_metrics_can_require_a_token_and_docs_can_be_turned_off(services):
    locked = services.settings.model_copy(update={"metrics_token": SecretStr("m3trics-t0ken"), "docs": False})
    async with _app_client(locked, services) as client:
        assert (await client.get("/metrics")).status_code == 401
        assert (await client.get("/metrics", headers={"Authorization": "Bearer wrong"})).status_code == 401
        shown = await client.get("/metrics", headers={"Authorization": "Bearer m3trics-t0ken"})
        assert shown.status_code == 200 and "pwreset_http_requests_total" in shown.text
        for path in ("/docs", "/openapi.json", "/openapi.yaml"):
            assert (await client.get(path)).status_code == 404, path
    moved = services.settings.model_copy(update={"metrics_port": 9999})
    async with _app_client(moved, services) as client:
        assert (await client.get("/metrics")).status_code == 404
        assert (await client.get("/openapi.json")).status_code == 200


@pytest.mark.slow
def test_serve_puts_metrics_on_their_own_port(database_url, tmp_path):
    from tests.conftest import TEST_SECRET_KEY

    port = free_port()
    env = {"PWRESET_DATABASE_URL": database_url, "PWRESET_SECRET_KEY": TEST_SECRET_KEY,
           "PWRESET_METRICS_PORT": str(port)}
    with pwreset_server(env, tmp_path / "serve.log") as base:
        assert httpx.get(f"{base}/metrics").status_code == 404
        metrics = httpx.get(f"http://127.0.0.1:{port}/metrics")
        assert metrics.status_code == 200 and "pwreset_http_requests_total" in metrics.text
