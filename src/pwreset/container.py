"""The service graph of one process, built once from :class:`Settings` (no globals)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

from redis.asyncio import Redis
from sqlalchemy import Table

from pwreset.audit.chain import AuditChain
from pwreset.config import Settings
from pwreset.customers.changes import ContactChanges
from pwreset.customers.service import Directory
from pwreset.db import Database, GroupCommitter
from pwreset.delivery.outbox import Outbox
from pwreset.delivery.providers import ConsoleProvider, build_providers
from pwreset.delivery.rendering import Renderer
from pwreset.delivery.worker import Worker
from pwreset.events.sender import SecurityWebhookSender
from pwreset.events.service import CHANNEL, SecurityEvents
from pwreset.institutions.cache import InstitutionCache
from pwreset.kit.clock import Clock
from pwreset.kit.crypto import KeyedHasher, Sealer
from pwreset.oauth.cache import TokenCache
from pwreset.oauth.directory import CustomerDirectory
from pwreset.oauth.models import Token
from pwreset.oauth.revocation import RevocationFeed
from pwreset.oauth.service import OAuthService
from pwreset.passwords.hashing import PasswordHashing
from pwreset.passwords.policy import PasswordPolicy
from pwreset.portal.service import PortalService
from pwreset.ratelimit.limiter import (
    FailureGuard,
    FallbackCounters,
    MemoryCounters,
    RateLimiter,
    RedisCounters,
    Rule,
)
from pwreset.resets.service import ResetService
from pwreset.resets.simswap import build_checker
from pwreset.web.service import ResetPage


@dataclass
class Container:
    settings: Settings
    db: Database
    clock: Clock
    hasher: KeyedHasher
    redis: Redis | None
    cache: TokenCache
    feed: RevocationFeed
    oauth: OAuthService
    limiter: RateLimiter
    auth_failures: FailureGuard
    hashing: PasswordHashing
    outbox: Outbox
    sink: ConsoleProvider
    worker: Worker
    resets: ResetService
    institutions: InstitutionCache
    portal: PortalService
    audit_chain: AuditChain
    contacts: ContactChanges
    events: SecurityEvents
    webhook_sealer: Sealer
    reset_page: ResetPage

    async def close(self) -> None:
        await self.worker.close()
        await self.resets.simswap.close()
        if self.redis is not None:
            await self.redis.aclose()
        if self.feed.subscriber is not None:
            await self.feed.subscriber.aclose()
        await self.db.dispose()


def build_container(
    settings: Settings, *, clock: Clock | None = None, directory: CustomerDirectory | None = None
) -> Container:
    settings.check_secret_key()
    settings.check_delivery()
    settings.check_portal()
    clock = clock or Clock()
    db = Database(settings.database_url, pool_size=settings.db_pool_size)
    hasher = KeyedHasher(settings.secret_key_bytes, old=settings.old_secret_keys_bytes)
    redis = subscriber = None
    if settings.redis_url:
        timeout = settings.redis_timeout
        redis = Redis.from_url(settings.redis_url, socket_timeout=timeout, socket_connect_timeout=timeout)
        # The revocation channel waits on its socket for as long as nothing is revoked: no read timeout
        # there, but a short connect and a periodic health check.
        subscriber = Redis.from_url(settings.redis_url, socket_connect_timeout=timeout, health_check_interval=30)
    cache = TokenCache(
        bound=settings.revocation_bound,
        max_entries=settings.token_cache_size,
        tombstone_ttl=settings.access_token_ttl + 60,
    )
    feed = RevocationFeed(
        db=db, cache=cache, clock=clock, redis=redis, subscriber=subscriber, retention=settings.access_token_ttl
    )
    hashing = PasswordHashing(
        time_cost=settings.argon2_time_cost, memory_cost=settings.argon2_memory_kib,
        parallelism=settings.argon2_parallelism,
    )
    oauth = OAuthService(
        settings=settings, db=db, hasher=hasher, clock=clock, cache=cache, feed=feed,
        directory=directory or Directory(hashing=hashing, clock=clock, lock_after=settings.login_lock_after),
        token_writer=GroupCommitter(db, cast(Table, Token.__table__)),
    )
    counters = FallbackCounters(RedisCounters(redis)) if redis is not None else MemoryCounters()
    limiter = RateLimiter(counters, clock)
    auth_failures = FailureGuard(
        limiter, Rule("auth-failures", settings.auth_failure_limit, settings.auth_failure_window)
    )
    outbox = Outbox(
        sealer=Sealer(settings.secret_key_bytes, purpose="outbox", old=settings.old_secret_keys_bytes), clock=clock
    )
    sink = ConsoleProvider(reveal=settings.sandbox)
    institutions = InstitutionCache(db=db, clock=clock)
    audit_chain = AuditChain(db=db, hasher=hasher, clock=clock)
    events = SecurityEvents(outbox=outbox, institutions=institutions, clock=clock)
    webhook_sealer = Sealer(
        settings.secret_key_bytes, purpose="institution-webhook", old=settings.old_secret_keys_bytes
    )
    providers = {
        **build_providers(settings, sink),
        CHANNEL: SecurityWebhookSender(db=db, sealer=webhook_sealer, timeout=settings.security_webhook_timeout),
    }
    resets = ResetService(
        settings=settings, db=db, clock=clock, hasher=hasher, limiter=limiter, outbox=outbox, oauth=oauth,
        hashing=hashing, policy=PasswordPolicy(hashing=hashing), institutions=institutions, events=events,
        simswap=build_checker(settings),
    )
    return Container(
        settings=settings, db=db, clock=clock, hasher=hasher, redis=redis, cache=cache, feed=feed, oauth=oauth,
        limiter=limiter, auth_failures=auth_failures, hashing=hashing, outbox=outbox, sink=sink,
        worker=Worker(
            settings=settings, db=db, outbox=outbox, renderer=Renderer(db=db, clock=clock), institutions=institutions,
            providers=providers, clock=clock, audit_chain=audit_chain, events=events,
        ),
        resets=resets, institutions=institutions,
        portal=PortalService(
            settings=settings, clock=clock, hasher=hasher, hashing=hashing, policy=PasswordPolicy(hashing=hashing),
            outbox=outbox, oauth=oauth, limiter=limiter,
            sealer=Sealer(settings.secret_key_bytes, purpose="portal-totp", old=settings.old_secret_keys_bytes),
        ),
        audit_chain=audit_chain, events=events, webhook_sealer=webhook_sealer,
        contacts=ContactChanges(outbox=outbox, events=events, limiter=limiter, clock=clock),
        reset_page=ResetPage(
            settings=settings, db=db, clock=clock, hasher=hasher, limiter=limiter, resets=resets,
            policy=resets.policy,
            sealer=Sealer(settings.secret_key_bytes, purpose="reset-page-ticket", old=settings.old_secret_keys_bytes),
        ),
    )
