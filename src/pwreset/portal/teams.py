"""Teammates: invitations with a role, accepting them, the members of an organisation. The caller owns
the transaction."""

from __future__ import annotations

import hmac

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from pwreset.errors import RateLimited
from pwreset.kit.crypto import new_id, new_secret
from pwreset.portal.core import (
    H_INVITE,
    INVITE_PREFIX,
    INVITE_TTL,
    INVITES_PER_INVITER,
    INVITES_PER_RECIPIENT,
    ROLES,
    PortalCore,
    Signed,
    normal_email,
)
from pwreset.portal.errors import Forbidden, Refused
from pwreset.portal.models import (
    Developer,
    Invitation,
    Membership,
    Organisation,
    PortalSession,
)


class Teams(PortalCore):
    """Teammates and their roles."""

    # -- teammates

    async def invite(self, session: AsyncSession, signed: Signed, *, email: str, role: str) -> None:
        """Invite a teammate by email with a role; the link works once, for 72 hours."""
        organisation = self._organisation(signed)
        if signed.role != "admin":
            raise Forbidden("Only an organisation's admins invite teammates.")
        if role not in ROLES:
            raise Refused("Choose a role", field="role")
        email = normal_email(email)
        if any(member.email == email for member, _ in await self.members(session, signed)):
            raise Refused("That address is already a member of this organisation.", field="email")
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
