"""The portal's logic: developer accounts and their two-factor authentication, sessions, organisations
with their sandbox and teammates, apps and key pairs, the sandbox inbox and the test drive's client, the
watchlist, production access and the staff's view. The caller owns the transaction (routes open one per
request).

Accounts follow OWASP ASVS level 2 where the issue asks for it: argon2id under the service's password
policy, one answer whether or not an email is known (with the same hashing work either way), emailed
secrets that are single-use, expiring and stored as keyed hashes, sessions that end when idle, at an
absolute limit and on a password change, and rate limits on every step a stranger can repeat.
"""

from __future__ import annotations

import base64
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pyotp
from email_validator import EmailNotValidError, validate_email
from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from pwreset.audit import service as audit
from pwreset.config import Settings
from pwreset.customers.models import Customer
from pwreset.customers.views import institution_user_id
from pwreset.delivery.models import OutboxMessage
from pwreset.delivery.outbox import Message, Outbox
from pwreset.delivery.rendering import Rendered, render_default, variables_for
from pwreset.errors import RateLimited
from pwreset.institutions.models import Institution
from pwreset.kit.clock import Clock
from pwreset.kit.crypto import KeyedHasher, NotOurKey, Sealer, new_id, new_secret
from pwreset.oauth import scopes as scope_names
from pwreset.oauth.models import ApiClient
from pwreset.oauth.service import OAuthService
from pwreset.passwords.hashing import PasswordHashing
from pwreset.passwords.policy import PasswordPolicy
from pwreset.portal import repository
from pwreset.portal.errors import Forbidden, NotFound, Refused, Throttled
from pwreset.portal.models import (
    AccessRequest,
    App,
    AppKey,
    Developer,
    Interest,
    Invitation,
    Membership,
    Organisation,
    PortalCode,
    PortalSession,
    RecoveryCode,
)
from pwreset.ratelimit.limiter import RateLimiter, Rule

# Secrets the portal makes carry a prefix (recognisable when leaked) and are stored as keyed hashes
# under their own purpose label.
SESSION_PREFIX = "pwr_ps_"
VERIFY_PREFIX = "pwr_pv_"
CHALLENGE_PREFIX = "pwr_pm_"
INVITE_PREFIX = "pwr_pi_"
H_SESSION = "portal-session"
H_VERIFY = "portal-verify"
H_FORGOT = "portal-forgot"
H_CHALLENGE = "portal-mfa"
H_RECOVERY = "portal-recovery"
H_INVITE = "portal-invite"

VERIFY_TTL = timedelta(hours=24)
FORGOT_TTL = timedelta(minutes=15)
FORGOT_ATTEMPTS = 5
CHALLENGE_TTL = timedelta(minutes=5)
CHALLENGE_ATTEMPTS = 5
INVITE_TTL = timedelta(hours=72)
RECOVERY_CODES = 10
TOTP_ISSUER = "pwreset developer portal"
MIN_PASSWORD = 12
#: Sessions are touched at most this often (a write per page view would be a write per click).
TOUCH_EVERY = timedelta(seconds=60)
ROTATION_GRACE = timedelta(hours=24)
ROLES = ("admin", "developer", "viewer")
WRITERS = frozenset({"admin", "developer"})

SIGN_UP_PER_ADDRESS = Rule("portal-sign-up-address", 10, 3600)
EMAILS_PER_ADDRESS = Rule("portal-email", 3, 3600)
SIGN_IN_FAILURES_PER_EMAIL = Rule("portal-sign-in-email", 10, 900)
SIGN_IN_FAILURES_PER_ADDRESS = Rule("portal-sign-in-address", 50, 900)
VERIFY_PER_ADDRESS = Rule("portal-verify-address", 20, 3600)
FORGOT_PER_ADDRESS = Rule("portal-forgot-address", 10, 3600)
RESET_PER_ADDRESS = Rule("portal-reset-address", 30, 3600)
#: Every sign-in attempt, right or wrong (each costs an argon2 verification and may open a session).
SIGN_IN_PER_ADDRESS = Rule("portal-sign-in-all-address", 100, 900)
INVITES_PER_INVITER = Rule("portal-invites-developer", 20, 3600)
INVITES_PER_RECIPIENT = Rule("portal-invites-recipient", 3, 86_400)
TEST_DRIVES_PER_DEVELOPER = Rule("portal-test-drive", 60, 3600)
TOTP_SETUP_TTL = timedelta(minutes=10)
#: Wrong second-factor codes in a row after which the owner is told, and after which two-factor sign-in
#: locks (until a new password, or ``pwreset portal reset-two-factor``).
MFA_TELL_AT = 10
MFA_LOCK_AT = 100
SESSIONS_PER_DEVELOPER = 20


@dataclass(frozen=True)
class Signed:
    """A signed-in browser: the session, its developer, and the organisation it works in with their role."""

    session: PortalSession
    developer: Developer
    organisation: Organisation | None
    role: str | None
    organisations: tuple[tuple[Organisation, str], ...] = ()

    @property
    def can_write(self) -> bool:
        return self.role in WRITERS

    @property
    def two_factor(self) -> bool:
        """This session proved the second factor (not merely: the account has one)."""
        return self.developer.totp_enabled_at is not None and self.session.factors >= 2

    @property
    def two_factor_on(self) -> bool:
        return self.developer.totp_enabled_at is not None

    @property
    def staff(self) -> bool:
        """Staff pages need the staff flag and two-factor authentication."""
        return self.developer.staff and self.two_factor


@dataclass(frozen=True)
class SignIn:
    """A password that was right: a session, or (two-factor on) the challenge its second step answers."""

    token: str | None = None
    challenge: str | None = None


@dataclass(frozen=True)
class TotpSetup:
    secret: str
    uri: str


@dataclass(frozen=True)
class StaffView:
    developers: list[Developer]
    organisations: list[tuple[Organisation, int, int]]  # with member and app counts
    requests: list[tuple[AccessRequest, str, str, str]]  # with app name, organisation name, requester email
    interest: list[tuple[Any, ...]]  # api, developer name, email, organisation name, when


@dataclass(frozen=True)
class NewKey:
    client: ApiClient
    secret_key: str
    app_id: str


@dataclass(frozen=True)
class KeyView:
    client: ApiClient
    created_at: datetime
    last_used: datetime | None

    @property
    def active(self) -> bool:
        return self.client.revoked_at is None


@dataclass(frozen=True)
class InboxEntry:
    id: str
    created_at: datetime
    kind: str
    channel: str
    destination: str
    customer_id: str | None
    rendered: Rendered | None
    status: str


def throttled(retry_after: int) -> Throttled:
    minutes = max(1, -(-retry_after // 60))
    wait = f"{minutes} minute{'s' if minutes > 1 else ''}"
    return Throttled(f"Too many attempts from here. Try again in {wait}.", retry_after=retry_after)


def check_name(value: str, *, limit: int = 200, what: str = "your name") -> str:
    """A person's or an app's name as the portal shows and emails it: printable, no addresses or links (a name
    is put into emails the portal sends to other people)."""
    value = value.strip()
    if not value:
        raise Refused(f"Enter {what}", field="name")
    if len(value) > limit:
        raise Refused(f"Use at most {limit} characters", field="name")
    lowered = value.lower()
    if not value.isprintable() or any(mark in lowered for mark in ("://", "www.", "@", "<", ">")):
        raise Refused("Use letters, digits, spaces and simple punctuation only", field="name")
    return value


def normal_email(value: str) -> str:
    """The address as stored: validated, with its domain normalised, lower-cased as a whole (two accounts
    that differ only in case are one person)."""
    try:
        found = validate_email(value.strip(), check_deliverability=False)
    except EmailNotValidError:
        raise Refused("Enter an email address like name@example.com", field="email") from None
    return found.normalized.lower()


class PortalService:
    def __init__(
        self, *, settings: Settings, clock: Clock, hasher: KeyedHasher, hashing: PasswordHashing,
        policy: PasswordPolicy, outbox: Outbox, oauth: OAuthService, limiter: RateLimiter, sealer: Sealer,
    ) -> None:
        self.settings = settings
        self.sealer = sealer
        #: The test drive's tokens, by client id, with their expiry (a cache: losing it costs a token).
        self._test_drive_tokens: dict[str, tuple[str, float]] = {}
        self.clock = clock
        self.hasher = hasher
        self.hashing = hashing
        self.policy = policy
        self.outbox = outbox
        self.oauth = oauth
        self.limiter = limiter

    @property
    def institution_id(self) -> str:
        """The institution whose portal this is (the service refuses portal pages without one)."""
        if self.settings.portal_institution_id is None:
            raise NotFound("This service has no developer portal.")
        return self.settings.portal_institution_id

    def link(self, path: str) -> str:
        return (self.settings.public_url or "").rstrip("/") + path

    # -- accounts

    async def sign_up(self, session: AsyncSession, *, name: str, email: str, password: str, address: str) -> None:
        """Send a verification link that will create (or, unverified, claim) the account with this name and
        password. A known email gets the same answer and the same work, and an email saying so instead."""
        name = check_name(name)
        email = normal_email(email)
        self._check_password(password, email=email, name=name)
        await self._limit(SIGN_UP_PER_ADDRESS, address)
        password_hash = self.hashing.hash(password)  # before the lookup: a known email costs the same
        if not await self._email_allowance(email):
            return  # silently: a refusal here would tell a known address from an unknown one
        existing = await repository.developer_by_email(session, email)
        now = self.clock.now()
        if existing is None:
            existing = Developer(id=new_id(), email=email, name=name, password_hash=password_hash, created_at=now,
                                 password_changed_at=now)
            session.add(existing)
            await session.flush()
            await self._audit(session, "portal.signed_up", developer_id=existing.id)
        if existing.verified_at is None:
            await self._send_verification(session, existing, name=name, password_hash=password_hash)
        else:
            await self._email(session, "portal_exists", email, {"link": self.link("/portal/sign-in")})
            await self._audit(session, "portal.signed_up", outcome="known", developer_id=existing.id)

    async def _send_verification(
        self, session: AsyncSession, developer: Developer, *, name: str, password_hash: str
    ) -> None:
        """A link that verifies the account with this sign-up's name and password. Other outstanding links
        stay valid: each one carries its own sign-up, and only the address's owner can open any of them."""
        now = self.clock.now()
        token = new_secret(VERIFY_PREFIX)
        session.add(PortalCode(id=new_id(), purpose="verify", developer_id=developer.id,
                               code_hash=self.hasher.digest(H_VERIFY, token), created_at=now,
                               expires_at=now + VERIFY_TTL, attempts=0, name=name, password_hash=password_hash))
        await self._email(session, "portal_verify", developer.email,
                          {"link": self.link(f"/portal/verify?token={token}")})

    async def verify_email(self, session: AsyncSession, *, token: str, address: str) -> str | None:
        """Spend a verification link: the account is verified and gets its organisation and sandbox, whose
        institution id this returns (for the caller to load demo customers into once this commits)."""
        await self._limit(VERIFY_PER_ADDRESS, address)
        code = await repository.code_by_hash(
            session, purpose="verify", code_hashes=self.hasher.digests(H_VERIFY, token)
        ) if token.startswith(VERIFY_PREFIX) and len(token) < 100 else None
        now = self.clock.now()
        if code is None or code.used_at is not None or code.expires_at <= now:
            raise Refused("This link has expired or was already used. Sign in to get a new one.")
        code.used_at = now
        developer = await session.get(Developer, code.developer_id, with_for_update=True)
        assert developer is not None
        sandbox = None
        if developer.verified_at is None:
            developer.verified_at = now
            if code.password_hash is not None and code.name is not None:  # the sign-up this link was sent for
                developer.name, developer.password_hash = code.name, code.password_hash
                developer.password_changed_at = now
            await repository.retire_codes(session, developer_id=developer.id, purpose="verify", now=now)
            await repository.end_sessions(session, developer.id)
            sandbox = (await self._create_organisation(session, developer)).sandbox_institution_id
            await self._audit(session, "portal.verified", developer_id=developer.id)
        await session.flush()
        return sandbox

    async def _create_organisation(self, session: AsyncSession, developer: Developer) -> Organisation:
        now = self.clock.now()
        organisation_id = new_id()
        institution_id = "sbx-" + organisation_id[:20]
        session.add(Institution(id=institution_id, name=f"{developer.name[:60]}'s sandbox", created_at=now,
                                sandbox=True, mask_contact_info=False))
        await session.flush()
        organisation = Organisation(id=organisation_id, name=f"{developer.name[:80]}'s organisation",
                                    sandbox_institution_id=institution_id, created_at=now)
        session.add(organisation)
        await session.flush()
        session.add(Membership(organisation_id=organisation.id, developer_id=developer.id, role="admin",
                               created_at=now))
        await self._audit(session, "portal.organisation_created", developer_id=developer.id,
                          organisation_id=organisation.id, sandbox=institution_id)
        return organisation

    async def ensure_developer(self, session: AsyncSession, *, email: str, name: str, password: str) -> Organisation:
        """A verified developer with an organisation, made unless there (the sandbox's demo developer)."""
        developer = await repository.developer_by_email(session, normal_email(email))
        if developer is None:
            now = self.clock.now()
            developer = Developer(id=new_id(), email=normal_email(email), name=name,
                                  password_hash=self.hashing.hash(password), created_at=now, verified_at=now,
                                  password_changed_at=now)
            session.add(developer)
            await session.flush()
            return await self._create_organisation(session, developer)
        memberships = await repository.memberships_of(session, developer.id)
        return memberships[0][0]

    async def sign_in(self, session: AsyncSession, *, email: str, password: str, address: str) -> SignIn:
        """A session for the right password of a verified account, or, with two-factor on, a challenge for
        the code; one refusal for everything else. Each attempt is counted before the password is checked
        (so a burst cannot pass together) and given back when it was right."""
        try:
            email = normal_email(email)
        except Refused:
            email = email.strip().lower()[:320]
        await self._limit(SIGN_IN_PER_ADDRESS, address)
        counted = await self._count_attempt(email, address)
        developer = await repository.developer_by_email(session, email)
        verdict = self.hashing.verify(developer.password_hash if developer else None, password)
        if developer is None or not verdict.ok:
            if developer is not None:
                await self._audit(session, "portal.sign_in", outcome="failure", developer_id=developer.id)
            raise Refused("The email or password is not right.")
        await self._give_back(counted)
        if developer.verified_at is None:
            raise Refused("Confirm your email address first, with the link we sent. Lost it? Sign up again to "
                          "get a new one.")
        if verdict.needs_upgrade:
            developer.password_hash = self.hashing.hash(password)
        if developer.totp_enabled_at is not None:
            now = self.clock.now()
            challenge = new_secret(CHALLENGE_PREFIX)
            session.add(PortalCode(id=new_id(), purpose="mfa", developer_id=developer.id,
                                   code_hash=self.hasher.digest(H_CHALLENGE, challenge), created_at=now,
                                   expires_at=now + CHALLENGE_TTL, attempts=0))
            return SignIn(challenge=challenge)
        token, _ = await self._open_session(session, developer)
        await self._audit(session, "portal.sign_in", developer_id=developer.id, factors=1)
        return SignIn(token=token)

    async def _count_attempt(self, email: str, address: str) -> list[tuple[Rule, str, int]]:
        counted: list[tuple[Rule, str, int]] = []
        for rule, subject in ((SIGN_IN_FAILURES_PER_ADDRESS, address),
                              (SIGN_IN_FAILURES_PER_EMAIL, self._email_key(email))):
            try:
                counted.append((rule, subject, await self.limiter.consume(rule, subject)))
            except RateLimited as limited:
                await self._give_back(counted)
                raise throttled(limited.retry_after) from None
        return counted

    async def _give_back(self, counted: list[tuple[Rule, str, int]]) -> None:
        for rule, subject, index in counted:
            await self.limiter.release(rule, subject, index)

    async def second_factor(self, session: AsyncSession, *, challenge: str, code: str, address: str) -> str:
        """The sign-in's second step: a code from the authenticator app, or a recovery code. A challenge
        lives five minutes and takes five wrong codes; wrong codes also count against the address and the
        email, and in a row on the account: its owner is told at ten, and two-factor sign-in locks at a
        hundred. The developer row is locked, so one code cannot be spent twice at once."""
        row = await repository.code_by_hash(
            session, purpose="mfa", code_hashes=self.hasher.digests(H_CHALLENGE, challenge)
        ) if challenge.startswith(CHALLENGE_PREFIX) and len(challenge) < 100 else None
        now = self.clock.now()
        if row is None or row.used_at is not None or row.expires_at <= now or row.attempts >= CHALLENGE_ATTEMPTS:
            raise Refused("This sign-in has expired. Sign in again.")
        developer = await session.get(Developer, row.developer_id, with_for_update=True)
        assert developer is not None
        if developer.mfa_failures >= MFA_LOCK_AT:
            raise Forbidden("Two-factor sign-in is locked after too many wrong codes. Choose a new password "
                            "(Forgot your password?) to unlock it.")
        counted = await self._count_attempt(developer.email, address)
        row.attempts += 1
        if not await self._factor_ok(session, developer, code):
            developer.mfa_failures += 1
            if developer.mfa_failures % MFA_TELL_AT == 0:
                await self._email(session, "portal_mfa_failures", developer.email,
                                  {"count": developer.mfa_failures, "link": self.link("/portal/forgot")})
            await self._audit(session, "portal.sign_in", outcome="failure", developer_id=developer.id, factors=2,
                              in_a_row=developer.mfa_failures)
            raise Refused("That code is not right. Enter the current code from your app, or a recovery code.",
                          field="code")
        await self._give_back(counted)
        developer.mfa_failures = 0
        row.used_at = now
        token, _ = await self._open_session(session, developer, factors=2)
        await self._audit(session, "portal.sign_in", developer_id=developer.id, factors=2)
        return token

    async def _factor_ok(self, session: AsyncSession, developer: Developer, code: str) -> bool:
        code = code.strip().replace(" ", "").lower()
        if developer.totp_sealed is None:
            return False
        if code.isdigit() and len(code) == 6:
            step = self._totp_step(self.sealer.open(developer.totp_sealed).decode(), code)
            if step is None or (developer.totp_last_step is not None and step <= developer.totp_last_step):
                return False  # wrong, or already used (RFC 6238 section 5.2: no replay)
            developer.totp_last_step = step
            return True
        recovery = await repository.recovery_code(
            session, developer_id=developer.id,
            code_hashes=self.hasher.digests(H_RECOVERY, f"{developer.id}:{code.replace('-', '')}"),
        )
        if recovery is None or recovery.used_at is not None:
            return False
        recovery.used_at = self.clock.now()
        await self._audit(session, "portal.recovery_code_used", developer_id=developer.id)
        return True

    def _totp_step(self, secret: str, code: str) -> int | None:
        """The time step (30 s) within one step of now whose code is ``code``, compared in constant time."""
        totp = pyotp.TOTP(secret)
        now = int(self.clock.timestamp()) // totp.interval
        found = None
        for step in (now - 1, now, now + 1):
            if hmac.compare_digest(totp.generate_otp(step).encode(), code.encode()):
                found = step
        return found

    # -- two-factor authentication

    async def start_totp(self, session: AsyncSession, signed: Signed, *, password: str) -> TotpSetup:
        """A new secret waiting for its first code, after the password is entered again (a stolen session
        alone cannot put its own authenticator on the account). Shown to this session only, for ten minutes."""
        developer = await self._fresh(session, signed)
        if developer.totp_enabled_at is not None:
            raise Refused("Two-factor authentication is already on.")
        if not self.hashing.verify(developer.password_hash, password).ok:
            await self._audit(session, "portal.two_factor_started", outcome="failure", developer_id=developer.id)
            raise Refused("That is not your password.", field="password")
        secret = pyotp.random_base32(length=32)
        developer.totp_pending_sealed = self.sealer.seal(secret.encode())
        developer.totp_pending_session_id, developer.totp_pending_at = signed.session.id, self.clock.now()
        await self._audit(session, "portal.two_factor_started", developer_id=developer.id)
        return self._setup(developer, secret)

    def _pending_secret(self, developer: Developer, signed: Signed) -> str | None:
        if (developer.totp_enabled_at is not None or developer.totp_pending_sealed is None
                or developer.totp_pending_session_id != signed.session.id or developer.totp_pending_at is None
                or developer.totp_pending_at + TOTP_SETUP_TTL <= self.clock.now()):
            return None
        return self.sealer.open(developer.totp_pending_sealed).decode()

    async def pending_totp(self, session: AsyncSession, signed: Signed) -> TotpSetup | None:
        developer = await self._fresh(session, signed)
        secret = self._pending_secret(developer, signed)
        return None if secret is None else self._setup(developer, secret)

    def _setup(self, developer: Developer, secret: str) -> TotpSetup:
        return TotpSetup(secret, pyotp.TOTP(secret).provisioning_uri(name=developer.email, issuer_name=TOTP_ISSUER))

    async def confirm_totp(self, session: AsyncSession, signed: Signed, *, code: str) -> list[str]:
        """Turn two-factor on with a first code from the app; returns the recovery codes, shown once. This
        session counts as signed in with both factors; every other session of the developer ends."""
        developer = await self._fresh(session, signed)
        secret = self._pending_secret(developer, signed)
        if secret is None:
            raise Refused("The set-up has expired. Start again.")
        code = code.strip().replace(" ", "")
        step = self._totp_step(secret, code) if code.isdigit() and len(code) == 6 else None
        if step is None:
            await self._audit(session, "portal.two_factor_enabled", outcome="failure", developer_id=developer.id)
            raise Refused("That code is not right. Enter the 6-digit code your app shows now.", field="code")
        developer.totp_sealed, developer.totp_pending_sealed = developer.totp_pending_sealed, None
        developer.totp_pending_session_id = developer.totp_pending_at = None
        developer.totp_enabled_at, developer.totp_last_step = self.clock.now(), step
        developer.mfa_failures = 0
        codes = []
        for _ in range(RECOVERY_CODES):
            raw = base64.b32encode(secrets.token_bytes(5)).decode().lower()  # 40 bits, 8 characters
            codes.append(f"{raw[:4]}-{raw[4:]}")
            session.add(RecoveryCode(id=new_id(), developer_id=developer.id,
                                     code_hash=self.hasher.digest(H_RECOVERY, f"{developer.id}:{raw}")))
        await session.execute(delete(PortalSession).where(PortalSession.developer_id == developer.id,
                                                          PortalSession.id != signed.session.id))
        await session.execute(update(PortalSession).where(PortalSession.id == signed.session.id).values(factors=2))
        await self._audit(session, "portal.two_factor_enabled", developer_id=developer.id)
        return codes

    async def reset_two_factor(self, session: AsyncSession, *, email: str, by: str) -> Developer:
        """Take two-factor off an account (``pwreset portal reset-two-factor``: a developer who lost both the
        app and the recovery codes, after the institution has checked who they are). Sessions end."""
        developer = await repository.developer_by_email(session, normal_email(email))
        if developer is None:
            raise NotFound(f"No developer signed up as {email}.")
        developer.totp_sealed = developer.totp_pending_sealed = developer.totp_enabled_at = None
        developer.totp_last_step = developer.totp_pending_session_id = developer.totp_pending_at = None
        developer.mfa_failures = 0
        await session.execute(delete(RecoveryCode).where(RecoveryCode.developer_id == developer.id))
        await repository.end_sessions(session, developer.id)
        await audit.record_event(session, clock=self.clock, event_type="portal.two_factor_reset", outcome="success",
                                 actor="cli", institution_id=self.institution_id,
                                 details={"developer_id": developer.id, "by": by})
        return developer

    async def _fresh(self, session: AsyncSession, signed: Signed) -> Developer:
        """The developer row in this transaction, locked for the change."""
        developer = await session.get(Developer, signed.developer.id, with_for_update=True)
        if developer is None:
            raise NotFound("No such account.")
        return developer

    async def _open_session(
        self, session: AsyncSession, developer: Developer, *, factors: int = 1
    ) -> tuple[str, PortalSession]:
        """A new session; a developer keeps at most twenty (the oldest end first)."""
        now = self.clock.now()
        token = new_secret(SESSION_PREFIX)
        row = PortalSession(id=new_id(), token_hash=self.hasher.digest(H_SESSION, token), developer_id=developer.id,
                            created_at=now, last_seen_at=now, factors=factors,
                            expires_at=now + timedelta(seconds=self.settings.portal_session_absolute))
        session.add(row)
        await session.flush()
        await repository.keep_newest_sessions(session, developer.id, SESSIONS_PER_DEVELOPER)
        return token, row

    async def signed_in(self, session: AsyncSession, token: str | None) -> Signed | None:
        """The session a cookie names, if it is still alive (touched at most once a minute)."""
        if not token or not token.startswith(SESSION_PREFIX) or len(token) > 100:
            return None
        found = None
        for digest in self.hasher.digests(H_SESSION, token):
            found = await repository.session_by_hash(session, digest)
            if found is not None:
                break
        if found is None:
            return None
        row, developer = found
        now = self.clock.now()
        idle = timedelta(seconds=self.settings.portal_session_idle)
        if row.expires_at <= now or row.last_seen_at + idle <= now or row.created_at < developer.password_changed_at:
            await session.delete(row)
            return None
        if now - row.last_seen_at >= TOUCH_EVERY:
            row.last_seen_at = now
        memberships = await repository.memberships_of(session, developer.id)
        current = next(((o, r) for o, r in memberships if o.id == row.organisation_id), None)
        current = current or (memberships[0] if memberships else None)
        return Signed(row, developer, current[0] if current else None, current[1] if current else None,
                      tuple(memberships))

    async def switch_organisation(self, session: AsyncSession, signed: Signed, organisation_id: str) -> None:
        if organisation_id not in {o.id for o, _ in signed.organisations}:
            raise NotFound("You are not in that organisation.")
        row = await session.get(PortalSession, signed.session.id)
        if row is not None:
            row.organisation_id = organisation_id
        await self._audit(session, "portal.organisation_switched", developer_id=signed.developer.id,
                          organisation_id=organisation_id)

    async def sign_out(self, session: AsyncSession, signed: Signed) -> None:
        await session.delete(signed.session)
        await self._audit(session, "portal.sign_out", developer_id=signed.developer.id)

    async def forgot(self, session: AsyncSession, *, email: str, address: str) -> None:
        """Email a one-time code to a verified account; the same answer, and the same writes (an audit event),
        for any other address. The per-email allowance is spent for every address and its end is silent."""
        email = normal_email(email)
        await self._limit(FORGOT_PER_ADDRESS, address)
        allowed = await self._email_allowance(email)
        developer = await repository.developer_by_email(session, email)
        if developer is None or developer.verified_at is None or not allowed:
            await self._audit(session, "portal.forgot", outcome="not_sent",
                              developer_id=developer.id if developer else None)
            return
        now = self.clock.now()
        await repository.retire_codes(session, developer_id=developer.id, purpose="forgot", now=now)
        code = f"{secrets.randbelow(10**8):08d}"
        session.add(PortalCode(id=new_id(), purpose="forgot", developer_id=developer.id,
                               code_hash=self.hasher.digest(H_FORGOT, f"{developer.id}:{code}"), created_at=now,
                               expires_at=now + FORGOT_TTL, attempts=0))
        await self._email(session, "portal_forgot", developer.email,
                          {"code": code, "minutes": int(FORGOT_TTL.total_seconds() // 60)})
        await self._audit(session, "portal.forgot", developer_id=developer.id)

    async def reset_password(
        self, session: AsyncSession, *, email: str, code: str, password: str, address: str
    ) -> None:
        """A new password for the right code: every session ends, the code is spent. A wrong code counts
        against the code, which dies after five, and every try against the address."""
        email = normal_email(email)
        await self._limit(RESET_PER_ADDRESS, address)
        developer = await repository.developer_by_email(session, email)
        now = self.clock.now()
        live = None
        if developer is not None:
            live = await repository.live_code(session, developer_id=developer.id, purpose="forgot", now=now)
        wrong = Refused("The code is not right, or has expired. Ask for a new one.", field="code")
        if developer is None or live is None or live.attempts >= FORGOT_ATTEMPTS:
            raise wrong
        if not self.hasher.verify(H_FORGOT, f"{developer.id}:{code.strip()}", live.code_hash):
            live.attempts += 1
            await self._audit(session, "portal.password_reset", outcome="failure", developer_id=developer.id)
            raise wrong
        self._check_password(password, email=email, name=developer.name)
        live.used_at = now
        await self._set_password(session, developer, password)
        await self._audit(session, "portal.password_reset", developer_id=developer.id)

    async def _set_password(self, session: AsyncSession, developer: Developer, password: str) -> None:
        """A new password: every session ends, and every outstanding sign-in challenge with it; a two-factor
        lock (too many wrong codes) is lifted, since whoever guessed no longer has the password."""
        now = self.clock.now()
        developer.password_hash = self.hashing.hash(password)
        developer.password_changed_at = now
        developer.mfa_failures = 0
        await repository.end_sessions(session, developer.id)
        await repository.retire_codes(session, developer_id=developer.id, purpose="mfa", now=now)

    def _check_password(self, password: str, *, email: str, name: str) -> None:
        reasons = self.policy.reasons(
            password, login_id=email.split("@")[0], current_hash=None, min_length=MIN_PASSWORD,
            context=[email, *name.split(), "portal", "developer"],
        )
        if reasons:
            raise Refused("The password " + "; ".join(reasons) + ".", field="password")

    # -- apps and keys

    def allowed_scopes(self, organisation: Organisation) -> list[str]:
        """The scopes an organisation's sandbox apps may pick: all the service's, in its own sandbox."""
        return sorted(scope_names.KNOWN_SCOPES)

    async def apps(self, session: AsyncSession, signed: Signed) -> Sequence[App]:
        organisation = self._organisation(signed)
        return await repository.apps(session, organisation.id)

    async def create_app(self, session: AsyncSession, signed: Signed, *, name: str, scopes: list[str]) -> NewKey:
        organisation = self._writer(signed)
        name = check_name(name, limit=100, what="a name for the app")
        chosen = set(scopes)
        if not chosen:
            raise Refused("Pick at least one API scope", field="scopes")
        if not chosen <= set(self.allowed_scopes(organisation)):
            raise Refused("Pick scopes from the list", field="scopes")
        app = App(id=new_id(), organisation_id=organisation.id, name=name, scopes=" ".join(sorted(chosen)),
                  environment="sandbox", created_at=self.clock.now())
        session.add(app)
        await session.flush()
        await self._audit(session, "portal.app_created", developer_id=signed.developer.id,
                          organisation_id=organisation.id, app=app.id)
        return await self._new_key(session, signed, app)

    async def app(self, session: AsyncSession, signed: Signed, app_id: str) -> tuple[App, list[KeyView]]:
        organisation = self._organisation(signed)
        app = await repository.app(session, organisation_id=organisation.id, app_id=app_id)
        if app is None:
            raise NotFound("There is no such app in your organisation.")
        pairs = await repository.keys(session, organisation_id=organisation.id, app_id=app.id)
        used = await repository.last_used(session, [client.id for _, client in pairs])
        return app, [KeyView(client, key.created_at, used.get(client.id)) for key, client in pairs]

    async def add_key(self, session: AsyncSession, signed: Signed, app_id: str) -> NewKey:
        self._writer(signed)
        app, _ = await self.app(session, signed, app_id)
        return await self._new_key(session, signed, app)

    async def _new_key(self, session: AsyncSession, signed: Signed, app: App) -> NewKey:
        organisation = self._organisation(signed)
        self._production_guard(signed, app)
        institution_id = self.institution_id if app.environment == "production" else organisation.sandbox_institution_id
        created = await self.oauth.create_client(
            session, institution_id=institution_id, scope=app.scopes, name=app.name,
            grant_types=scope_names.GRANT_CLIENT_CREDENTIALS, actor="portal",
        )
        session.add(AppKey(client_id=created.client.id, app_id=app.id, created_at=self.clock.now()))
        await session.flush()
        await self._audit(session, "portal.key_created", developer_id=signed.developer.id,
                          organisation_id=organisation.id, app=app.id, client=created.client.id)
        return NewKey(created.client, created.secret_key, app.id)

    async def _key(self, session: AsyncSession, signed: Signed, app_id: str, client_id: str) -> tuple[
        App, KeyView, list[KeyView]
    ]:
        self._writer(signed)
        app, views = await self.app(session, signed, app_id)
        for view in views:
            if view.client.id == client_id and view.active:
                return app, view, views
        raise NotFound("There is no such active key pair in this app.")

    async def revoke_key(
        self, session: AsyncSession, signed: Signed, *, app_id: str, client_id: str, confirmed: bool
    ) -> bool:
        """Revoke a pair. The app's last active pair is revoked only once confirmed: returns False to ask."""
        app, view, views = await self._key(session, signed, app_id, client_id)
        if sum(v.active for v in views) == 1 and not confirmed:
            return False
        await self.oauth.revoke_client(session, shared_key=view.client.shared_key, actor="portal")
        await self._audit(session, "portal.key_revoked", developer_id=signed.developer.id,
                          organisation_id=app.organisation_id, app=app.id, client=client_id)
        return True

    async def rotate_key(self, session: AsyncSession, signed: Signed, *, app_id: str, client_id: str) -> NewKey:
        """A new secret key for the pair; the one it replaces still works for 24 hours."""
        app, view, _ = await self._key(session, signed, app_id, client_id)
        self._production_guard(signed, app)
        rotated = await self.oauth.rotate_client_secret(
            session, shared_key=view.client.shared_key, grace=ROTATION_GRACE, force=True, actor="portal"
        )
        await self._audit(session, "portal.key_rotated", developer_id=signed.developer.id,
                          organisation_id=app.organisation_id, app=app.id, client=client_id)
        return NewKey(rotated.client, rotated.secret_key, app.id)

    def _production_guard(self, signed: Signed, app: App) -> None:
        if app.environment == "production" and not signed.two_factor:
            raise Forbidden("Production keys need two-factor authentication: turn it on first.")

    # -- production access

    async def request_access(
        self, session: AsyncSession, signed: Signed, *, app_id: str, purpose: str
    ) -> AccessRequest:
        """Ask the institution's staff for production access for a sandbox app (two-factor required, as
        Candescent's console requires it). One pending request per app."""
        organisation = self._writer(signed)
        if not signed.two_factor:
            raise Forbidden("Turn on two-factor authentication before asking for production access.")
        purpose = purpose.strip()
        if not 10 <= len(purpose) <= 1000:
            raise Refused("Tell us in 10 to 1,000 characters what the app will do", field="purpose")
        app, _ = await self.app(session, signed, app_id)
        if app.environment != "sandbox":
            raise Refused("This app is already a production app.")
        earlier = await repository.requests_of_app(session, organisation_id=organisation.id, app_id=app.id)
        if any(r.status == "pending" for r in earlier):
            raise Refused("This app already has a request waiting for a decision.")
        if any(r.status == "approved" for r in earlier):
            raise Refused("This app already has its production twin.")
        request = AccessRequest(id=new_id(), organisation_id=organisation.id, app_id=app.id,
                                requested_by=signed.developer.id, purpose=purpose, scopes=app.scopes,
                                status="pending", created_at=self.clock.now())
        session.add(request)
        await session.flush()
        representative = self.settings.portal_representative_email
        if representative:
            await self._email(session, "portal_access_requested", representative, {
                "developer": signed.developer.name[:80], "email": signed.developer.email,
                "organisation": organisation.name[:100], "app": app.name, "link": self.link("/portal/staff"),
            })
        await self._audit(session, "portal.access_requested", developer_id=signed.developer.id,
                          organisation_id=organisation.id, app=app.id, request=request.id)
        return request

    async def access_requests(self, session: AsyncSession, signed: Signed, app_id: str) -> Sequence[AccessRequest]:
        organisation = self._organisation(signed)
        return await repository.requests_of_app(session, organisation_id=organisation.id, app_id=app_id)

    async def decide(
        self, session: AsyncSession, *, request_id: str, approve: bool, by: str, note: str = "",
        scopes: list[str] | None = None, staff: Signed | None = None,
    ) -> AccessRequest:
        """Approve or deny a pending request (staff pages: ``staff``; the command line: ``by="cli:<user>"``).
        Approval grants the requested scopes, or the subset ``scopes``, to the app's production twin, whose
        keys are bound to the institution itself. Staff do not decide their own organisations' requests."""
        if staff is not None and not staff.staff:
            raise Forbidden("Staff pages need a staff account with two-factor authentication.")
        request = await session.get(AccessRequest, request_id, with_for_update=True)
        if request is None:
            raise NotFound("There is no such request.")
        if request.status != "pending":
            raise Refused(f"This request was already {request.status}.")
        if staff is not None and request.organisation_id in {o.id for o, _ in staff.organisations}:
            raise Forbidden("This request comes from one of your own organisations: another member of staff "
                            "decides it.")
        requested = set(request.scopes.split())
        granted = requested if scopes is None else set(scopes)
        if approve and (not granted or not granted <= requested):
            raise Refused("Grant at least one of the scopes the request asks for, and no other.")
        app = await session.get(App, request.app_id)
        developer = await session.get(Developer, request.requested_by)
        assert app is not None and developer is not None
        now = self.clock.now()
        request.status, request.decided_by, request.decided_at = ("approved" if approve else "denied"), by, now
        request.note = note.strip()[:1000] or None
        if approve:
            twin = App(id=new_id(), organisation_id=request.organisation_id, name=f"{app.name[:80]} (production)",
                       scopes=" ".join(sorted(granted)), environment="production", created_at=now)
            session.add(twin)
            await session.flush()
            request.production_app_id = twin.id
        await self._email(session, "portal_access_decided", developer.email, {
            "name": developer.name[:80], "app": app.name, "decision": request.status,
            "note": request.note or "", "link": self.link("/portal/dashboard"),
        })
        await self._audit(session, f"portal.access_{request.status}", developer_id=developer.id,
                          organisation_id=request.organisation_id, app=app.id, request=request.id, by=by,
                          production_app=request.production_app_id,
                          granted=" ".join(sorted(granted)) if approve else None)
        return request

    # -- the institution's staff

    async def staff_view(self, session: AsyncSession, signed: Signed | None) -> StaffView:
        """Everything the institution's staff oversee: developers, organisations, requests, interest."""
        if signed is not None and not signed.staff:
            raise Forbidden("Staff pages need a staff account with two-factor authentication.")
        developers = (await session.scalars(select(Developer).order_by(Developer.created_at.desc()).limit(500))).all()
        organisations = (await session.execute(
            select(Organisation, func.count(func.distinct(Membership.developer_id)), func.count(func.distinct(App.id)))
            .outerjoin(Membership, Membership.organisation_id == Organisation.id)
            .outerjoin(App, App.organisation_id == Organisation.id)
            .group_by(Organisation.id).order_by(Organisation.created_at.desc()).limit(500)
        )).all()
        requests = (await session.execute(
            select(AccessRequest, App.name, Organisation.name, Developer.email)
            .join(App, App.id == AccessRequest.app_id)
            .join(Organisation, Organisation.id == AccessRequest.organisation_id)
            .join(Developer, Developer.id == AccessRequest.requested_by)
            .order_by((AccessRequest.status == "pending").desc(), AccessRequest.created_at.desc()).limit(500)
        )).all()
        interest = (await session.execute(
            select(Interest.api, Developer.name, Developer.email, Organisation.name, Interest.created_at)
            .join(Developer, Developer.id == Interest.developer_id)
            .join(Organisation, Organisation.id == Interest.organisation_id)
            .order_by(Interest.created_at.desc()).limit(500)
        )).all()
        return StaffView(
            developers=list(developers),
            organisations=[(o, int(m), int(a)) for o, m, a in organisations],
            requests=[(r, app, org, email) for r, app, org, email in requests],
            interest=[tuple(row) for row in interest],
        )

    async def set_staff(self, session: AsyncSession, *, email: str, staff: bool) -> Developer:
        """Grant or take back the staff role (``pwreset portal staff``)."""
        developer = await repository.developer_by_email(session, normal_email(email))
        if developer is None:
            raise NotFound(f"No developer signed up as {email}.")
        developer.staff = staff
        await audit.record_event(session, clock=self.clock, event_type="portal.staff_" + ("granted" if staff else
                                 "revoked"), outcome="success", actor="cli", institution_id=self.institution_id,
                                 details={"developer_id": developer.id})
        return developer

    # -- teammates

    async def invite(self, session: AsyncSession, signed: Signed, *, email: str, role: str) -> None:
        """Invite a teammate by email with a role; the link works once, for 72 hours."""
        organisation = self._organisation(signed)
        if signed.role != "admin":
            raise Forbidden("Only an organisation's admins invite teammates.")
        if role not in ROLES:
            raise Refused("Choose a role", field="role")
        email = normal_email(email)
        await self._limit(INVITES_PER_INVITER, signed.developer.id)
        token = new_secret(INVITE_PREFIX)
        now = self.clock.now()
        invitation = Invitation(id=new_id(), organisation_id=organisation.id, email=email, role=role,
                                token_hash=self.hasher.digest(H_INVITE, token), invited_by=signed.developer.id,
                                created_at=now, expires_at=now + INVITE_TTL)
        session.add(invitation)
        # Invitations have their own allowance per recipient (they never use up the recipient's own emails),
        # and its end is silent: the inviter learns nothing of the address.
        try:
            await self.limiter.consume(INVITES_PER_RECIPIENT, self._email_key(email))
        except RateLimited:
            sent = False
        else:
            sent = True
            await self._email(session, "portal_invite", email, {
                "inviter": signed.developer.name[:80], "organisation": organisation.name[:100],
                "role": role.capitalize(), "link": self.link(f"/portal/invite?token={token}"),
            })
        await self._audit(session, "portal.invited", developer_id=signed.developer.id,
                          organisation_id=organisation.id, role=role, invitation=invitation.id,
                          invitee=self._email_key(email), sent=sent)

    async def invitation(self, session: AsyncSession, token: str) -> tuple[Invitation, Organisation]:
        row = None
        if token.startswith(INVITE_PREFIX) and len(token) < 100:
            row = (await session.scalars(select(Invitation).where(
                Invitation.token_hash.in_(self.hasher.digests(H_INVITE, token))).with_for_update())).first()
        if row is None or row.accepted_at is not None or row.expires_at <= self.clock.now():
            raise Refused("This invitation has expired or was already used. Ask for a new one.")
        organisation = await session.get(Organisation, row.organisation_id)
        assert organisation is not None
        return row, organisation

    async def accept(self, session: AsyncSession, signed: Signed, *, token: str) -> None:
        invitation, organisation = await self.invitation(session, token)
        if not hmac.compare_digest(invitation.email.encode(), signed.developer.email.encode()):
            raise Forbidden("This invitation is for another email address. Sign in as the invited address.")
        invitation.accepted_at = self.clock.now()
        if organisation.id not in {o.id for o, _ in signed.organisations}:
            session.add(Membership(organisation_id=organisation.id, developer_id=signed.developer.id,
                                   role=invitation.role, created_at=self.clock.now()))
        row = await session.get(PortalSession, signed.session.id)
        if row is not None:
            row.organisation_id = organisation.id
        await self._audit(session, "portal.invitation_accepted", developer_id=signed.developer.id,
                          organisation_id=organisation.id, role=invitation.role)

    async def members(self, session: AsyncSession, signed: Signed) -> list[tuple[Developer, str]]:
        organisation = self._organisation(signed)
        rows = await session.execute(
            select(Developer, Membership.role).join(Membership, Membership.developer_id == Developer.id)
            .where(Membership.organisation_id == organisation.id).order_by(Membership.created_at)
        )
        return [(row[0], row[1]) for row in rows]

    # -- the sandbox

    async def sandbox_customers(self, session: AsyncSession, signed: Signed) -> int:
        organisation = self._organisation(signed)
        count = await session.scalar(
            select(func.count()).select_from(Customer)
            .where(Customer.institution_id == organisation.sandbox_institution_id)
        )
        return int(count or 0)

    async def test_drive_client(
        self, session: AsyncSession, signed: Signed, *, operation: str, method: str
    ) -> ApiClient:
        """The client the test drive calls the organisation's sandbox as, made on first use with every scope.
        Its secret is thrown away at once: nobody can present it; the portal issues its tokens itself. A
        Viewer may only read (GET); each developer has sixty calls an hour."""
        organisation = self._organisation(signed)
        if method != "GET" and not signed.can_write:
            raise Forbidden("Your role in this organisation (Viewer) can try the reading calls only.")
        await self._limit(TEST_DRIVES_PER_DEVELOPER, signed.developer.id)
        client = None
        if organisation.test_drive_client_id is not None:
            client = await session.get(ApiClient, organisation.test_drive_client_id)
        if client is None or client.revoked_at is not None:
            row = await session.get(Organisation, organisation.id, with_for_update=True)
            assert row is not None
            created = await self.oauth.create_client(
                session, institution_id=organisation.sandbox_institution_id, scope=" ".join(scope_names.KNOWN_SCOPES),
                name="Portal test drive", grant_types=scope_names.GRANT_CLIENT_CREDENTIALS, actor="portal",
            )
            client, row.test_drive_client_id = created.client, created.client.id
            await session.flush()
        await self._audit(session, "portal.test_drive", developer_id=signed.developer.id,
                          organisation_id=organisation.id, operation=operation, method=method)
        return client

    async def test_drive_token(self, client: ApiClient) -> str:
        """A token for the test drive's client (one per organisation, reused until five minutes before it
        expires), written by the token service's own group commit after the caller's transaction."""
        now = self.clock.timestamp()
        held = self._test_drive_tokens.get(client.id)
        if held is not None and held[1] - 300 > now:
            return held[0]
        issued = await self.oauth.issue_held_client_token(client)
        if len(self._test_drive_tokens) > 10_000:
            self._test_drive_tokens.clear()
        self._test_drive_tokens[client.id] = (issued.access_token, now + issued.expires_in)
        return issued.access_token

    async def institution_user_id(self, session: AsyncSession, signed: Signed, customer_id: str) -> str:
        """A demo customer's ``institutionUserId`` in the organisation's sandbox (it derives from the row)."""
        organisation = self._organisation(signed)
        pk = await session.scalar(select(Customer.id).where(
            Customer.institution_id == organisation.sandbox_institution_id, Customer.customer_id == customer_id))
        return institution_user_id(pk) if pk else ""

    async def inbox(self, session: AsyncSession, signed: Signed, *, limit: int = 50) -> list[InboxEntry]:
        """What the organisation's sandbox sent its demo customers, newest first, as they would read it."""
        organisation = self._organisation(signed)
        institution = await session.get(Institution, organisation.sandbox_institution_id)
        assert institution is not None and institution.sandbox
        rows = (await session.scalars(
            select(OutboxMessage).where(OutboxMessage.institution_id == organisation.sandbox_institution_id)
            .order_by(OutboxMessage.created_at.desc()).limit(limit)
        )).all()
        entries = []
        for row in rows:
            rendered = None
            destination = row.destination_masked
            try:
                opened = self.outbox.open(row)
            except NotOurKey:
                opened = None
            if opened is not None:
                destination = opened.destination
                variables = {**opened.variables, **variables_for(
                    institution=institution.name, code=str(opened.variables.get("code", "")),
                    minutes=int(opened.variables.get("minutes", 0)))}
                rendered = render_default(row.kind, row.channel, row.language, variables)
            entries.append(InboxEntry(row.id, row.created_at, row.kind, row.channel, destination, row.customer_id,
                                      rendered, row.status))
        return entries

    # -- the watchlist

    async def watched(self, session: AsyncSession, signed: Signed) -> set[str]:
        return await repository.interests(session, signed.developer.id)

    async def watch(self, session: AsyncSession, signed: Signed, *, api: str, title: str) -> bool:
        """Add an API to the developer's watchlist and tell the institution's representative. False when it
        was there already (nobody is told twice)."""
        organisation = self._organisation(signed)
        if api in await repository.interests(session, signed.developer.id):
            return False
        session.add(Interest(id=new_id(), developer_id=signed.developer.id, organisation_id=organisation.id,
                             api=api, created_at=self.clock.now()))
        representative = self.settings.portal_representative_email
        if representative:
            await self._email(session, "portal_interest", representative, {
                "developer": signed.developer.name[:80], "email": signed.developer.email,
                "organisation": organisation.name[:100], "api": title,
            })
        await self._audit(session, "portal.interest", developer_id=signed.developer.id,
                          organisation_id=organisation.id, api=api, told=bool(representative))
        return True

    # -- helpers

    def _organisation(self, signed: Signed) -> Organisation:
        if signed.organisation is None:
            raise NotFound("You are not in an organisation.")
        return signed.organisation

    def _writer(self, signed: Signed) -> Organisation:
        organisation = self._organisation(signed)
        if not signed.can_write:
            raise Forbidden("Your role in this organisation (Viewer) cannot change apps or keys.")
        return organisation

    async def _email_allowance(self, email: str) -> bool:
        """Whether this address may be sent another email this hour (counted for every address, known or not)."""
        try:
            await self.limiter.consume(EMAILS_PER_ADDRESS, self._email_key(email))
        except RateLimited:
            return False
        return True

    def _email_key(self, email: str) -> str:
        return self.hasher.digest("portal-email-limit", email)[:32]

    async def _limit(self, rule: Rule, subject: str) -> None:
        try:
            await self.limiter.consume(rule, subject)
        except RateLimited as limited:
            raise throttled(limited.retry_after) from None

    async def _email(self, session: AsyncSession, kind: str, to: str, variables: dict[str, Any]) -> None:
        await self.outbox.enqueue(session, Message(
            institution_id=self.institution_id, kind=kind, channel="EMAIL", destination=to, variables=variables,
        ))

    async def _audit(
        self, session: AsyncSession, event_type: str, *, outcome: str = "success", **details: Any
    ) -> None:
        await audit.record_event(
            session, clock=self.clock, event_type=event_type, outcome=outcome, actor="portal",
            institution_id=self.institution_id, details=details,
        )
