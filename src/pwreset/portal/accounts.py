"""Developer accounts: sign-up and verification, sign-in with its second step, two-factor set-up,
sessions, the forgotten password. The caller owns the transaction."""

from __future__ import annotations

import base64
import hmac
import secrets
from datetime import timedelta

import pyotp
from sqlalchemy import delete, update
from sqlalchemy.ext.asyncio import AsyncSession

from pwreset.audit import service as audit
from pwreset.errors import RateLimited
from pwreset.institutions.models import Institution
from pwreset.kit.crypto import new_id, new_secret
from pwreset.portal import repository
from pwreset.portal.core import (
    CHALLENGE_ATTEMPTS,
    CHALLENGE_PREFIX,
    CHALLENGE_TTL,
    FORGOT_ATTEMPTS,
    FORGOT_PER_ADDRESS,
    FORGOT_TTL,
    H_CHALLENGE,
    H_FORGOT,
    H_RECOVERY,
    H_SESSION,
    H_VERIFY,
    MFA_LOCK_AT,
    MFA_TELL_AT,
    MIN_PASSWORD,
    RECOVERY_CODES,
    RESET_PER_ADDRESS,
    SESSION_PREFIX,
    SESSIONS_PER_DEVELOPER,
    SIGN_IN_FAILURES_PER_ADDRESS,
    SIGN_IN_FAILURES_PER_EMAIL,
    SIGN_IN_PER_ADDRESS,
    SIGN_UP_PER_ADDRESS,
    TOTP_ISSUER,
    TOTP_SETUP_TTL,
    TOUCH_EVERY,
    VERIFY_PER_ADDRESS,
    VERIFY_PREFIX,
    VERIFY_TTL,
    PortalCore,
    Signed,
    SignIn,
    TotpSetup,
    check_name,
    normal_email,
    throttled,
)
from pwreset.portal.errors import Forbidden, NotFound, Refused
from pwreset.portal.models import (
    Developer,
    Membership,
    Organisation,
    PortalCode,
    PortalSession,
    RecoveryCode,
)
from pwreset.ratelimit.limiter import Rule


class Accounts(PortalCore):
    """Developer accounts, their sessions and two-factor authentication."""

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
        session.add(Institution(id=institution_id, name=f"Sandbox CU ({developer.name[:60]})", created_at=now,
                                sandbox=True, mask_contact_info=False, contact_line="1-800-555-0100"))
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
        if reasons:  # (the policy speaks of a customer's login id; a developer signs in with an email)
            reasons = [r.replace("the login id", "your email address") for r in reasons]
            raise Refused("The password " + "; ".join(reasons) + ".", field="password")
