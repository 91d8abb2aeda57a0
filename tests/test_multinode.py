"""Two server processes on one database: a revocation on one reaches the other within the bound."""

from __future__ import annotations

import time
import uuid

import httpx
import pytest

from tests.conftest import REDIS_UP, REDIS_URL, TEST_SECRET_KEY
from tests.servers import probe_server

pytestmark = pytest.mark.slow


def _token(base: str, partner) -> str:
    response = httpx.post(
        f"{base}/oauth2/v1/token", auth=partner.auth,
        headers={"transactionId": str(uuid.uuid4()), "institutionId": partner.institution_id},
        data={"grant_type": "client_credentials"},
    )
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def _probe(base: str, token: str) -> int:
    response = httpx.get(
        f"{base}/v1/probe", headers={"Authorization": f"Bearer {token}", "correlationId": str(uuid.uuid4())}
    )
    return response.status_code


def _revoke(base: str, partner, token: str) -> None:
    response = httpx.request(
        "DELETE", f"{base}/oauth2/v1/revoke", auth=partner.auth,
        headers={"transactionId": str(uuid.uuid4())}, data={"token": token},
    )
    assert response.status_code == 204


def _seconds_until_refused(base: str, token: str, give_up: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < give_up:
        if _probe(base, token) == 401:
            return time.monotonic() - started
    return float("inf")


@pytest.mark.parametrize("with_redis", [False, True], ids=["database-log", "redis"])
async def test_revocation_reaches_every_node_within_the_bound(make_partner, settings, tmp_path, with_redis):
    if with_redis and not REDIS_UP:
        pytest.skip("Redis is not reachable (CI requires it)")
    # With Redis the wake-up is immediate; give the log poll a long bound to prove Redis did it.
    bound = 30.0 if with_redis else 2.0
    env = {
        "PWRESET_DATABASE_URL": settings.database_url,
        "PWRESET_SECRET_KEY": TEST_SECRET_KEY,
        "PWRESET_REVOCATION_BOUND": str(bound),
        "PWRESET_ACCESS_LOG": "false",
    }
    if with_redis:
        env["PWRESET_REDIS_URL"] = REDIS_URL
    partner = await make_partner()
    with probe_server(env, tmp_path / "a.log") as node_a, probe_server(env, tmp_path / "b.log") as node_b:
        token = _token(node_a, partner)
        assert _probe(node_a, token) == 200  # cached on A
        assert _probe(node_b, token) == 200  # and on B
        _revoke(node_b, partner, token)
        assert _probe(node_b, token) == 401  # at once on the revoking node
        elapsed = _seconds_until_refused(node_a, token, give_up=bound + 5)
    if with_redis:
        assert elapsed < 2.0, f"Redis wake-up took {elapsed:.2f}s"
    else:
        assert elapsed <= bound, f"revocation reached the other node after {elapsed:.2f}s (bound {bound}s)"
