"""The reset page's flow, over the same reset service the API uses (resets/service.py).

A flow is a row (``web/models.ResetFlow``); the browser holds an opaque token for it. Each step checks
the flow (this institution's, not ended, not expired, at a step that allows it), calls the reset
service with the page as the actor (``reset-page:<institution>``, the flow's id as correlation id),
and moves the flow on. So every rule of the API holds here too: the send limits per customer and
destination, the velocity limits, the caps on wrong codes and the suspension after too many, the
cool-off of a changed destination, the SIM-swap check and two-channel assurance (decision 0012).

No enumeration (OWASP Forgot Password Cheat Sheet). A login the directory does not know gets a flow
with a *decoy*: destinations drawn from a keyed hash of what was typed (the same each time), send
limits counted the same way, wrong codes counted to the same cap. A refusal that would tell a stranger
something about a customer on file (not registered, disclosures not accepted, inactive, a changed
destination in its cool-off, a swapped SIM, one destination where two are needed) shows the same "we
sent a code" screen, and is audited; the page's help text points to the institution's phone line.
Limits, caps and the suspension are shown, since a decoy meets them the same way.

The caller owns the transaction, except where the reset service commits its own (a send: decision 0006).
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from pwreset.audit import service as audit
from pwreset.config import Settings
from pwreset.customers.contact import mask
from pwreset.customers.errors import CustomerNotFound
from pwreset.customers.models import Customer
from pwreset.customers.service import DirectoryEntry, directory_entry, find_customer
from pwreset.db import Database
from pwreset.errors import RateLimited
from pwreset.institutions.models import Institution
from pwreset.kit.clock import Clock
from pwreset.kit.crypto import KeyedHasher, Sealer, new_id, new_secret
from pwreset.passwords.policy import PasswordPolicy, context_words
from pwreset.ratelimit.limiter import RateLimiter, Rule
from pwreset.resets import errors as refusals
from pwreset.resets.service import Actor, ResetService, SecondChannelNeeded
from pwreset.web.models import ResetFlow

FLOW_PREFIX = "pwr_flow_"
H_FLOW = "reset-page-flow"
H_DECOY = "reset-page-decoy"
H_LOGIN = "reset-page-login"
_DOMAINS = ("gmail.com", "yahoo.com", "outlook.com", "icloud.com", "hotmail.com", "aol.com")
#: Refusals that would tell a stranger something about a customer on file: the page shows "sent".
HIDDEN = (refusals.NotRegistered, refusals.DisclosureNotAccepted, refusals.CustomerInactive,
          refusals.DestinationChanged, refusals.SimSwapped, refusals.SimSwapCheckUnavailable,
          refusals.SecondChannelUnavailable, refusals.SameChannel, refusals.MethodNotActivated,
          refusals.UnknownContactMethod, refusals.CoolingOff)
T = TypeVar("T")


class PageRefusal(Exception):
    """What the page shows instead of the next step (never an API error: it has no wire code)."""


class FlowEnded(PageRefusal):
    """No flow, or one that expired, ended, or belongs to another institution: start again."""


class WrongStep(PageRefusal):
    """A form of another step (the back button, two tabs): the page shows the flow's own step."""

    def __init__(self, step: str) -> None:
        super().__init__()
        self.step = step


class CodeRefused(PageRefusal):
    """A code that did not work: ``why`` is wrong, exhausted, expired or suspended."""

    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.why = why


class PasswordNotAccepted(PageRefusal):
    """The password breaks these rules of the policy (the checklist's names)."""

    def __init__(self, rules: list[str]) -> None:
        super().__init__()
        self.rules = rules


@dataclass(frozen=True)
class Destination:
    key: str  # a contact method's key, or ``d<n>`` for a decoy's
    protocol: str  # SMS | VOICE | EMAIL
    masked: str


@dataclass(frozen=True)
class Step:
    """What a page of the flow shows."""

    flow: ResetFlow
    destinations: list[Destination]
    chosen: Destination | None
    second: bool  # choosing the second of two channels
    login_id: str | None = None


def page_mask(protocol: str, destination: str) -> str:
    """``•••• 0143`` for a number, ``p•••@example.com`` for an address."""
    if protocol == "EMAIL":
        return mask(destination)
    digits = "".join(ch for ch in destination if ch.isdigit())
    return f"•••• {digits[-4:]}" if len(digits) >= 4 else "••••"


#: The page's names for the password policy's refusals (passwords/policy.py), each a line of its checklist.
def policy_rule(reason: str) -> str:
    for prefix, rule in (("must be at least", "length"), ("must be at most", "length_max"),
                         ("must not contain control", "characters"), ("must not contain the login", "login"),
                         ("is too common", "common"), ("is too easy", "guessable"),
                         ("must differ from the current", "history"), ("must not be one of your last", "history")):
        if reason.startswith(prefix):
            return rule
    return "guessable"


class ResetPage:
    def __init__(
        self, *, settings: Settings, db: Database, clock: Clock, hasher: KeyedHasher, limiter: RateLimiter,
        resets: ResetService, policy: PasswordPolicy, sealer: Sealer,
    ) -> None:
        self.settings = settings
        self.db = db
        self.clock = clock
        self.hasher = hasher
        self.limiter = limiter
        self.resets = resets
        self.policy = policy
        self.sealer = sealer
        self.address_rule = Rule("page-login-address", settings.reset_page_address_limit, 3600)
        self.login_rule = Rule("page-login", settings.reset_page_login_limit, 3600)
        #: Codes tried per address, and live password checks per flow: a stranger's loop meets a wall.
        self.code_address_rule = Rule("page-code-address", 60, 3600)
        self.check_rule = Rule("page-password-check", 120, 600)
        self.decoy_failures = Rule("page-decoy-failures", settings.reset_failure_limit, settings.reset_failure_window)

    def actor(self, flow: ResetFlow) -> Actor:
        return Actor(client_id=f"reset-page:{flow.institution_id}"[:64], correlation_id=flow.id)

    # -- the login

    async def look_up(self, *, institution_id: str, login: str, address: str) -> DirectoryEntry | None:
        """The customer with this login id, or None; both limits counted first. No transaction (it reads
        through the directory's hot path), so call it before opening the one that starts the flow."""
        await self.limiter.consume(self.address_rule, f"address:{address}")
        await self.limiter.consume(self.login_rule, self._login_subject(institution_id, login))
        try:
            return await directory_entry(self.db, institution_id=institution_id, user_id=login, id_type="LOGIN_ID")
        except CustomerNotFound:
            return None

    async def start(
        self, session: AsyncSession, *, institution_id: str, login: str, entry: DirectoryEntry | None,
        replacing: str | None,
    ) -> str:
        """A new flow (ending the browser's last one); its token, for the cookie."""
        now = self.clock.now()
        if replacing:
            await session.execute(update(ResetFlow).where(
                ResetFlow.token_hash.in_(self.hasher.digests(H_FLOW, replacing)), ResetFlow.ended_at.is_(None),
            ).values(ended_at=now))
        # Flows a day past their end are of no use to anyone: each start clears some (bounded, indexed).
        stale = select(ResetFlow.id).where(ResetFlow.expires_at < now - timedelta(days=1)).limit(100)
        await session.execute(delete(ResetFlow).where(ResetFlow.id.in_(stale.scalar_subquery())))
        token = new_secret(FLOW_PREFIX)
        flow = ResetFlow(
            id=new_id(), token_hash=self.hasher.digest(H_FLOW, token), institution_id=institution_id,
            customer_pk=entry.pk if entry is not None else None,
            decoy=None if entry is not None else self.hasher.digest(H_DECOY, f"{institution_id}\x00{login.casefold()}"),
            step="choose", decoy_tries=0, created_at=now,
            expires_at=now + timedelta(seconds=self.settings.reset_page_flow_ttl),
        )
        session.add(flow)
        await session.flush()
        await self._audit(session, flow, "reset_page.started", "started",
                          customer_id=entry.customer_id if entry is not None else None,
                          details={"onFile": entry is not None})
        return token

    # -- reading a flow

    async def flow(self, session: AsyncSession, *, institution_id: str, token: str | None,
                   lock: bool = False) -> ResetFlow:
        if not token or not token.startswith(FLOW_PREFIX) or len(token) > 100:
            raise FlowEnded()
        query = select(ResetFlow).where(ResetFlow.institution_id == institution_id,
                                        ResetFlow.token_hash.in_(self.hasher.digests(H_FLOW, token)))
        found = await session.scalar(query.with_for_update() if lock else query)
        if found is None or found.ended_at is not None or found.expires_at <= self.clock.now():
            raise FlowEnded()
        return found

    async def step(self, session: AsyncSession, flow: ResetFlow) -> Step:
        destinations = await self._destinations(session, flow)
        chosen = next((d for d in destinations if d.key == flow.method_pk), None)
        login_id = None
        if flow.customer_pk is not None and flow.step == "password":
            login_id = await session.scalar(select(Customer.login_id).where(Customer.id == flow.customer_pk))
        if flow.first_method_pk is not None:
            first = next((d for d in destinations if d.key == flow.first_method_pk), None)
            same = {d.masked for d in destinations if first is not None and d.masked == first.masked}
            offered = [d for d in destinations if d.masked not in same]
            return Step(flow, offered if flow.step == "choose" else destinations, chosen, True, login_id)
        return Step(flow, destinations, chosen, False, login_id)

    async def _destinations(self, session: AsyncSession, flow: ResetFlow) -> list[Destination]:
        if flow.customer_pk is None:
            return self._decoys(flow.decoy or "")
        customer = await session.get(Customer, flow.customer_pk)
        if customer is None:
            raise FlowEnded()
        offered = [Destination(m.id, m.protocol, page_mask(m.protocol, m.destination))
                   for m in customer.contact_methods if m.activated]
        # A customer with nothing to send to would show an empty list, which no stranger's login does.
        return offered or self._decoys(self._seed(flow))

    def _decoys(self, seed: str) -> list[Destination]:
        """A stranger's login's destinations: the same every time it is typed, shaped like real ones."""
        digest = hashlib.sha256(seed.encode()).digest()
        number = f"•••• {int.from_bytes(digest[:4], 'big') % 10000:04d}"
        letter = "abcdefghijklmnoprstw"[digest[4] % 20]
        email = f"{letter}•••@{_DOMAINS[digest[5] % len(_DOMAINS)]}"
        shapes = (("SMS", "EMAIL"), ("SMS", "VOICE", "EMAIL"), ("SMS",), ("EMAIL",), ("SMS", "EMAIL"))
        return [Destination(f"d{i}", protocol, email if protocol == "EMAIL" else number)
                for i, protocol in enumerate(shapes[digest[6] % len(shapes)])]

    def _seed(self, flow: ResetFlow) -> str:
        """What a flow's decoy is drawn from: the login typed (a stranger's), else its customer (a refusal the
        page hides plays a decoy from then on)."""
        if flow.customer_pk is None:
            return flow.decoy or ""
        return self.hasher.digest(H_DECOY, f"{flow.institution_id}\x00customer:{flow.customer_pk}")

    # -- sending a code

    async def send(self, *, flow: ResetFlow, destination_key: str, resend: bool) -> bool:
        """Send a passcode to the chosen destination (the reset service commits it): True. Or play a decoy's
        send: False, for a stranger's login and for a refusal a stranger must not see (audited, and counted
        by the decoy's limits, so that the resend wait is the same). Call outside a transaction; then
        :meth:`sent` records the step."""
        if flow.customer_pk is None:
            await self._decoy_send(flow, destination_key)
            return False
        async with self.db.reading() as session:
            customer = await session.get(Customer, flow.customer_pk)
            if customer is None:
                raise FlowEnded()
            methods = [m for m in customer.contact_methods if m.activated]
            customer_id = customer.customer_id
        method = next((m for m in methods if m.id == destination_key), None)
        hidden: str | None = None
        if method is None:
            if methods:
                raise WrongStep(flow.step)
            hidden = "reset.method_not_activated"  # nothing activated: it chose one of the decoy's
        else:
            try:
                entry = await directory_entry(self.db, institution_id=flow.institution_id, user_id=customer_id,
                                              id_type="CUSTOMER_ID")
                await self.resets.request_reset(entry=entry, contact_method_id=method.method_id, protocol=None,
                                                actor=self.actor(flow))
                return True
            except HIDDEN as refused:
                hidden = refused.key
            except CustomerNotFound:
                raise FlowEnded() from None
        await self._decoy_send(flow, destination_key)
        async with self.db.transaction() as session:
            await self._audit(session, flow, "reset_page.refused", hidden, customer_id=customer_id,
                              details={"contactMethodId": method.method_id if method else None, "resend": resend})
        return False

    async def _decoy_send(self, flow: ResetFlow, key: str) -> None:
        if flow.customer_pk is None and key not in {d.key for d in self._decoys(flow.decoy or "")}:
            raise WrongStep(flow.step)
        consumed: list[tuple[Rule, str, int]] = []
        try:
            for rule in self.resets.send_rules:
                for subject in self._decoy_subjects(flow, key):
                    consumed.append((rule, subject, await self.limiter.consume(rule, subject)))
        except RateLimited:
            for rule, subject, index in consumed:
                await self.limiter.release(rule, subject, index)
            raise

    def _decoy_subjects(self, flow: ResetFlow, key: str) -> tuple[str, str]:
        seed = self._seed(flow)
        return f"decoy:{seed}", f"decoy-destination:{seed}:{key}"

    async def sent(self, session: AsyncSession, *, flow: ResetFlow, destination_key: str, protocol: str,
                   real: bool) -> None:
        """The flow moves to its code step (the code's lifetime is the channel's). A send that was not
        ``real`` (a decoy's, a hidden refusal) makes the flow answer codes as a decoy does until a real one."""
        now = self.clock.now()
        flow.method_pk = destination_key
        flow.step = "code"
        flow.decoy_tries = 0
        flow.code_expires_at = now + timedelta(seconds=self.settings.passcode_ttl(protocol))
        if flow.customer_pk is not None:
            flow.decoy = None if real else self._seed(flow)
        session.add(flow)
        await session.flush()
        if flow.customer_pk is None:
            await self._audit(session, flow, "reset_page.decoy_sent", "decoy", details={"protocol": protocol})

    async def send_wait(self, flow: ResetFlow, destination: Destination) -> int:
        """Seconds until another code may be sent to this destination (0: now)."""
        if flow.decoy is not None or flow.customer_pk is None:  # a stranger's login, or a send the page hid
            subjects = self._decoy_subjects(flow, destination.key)
        else:
            async with self.db.reading() as session:
                customer = await session.get(Customer, flow.customer_pk)
                methods = list(customer.contact_methods) if customer is not None else []
            method = next((m for m in methods if m.id == destination.key), None)
            if method is None:
                return 0
            subjects = await self.resets.send_subjects(flow.customer_pk, flow.institution_id, method.destination)
        wait = 0
        for rule in self.resets.send_rules:
            for subject in subjects:
                try:
                    await self.limiter.check(rule, subject)
                except RateLimited as limited:
                    wait = max(wait, limited.retry_after)
        return wait

    # -- checking the code

    async def verify(self, session: AsyncSession, *, flow: ResetFlow, code: str, address: str) -> bool:
        """True when the flow moves on to the password (or to a second channel); raises
        :class:`CodeRefused` for a code that did not work. The caller commits either way."""
        await self.limiter.consume(self.code_address_rule, f"address:{address}")
        if flow.decoy is not None:  # a stranger's login, or a send the page hid: no code can be right
            return await self._decoy_verify(session, flow)
        customer = await session.get(Customer, flow.customer_pk)
        if customer is None:
            raise FlowEnded()
        customer = await find_customer(session, institution_id=flow.institution_id, user_id=customer.customer_id)
        try:
            result = await self.resets.verify_passcode(session, customer=customer, code=code.strip(),
                                                       actor=self.actor(flow))
        except refusals.PasscodeWrong:
            raise CodeRefused("wrong") from None
        except refusals.PasscodeExhausted:
            raise CodeRefused("exhausted") from None
        except (refusals.PasscodeExpired, refusals.PasscodeSuperseded, refusals.PasscodeUsed,
                refusals.NoPasscode):
            raise CodeRefused("expired") from None
        except (refusals.CoolingOff, refusals.CustomerInactive):
            raise CodeRefused("suspended") from None
        if isinstance(result, SecondChannelNeeded):
            flow.first_method_pk, flow.method_pk, flow.step, flow.code_expires_at = flow.method_pk, None, "choose", None
        else:
            flow.ticket_sealed = self.sealer.seal(result.value.encode())
            flow.step = "password"
        session.add(flow)
        await session.flush()
        return True

    async def _decoy_verify(self, session: AsyncSession, flow: ResetFlow) -> bool:
        """A decoy's code is never right; its tries run to the same cap, and its failures in a row to the same
        suspension, as a customer's."""
        now = self.clock.now()
        if flow.code_expires_at is None or flow.code_expires_at <= now:
            raise CodeRefused("expired")
        if flow.decoy_tries >= self.settings.passcode_max_attempts:
            raise CodeRefused("exhausted")
        try:
            await self.limiter.consume(self.decoy_failures, f"decoy:{self._seed(flow)}")
        except RateLimited:
            raise CodeRefused("suspended") from None
        flow.decoy_tries += 1
        session.add(flow)
        await self._audit(session, flow, "reset_page.decoy_code", "wrong", details={"tries": flow.decoy_tries})
        raise CodeRefused("exhausted" if flow.decoy_tries >= self.settings.passcode_max_attempts else "wrong")

    # -- the new password

    async def check_password(self, session: AsyncSession, *, flow: ResetFlow, password: str) -> list[str]:
        """The policy's rules this password breaks (the checklist's names), for the live check as the customer
        types: length, characters, the login id, the blocklist, guessability. The previous passwords are
        checked only when the form is sent (a live answer would tell whether a guess was one of them)."""
        await self.limiter.consume(self.check_rule, f"flow:{flow.id}")
        customer, institution = await self._customer_and_institution(session, flow)
        reasons = self.policy.reasons(
            password, login_id=customer.login_id, current_hash=None,
            min_length=self.resets.min_password_length(institution),
            context=context_words(institution.name, institution.id, customer.first_name, customer.last_name),
        )
        return sorted({policy_rule(reason) for reason in reasons})

    async def min_length(self, session: AsyncSession, flow: ResetFlow) -> int:
        institution = await session.get(Institution, flow.institution_id)
        assert institution is not None
        return self.resets.min_password_length(institution)

    async def set_password(self, session: AsyncSession, *, flow: ResetFlow, password: str) -> None:
        if flow.ticket_sealed is None:
            raise FlowEnded()
        customer, institution = await self._customer_and_institution(session, flow)
        customer = await find_customer(session, institution_id=flow.institution_id, user_id=customer.customer_id)
        try:
            await self.resets.set_password(
                session, customer=customer, institution=institution,
                ticket=self.sealer.open(flow.ticket_sealed).decode(), new_password=password, actor=self.actor(flow),
            )
        except refusals.PasswordRefused as refused:
            reasons = refused.extra.get("reasons")
            found = reasons if isinstance(reasons, list) else []
            raise PasswordNotAccepted(sorted({policy_rule(str(r)) for r in found})) from None
        except (refusals.InvalidTicket, refusals.CustomerInactive):
            flow.ended_at = self.clock.now()
            session.add(flow)
            raise FlowEnded() from None
        flow.step, flow.ended_at, flow.ticket_sealed = "done", self.clock.now(), None
        session.add(flow)
        await session.flush()

    async def _customer_and_institution(self, session: AsyncSession, flow: ResetFlow) -> tuple[Customer, Institution]:
        customer = await session.get(Customer, flow.customer_pk) if flow.customer_pk else None
        institution = await session.get(Institution, flow.institution_id)
        if customer is None or institution is None:
            raise FlowEnded()
        return customer, institution

    # -- helpers

    def _login_subject(self, institution_id: str, login: str) -> str:
        return "login:" + self.hasher.digest(H_LOGIN, f"{institution_id}\x00{login.casefold()}")

    async def _audit(self, session: AsyncSession, flow: ResetFlow, event_type: str, outcome: str, *,
                     customer_id: str | None = None, details: dict[str, object] | None = None) -> None:
        await audit.record_event(
            session, clock=self.clock, event_type=event_type, outcome=outcome, institution_id=flow.institution_id,
            client_id=self.actor(flow).client_id, customer_id=customer_id, correlation_id=flow.id,
            details=dict(details or {}),
        )

    async def keeping(self, work: Callable[[AsyncSession], Awaitable[T]]) -> tuple[T | None, PageRefusal | None]:
        """One call in one transaction whose refusal is returned, not raised, so that what it recorded on the
        way (a counted wrong code, an audit event) commits with the answer."""
        async with self.db.transaction() as session:
            try:
                return await work(session), None
            except (CodeRefused, PasswordNotAccepted) as refused:
                return None, refused

