"""Redis can neither hang the service nor erase its limits (issue 12, item 7; decision 0010)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from pwreset.container import build_container
from pwreset.ratelimit.limiter import FallbackCounters, MemoryCounters, RateLimiter, RedisCounters
from tests.conftest import REDIS_UP, REDIS_URL
from tests.directory_support import C1, DIRECTORY, load
from tests.support import get_token, ux_error


@pytest.fixture
def directory():
    return None


class Frozen:
    url = ""
    received = 0


@contextlib.asynccontextmanager
async def frozen_redis() -> AsyncIterator[Frozen]:
    """A Redis that accepts connections and never answers: what a SIGSTOPped redis-server looks like
    from outside (the kernel still completes the handshake). It counts the bytes it is sent."""
    held: list[asyncio.StreamWriter] = []
    frozen = Frozen()

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)
        while chunk := await reader.read(4096):
            frozen.received += len(chunk)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    frozen.url = f"redis://127.0.0.1:{server.sockets[0].getsockname()[1]}/0"
    try:
        yield frozen
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()


async def _app(services, make_api):
    partner_scopes = "institution-users:read institution-users:write"
    from pwreset.institutions.service import create_institution

    async with services.db.transaction() as session:
        await create_institution(session, institution_id="07675", name="First CU", clock=services.clock)
        created = await services.oauth.create_client(session, institution_id="07675", scope=partner_scopes)
    await load(services, "07675", DIRECTORY["07675"])
    api = make_api(services)
    token = (await get_token(api, (created.client.shared_key, created.secret_key))).json()["access_token"]
    return api, {"Authorization": f"Bearer {token}", "correlationId": "0f8fad5b-d9cb-469f-a165-70867728950e"}


@pytest.fixture
async def make_api():
    import httpx

    from pwreset.app import create_app

    clients: list[httpx.AsyncClient] = []

    def make(services):
        app = create_app(services.settings, container=services, background=False)
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://pwreset.test")
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()


async def test_a_frozen_redis_costs_a_reset_request_one_timeout(settings, clock, make_api, monkeypatch):
    monkeypatch.setattr(FallbackCounters, "RETRY_AFTER", 600.0)  # (so that the test does not race it)
    async with frozen_redis() as frozen:
        services = build_container(
            settings.model_copy(update={"redis_url": frozen.url, "redis_timeout": 0.2}), clock=clock
        )
        try:
            api, headers = await _app(services, make_api)
            # Without a timeout this waits for as long as Redis is frozen.
            response = await asyncio.wait_for(
                api.put(f"/v1/customers/{C1}:reset-password", headers=headers, json={"contactMethodId": "101"}),
                timeout=10,
            )
            assert response.status_code == 204, response.text
            assert frozen.received > 0
            # Redis is left alone after the failure: the next request does not wait on it again, and
            # the customer's limit still applies (counted here and in the database).
            sent = frozen.received
            again = await api.put(f"/v1/customers/{C1}:reset-password", headers=headers,
                                  json={"contactMethodId": "103"})
            ux_error(again, 429, "UXU_40029")
            assert frozen.received == sent
        finally:
            await services.close()


@pytest.mark.skipif(not REDIS_UP, reason="Redis is not reachable (CI requires it)")
async def test_a_redis_that_restarts_empty_does_not_hand_out_more_passcodes(settings, clock, make_api):
    prefix_redis = Redis.from_url(REDIS_URL)
    await prefix_redis.flushdb()
    # A Redis that has been counting for hours: its counts are trusted, the database is not read.
    await prefix_redis.set("pwreset:rl:epoch", repr(clock.timestamp() - 3 * 3600))
    services = build_container(settings.model_copy(update={"redis_url": REDIS_URL}), clock=clock)
    _reporting_uptime(services.redis, {"seconds": 86400.0})
    try:
        api, headers = await _app(services, make_api)
        for _ in range(5):  # the hour's allowance
            sent = await api.put(f"/v1/customers/{C1}:reset-password", headers=headers, json={"contactMethodId": "101"})
            assert sent.status_code == 204, sent.text
            clock.advance(61)
        ux_error(await api.put(f"/v1/customers/{C1}:reset-password", headers=headers,
                               json={"contactMethodId": "101"}), 429, "UXU_40029")
        assert await services.limiter.history() >= 7200  # (so far the counters were trusted)
        await prefix_redis.flushdb()  # killed and restarted: nothing on disk
        refused = await api.put(f"/v1/customers/{C1}:reset-password", headers=headers,
                                json={"contactMethodId": "101"})
        ux_error(refused, 429, "UXU_40029")
        assert 1 <= int(refused.headers["retry-after"]) <= 3600
    finally:
        await services.close()
        await prefix_redis.flushdb()
        await prefix_redis.aclose()


async def test_an_unreachable_redis_counts_from_the_database(settings, clock, make_api):
    services = build_container(
        settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0", "redis_timeout": 0.2}), clock=clock
    )
    try:
        api, headers = await _app(services, make_api)
        for _ in range(5):
            sent = await api.put(f"/v1/customers/{C1}:reset-password", headers=headers, json={"contactMethodId": "101"})
            assert sent.status_code == 204, sent.text
            clock.advance(61)
        # Another node, whose own counters never saw those sends: the database did.
        services.limiter.backend = FallbackCounters(RedisCounters(services.redis), MemoryCounters())
        ux_error(await api.put(f"/v1/customers/{C1}:reset-password", headers=headers,
                               json={"contactMethodId": "101"}), 429, "UXU_40029")
    finally:
        await services.close()


async def test_in_process_counters_are_never_trusted_to_hold_every_send(clock):
    """Each worker process, and each node, counts only its own: without Redis the database decides."""
    limiter = RateLimiter(MemoryCounters(), clock)
    assert await limiter.history() == 0
    clock.advance(7200)
    assert await limiter.history() == 0


def _replacing_info(redis: Redis, replace) -> None:  # type: ignore[no-untyped-def]
    """Make ``redis``'s pipelines answer ``replace(info)`` for INFO server, whatever the real server
    says: a restart or an ACL cannot be staged on the machine's shared Redis."""
    original = redis.pipeline

    def pipeline(*args, **kwargs):
        pipe = original(*args, **kwargs)
        execute = pipe.execute

        async def replaced(*a, **k):
            results = await execute(*a, **k)
            return [replace(r) if isinstance(r, dict) and "redis_version" in r else r for r in results]

        pipe.execute = replaced
        return pipe

    redis.pipeline = pipeline  # type: ignore[method-assign]


def _reporting_uptime(redis: Redis, uptime: dict[str, float]) -> None:
    """INFO server reports ``uptime["seconds"]`` as the server's uptime."""
    _replacing_info(redis, lambda info: {**info, "uptime_in_seconds": uptime["seconds"]})


@pytest.mark.skipif(not REDIS_UP, reason="Redis is not reachable (CI requires it)")
async def test_redis_counters_are_trusted_two_windows_after_their_epoch(clock):
    redis = Redis.from_url(REDIS_URL)
    prefix = f"test:{clock.timestamp()}:{id(clock)}:"
    uptime = {"seconds": 86400.0}
    _reporting_uptime(redis, uptime)
    try:
        limiter = RateLimiter(FallbackCounters(RedisCounters(redis, prefix=prefix)), clock)
        assert await limiter.history() == 0  # the first to ask sets the epoch
        clock.advance(7200)
        uptime["seconds"] += 7200
        assert await limiter.history() == 7200
        await redis.delete(f"{prefix}epoch")  # Redis restarted empty
        assert await limiter.history() == 0
    finally:
        await redis.delete(f"{prefix}epoch")
        await redis.aclose()


@pytest.mark.skipif(not REDIS_UP, reason="Redis is not reachable (CI requires it)")
async def test_a_redis_restored_from_a_snapshot_is_trusted_only_from_its_restart(clock):
    """The snapshot brings back an old epoch, but not the counts made after it was taken (security
    review of issue 12): the server's own uptime bounds what the counters can know."""
    redis = Redis.from_url(REDIS_URL)
    prefix = f"test:{clock.timestamp()}:{id(clock)}:snapshot:"
    uptime = {"seconds": 86400.0}
    _reporting_uptime(redis, uptime)
    try:
        limiter = RateLimiter(FallbackCounters(RedisCounters(redis, prefix=prefix)), clock)
        await redis.set(f"{prefix}epoch", repr(clock.timestamp() - 3 * 86400))  # counting for days
        assert await limiter.history() == 86400  # the server up for a day: trusted
        uptime["seconds"] = 30  # restarted from a snapshot 30 s ago, the old epoch in it
        assert await limiter.history() == 30
    finally:
        await redis.delete(f"{prefix}epoch")
        await redis.aclose()


@pytest.mark.skipif(not REDIS_UP, reason="Redis is not reachable (CI requires it)")
async def test_a_redis_that_refuses_info_is_still_used(clock, caplog):
    """An ACL without @dangerous refuses INFO (second security read): the epoch alone is used, and
    Redis is not mistaken for unreachable."""
    from redis.exceptions import ResponseError

    redis = Redis.from_url(REDIS_URL)
    prefix = f"test:{clock.timestamp()}:{id(clock)}:noinfo:"
    _replacing_info(redis, lambda _info: ResponseError("NOPERM this user has no permissions to run the 'info' command"))
    try:
        counters = FallbackCounters(RedisCounters(redis, prefix=prefix))
        limiter = RateLimiter(counters, clock)
        assert await limiter.history() == 0
        clock.advance(7200)
        assert await limiter.history() == 7200 and counters._up()
        assert "refuses INFO" in caplog.text
    finally:
        await redis.delete(f"{prefix}epoch")
        await redis.aclose()


@pytest.mark.skipif(not REDIS_UP, reason="Redis is not reachable (CI requires it)")
async def test_giving_back_a_count_whose_key_expired_leaves_no_negative_count(clock):
    redis = Redis.from_url(REDIS_URL)
    prefix = f"test:{clock.timestamp()}:{id(clock)}:neg:"
    try:
        counters = RedisCounters(redis, prefix=prefix)
        await counters.decrement("customer:x", 7)
        assert await redis.get(f"{prefix}customer:x:7") is None
        await counters.increment("customer:x", 8, ttl=60)
        await counters.decrement("customer:x", 8)
        assert await redis.get(f"{prefix}customer:x:8") == b"0"
    finally:
        await redis.delete(f"{prefix}customer:x:7", f"{prefix}customer:x:8")
        await redis.aclose()


async def test_a_failed_durable_read_gives_every_count_back(settings, clock, make_api, monkeypatch):
    """Second security read: a 503 from the durable read must not leave the customer at a 429."""
    from pwreset.resets import repository

    services = build_container(settings, clock=clock)
    try:
        api, headers = await _app(services, make_api)
        original = repository.issued_since
        failing = {"left": 1}

        async def flaky(*args, **kwargs):
            if failing["left"]:
                failing["left"] -= 1
                raise ConnectionRefusedError("the database went away")
            return await original(*args, **kwargs)

        monkeypatch.setattr(repository, "issued_since", flaky)
        first = await api.put(f"/v1/customers/{C1}:reset-password", headers=headers, json={"contactMethodId": "101"})
        assert first.status_code == 503, first.text
        again = await api.put(f"/v1/customers/{C1}:reset-password", headers=headers, json={"contactMethodId": "101"})
        assert again.status_code == 204, again.text
    finally:
        await services.close()
