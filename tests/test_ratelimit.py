"""Rate limits: the sliding-window limiter on both backends, and failed authentication at the edge."""

from __future__ import annotations

import uuid

import pytest
from redis.asyncio import Redis

from pwreset.errors import RateLimited
from pwreset.kit.clock import FrozenClock
from pwreset.ratelimit.limiter import MemoryCounters, RateLimiter, RedisCounters, Rule
from tests.conftest import REDIS_UP, REDIS_URL
from tests.support import bearer, get_token


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


async def test_repeated_failed_client_authentication_is_refused_with_429(api, make_partner, strict, clock):
    partner = await make_partner()
    for _ in range(3):
        assert (await get_token(api, (partner.shared_key, "pwr_cs_wrong"))).status_code == 401
    refused = await get_token(api, partner.auth)  # even the right secret, from this address, for now
    assert refused.status_code == 429 and refused.json()["code"] == "CMN_90029"
    assert int(refused.headers["retry-after"]) >= 1
    clock.advance(600)
    assert (await get_token(api, partner.auth)).status_code == 200


async def test_successful_requests_never_count(api, make_partner, strict):
    partner = await make_partner()
    for _ in range(10):
        assert (await get_token(api, partner.auth)).status_code == 200


async def test_guessing_bearer_tokens_is_refused_with_429_and_a_valid_token_still_works(api, make_partner, strict):
    partner = await make_partner()
    token = (await get_token(api, partner.auth)).json()["access_token"]
    for i in range(3):
        guess = await api.get("/v1/probe", headers=bearer(f"pwr_at_guess{i:040d}"))
        assert guess.status_code == 401
    refused = await api.get("/v1/probe", headers=bearer("pwr_at_" + "z" * 43))
    assert refused.status_code == 429 and refused.json()["code"] == "UXU_40029"
    assert "retry-after" in refused.headers
    assert (await api.get("/v1/probe", headers=bearer(token))).status_code == 200  # cached: no lookup, no limit


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
    assert sum(1 for r in results if r is None) == 3
    assert all(isinstance(r, RateLimited) for r in results if r is not None)
    limiter.clock.advance(121)  # refused attempts gave their count back: the window empties as usual
    await limiter.consume(rule, "victim")


async def test_a_clean_address_costs_one_counter_read_per_second():
    from pwreset.ratelimit.limiter import FailureGuard

    class Counting(MemoryCounters):
        reads = 0

        async def counts(self, key, window_index):
            Counting.reads += 1
            return await super().counts(key, window_index)

    clock = FrozenClock(start=960_000.0)
    guard = FailureGuard(RateLimiter(Counting(), clock), Rule("auth", limit=2, window=60))
    for _ in range(50):
        await guard.check("10.0.0.1")
    assert Counting.reads == 1
    await guard.failed("10.0.0.1")  # a failure makes the next checks ask again
    await guard.failed("10.0.0.1")
    with pytest.raises(RateLimited):
        await guard.check("10.0.0.1")
