"""Velocity limits: what one partner application, and one institution, may do across the directory.

The per-customer and per-destination limits (service.py) stop a caller hammering one customer. These
stop one that spreads out: a stolen partner key that sends a passcode to every customer (SMS and
voice pumping bills the institution), or guesses a few codes for each (account takeover at scale).

- Sends: per client and per institution, per minute and per hour, counted before the send and
  given back when the request is refused afterwards (a customer's own limit), so refusals cost no
  allowance.
- Verifications: wrong passcodes per client and per institution per hour. Each verification is
  counted as wrong before it is checked (atomically, so a burst of concurrent guesses cannot pass
  the limit together) and given back when the answer was right or never compared; only wrong
  answers stay counted, so honest traffic (which mostly gets its code right) never meets the limit.

A limit that trips answers 429 (``UXU_40029`` with ``Retry-After``), counts
``pwreset_velocity_limited_total{limit}`` and writes one ``velocity.limited`` audit event per subject
and window (a refused send's in its own transaction, since a send commits nothing when refused; a
refused verification's in the caller's unit of work, which commits refusals).
"""

from __future__ import annotations

import logging

from sqlalchemy.ext.asyncio import AsyncSession

from pwreset.audit import service as audit
from pwreset.config import Settings
from pwreset.db import Database
from pwreset.errors import RateLimited
from pwreset.kit.clock import Clock
from pwreset.ops.metrics import VELOCITY_LIMITED
from pwreset.ratelimit.limiter import RateLimiter, Rule

log = logging.getLogger(__name__)

#: What was counted: (rule, subject, window index), for :meth:`Velocity.release`.
Consumed = list[tuple[Rule, str, int]]


class Velocity:
    def __init__(self, *, settings: Settings, limiter: RateLimiter, db: Database, clock: Clock) -> None:
        self.limiter = limiter
        self.db = db
        self.clock = clock
        self.client_sends = (
            Rule("client-send-minute", settings.client_send_limit_minute, 60),
            Rule("client-send-hour", settings.client_send_limit_hour, 3600),
        )
        self.institution_sends = (
            Rule("institution-send-minute", settings.institution_send_limit_minute, 60),
            Rule("institution-send-hour", settings.institution_send_limit_hour, 3600),
        )
        self.client_failures = Rule("client-verify-failures", settings.client_verify_failure_limit, 3600)
        self.institution_failures = Rule(
            "institution-verify-failures", settings.institution_verify_failure_limit, 3600
        )
        self._reported: set[tuple[str, str, int]] = set()

    def _subjects(self, client_id: str | None, institution_id: str, client: tuple[Rule, ...],
                  institution: tuple[Rule, ...], institution_wide: bool = True) -> list[tuple[Rule, str]]:
        pairs = [(rule, f"institution:{institution_id}") for rule in institution] if institution_wide else []
        if client_id is not None:
            pairs = [(rule, f"client:{client_id}") for rule in client] + pairs
        return pairs

    async def consume_send(self, *, client_id: str | None, institution_id: str,
                           institution_wide: bool = True) -> Consumed:
        """Count one send against every limit; what was counted, for :meth:`release`."""
        return await self._consume(
            self._subjects(client_id, institution_id, self.client_sends, self.institution_sends, institution_wide),
            client_id, institution_id, session=None,
        )

    async def reserve_verify(self, session: AsyncSession, *, client_id: str | None, institution_id: str,
                             institution_wide: bool = True) -> Consumed:
        """Count a verification as a wrong answer before it is checked, atomically (concurrent guesses
        each see the others' counts), and refuse it over the limit; the caller gives the count back
        (:meth:`release`) unless the answer was wrong. The audit event of a refusal goes into
        ``session``, the caller's unit of work, which commits refusals."""
        return await self._consume(
            self._subjects(client_id, institution_id, (self.client_failures,), (self.institution_failures,),
                           institution_wide),
            client_id, institution_id, session=session,
        )

    async def _consume(
        self, pairs: list[tuple[Rule, str]], client_id: str | None, institution_id: str,
        *, session: AsyncSession | None,
    ) -> Consumed:
        consumed: Consumed = []
        for rule, subject in pairs:
            try:
                index = await self.limiter.consume(rule, subject)
            except RateLimited:
                await self.release(consumed)
                await self._tripped(rule, subject, client_id, institution_id, session=session)
                raise
            consumed.append((rule, subject, index))
        return consumed

    async def release(self, consumed: Consumed) -> None:
        for rule, subject, index in consumed:
            await self.limiter.release(rule, subject, index)

    async def _tripped(
        self, rule: Rule, subject: str, client_id: str | None, institution_id: str,
        *, session: AsyncSession | None = None,
    ) -> None:
        VELOCITY_LIMITED.labels(rule.name).inc()
        window = int(self.clock.timestamp() // rule.window)
        key = (rule.name, subject, window)
        if key in self._reported:
            return
        if len(self._reported) > 10_000:
            self._reported.clear()
        self._reported.add(key)
        log.warning("velocity limit %s reached (%d per %ds)", rule.name, rule.limit, int(rule.window))
        if session is not None:
            await self._audit(session, rule, client_id, institution_id)
            return
        async with self.db.transaction() as own:
            await self._audit(own, rule, client_id, institution_id)

    async def _audit(self, session: AsyncSession, rule: Rule, client_id: str | None, institution_id: str) -> None:
        await audit.record_event(
            session, clock=self.clock, event_type="velocity.limited", outcome=rule.name,
            institution_id=institution_id, client_id=client_id,
            details={"limit": rule.limit, "windowSeconds": int(rule.window)},
        )
