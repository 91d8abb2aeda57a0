"""Rate limits: the sliding-window limiter on both backends, and failed authentication at the edge."""

from __future__ import annotations

import uuid

import pytest
from redis.asyncio import Redis

from pwreset.errors import RateLimited
from pwreset.kit.clock import FrozenClock
from pwreset.ratelimit.limiter import MemoryCounters, RateLimiter, RedisCounters, Rule
from tests.conftest import REDIS_UP, REDIS_URL
from tests.support import bearer, get_token, tx


@pytest.fixture(params=["memory", "redis"])
async def limiter(request):
    clock = FrozenClock(start=960_000.0)  # the start of a 60 s and of a 100 s window
    if request.param == "memory":
        yield RateLimiter(MemoryCounters(), clock)
        return
    if not REDIS_UP:
        pytest.skip("Redis is not reachable (CI requires it)")
    redis = Redis.from_url(REDIS_URL)
    yield RateLimiter(RedisCounters(redis, prefix=f"test:{uuid.uuid4().hex}:"), clock)
    await redis.aclose()


async def test_a_limit_is_enforced_and_lifts_as_the_window_slides(limiter):
    rule = Rule("sends", limit=5, window=60)
    for _ in range(5):
        await limiter.consume(rule, "customer-1")
    with pytest.raises(RateLimited) as refused:
        await limiter.consume(rule, "customer-1")
    assert refused.value.retry_after == 60
    await limiter.consume(rule, "customer-2")  # subjects are independent
    limiter.clock.advance(30)
    with pytest.raises(RateLimited) as refused:
        await limiter.check(rule, "customer-1")
    assert refused.value.retry_after == 30
    limiter.clock.advance(31)  # the five are now weighted 59/60: room for one more
    await limiter.consume(rule, "customer-1")
    with pytest.raises(RateLimited):
        await limiter.check(rule, "customer-1")


async def test_retry_after_is_when_the_estimate_drops_below_the_limit(limiter):
    rule = Rule("r", limit=4, window=100)
    for _ in range(4):
        await limiter.record(rule, "s")
    limiter.clock.advance(100)  # start of the next window: estimate 4 (4 * 1.0)
    with pytest.raises(RateLimited) as refused:
        await limiter.check(rule, "s")
    wait = refused.value.retry_after
    limiter.clock.advance(wait)
    await limiter.check(rule, "s")


@pytest.fixture
def strict(services):
    services.auth_failures.rule = services.auth_failures.rule.__class__("auth-failures", 3, 300)
    return services


async def test_wrong_secrets_count_against_their_shared_key_and_never_lock_out_the_right_one(
    api, make_partner, strict, clock
):
    """Issue 12, item 5: a stranger with a partner's (public) shared key cannot lock the partner out."""
    partner, neighbour = await make_partner(), await make_partner()
    for _ in range(3):
        assert (await get_token(api, (partner.shared_key, "pwr_cs_wrong"))).status_code == 401
    refused = await get_token(api, (partner.shared_key, "pwr_cs_wrong"))
    assert refused.status_code == 429 and refused.json()["code"] == "CMN_90029"
    assert int(refused.headers["retry-after"]) >= 1
    assert (await get_token(api, partner.auth)).status_code == 200  # the right secret, same address
    assert (await get_token(api, neighbour.auth)).status_code == 200
    assert (await get_token(api, (neighbour.shared_key, "pwr_cs_wrong"))).status_code == 401  # its own count
    clock.advance(600)
    assert (await get_token(api, (partner.shared_key, "pwr_cs_wrong"))).status_code == 401


async def test_unknown_keys_count_against_the_address_and_never_lock_out_a_valid_partner(api, make_partner, strict):
    """Behind a load balancer every partner shares one address (issue 12, item 5)."""
    partner = await make_partner()
    for i in range(3):
        assert (await get_token(api, (f"stranger-{i}", "pwr_cs_wrong"))).status_code == 401
    assert (await get_token(api, ("stranger-4", "pwr_cs_wrong"))).status_code == 429
    malformed = await api.post("/oauth2/v1/token", headers={"Authorization": "Basic !!", **tx(),
                                                            "institutionId": "07675"})
    assert malformed.status_code == 429
    for _ in range(3):
        assert (await get_token(api, partner.auth)).status_code == 200
    assert (await api.post("/oauth2/v1/revoke", auth=partner.auth, headers=tx(),
                           data={"token": "pwr_at_x"})).status_code == 204


async def test_successful_requests_never_count(api, make_partner, strict):
    partner = await make_partner()
    for _ in range(10):
        assert (await get_token(api, partner.auth)).status_code == 200


async def test_guessing_bearer_tokens_is_refused_with_429_and_a_valid_token_still_works(
    api, make_partner, strict, services
):
    partner = await make_partner()
    token = (await get_token(api, partner.auth)).json()["access_token"]
    for i in range(3):
        guess = await api.get("/v1/probe", headers=bearer(f"pwr_at_guess{i:040d}"))
        assert guess.status_code == 401
    refused = await api.get("/v1/probe", headers=bearer("pwr_at_" + "z" * 43))
    assert refused.status_code == 429 and refused.json()["code"] == "UXU_40029"
    assert "retry-after" in refused.headers
    assert (await api.get("/v1/probe", headers=bearer(token))).status_code == 200
    services.cache.clear()  # another node, which has not seen the token: read from the database
    assert (await api.get("/v1/probe", headers=bearer(token))).status_code == 200


async def test_an_unreachable_redis_falls_back_to_local_counting():
    from pwreset.ratelimit.limiter import FallbackCounters

    redis = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    limiter = RateLimiter(FallbackCounters(RedisCounters(redis)), FrozenClock(start=960_000.0))
    rule = Rule("r", limit=2, window=60)
    await limiter.consume(rule, "s")
    await limiter.consume(rule, "s")
    with pytest.raises(RateLimited):
        await limiter.consume(rule, "s")
    await redis.aclose()


async def test_concurrent_consumers_never_pass_the_limit_together(limiter):
    import asyncio

    rule = Rule("burst", limit=3, window=60)
    results = await asyncio.gather(*(limiter.consume(rule, "victim") for _ in range(20)), return_exceptions=True)
    assert sum(1 for r in results if isinstance(r, int)) == 3  # (consume answers its window's index)
    assert all(isinstance(r, RateLimited) for r in results if not isinstance(r, int))
    limiter.clock.advance(121)  # refused attempts gave their count back: the window empties as usual
    await limiter.consume(rule, "victim")


async def test_an_address_over_its_limit_costs_no_lookup_and_no_audit_row(api, make_partner, strict, services,
                                                                           monkeypatch):
    """Security review of issue 12: refused guesses must not become database reads and audit writes."""
    from sqlalchemy import func, select

    from pwreset.audit.models import AuditEvent
    from pwreset.oauth import repository

    partner = await make_partner()
    lookups = 0
    original = repository.client_by_shared_key

    async def counting(session, shared_key):
        nonlocal lookups
        lookups += 1
        return await original(session, shared_key)

    monkeypatch.setattr(repository, "client_by_shared_key", counting)
    for i in range(3):
        assert (await get_token(api, (f"pwr_ck_stranger{i}", "pwr_cs_wrong"))).status_code == 401
    assert lookups == 3
    for i in range(20):
        assert (await get_token(api, (f"pwr_ck_more{i}", "pwr_cs_wrong"))).status_code == 429
    assert lookups == 3
    async with services.db.reading() as session:
        rows = await session.scalar(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.event_type == "token.issue_failed"))
    assert rows == 3
    assert (await get_token(api, partner.auth)).status_code == 200  # a real client from the same address


async def test_a_revoked_token_is_an_ordinary_401_and_counts_against_nobody(api, make_partner, strict):
    partner = await make_partner()
    token = (await get_token(api, partner.auth)).json()["access_token"]
    revoked = await api.post("/oauth2/v1/revoke", auth=partner.auth, headers=tx(), data={"token": token})
    assert revoked.status_code == 204
    for _ in range(10):
        assert (await api.get("/v1/probe", headers=bearer(token))).status_code == 401
    assert (await api.get("/v1/probe", headers=bearer("pwr_at_" + "g" * 43))).status_code == 401
