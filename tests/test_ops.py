"""Health, readiness, metrics, the API description, JSON logs (contract section 9)."""

from __future__ import annotations

import io
import json
import logging

import httpx
import pytest

from pwreset.app import create_app
from pwreset.config import ConfigurationError, Settings
from pwreset.container import build_container
from pwreset.ops.logs import configure_logging
from tests.conftest import TEST_SECRET_KEY
from tests.support import PROBE_OPERATIONS, bearer, get_token


async def test_health_and_readiness(api):
    assert (await api.get("/healthz")).json() == {"status": "ok"}
    ready = await api.get("/readyz")
    assert ready.status_code == 200 and ready.json()["database"] == "ok"


async def test_readiness_fails_when_the_database_is_unreachable(tmp_path):
    settings = Settings(
        database_url="postgresql://nobody@127.0.0.1:1/none", secret_key=TEST_SECRET_KEY, _env_file=None
    )
    app = create_app(settings, background=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        assert (await client.get("/healthz")).status_code == 200
        ready = await client.get("/readyz")
    assert ready.status_code == 503 and ready.json()["database"] == "unreachable"


async def test_a_database_outage_is_a_clean_error_not_a_traceback(tmp_path):
    settings = Settings(
        database_url="postgresql://nobody@127.0.0.1:1/none", secret_key=TEST_SECRET_KEY, _env_file=None
    )
    app = create_app(settings, background=False, extra_operations=PROBE_OPERATIONS)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        response = await get_token(client, ("pwr_ck_a", "pwr_cs_b"))
        probe = await client.get("/v1/probe", headers=bearer("pwr_at_" + "a" * 43))
    assert response.status_code == 503 and response.json()["code"] == "CMN_30001"  # issue 12, item 8
    assert "Traceback" not in response.text and "127.0.0.1" not in response.text
    assert probe.status_code == 503 and probe.json()["code"] == "UXU_30001"


async def test_metrics_count_requests_by_route(api, make_partner):
    partner = await make_partner()
    await get_token(api, partner.auth)
    text = (await api.get("/metrics")).text
    assert 'pwreset_http_requests_total{method="POST",route="/oauth2/v1/token",status="200"}' in text
    assert "pwreset_http_request_duration_seconds_bucket" in text


async def test_openapi_describes_both_url_styles(api):
    spec = (await api.get("/openapi.json")).json()
    assert spec["openapi"].startswith("3.")
    for path in ("/oauth2/v1/token", "/digitalbanking/oauth2/v1/token", "/oauth2/v1/revoke", "/oauth2/v1/introspect"):
        assert path in spec["paths"], path
    token = spec["paths"]["/oauth2/v1/token"]["post"]
    assert "CMN_90004" in token["responses"]["401"]["description"]
    assert set(spec["paths"]["/oauth2/v1/revoke"]) == {"delete", "post"}
    docs = await api.get("/docs", follow_redirects=True)
    assert docs.status_code == 200 and "/portal/apis/reset-password" in docs.text
    assert "/portal/apis/all/openapi.json" in docs.text


async def test_unknown_routes_are_json(api):
    response = await api.get("/nope")
    assert response.status_code == 404 and response.json()["code"] == "NOT_FOUND"


def test_placeholder_secret_keys_are_refused_outside_the_sandbox():
    for value in (None, "changeme-changeme-changeme-changeme", "a" * 64, "short",
                  # Issue 12, item 10: long and varied, but no randomness to speak of.
                  "0123456789" * 4, "qwertyuiop" * 4, "passwordpasswordpassword12345678",
                  "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ",
                  "t3st-k3y-" + "9f8e7d6c5b4a3210" * 3,
                  # From the security review: prose, counters, numbers in order, words with a year.
                  "the quick brown fox jumps over the lazy dog and then runs away from the farmer",
                  "Password0!Password1!Password2!Password3!Password4!Password5!Password6!",
                  "".join(f"{i:03d}" for i in range(100)),
                  "FirstCreditUnion-Production-Key-2024-abcdefghijklmnopqrstuvwxyz"):
        with pytest.raises(ConfigurationError):
            build_container(Settings(secret_key=value, _env_file=None))
    Settings.for_sandbox(secret_key="anything-goes-here", _env_file=None).check_secret_key()


def test_log_lines_are_json_with_the_trace_id_and_no_secrets():
    from pwreset.kit.tracing import trace_id

    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    stream = io.StringIO()
    configure_logging("INFO", json=True)
    root.handlers[0].stream = stream  # type: ignore[attr-defined]
    token = trace_id.set("0f8fad5b-d9cb-469f-a165-70867728950e")
    try:
        logging.getLogger("pwreset.test").warning("leaked %s", "pwr_at_abcdefghijklmnopqrstuvwxyz0123456789")
    finally:
        trace_id.reset(token)
        root.handlers[:], root.level = saved[0], saved[1]
    line = json.loads(stream.getvalue().strip().splitlines()[-1])
    assert line["trace_id"] == "0f8fad5b-d9cb-469f-a165-70867728950e"
    assert line["level"] == "WARNING" and "pwr_at_[redacted]" in line["message"]
    assert "abcdefghijklmnop" not in stream.getvalue()


async def test_access_log_lines_are_json_with_the_tracing_id_and_no_secrets(make_partner, services, monkeypatch):
    stream = io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    services.settings.access_log = services.settings.log_json = True
    partner = await make_partner()
    app = create_app(services.settings, container=services, background=False)
    transaction_id = "6a1f3f0e-1c9b-4a57-9d0e-6a4ffb0c2e11"
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        response = await client.post(
            "/oauth2/v1/token", auth=partner.auth, headers={"transactionId": transaction_id, "institutionId": "07675"},
            data={"grant_type": "client_credentials"},
        )
        await client.get("/healthz")
    lines = [json.loads(line) for line in stream.getvalue().splitlines() if line.startswith("{")]
    token_line = next(line for line in lines if line["message"].startswith("POST /oauth2/v1/token 200 "))
    assert token_line["trace_id"] == transaction_id and token_line["status"] == 200
    assert token_line["logger"] == "pwreset.access" and token_line["duration_ms"] >= 0
    health_line = next(line for line in lines if line["message"].startswith("GET /healthz 200"))
    assert len(health_line["trace_id"]) == 32  # generated when the caller sent none
    assert response.json()["access_token"] not in stream.getvalue() and partner.secret_key not in stream.getvalue()


def test_every_pwreset_secret_shape_is_masked():
    from pwreset.ops.logs import mask_secrets

    for secret in ("pwr_at_abcdefghijklmnop", "pwr_rt_abcdefghijklmnop", "pwr_cs_abcdefghijklmnop",
                   "pwr_rst_abcdefghijklmnop"):
        masked = mask_secrets(f"value {secret} end")
        assert "abcdefghijklmnop" not in masked and "[redacted]" in masked


async def test_the_console_sink_withholds_text_outside_the_sandbox():
    from pwreset.delivery.providers import ConsoleProvider
    from pwreset.delivery.providers.base import Outgoing

    message = Outgoing(id="m", institution_id="07675", institution_name="CU", kind="passcode", channel="SMS",
                       destination="+12025550143", language="en", subject=None, text="your code is 493017")
    for reveal in (False, True):
        out = io.StringIO()
        await ConsoleProvider(reveal=reveal, stream=out).send(message)
        assert ("493017" in out.getvalue()) is reveal
        assert "+12025550143" not in out.getvalue()


def test_uvicorns_access_logger_stays_silent(monkeypatch):
    """Its lines carry the path (login and customer ids) and the client's address (issue 12, item 4)."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    stream = io.StringIO()
    try:
        configure_logging("INFO", json=True)
        root.handlers[0].stream = stream  # type: ignore[attr-defined]
        logging.getLogger("uvicorn.access").info(
            '%s - "%s %s HTTP/%s" %d', "203.0.113.9:5000", "GET", "/v1/customers/pat.doe?userIdType=LOGIN_ID", "1.1",
            200,
        )
        logging.getLogger("uvicorn.error").warning("still here")
    finally:
        root.handlers[:], root.level = saved[0], saved[1]
    assert "pat.doe" not in stream.getvalue() and "203.0.113.9" not in stream.getvalue()
    assert "still here" in stream.getvalue()


def test_keys_with_256_random_bits_pass_and_the_check_says_what_it_counted():

    from pwreset.kit.keys import estimated_bits, generate

    for _ in range(200):
        assert estimated_bits(generate()) >= 256
    assert estimated_bits("9c1e4d3f0a5b7e2c8d6f1a3b5c7e9d0f2a4c6e8b1d3f5a7c9e0b2d4f6a8c1e3d") == 256  # hex, 32 bytes
    assert estimated_bits("0123456789" * 4) == 0
    assert estimated_bits("passwordpassword" + "x7Kq9mPz" + "12345678") < 100
    with pytest.raises(ConfigurationError, match=r"not a random key: its characters are not spread"):
        Settings(secret_key="qwertyuiop" * 4, _env_file=None).check_secret_key()
    with pytest.raises(ConfigurationError, match=r"about \d+ bits .* needs 256.*pwreset keys generate"):
        Settings(secret_key="FirstCreditUnion-Production-Key-2024-abcdefghijklmnopqrstuvwxyz",
                 _env_file=None).check_secret_key()
    # Standard base64, with its padding (40 bytes).
    assert estimated_bits("kPs08vxm7YQwxBX5B/cYNxDxEbMUtdBo/idFtkO+6ctM2KHMbWEjkg==") >= 256
