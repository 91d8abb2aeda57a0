"""The portal service's shared part: its constants (prefixes, lifetimes, limits), the shapes it answers
with, and :class:`PortalCore` (collaborators and helpers: audit, email, limits, the caller's organisation)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from pwreset.audit import service as audit
from pwreset.config import Settings
from pwreset.delivery.outbox import Message, Outbox
from pwreset.delivery.rendering import Rendered
from pwreset.errors import RateLimited
from pwreset.kit.clock import Clock
from pwreset.kit.crypto import KeyedHasher, Sealer, new_id
from pwreset.oauth.models import ApiClient
from pwreset.oauth.service import OAuthService
from pwreset.passwords.hashing import PasswordHashing
from pwreset.passwords.policy import PasswordPolicy
from pwreset.portal.errors import AlreadySent, Forbidden, NotFound, Refused, Throttled
from pwreset.portal.models import (
    AccessRequest,
    Developer,
    Organisation,
    PortalCode,
    PortalSession,
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
    return Throttled(f"Too many attempts. Try again in {wait}.", retry_after=retry_after)


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


class PortalCore:
    """What every part of the portal's service shares: its collaborators and helpers."""

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

    async def spend_form(self, session: AsyncSession, signed: Signed, once: str) -> None:
        """Spend a form's single-use value (forms.OnceForm): a reload of its answer, or a second click, is
        refused instead of making a second app, key pair, request or invitation. Two at the same moment
        meet the unique hash (the caller's IntegrityError)."""
        digest = self.hasher.digest("portal-form", f"{signed.developer.id}:{once}")
        taken = await session.scalar(select(PortalCode.id).where(PortalCode.code_hash == digest))
        if taken is not None:
            raise AlreadySent("This form was already sent, and what it asked for is done.")
        now = self.clock.now()
        session.add(PortalCode(id=new_id(), purpose="form", developer_id=signed.developer.id, code_hash=digest,
                               created_at=now, expires_at=now + timedelta(hours=4), used_at=now, attempts=0))
        await session.flush()

    async def _fresh(self, session: AsyncSession, signed: Signed) -> Developer:
        """The developer row in this transaction, locked for the change."""
        developer = await session.get(Developer, signed.developer.id, with_for_update=True)
        if developer is None:
            raise NotFound("No such account.")
        return developer

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
