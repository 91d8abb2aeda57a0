"""The reset flow (contract 6.2 to 6.4, OWASP Forgot Password Cheat Sheet).

1. ``request_reset``: checks in the contract's order, rate limits per customer and per destination,
   a new passcode (superseding the last) and its message, in one transaction shared with the other
   requests of the moment (group commit, decision 0006).
2. ``verify_passcode``: constant-time comparison; 5 wrong tries end a passcode, 20 wrong in a row
   across passcodes within 24 h suspend resets for the customer; a right one becomes a single-use
   reset ticket bound to the customer and that passcode.
3. ``set_password``: the ticket, the password policy, the new argon2id hash; then every token of the
   customer revoked, the lock cleared, a "password changed" notice queued.

Every step writes an audit event with institution, client, customer, contact method, correlation id
and outcome, never the passcode or the full destination. Refusals keep their bookkeeping (tries,
counts, audit): the caller commits before answering.
"""

from __future__ import annotations

import math
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from pwreset.audit import service as audit
from pwreset.config import Settings
from pwreset.customers.contact import PHONE_PROTOCOLS
from pwreset.customers.models import ContactMethod, Customer
from pwreset.customers.service import DirectoryEntry, MethodEntry
from pwreset.db import Database, GroupCommit
from pwreset.delivery.outbox import Message, Outbox, notify
from pwreset.errors import RateLimited
from pwreset.events.service import SecurityEvents
from pwreset.institutions.cache import InstitutionCache, InstitutionSettings
from pwreset.institutions.models import Institution
from pwreset.kit.clock import Clock
from pwreset.kit.crypto import KeyedHasher, new_id, new_secret
from pwreset.oauth.service import OAuthService
from pwreset.passwords.hashing import PasswordHashing
from pwreset.passwords.policy import FACTOR_MIN_LENGTH, HISTORY, PasswordPolicy, context_words
from pwreset.ratelimit.limiter import RateLimiter, Rule
from pwreset.resets import repository
from pwreset.resets.errors import (
    CoolingOff,
    CustomerInactive,
    DestinationChanged,
    DisclosureNotAccepted,
    InvalidTicket,
    MethodNotActivated,
    NoPasscode,
    NotRegistered,
    PasscodeExhausted,
    PasscodeExpired,
    PasscodeSuperseded,
    PasscodeUsed,
    PasscodeWrong,
    PasswordRefused,
    ProtocolMismatch,
    SameChannel,
    SecondChannelUnavailable,
    SimSwapCheckUnavailable,
    SimSwapped,
    UnknownContactMethod,
)
from pwreset.resets.models import Passcode, ResetTicket
from pwreset.resets.simswap import CHECKS, NullSimSwap, SimSwapChecker, SimSwapUnavailable
from pwreset.resets.velocity import Velocity

TICKET_PREFIX = "pwr_rst_"
H_PASSCODE = "passcode"
H_TICKET = "reset-ticket"


@dataclass(frozen=True)
class Actor:
    """Who asked, for the audit trail."""

    client_id: str | None
    correlation_id: str | None
    #: Whether the institution-wide velocity limits count this caller too (the hosted reset page has its
    #: own budget, so that strangers there cannot use up the institution's partners': decision 0013).
    institution_wide: bool = True


@dataclass
class _Guess:
    """Whether a verification turned out a wrong answer (its velocity count then stays)."""

    wrong: bool = False


@dataclass(frozen=True)
class Ticket:
    value: str
    expires_in: int


@dataclass(frozen=True)
class SecondChannelNeeded:
    """Two-channel assurance: this passcode was right, and a second, on another channel, is needed."""

    verified_method_id: str | None
    other_method_ids: list[str]
    expires_in: int


def every_destination(methods: list[ContactMethod]) -> list[ContactMethod]:
    """One activated method per destination: a number on file for SMS and VOICE gets the text once."""
    chosen: dict[str, ContactMethod] = {}
    for method in methods:
        if not method.activated:
            continue
        held = chosen.get(method.destination)
        if held is None or (held.protocol == "VOICE" and method.protocol == "SMS"):
            chosen[method.destination] = method
    return list(chosen.values())


class ResetService:
    def __init__(
        self,
        *,
        settings: Settings,
        db: Database,
        clock: Clock,
        hasher: KeyedHasher,
        limiter: RateLimiter,
        outbox: Outbox,
        oauth: OAuthService,
        hashing: PasswordHashing,
        policy: PasswordPolicy,
        institutions: InstitutionCache | None = None,
        events: SecurityEvents | None = None,
        simswap: SimSwapChecker | None = None,
    ) -> None:
        self.settings = settings
        self.institutions = institutions
        self.events = events
        self.simswap = simswap or NullSimSwap()
        self.clock = clock
        self.hasher = hasher
        self.limiter = limiter
        self.outbox = outbox
        self.oauth = oauth
        self.hashing = hashing
        self.policy = policy
        self.db = db
        self.requests = GroupCommit(self._write_requested)
        self.send_rules = (
            Rule("send-short", settings.send_limit_short, 60),
            Rule("send-long", settings.send_limit_long, 3600),
        )
        self.velocity = Velocity(settings=settings, limiter=limiter, db=db, clock=clock)
        #: Carrier SIM-swap checks per number (each a paid call): a retry loop cannot run up the bill.
        self.sim_check_rule = Rule("sim-check", 10, 3600)

    # 6.2

    async def request_reset(
        self,
        *,
        entry: DirectoryEntry,
        contact_method_id: str,
        protocol: str | None,
        actor: Actor,
    ) -> None:
        """Checks on a directory snapshot, then the writes through a group commit (decision 0006):
        the passcode, its sealed message and the audit event are committed before this returns."""
        method = next((m for m in entry.methods if m.method_id == contact_method_id), None)
        if method is None:
            raise UnknownContactMethod()
        if protocol is not None and protocol.upper() != method.protocol:
            raise ProtocolMismatch()
        if not method.activated:
            raise MethodNotActivated()
        if not entry.registered:
            raise NotRegistered()
        if not entry.accepted_disclosure:
            raise DisclosureNotAccepted()
        if not entry.active:
            raise CustomerInactive()
        now = self.clock.now()
        if entry.reset_blocked_until is not None and entry.reset_blocked_until > now:
            raise CoolingOff()
        institution = await self.institutions.get(entry.institution_id) if self.institutions is not None else None
        destination_hash = self.hasher.digest("destination", await self._destination_key(entry.institution_id,
                                                                                      method.destination))
        if institution is not None:
            await self._recovery_rules(entry, method, institution, actor, now)
        consumed = await self.velocity.consume_send(client_id=actor.client_id, institution_id=entry.institution_id,
                                                    institution_wide=actor.institution_wide)
        subjects = (f"customer:{entry.pk}", f"destination:{destination_hash}")
        try:
            for rule in self.send_rules:
                for subject in subjects:
                    consumed.append((rule, subject, await self.limiter.consume(rule, subject)))
            await self._durable_send_limits(entry.pk, destination_hash)
        except BaseException:  # refused, or the durable read failed: nothing was sent, the counts go back
            await self.velocity.release(consumed)
            raise
        checked: dict[str, Any] = {}
        if institution is not None and institution.sim_swap_check and method.protocol in PHONE_PROTOCOLS:
            # After the limits, before anything is written. A refusal sent nothing: the send counts go back
            # (email stays open at once), and the carrier's checks have a limit of their own.
            try:
                await self.limiter.consume(self.sim_check_rule, f"destination:{destination_hash}")
                checked = await self._check_sim(entry, method, institution, actor)
            except BaseException:
                await self.velocity.release(consumed)
                raise

        ttl = self.settings.passcode_ttl(method.protocol)
        code = "".join(secrets.choice(self.settings.passcode_alphabet) for _ in range(self.settings.passcode_length))
        passcode_id = new_id()
        expires_at = now + timedelta(seconds=ttl)
        message = Message(
            institution_id=entry.institution_id, kind="passcode", channel=method.protocol,
            destination=method.destination, language=entry.language,
            variables={"code": code, "minutes": ttl // 60}, customer_pk=entry.pk,
            customer_id=entry.customer_id, contact_method_id=method.method_id, client_id=actor.client_id,
            correlation_id=actor.correlation_id, not_after=expires_at,
        )
        try:
            await self.requests.submit(
                repository.RequestedReset(
                    customer_pk=entry.pk, at=now,
                    passcode={
                        "id": passcode_id, "institution_id": entry.institution_id, "customer_pk": entry.pk,
                        "contact_method_pk": method.pk, "protocol": method.protocol,
                        "destination_hash": destination_hash,
                        "code_hash": self._code_hash(passcode_id, code), "status": "active", "attempts": 0,
                        "created_at": now, "expires_at": expires_at, "used_at": None,
                    },
                    message=self.outbox.row(message),
                    event=audit.event_row(
                        clock=self.clock, event_type="reset.requested", outcome="passcode_queued",
                        institution_id=entry.institution_id, client_id=actor.client_id, customer_id=entry.customer_id,
                        correlation_id=actor.correlation_id,
                        details={"contactMethodId": method.method_id, "protocol": method.protocol, **checked},
                    ),
                )
            )
        except Exception:
            # Not written (the customer went away under the lock, the database is down): the counts go
            # back. Not on cancellation (the caller hung up): the group commit may still write it.
            await self.velocity.release(consumed)
            raise

    async def _recovery_rules(
        self, entry: DirectoryEntry, method: MethodEntry, institution: InstitutionSettings, actor: Actor,
        now: datetime,
    ) -> None:
        """Issue 14's refusals before a passcode: a destination inside its cool-off after a change, and,
        with two-channel assurance, a customer with one destination or a second passcode to the first's."""
        cooloff = institution.contact_cooloff if institution.contact_cooloff is not None else \
            self.settings.contact_cooloff
        if method.changed_at is not None and now - method.changed_at < timedelta(seconds=cooloff):
            await self._refused(entry, method, actor, "destination_changed")
            raise DestinationChanged()
        if institution.recovery_assurance != "two_channel":
            return
        if len({m.destination for m in entry.methods if m.activated}) < 2:
            raise SecondChannelUnavailable()
        async with self.db.reading() as session:
            waiting = await repository.pending_first(
                session, customer_pk=entry.pk, since=now - timedelta(seconds=self.settings.two_channel_window)
            )
        where = {m.pk: m.destination for m in entry.methods}
        if any(where.get(p.contact_method_pk) == method.destination for p in waiting):
            raise SameChannel()

    async def _check_sim(
        self, entry: DirectoryEntry, method: MethodEntry, institution: InstitutionSettings, actor: Actor
    ) -> dict[str, Any]:
        """Ask the carrier whether the number's SIM was swapped within the institution's max age."""
        checker = self.simswap.name
        try:
            swapped = await self.simswap.swapped(method.destination, max_age_hours=institution.sim_swap_max_age)
        except SimSwapUnavailable as error:
            CHECKS.labels("unavailable").inc()
            if self.settings.sim_swap_failure == "closed":
                await self._refused(entry, method, actor, "sim_swap_unavailable",
                                    details={"checker": checker, "reason": str(error)[:200]})
                raise SimSwapCheckUnavailable() from None
            return {"simSwap": "unchecked_failed_open", "checker": checker}
        if swapped:
            CHECKS.labels("swapped").inc()
            await self._refused(entry, method, actor, "sim_swapped", security_event="sim_swap.refused",
                                details={"checker": checker, "maxAgeHours": institution.sim_swap_max_age})
            raise SimSwapped()
        CHECKS.labels("not_swapped").inc()
        return {"simSwap": "not_swapped", "checker": checker}

    async def _refused(
        self, entry: DirectoryEntry, method: MethodEntry, actor: Actor, outcome: str, *,
        security_event: str | None = None, details: dict[str, Any] | None = None,
    ) -> None:
        """A refusal a fraud team wants to see: audited (and told to the institution) in its own transaction."""
        info = {"contactMethodId": method.method_id, "protocol": method.protocol, **(details or {})}
        async with self.db.transaction() as session:
            await audit.record_event(
                session, clock=self.clock, event_type="reset.refused", outcome=outcome,
                institution_id=entry.institution_id, client_id=actor.client_id, customer_id=entry.customer_id,
                correlation_id=actor.correlation_id, details=info,
            )
            if security_event is not None and self.events is not None:
                await self.events.emit(
                    session, entry.institution_id, security_event, customer_id=entry.customer_id,
                    client_id=actor.client_id, correlation_id=actor.correlation_id, data=info,
                )

    async def _destination_key(self, institution_id: str, destination: str) -> str:
        """What the per-destination limit counts by: the destination, across institutions (one phone is one
        phone whoever sends to it), except in a portal organisation's sandbox, whose demo destinations are
        fictional and shared by every organisation: there they count per institution, so one developer's
        testing cannot use up another's allowance."""
        if self.institutions is not None and (await self.institutions.get(institution_id)).sandbox:
            return f"{institution_id}\x00{destination}"
        return destination

    async def _durable_send_limits(self, customer_pk: str, destination_hash: str) -> None:
        """The send limits, counted from the passcodes the database issued, whenever the counters may
        have forgotten some (a restart, a Redis that died or does not answer: decision 0010). The
        passcodes are the record that cannot forget; in steady state this costs nothing."""
        history = await self.limiter.history()
        untrusted = [rule for rule in self.send_rules if history < 2 * rule.window]
        if not untrusted:
            return
        now = self.clock.now()
        longest = max(rule.window for rule in untrusted)
        issued = await repository.issued_since(
            self.db, customer_pk=customer_pk, destination_hash=destination_hash, since=now - timedelta(seconds=longest)
        )
        for rule in untrusted:
            start = now - timedelta(seconds=rule.window)
            for times in issued:
                within = [at for at in times if at > start]
                if len(within) >= rule.limit:
                    # Free again when the oldest of the last ``limit`` sends leaves the window.
                    oldest = within[-rule.limit]
                    raise RateLimited(math.ceil((oldest - start).total_seconds()))

    async def _write_requested(self, batch: list[repository.RequestedReset]) -> None:
        async with self.db.engine.begin() as conn:
            await repository.write_requested(conn, batch)
            await notify(conn)
        self.outbox.committed([reset.message["channel"] for reset in batch])

    # 6.3

    async def verify_passcode(
        self, session: AsyncSession, *, customer: Customer, code: str, actor: Actor
    ) -> Ticket | SecondChannelNeeded:
        now = self.clock.now()
        if not customer.active:  # deactivated since the passcode was sent
            raise CustomerInactive()
        if customer.reset_blocked_until is not None and customer.reset_blocked_until > now:
            raise CoolingOff()
        reserved = await self.velocity.reserve_verify(
            session, client_id=actor.client_id, institution_id=customer.institution_id,
            institution_wide=actor.institution_wide,
        )
        guess = _Guess()
        try:
            return await self._verify(session, customer=customer, code=code, actor=actor, now=now, guess=guess)
        finally:
            if not guess.wrong:  # a right answer, or one never compared, gives the count back
                await self.velocity.release(reserved)

    async def _verify(
        self, session: AsyncSession, *, customer: Customer, code: str, actor: Actor, now: datetime, guess: _Guess
    ) -> Ticket | SecondChannelNeeded:
        recent = await repository.latest_passcodes(session, customer_pk=customer.id)
        if not recent:
            raise NoPasscode()
        latest = recent[0]
        right = self._matches(latest, code)
        if not right and any(p.status == "superseded" and self._matches(p, code) for p in recent[1:]):
            raise PasscodeSuperseded()
        if latest.status == "used":
            raise PasscodeUsed()
        if latest.status == "exhausted":
            raise PasscodeExhausted()
        if latest.expires_at <= now or latest.status in ("superseded", "voided"):
            raise PasscodeExpired()  # (or ended with nothing newer: a contact change, a lock)
        if right:
            if not await repository.claim(session, passcode_id=latest.id, at=now):
                raise PasscodeUsed()  # a concurrent request won it
            first: Passcode | None = None
            if await self._two_channel(session, customer.institution_id):
                window = self.settings.two_channel_window
                waiting = await repository.pending_first(
                    session, customer_pk=customer.id, since=now - timedelta(seconds=window), exclude=latest.id
                )
                # Two channels are two destinations (SMS and VOICE to one number are one), compared as the
                # customer's methods hold them: a hash would differ across a key rotation.
                where = {m.id: m.destination for m in customer.contact_methods}
                here = where.get(latest.contact_method_pk)
                first = next((p for p in waiting if where.get(p.contact_method_pk) not in (None, here)), None)
                if first is None:  # the first channel of two: no ticket yet, and the run of failures stays:
                    # one channel alone must not wipe the wrong guesses made at the other
                    await session.flush()
                    await self._audit(session, "passcode.verified", "first_channel", customer, actor, passcode=latest)
                    others = [
                        m.method_id for m in customer.contact_methods
                        if m.activated and (here is None or m.destination != here)
                    ]
                    verified = next((m.method_id for m in customer.contact_methods
                                     if m.id == latest.contact_method_pk), None)
                    return SecondChannelNeeded(verified, others, window)
            customer.failed_reset_count = 0
            customer.reset_failures_since = None
            ticket = new_secret(TICKET_PREFIX)
            session.add(
                ResetTicket(
                    id=new_id(), institution_id=customer.institution_id, customer_pk=customer.id,
                    passcode_id=latest.id, first_passcode_id=first.id if first is not None else None,
                    ticket_hash=self.hasher.digest(H_TICKET, ticket), created_at=now,
                    expires_at=now + timedelta(seconds=self.settings.reset_ticket_ttl),
                )
            )
            await session.flush()
            await self._audit(session, "passcode.verified", "success", customer, actor, passcode=latest,
                              details={"channels": 2} if first is not None else None)
            return Ticket(ticket, self.settings.reset_ticket_ttl)
        guess.wrong = True
        tries = await repository.count_wrong_try(
            session, passcode_id=latest.id, max_attempts=self.settings.passcode_max_attempts
        )
        if tries is None:
            raise PasscodeExhausted()
        failures = await repository.count_reset_failure(
            session, customer_pk=customer.id, now=now,
            window_start=now - timedelta(seconds=self.settings.reset_failure_window),
        )
        await self._audit(
            session, "passcode.failed", "wrong", customer, actor, passcode=latest,
            details={"tries": tries, "consecutiveFailures": failures},
        )
        await self._event(session, customer, actor, "passcode.failed",
                          {"tries": tries, "consecutiveFailures": failures})
        if failures >= self.settings.reset_failure_limit and not (
            customer.reset_blocked_until is not None and customer.reset_blocked_until > now
        ):
            customer.reset_blocked_until = now + timedelta(seconds=self.settings.reset_cooloff)
            await repository.supersede_active(session, customer_pk=customer.id)
            await session.flush()
            await self._audit(session, "reset.locked", "cooling_off", customer, actor, passcode=latest)
            await self._event(session, customer, actor, "reset.suspended",
                              {"until": customer.reset_blocked_until.isoformat()})
            raise CoolingOff()
        if tries >= self.settings.passcode_max_attempts:
            raise PasscodeExhausted()
        raise PasscodeWrong()

    # 6.4

    async def set_password(
        self,
        session: AsyncSession,
        *,
        customer: Customer,
        institution: Institution,
        ticket: str,
        new_password: str,
        actor: Actor,
    ) -> None:
        now = self.clock.now()
        await repository.lock_customer(session, customer_pk=customer.id)  # sign-ins wait for the reset
        if not customer.active:
            raise CustomerInactive()
        found = await repository.ticket_by_hash(session, hashes=self.hasher.digests(H_TICKET, ticket))
        if found is None or found.customer_pk != customer.id or found.used_at is not None or found.expires_at <= now:
            raise InvalidTicket()
        if found.first_passcode_id is None and institution.recovery_assurance == "two_channel":
            raise InvalidTicket()  # issued on one channel, before the institution asked for two
        reasons = self.policy.reasons(
            new_password, login_id=customer.login_id, current_hash=customer.password_hash,
            min_length=self.min_password_length(institution),
            context=context_words(institution.name, institution.id, customer.first_name, customer.last_name),
            previous_hashes=await repository.password_history(session, customer_pk=customer.id, limit=HISTORY),
        )
        if reasons:
            await self._audit(
                session, "reset.password_refused", "policy", customer, actor, details={"reasons": len(reasons)}
            )
            raise PasswordRefused(reasons)
        if not await repository.spend_ticket(session, ticket_id=found.id, at=now):
            raise InvalidTicket()
        await repository.void_tickets(session, customer_pk=customer.id, at=now)  # any older ones too
        customer.password_hash = self.hashing.hash(new_password)
        await repository.remember_password(
            session, customer_pk=customer.id, password_hash=customer.password_hash, at=now, keep=HISTORY
        )
        customer.password_changed_at = now
        customer.locked = False
        customer.failed_login_count = 0
        customer.failed_reset_count = 0
        customer.reset_failures_since = None
        customer.updated_at = now
        await session.flush()
        await self.oauth.revoke_customer_tokens(
            session, institution_id=customer.institution_id, customer_id=customer.customer_id
        )
        passcode = await session.get(Passcode, found.passcode_id)
        method = next(
            (m for m in customer.contact_methods if passcode is not None and m.id == passcode.contact_method_pk), None
        )
        notified = every_destination(customer.contact_methods)
        for notice in notified:  # NIST SP 800-63B-4 section 4.6: every address on file hears of it
            await self._queue(session, "password_changed", customer, notice, actor)
        await self._audit(session, "reset.completed", "password_changed", customer, actor, method,
                          details={"notified": len(notified)})
        await self._event(session, customer, actor, "reset.completed", {"notified": len(notified)})

    def min_password_length(self, institution: Institution) -> int:
        """The institution's own minimum, or what its password guards alone or with another factor."""
        return max(institution.min_password_length or self.settings.min_password_length,
                   FACTOR_MIN_LENGTH.get(institution.password_factor, FACTOR_MIN_LENGTH["single"]))

    # helpers

    async def _queue(
        self,
        session: AsyncSession,
        kind: str,
        customer: Customer,
        method: ContactMethod,
        actor: Actor,
        *,
        not_after: datetime | None = None,
    ) -> None:
        await self.outbox.enqueue(
            session,
            Message(
                institution_id=customer.institution_id, kind=kind, channel=method.protocol,
                destination=method.destination, language=customer.language, customer_pk=customer.id,
                customer_id=customer.customer_id, contact_method_id=method.method_id, client_id=actor.client_id,
                correlation_id=actor.correlation_id, not_after=not_after,
            ),
        )

    async def _two_channel(self, session: AsyncSession, institution_id: str) -> bool:
        """Read in the caller's transaction, not through the cache: on SQLite a second connection would
        wait for this one's write lock whenever the cache had to read."""
        assurance = await session.scalar(select(Institution.recovery_assurance).where(Institution.id == institution_id))
        return assurance == "two_channel"

    async def _event(
        self, session: AsyncSession, customer: Customer, actor: Actor, event_type: str, data: dict[str, Any]
    ) -> None:
        if self.events is not None:
            await self.events.emit(
                session, customer.institution_id, event_type, customer_id=customer.customer_id,
                client_id=actor.client_id, correlation_id=actor.correlation_id, data=data,
            )

    async def code_matches(self, session: AsyncSession, *, customer: Customer, code: str) -> bool:
        """Whether ``code`` is the customer's live passcode, counting nothing (the hosted page asks before it
        answers a flow whose last send it hid: decision 0013)."""
        recent = await repository.latest_passcodes(session, customer_pk=customer.id)
        if not recent or recent[0].status != "active" or recent[0].expires_at <= self.clock.now():
            return False
        return self._matches(recent[0], code)

    def _code_hash(self, passcode_id: str, code: str) -> str:
        return self.hasher.digest(H_PASSCODE, f"{passcode_id}:{code}")

    def _matches(self, passcode: Passcode, code: str) -> bool:
        return self.hasher.verify(H_PASSCODE, f"{passcode.id}:{code}", passcode.code_hash)

    async def _audit(
        self,
        session: AsyncSession,
        event_type: str,
        outcome: str,
        customer: Customer,
        actor: Actor,
        method: ContactMethod | None = None,
        *,
        passcode: Passcode | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        info: dict[str, Any] = dict(details or {})
        if method is not None:
            info["contactMethodId"] = method.method_id
            info["protocol"] = method.protocol
        if passcode is not None:
            info["passcodeId"] = passcode.id
            method_id = next(
                (m.method_id for m in customer.contact_methods if m.id == passcode.contact_method_pk), None
            )
            if method_id is not None:
                info["contactMethodId"] = method_id
        await audit.record_event(
            session, clock=self.clock, event_type=event_type, outcome=outcome, institution_id=customer.institution_id,
            client_id=actor.client_id, customer_id=customer.customer_id, correlation_id=actor.correlation_id,
            details=info,
        )
