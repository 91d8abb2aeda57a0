"""The reset page's flow, over the same reset service the API uses (resets/service.py).

A flow is a row (``web/models.ResetFlow``); the browser holds an opaque token for it. Each step checks
the flow (this institution's, not ended, not expired, at a step that allows it), calls the reset
service with the page as the actor (``reset-page:<institution>``, the flow's id as correlation id),
and moves the flow on. So every rule of the API holds here too: the send limits per customer and
destination, the velocity limits, the caps on wrong codes and the suspension after too many, the
cool-off of a changed destination, the SIM-swap check and two-channel assurance (decision 0012).

No enumeration (OWASP Forgot Password Cheat Sheet). A login the directory does not know gets a flow
with a *decoy*: destinations drawn from a keyed hash of what was typed (the same each time), shaped as a
sample of the institution's own customers' are (how many, which channels in which order, email domains
and initials), every destination named on the page by its place (``d0``, ``d1``), never by a key. The
waits the page shows come from the page's own send counters (per flow's customer or decoy and
destination), the same for everyone; the reset service's own limits are enforced behind them. A refusal
that would tell a stranger something about a customer on file (not registered, disclosures not accepted,
inactive, suspended, a changed destination in its cool-off, a swapped SIM, one destination where two are
needed, a limit other people's sends used up) shows the same "we sent a code" screen, is audited, and the
flow answers codes as a decoy does from then on. A decoy's wrong codes run to the same cap, in the same
order of checks, and to the same suspension as a customer's.

The caller owns the transaction, except where the reset service commits its own (a send: decision 0006).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TypeVar

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from pwreset.audit import service as audit
from pwreset.config import Settings
from pwreset.customers.contact import mask
from pwreset.customers.errors import CustomerNotFound
from pwreset.customers.models import ContactMethod, Customer
from pwreset.customers.service import DirectoryEntry, directory_entry
from pwreset.db import Database
from pwreset.errors import RateLimited
from pwreset.institutions.models import Institution
from pwreset.kit.clock import Clock
from pwreset.kit.crypto import KeyedHasher, Sealer, new_id, new_secret
from pwreset.passwords.policy import PasswordPolicy, context_words
from pwreset.ratelimit.limiter import RateLimiter, Rule
from pwreset.resets import errors as refusals
from pwreset.resets.service import Actor, ResetService, SecondChannelNeeded
from pwreset.web.models import Decoy, ResetFlow

FLOW_PREFIX = "pwr_flow_"
H_FLOW = "reset-page-flow"
H_DECOY = "reset-page-decoy"
H_DECOY_CUSTOMER = "reset-page-decoy-customer"
#: A domain, an initial or a shape a decoy may show is one at least this many sampled customers share: a
#: decoy must not show one customer's own (a vanity domain names a person).
K_ANONYMOUS = 20
#: A login not typed again for this long loses its decoy (drawn again if it comes back).
DECOY_KEPT = timedelta(days=30)
H_LOGIN = "reset-page-login"
#: Where an institution has too few customers to sample, the shapes decoys take.
_DOMAINS = ("gmail.com", "yahoo.com", "outlook.com", "icloud.com", "hotmail.com", "aol.com", "comcast.net")
_SHAPES = ((("SMS", 0), ("EMAIL", 0)), (("SMS", 0), ("VOICE", 0), ("EMAIL", 0)), (("SMS", 0),), (("EMAIL", 0),))
#: Customers sampled per institution for the decoys' shapes, and how long a sample serves (seconds).
SAMPLE = 1000
SAMPLE_TTL = 3600.0
#: Refusals that would tell a stranger something about a customer on file: the page shows "sent".
HIDDEN = (refusals.NotRegistered, refusals.DisclosureNotAccepted, refusals.CustomerInactive,
          refusals.DestinationChanged, refusals.SimSwapped, refusals.SimSwapCheckUnavailable,
          refusals.SecondChannelUnavailable, refusals.SameChannel, refusals.MethodNotActivated,
          refusals.UnknownContactMethod, refusals.CoolingOff, RateLimited)
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
    key: str  # its place on the page: d0, d1, ... (for a customer and a decoy alike)
    protocol: str  # SMS | VOICE | EMAIL
    masked: str
    #: The contact method's id (a customer's; none of a decoy's), never shown.
    method_id: str | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Step:
    """What a page of the flow shows."""

    flow: ResetFlow
    destinations: list[Destination]  # those the customer may choose now
    chosen: Destination | None
    second: bool  # choosing the second of two channels
    login_id: str | None = None
    customer_id: str | None = None  # (the flow's customer's, for the send)


@dataclass(frozen=True)
class DecoyModel:
    """How an institution's customers' destinations look, from a sample: decoys are drawn from it."""

    shapes: tuple[tuple[tuple[str, int], ...], ...] = _SHAPES  # (protocol, which number or address) in order
    domains: tuple[str, ...] = _DOMAINS
    initials: str = "abcdefghijklmnoprstw"


def page_mask(protocol: str, destination: str) -> str:
    """``•••• 0143`` for a number, ``p•••@example.com`` for an address."""
    if protocol == "EMAIL":
        return mask(destination)
    digits = "".join(ch for ch in destination if ch.isdigit())
    return f"•••• {digits[-4:]}" if len(digits) >= 4 else "••••"


def policy_rule(reason: str) -> str:
    """The page's name for one of the password policy's refusals (passwords/policy.py): a line of its checklist."""
    for prefix, rule in (("must be at least", "length"), ("must be at most", "length_max"),
                         ("must not contain control", "characters"), ("must not contain the login", "login"),
                         ("is too common", "common"), ("is too easy", "guessable"),
                         ("must differ from the current", "history"), ("must not be one of your last", "history")):
        if reason.startswith(prefix):
            return rule
    return "guessable"


def _pick(digest: bytes, at: int, choices: tuple[T, ...] | str) -> T | str:
    return choices[int.from_bytes(digest[at:at + 4], "big") % len(choices)]


async def clear_stale(session: AsyncSession, now: datetime) -> int:
    """Flows a day past their end are of no use to anyone: each start deletes up to 100 of them, found in
    ``expires_at`` order (the index answers at once: without the order, a large table with no statistics yet
    was read whole on every start: bench/README.md, issue 15), then deleted by key. Rows another start is
    deleting are skipped, not waited for."""
    found = (await session.scalars(
        select(ResetFlow.id).where(ResetFlow.expires_at < now - timedelta(days=1))
        .order_by(ResetFlow.expires_at).limit(100).with_for_update(skip_locked=True)
    )).all()
    if found:
        await session.execute(delete(ResetFlow).where(ResetFlow.id.in_(found)))
    unused = (await session.scalars(
        select(Decoy.seed).where(Decoy.used_at < now - DECOY_KEPT)
        .order_by(Decoy.used_at).limit(100).with_for_update(skip_locked=True)
    )).all()
    if unused:
        await session.execute(delete(Decoy).where(Decoy.seed.in_(unused)))
    return len(found) + len(unused)


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
        #: Codes tried per address, passwords sent and live checks per flow: a stranger's loop meets a wall.
        self.code_address_rule = Rule("page-code-address", 60, 3600)
        self.password_rule = Rule("page-password", 10, 1800)
        self.check_rule = Rule("page-password-check", 120, 600)
        self._models: dict[str, tuple[float, DecoyModel]] = {}

    def actor(self, flow: ResetFlow) -> Actor:
        """The page as the reset service sees it: one application of the institution, whose velocity limits
        are the page's own (a stranger on the page cannot use up the institution's partners' budget)."""
        return Actor(client_id=f"reset-page:{flow.institution_id}"[:64], correlation_id=flow.id,
                     institution_wide=False)

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
        await clear_stale(session, now)
        token = new_secret(FLOW_PREFIX)
        flow = ResetFlow(
            id=new_id(), token_hash=self.hasher.digest(H_FLOW, token), institution_id=institution_id,
            customer_pk=entry.pk if entry is not None else None,
            decoy=None if entry is not None else self.hasher.digest(H_DECOY, f"{institution_id}\x00{login.casefold()}"),
            step="choose", created_at=now,
            expires_at=now + timedelta(seconds=self.settings.reset_page_flow_ttl),
        )
        session.add(flow)
        await session.flush()
        if entry is None or not any(m.activated for m in entry.methods):  # its destinations, drawn once
            await self._decoy(session, flow)
        await self._audit(session, flow, "reset_page.started", "started",
                          customer_id=entry.customer_id if entry is not None else None,
                          details={"onFile": entry is not None})
        return token

    async def limited(self, *, institution_id: str, rule: str) -> None:
        """The audit event of one of the page's own limits refusing (in a transaction of its own)."""
        async with self.db.transaction() as session:
            await audit.record_event(session, clock=self.clock, event_type="reset_page.limited", outcome=rule,
                                     institution_id=institution_id, client_id=f"reset-page:{institution_id}"[:64])

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
        customer = await session.get(Customer, flow.customer_pk) if flow.customer_pk is not None else None
        if flow.customer_pk is not None and customer is None:
            raise FlowEnded()
        every = await self._destinations(session, flow, customer)
        chosen = next((d for d in every if d.key == flow.method_pk), None)
        login_id = customer.login_id if customer is not None and flow.step == "password" else None
        customer_id = customer.customer_id if customer is not None else None
        if flow.first_method_pk is None:
            return Step(flow, every, chosen, False, login_id, customer_id)
        # The second of two channels: another destination than the first's (SMS and voice to one number are one).
        first = next((d for d in every if d.key == flow.first_method_pk), None)
        offered = [d for d in every if first is None or d.masked != first.masked]
        return Step(flow, offered, chosen, True, login_id, customer_id)

    async def _destinations(self, session: AsyncSession, flow: ResetFlow, customer: Customer | None,
                            ) -> list[Destination]:
        if customer is not None:
            methods = [m for m in customer.contact_methods if m.activated]
            if methods:
                return [Destination(f"d{i}", m.protocol, page_mask(m.protocol, m.destination), m.method_id)
                        for i, m in enumerate(methods)]
        # A stranger's login, or a customer with nothing to send to (an empty list would tell them apart).
        decoy = await session.get(Decoy, self._seed(flow))
        if decoy is not None:
            return [Destination(f"d{i}", protocol, masked)
                    for i, (protocol, masked) in enumerate(json.loads(decoy.destinations))]
        return self._decoys(self._seed(flow), await self._model(session, flow.institution_id))

    async def _decoy(self, session: AsyncSession, flow: ResetFlow, *, lock: bool = False) -> Decoy:
        """The flow's decoy record, made the first time its seed is seen (two starts at once: one wins)."""
        seed = self._seed(flow)
        query = select(Decoy).where(Decoy.seed == seed)
        found = await session.scalar(query.with_for_update() if lock else query)
        if found is not None:
            return found
        drawn = self._decoys(seed, await self._model(session, flow.institution_id))
        now = self.clock.now()
        try:
            async with session.begin_nested():
                session.add(Decoy(seed=seed, institution_id=flow.institution_id, tries=0, failures=0,
                                  destinations=json.dumps([[d.protocol, d.masked] for d in drawn]),
                                  created_at=now, used_at=now))
        except IntegrityError:
            pass
        made = await session.scalar(query.with_for_update() if lock else query)
        assert made is not None
        return made

    def _decoys(self, seed: str, model: DecoyModel) -> list[Destination]:
        """A decoy's destinations: the same every time its login is typed, shaped as the sample's are."""
        digest = hashlib.sha256(seed.encode()).digest()
        shape = _pick(digest, 0, model.shapes)
        assert isinstance(shape, tuple)
        found = []
        for i, (protocol, which) in enumerate(shape):
            part = hashlib.sha256(digest + bytes([which])).digest()
            if protocol == "EMAIL":
                masked = f"{_pick(part, 0, model.initials)}•••@{_pick(part, 4, model.domains)}"
            else:
                masked = f"•••• {int.from_bytes(part[8:12], 'big') % 10000:04d}"
            found.append(Destination(f"d{i}", protocol, masked))
        return found

    async def _model(self, session: AsyncSession, institution_id: str) -> DecoyModel:
        """A sample of the institution's customers' destinations (cached for an hour in each process)."""
        now = self.clock.timestamp()
        cached = self._models.get(institution_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        sampled = (select(Customer.id).where(Customer.institution_id == institution_id)
                   .order_by(Customer.id).limit(SAMPLE))
        rows = (await session.execute(
            select(ContactMethod.customer_pk, ContactMethod.position, ContactMethod.protocol, ContactMethod.destination)
            .where(ContactMethod.customer_pk.in_(sampled.scalar_subquery()), ContactMethod.activated.is_(True))
        )).all()
        by_customer: dict[str, list[tuple[int, str, str]]] = {}
        for customer_pk, position, protocol, destination in rows:
            by_customer.setdefault(customer_pk, []).append((position, protocol, destination))
        shapes, domains, initials = [], [], []
        for methods in by_customer.values():
            seen: dict[str, int] = {}
            shape = []
            for _, protocol, destination in sorted(methods):
                kind = "EMAIL" if protocol == "EMAIL" else "PHONE"
                which = seen.setdefault(f"{kind}:{destination}", sum(k.startswith(kind) for k in seen))
                shape.append((protocol, which))
                if protocol == "EMAIL" and "@" in destination:
                    domains.append(destination.rsplit("@", 1)[1])
                    initials.append(destination[:1])
            shapes.append(tuple(shape))
        shared_shapes = tuple(sorted(x for x, n in Counter(shapes).items() if n >= K_ANONYMOUS))
        shared_domains = tuple(sorted(x for x, n in Counter(domains).items() if n >= K_ANONYMOUS))
        shared_initials = "".join(sorted(x for x, n in Counter(initials).items() if n >= K_ANONYMOUS))
        stock = DecoyModel()
        model = DecoyModel(shared_shapes or stock.shapes, shared_domains or stock.domains,
                           shared_initials or stock.initials)
        if len(self._models) > 1000:
            self._models.clear()
        self._models[institution_id] = (now + SAMPLE_TTL, model)
        return model

    def _seed(self, flow: ResetFlow) -> str:
        """What a flow's decoy is drawn from: the login typed (a stranger's), else its customer."""
        if flow.customer_pk is None:
            return flow.decoy or ""
        return self.hasher.digest(H_DECOY_CUSTOMER, f"{flow.institution_id}\x00{flow.customer_pk}")

    # -- sending a code

    async def send(self, *, step: Step, chosen: Destination, resend: bool) -> bool:
        """Send a passcode to the chosen destination: True when the reset service sent one (it commits it).

        The page's own send counters go first, for everyone (their wait is what the page shows). Then a
        decoy sends nothing, and a customer's send goes to the reset service; a refusal a stranger must not
        see (the customer's state, or a limit other people's sends used up) is audited and answers False,
        like a decoy's. Call outside a transaction, with the step just read; then :meth:`sent` records it.
        """
        flow, customer_id, method_id = step.flow, step.customer_id, chosen.method_id
        await self._count_send(flow, chosen.key)
        if flow.customer_pk is None:  # a decoy's send counts on the page's budget as a customer's does
            with contextlib.suppress(RateLimited):  # as for a customer, the service's refusal is hidden
                await self.resets.velocity.consume_send(client_id=self.actor(flow).client_id,
                                                        institution_id=flow.institution_id, institution_wide=False)
            return False
        hidden = "reset.method_not_activated"  # (one of the decoy's, for a customer with nothing activated)
        if method_id is not None and customer_id is not None:
            try:
                entry = await directory_entry(self.db, institution_id=flow.institution_id, user_id=customer_id,
                                              id_type="CUSTOMER_ID")
                await self.resets.request_reset(entry=entry, contact_method_id=method_id, protocol=None,
                                                actor=self.actor(flow))
                return True
            except HIDDEN as refused:  # (RateLimited among them: a limit other senders used up)
                hidden = refused.key
            except CustomerNotFound:
                raise FlowEnded() from None
        async with self.db.transaction() as session:
            await self._audit(session, flow, "reset_page.refused", hidden, customer_id=customer_id,
                              details={"contactMethodId": method_id, "resend": resend})
        return False

    async def _count_send(self, flow: ResetFlow, key: str) -> None:
        consumed: list[tuple[Rule, str, int]] = []
        try:
            for rule in self.resets.send_rules:
                for subject in self._send_subjects(flow, key):
                    consumed.append((rule, subject, await self.limiter.consume(rule, subject)))
        except RateLimited:
            for rule, subject, index in consumed:
                await self.limiter.release(rule, subject, index)
            raise

    def _send_subjects(self, flow: ResetFlow, key: str) -> tuple[str, str]:
        seed = self._seed(flow)
        return f"page:{seed}", f"page-destination:{seed}:{key}"

    async def sent(self, session: AsyncSession, *, flow: ResetFlow, chosen: Destination, real: bool) -> None:
        """The flow moves to its code step (the code's lifetime is the channel's). A send that was not
        ``real`` (a decoy's, a hidden refusal) makes the flow answer codes as a decoy does until a real one."""
        now = self.clock.now()
        flow.method_pk = chosen.key
        flow.step = "code"
        flow.code_expires_at = now + timedelta(seconds=self.settings.passcode_ttl(chosen.protocol))
        if flow.customer_pk is not None:
            flow.decoy = None if real else self._seed(flow)
        session.add(flow)
        await session.flush()
        if not real:  # its "code" replaces the last, in every flow of the same login, as a passcode does
            decoy = await self._decoy(session, flow, lock=True)
            decoy.code_expires_at, decoy.tries, decoy.used_at = flow.code_expires_at, 0, now
        if flow.customer_pk is None:
            await self._audit(session, flow, "reset_page.decoy_sent", "decoy",
                              details={"protocol": chosen.protocol})

    async def send_wait(self, flow: ResetFlow, destination: Destination) -> int:
        """Seconds until the page sends another code to this destination (0: now), by its own counters."""
        wait = 0
        for rule in self.resets.send_rules:
            for subject in self._send_subjects(flow, destination.key):
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
        customer = await session.get(Customer, flow.customer_pk) if flow.customer_pk is not None else None
        if flow.customer_pk is not None and customer is None:
            raise FlowEnded()
        if flow.decoy is not None and not (
            customer is not None and await self.resets.code_matches(session, customer=customer, code=code.strip())
        ):  # a stranger's login, or a send the page hid (unless the customer holds a live code from before)
            return await self._decoy_verify(session, flow, customer)
        assert customer is not None
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
            # Sealed with the flow's id inside: a sealed ticket copied into another flow's row opens to nothing.
            flow.ticket_sealed = self.sealer.seal(f"{flow.id}\x00{result.value}".encode())
            flow.step = "password"
        session.add(flow)
        await session.flush()
        return True

    async def _decoy_verify(self, session: AsyncSession, flow: ResetFlow, customer: Customer | None) -> bool:
        """A decoy's code is never right. Its answers follow the reset service's checks in their order, on
        counters with the same meaning, shared by every flow of the login (resets/service.py: suspended,
        counted against the velocity budget, used up, expired, then a wrong try counted on the "code" and on
        the run of wrong codes, which suspends at the same limit for the same time). For a customer whose
        sends the page hid, the customer's own suspension holds too."""
        now = self.clock.now()
        decoy = await self._decoy(session, flow, lock=True)
        if (customer is not None and customer.reset_blocked_until is not None and customer.reset_blocked_until > now) \
                or (decoy.blocked_until is not None and decoy.blocked_until > now):
            raise CodeRefused("suspended")
        reserved = await self.resets.velocity.reserve_verify(
            session, client_id=self.actor(flow).client_id, institution_id=flow.institution_id, institution_wide=False)
        if decoy.tries >= self.settings.passcode_max_attempts:
            await self.resets.velocity.release(reserved)
            raise CodeRefused("exhausted")
        if decoy.code_expires_at is None or decoy.code_expires_at <= now:
            await self.resets.velocity.release(reserved)
            raise CodeRefused("expired")
        decoy.tries += 1
        window_start = now - timedelta(seconds=self.settings.reset_failure_window)
        if decoy.failures_since is None or decoy.failures_since < window_start:
            decoy.failures, decoy.failures_since = 1, now
        else:
            decoy.failures += 1
        decoy.used_at = now
        await self._audit(session, flow, "reset_page.decoy_code", "wrong", details={"tries": decoy.tries})
        if decoy.failures >= self.settings.reset_failure_limit:
            decoy.blocked_until = now + timedelta(seconds=self.settings.reset_cooloff)
            decoy.code_expires_at = now  # (its "code" superseded, as the service supersedes the passcode)
            raise CodeRefused("suspended")
        raise CodeRefused("exhausted" if decoy.tries >= self.settings.passcode_max_attempts else "wrong")

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
        owner, _, ticket = self.sealer.open(flow.ticket_sealed).decode().partition("\x00") if flow.ticket_sealed \
            else ("", "", "")
        if owner != flow.id or not ticket:
            raise FlowEnded()
        await self.limiter.consume(self.password_rule, f"flow:{flow.id}")
        customer, institution = await self._customer_and_institution(session, flow)
        try:
            await self.resets.set_password(
                session, customer=customer, institution=institution,
                ticket=ticket, new_password=password, actor=self.actor(flow),
            )
        except refusals.PasswordRefused as refused:
            reasons = refused.extra.get("reasons")
            found = reasons if isinstance(reasons, list) else []
            raise PasswordNotAccepted(sorted({policy_rule(str(r)) for r in found})) from None
        except (refusals.InvalidTicket, refusals.CustomerInactive):
            flow.ended_at = self.clock.now()  # (committed with the answer: ResetPage.keeping)
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

    async def keeping(
        self, work: Callable[[AsyncSession], Awaitable[T]]
    ) -> tuple[T | None, PageRefusal | RateLimited | None]:
        """One call in one transaction whose refusal is returned, not raised, so that what it recorded on the
        way (a counted wrong code, an ended flow, a velocity limit's audit event) commits with the answer."""
        async with self.db.transaction() as session:
            try:
                return await work(session), None
            except (PageRefusal, RateLimited) as refused:
                return None, refused
