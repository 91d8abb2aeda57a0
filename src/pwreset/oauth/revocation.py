"""Revocation that reaches every node within a bound, without a database read per request.

Each revocation writes a row to ``token_revocations`` in the caller's transaction (so it lands with
the revocation itself, or not at all) and, once committed, is applied to this process's cache at
once. Every process reads the log in the background at least every ``bound / 2`` seconds; when
Redis is configured, a commit also publishes a wake-up on a Redis channel so the other nodes read
the log within milliseconds. Redis only hurries things along: the log in the database is the one
copy, so a lost message costs latency, never correctness. A node that cannot read the log stops
trusting its cache after ``bound`` (see ``cache.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime, timedelta

from redis.asyncio import Redis
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from pwreset.db import Database, on_commit
from pwreset.kit.clock import Clock
from pwreset.oauth.cache import TokenCache
from pwreset.oauth.models import TokenRevocation

log = logging.getLogger(__name__)

CHANNEL = "pwreset:revocations"
#: How long after its timestamp a revocation row may still become visible (a slow commit).
COMMIT_MARGIN = 30.0
PRUNE_EVERY = 60.0


class RevocationFeed:
    def __init__(
        self, *, db: Database, cache: TokenCache, clock: Clock, redis: Redis | None, retention: float,
        subscriber: Redis | None = None,
    ) -> None:
        self.db = db
        self.cache = cache
        self.clock = clock
        self.redis = redis
        #: The client the channel is read with (no read timeout); ``redis`` publishes.
        self.subscriber = subscriber or redis
        self.retention = retention
        self.interval = cache.bound / 2
        self._since: float | None = None
        self._last_prune = 0.0
        self._wake = asyncio.Event()
        self._publish = asyncio.Event()
        self._stopping = asyncio.Event()

    async def record(self, session: AsyncSession, *, kind: str, key: str) -> None:
        """Log a revocation in the caller's transaction; apply it here once that commits."""
        at = self.clock.now()
        session.add(TokenRevocation(kind=kind, key=key, created_at=at))
        ts = at.timestamp()

        def committed() -> None:
            self.cache.apply(kind, key, ts)
            self._publish.set()

        on_commit(session, committed)

    async def poll_once(self) -> int:
        """Apply every revocation logged since the last read (with a margin for slow commits)."""
        started = self.clock.timestamp()
        since = (self._since if self._since is not None else started - self.retention) - COMMIT_MARGIN
        async with self.db.reading() as session:
            rows = (
                await session.execute(
                    select(TokenRevocation.kind, TokenRevocation.key, TokenRevocation.created_at).where(
                        TokenRevocation.created_at >= datetime.fromtimestamp(since, UTC)
                    )
                )
            ).all()
        for kind, key, created_at in rows:
            self.cache.apply(kind, key, created_at.timestamp())
        self._since = started
        self.cache.mark_fresh(started)
        if started - self._last_prune >= PRUNE_EVERY:
            self._last_prune = started
            await self._prune(started)
        return len(rows)

    async def _prune(self, now: float) -> None:
        self.cache.expire_tombstones(now)
        horizon = self.clock.now() - timedelta(seconds=self.retention + COMMIT_MARGIN)
        async with self.db.transaction() as session:
            await session.execute(delete(TokenRevocation).where(TokenRevocation.created_at < horizon))

    async def run(self) -> None:
        """Background loop for the life of the process."""
        tasks = [asyncio.create_task(self._poll_loop(), name="revocations-poll")]
        if self.redis is not None:
            tasks.append(asyncio.create_task(self._subscribe_loop(), name="revocations-subscribe"))
            tasks.append(asyncio.create_task(self._publish_loop(), name="revocations-publish"))
        try:
            await self._stopping.wait()
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    def stop(self) -> None:
        self._stopping.set()

    async def _poll_loop(self) -> None:
        while True:
            try:
                await self.poll_once()
            except Exception as exc:  # keep going; the cache stops trusting itself after `bound`
                log.warning("cannot read the revocation log: %s", type(exc).__name__)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.interval)

    async def _subscribe_loop(self) -> None:
        assert self.subscriber is not None
        backoff = 0.1
        while True:
            try:
                async with self.subscriber.pubsub() as pubsub:
                    await pubsub.subscribe(CHANNEL)
                    backoff = 0.1
                    async for message in pubsub.listen():
                        if message.get("type") == "message":
                            self._wake.set()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("revocation channel lost (%s); retrying", type(exc).__name__)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.interval)

    async def _publish_loop(self) -> None:
        assert self.redis is not None
        while True:
            await self._publish.wait()
            self._publish.clear()
            try:
                await self.redis.publish(CHANNEL, "1")
            except Exception as exc:  # the poll still carries it within the bound
                log.warning("cannot publish a revocation wake-up: %s", type(exc).__name__)
