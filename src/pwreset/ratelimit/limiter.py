"""A sliding-window counter (two fixed windows, the previous one weighted by overlap).

Cheap and close enough: at most ``limit`` events are allowed in any window-long span, give or take
the weighting of the previous window (the approach Cloudflare and nginx-style limiters use). The
in-process backend serves a single node; the Redis backend shares counts across nodes and keeps
nothing else (losing it resets counters, never data).

Counters can forget, or never know: in-process counters see one process's sends only and lose them
on a restart; a Redis can die and come back empty or from a snapshot, or not answer. Each backend
says since when its counts are complete (:meth:`RateLimiter.history`: in-process never, Redis since
its epoch and its own start), and a limit that must not forget (the passcode send limits) counts
from its durable record, the database, while they are not (decision 0010). Every Redis call has a
short timeout (``PWRESET_REDIS_TIMEOUT``), and after a failure Redis is left alone for a second, so
a frozen Redis costs one timeout, not one per call.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from pwreset.errors import RateLimited
from pwreset.kit.clock import Clock
from pwreset.ops.metrics import AUTH_FAILURES_REFUSED

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Rule:
    name: str
    limit: int
    window: float  # seconds


class CounterBackend(Protocol):
    async def counts(self, key: str, window_index: int) -> tuple[int, int]:
        """(previous window, current window)."""
        ...

    async def increment(self, key: str, window_index: int, ttl: int) -> int:
        """Count one event; the window's count including it (atomic)."""
        ...

    async def decrement(self, key: str, window_index: int) -> None: ...

    async def complete_since(self, now: float) -> float | None:
        """Since when the counts hold every event of every process (``None``: since this process
        started; ``math.inf``: never)."""
        ...


class MemoryCounters:
    """Counts in this process only (a single node, a laptop, the sandbox)."""

    def __init__(self, max_keys: int = 200_000) -> None:
        self._counts: dict[tuple[str, int], int] = {}
        self.max_keys = max_keys

    async def counts(self, key: str, window_index: int) -> tuple[int, int]:
        return self._counts.get((key, window_index - 1), 0), self._counts.get((key, window_index), 0)

    async def increment(self, key: str, window_index: int, ttl: int) -> int:
        if len(self._counts) >= self.max_keys:
            # Drop windows that can no longer matter; if that frees too little to last a while,
            # start afresh rather than sweeping again on every increment (memory stays bounded).
            self._counts = {k: v for k, v in self._counts.items() if k[1] >= window_index - 1}
            if len(self._counts) >= self.max_keys * 3 // 4:
                self._counts.clear()
        slot = (key, window_index)
        self._counts[slot] = count = self._counts.get(slot, 0) + 1
        return count

    async def decrement(self, key: str, window_index: int) -> None:
        slot = (key, window_index)
        if self._counts.get(slot, 0) > 0:
            self._counts[slot] -= 1

    async def complete_since(self, now: float) -> float | None:
        # Never complete: with several worker processes, or nodes, each counts only its own events,
        # and a restart forgets them all. Limits that must not forget read the database instead.
        return math.inf


class RedisCounters:
    """Counts shared by every node through Redis (INCR with an expiry, read with MGET)."""

    def __init__(self, redis: Redis, prefix: str = "pwreset:rl:") -> None:
        self.redis = redis
        self.prefix = prefix
        self._info = True  # whether INFO is allowed (ACLs may refuse it)

    async def counts(self, key: str, window_index: int) -> tuple[int, int]:
        previous, current = await self.redis.mget(
            f"{self.prefix}{key}:{window_index - 1}", f"{self.prefix}{key}:{window_index}"
        )
        return int(previous or 0), int(current or 0)

    async def increment(self, key: str, window_index: int, ttl: int) -> int:
        name = f"{self.prefix}{key}:{window_index}"
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.incr(name)
            pipe.expire(name, ttl)
            count, _ = await pipe.execute()
        return int(count)

    async def decrement(self, key: str, window_index: int) -> None:
        name = f"{self.prefix}{key}:{window_index}"
        if await self.redis.decr(name) < 0:
            # The window's key had expired or Redis was emptied: DECR made a -1 with no expiry, which
            # would be an extra allowance kept forever. Gone again (a concurrent count may be lost).
            await self.redis.delete(name)

    async def complete_since(self, now: float) -> float:
        """The time this Redis started counting: the first process to find no epoch key sets it, so a
        Redis that restarted empty has a new epoch; and never before the Redis process started, so one
        restarted from a snapshot (which restores an old epoch but not the counts made after it) is
        not trusted for what it missed. Read on every call (one round trip): a cached epoch would
        trust an emptied Redis for as long as the cache lives."""
        name = f"{self.prefix}epoch"
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.set(name, repr(now), nx=True)
            pipe.get(name)
            if self._info:
                pipe.info("server")
            results = await pipe.execute(raise_on_error=False)
        for result in results[:2]:
            if isinstance(result, Exception):
                raise result
        epoch = float(results[1])
        if not self._info:
            return epoch
        server = results[2]
        if isinstance(server, ResponseError):  # INFO refused (an ACL without @dangerous, a renamed command)
            self._info = False
            log.warning("Redis refuses INFO: a Redis restored from a snapshot will not be noticed by the send "
                        "limits (decision 0010); allow INFO to pwreset's Redis user")
            return epoch
        if isinstance(server, Exception):
            raise server
        return max(epoch, now - float(server.get("uptime_in_seconds", 0)))


class FallbackCounters:
    """Redis counters that fall back to this process's own while Redis is unreachable.

    A limit is a safeguard, not a record: when Redis is down each node keeps limiting on its own
    rather than refusing every request or letting every request through.
    """

    #: Seconds Redis is left alone after a failure (then the next call tries it again).
    RETRY_AFTER = 1.0

    def __init__(self, primary: RedisCounters, fallback: MemoryCounters | None = None) -> None:
        self.primary = primary
        self.fallback = fallback or MemoryCounters()
        self._warned_at = 0.0
        self._down_until = 0.0
        self._back_at = 0.0
        #: Set while counting here: the counts since are this process's alone (never complete).
        self._degraded_since: float | None = None

    def _up(self) -> bool:
        return time.monotonic() >= self._down_until

    def _degraded(self, exc: Exception) -> None:
        now = time.monotonic()
        self._down_until = now + self.RETRY_AFTER
        self._degraded_since = self._degraded_since or now
        if now - self._warned_at > 60:
            self._warned_at = now
            log.warning("rate-limit counters fall back to this process: Redis unreachable (%s)", type(exc).__name__)

    async def counts(self, key: str, window_index: int) -> tuple[int, int]:
        if self._up():
            try:
                return await self.primary.counts(key, window_index)
            except (RedisError, OSError) as exc:
                self._degraded(exc)
        return await self.fallback.counts(key, window_index)

    async def increment(self, key: str, window_index: int, ttl: int) -> int:
        if self._up():
            try:
                return await self.primary.increment(key, window_index, ttl)
            except (RedisError, OSError) as exc:
                self._degraded(exc)
        return await self.fallback.increment(key, window_index, ttl)

    async def decrement(self, key: str, window_index: int) -> None:
        if self._up():
            try:
                await self.primary.decrement(key, window_index)
                return
            except (RedisError, OSError) as exc:
                self._degraded(exc)
        await self.fallback.decrement(key, window_index)

    async def complete_since(self, now: float) -> float | None:
        """Redis's epoch; while Redis is down, and for as long after as the windows it missed, never."""
        if self._up():
            try:
                epoch = await self.primary.complete_since(now)
            except (RedisError, OSError) as exc:
                self._degraded(exc)
            else:
                if self._degraded_since is not None:
                    # Events counted here while Redis was away are missing from it: complete only
                    # from the moment it came back.
                    self._degraded_since = None
                    self._back_at = now
                return max(epoch, self._back_at)
        return math.inf


class RateLimiter:
    def __init__(self, backend: CounterBackend, clock: Clock) -> None:
        self.backend = backend
        self.clock = clock
        self._started = clock.timestamp()

    async def history(self) -> float:
        """Seconds the counters have held every event: a rule can trust them once this is at least two
        of its windows (the sliding estimate reads the previous window too). Short after a restart, a
        Redis that lost its counts, or while Redis is unreachable, and always 0 for in-process counters."""
        now = self.clock.timestamp()
        since = await self.backend.complete_since(now)
        start = self._started if since is None else since
        return max(0.0, now - start)

    async def check(self, rule: Rule, subject: str) -> float:
        """Raise :class:`RateLimited` if ``subject`` has used up ``rule``; counts nothing.
        Returns the current estimate (0 when the subject has no events in the window)."""
        estimate, retry_after = await self._estimate(rule, subject)
        if estimate >= rule.limit:
            raise RateLimited(retry_after)
        return estimate

    async def record(self, rule: Rule, subject: str) -> None:
        index = int(self.clock.timestamp() // rule.window)
        await self.backend.increment(f"{rule.name}:{subject}", index, ttl=math.ceil(rule.window * 2) + 1)

    async def consume(self, rule: Rule, subject: str) -> int:
        """Count this event, and take the count back and refuse it if that went over the limit.

        Counting first makes concurrent requests safe: each sees the others' increments (Redis
        INCR is atomic), so a burst cannot all pass a check made before any of them counted. A
        refused event gives its count back, so a customer pressing "resend" does not use up the
        hour's allowance.
        """
        now = self.clock.timestamp()
        index = int(now // rule.window)
        key = f"{rule.name}:{subject}"
        position = await self.backend.increment(key, index, ttl=math.ceil(rule.window * 2) + 1)
        previous, _ = await self.backend.counts(key, index)
        weight = 1.0 - (now - index * rule.window) / rule.window
        # ``position`` is this event's own place in the window (INCR's answer), so concurrent
        # events each see a different count and exactly the ones within the limit pass.
        if previous * weight + position - 1 >= rule.limit:
            await self.backend.decrement(key, index)
            _, retry_after = await self._estimate(rule, subject)
            raise RateLimited(max(1, retry_after))
        return index

    async def release(self, rule: Rule, subject: str, index: int) -> None:
        """Give back an event :meth:`consume` counted in window ``index`` (what it returned), when the
        request it was for was refused later."""
        await self.backend.decrement(f"{rule.name}:{subject}", index)

    async def _estimate(self, rule: Rule, subject: str) -> tuple[float, int]:
        now = self.clock.timestamp()
        index = int(now // rule.window)
        previous, current = await self.backend.counts(f"{rule.name}:{subject}", index)
        elapsed = now - index * rule.window
        weight = 1.0 - elapsed / rule.window
        estimate = previous * weight + current
        if estimate < rule.limit:
            return estimate, 0
        # Seconds until the estimate drops below the limit if nothing more happens.
        if current < rule.limit:  # the previous window's share has to decay (previous > 0 here)
            wait = rule.window * (1 - (rule.limit - current) / previous) - elapsed
        else:  # past the next boundary, this window becomes the decaying one
            wait = (rule.window - elapsed) + rule.window * (1 - rule.limit / current)
        return estimate, max(1, math.ceil(wait))


class FailureGuard:
    """Counts failed authentications per subject and refuses further failures with 429.

    A subject is a shared key (a wrong secret for a known client) or an address (an unknown key, a
    malformed header, an unknown bearer token). It never refuses valid credentials: a stranger
    guessing from a load balancer's address, or sending wrong secrets under a partner's (public)
    shared key, cannot lock that partner out. What it caps is the work and noise a stranger causes:
    past the limit an address's unknown client keys are refused before any lookup (the token
    endpoint checks them against the set of existing keys), and a known key's wrong secrets are
    answered 429. A right secret is still checked and served, which is harmless: secrets and tokens
    carry 256 random bits.
    """

    #: How long an address with no failures is waved through without asking the counters again:
    #: with Redis, at most one round trip per address per second on the token endpoint.
    CLEAN_FOR = 1.0

    def __init__(self, limiter: RateLimiter, rule: Rule) -> None:
        self.limiter = limiter
        self.rule = rule
        self._clean_until: dict[str, float] = {}

    async def refuse_if_over(self, subject: str) -> None:
        """:class:`RateLimited` if ``subject`` is over the limit already (counts nothing; the caller
        that refuses on it counts :func:`refused`)."""
        now = self.limiter.clock.timestamp()
        if self._clean_until.get(subject, 0.0) > now:
            return
        estimate = await self.limiter.check(self.rule, subject)
        if estimate == 0:
            if len(self._clean_until) >= 100_000:
                self._clean_until.clear()
            self._clean_until[subject] = now + self.CLEAN_FOR

    async def failed(self, subject: str) -> None:
        """Count a failure of ``subject``; :class:`RateLimited` instead when it is over the limit."""
        self._clean_until.pop(subject, None)
        try:
            await self.limiter.check(self.rule, subject)
        except RateLimited:
            refused(subject)
            raise
        await self.limiter.record(self.rule, subject)


def refused(subject: str) -> None:
    """Count a request the failed-auth guard refused."""
    AUTH_FAILURES_REFUSED.labels(subject.split(":", 1)[0]).inc()


def address_subject(address: str) -> str:
    return f"address:{address}"


def client_subject(shared_key: str) -> str:
    return f"client:{shared_key}"
