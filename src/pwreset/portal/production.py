"""Production access (requests, staff decisions) and the staff's view of the portal. The caller owns
the transaction."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from pwreset.audit import service as audit
from pwreset.kit.crypto import new_id
from pwreset.portal import repository
from pwreset.portal.apps import Apps
from pwreset.portal.core import (
    Signed,
    StaffView,
    normal_email,
)
from pwreset.portal.errors import Forbidden, NotFound, Refused
from pwreset.portal.models import (
    AccessRequest,
    App,
    Developer,
    Interest,
    Membership,
    Organisation,
)
from pwreset.web import branding


class Production(Apps):
    """Production access and the staff's view (``Apps`` brings the app lookups it needs)."""

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

    async def page_look(self, session: AsyncSession, signed: Signed) -> branding.Look:
        """The institution's look on the hosted reset page (web/), for the staff page's form."""
        if not signed.staff:
            raise Forbidden("Staff pages need a staff account with two-factor authentication.")
        return branding.look_of(await branding.branding(session, self.institution_id))

    async def set_page_look(
        self, session: AsyncSession, signed: Signed, *, accent_color: str, header_color: str, sign_in_url: str,
        frame_ancestors: str, sandbox: bool,
    ) -> None:
        """Change the reset page's look (each value checked as ``pwreset page brand`` checks it; the logo is
        set with that command)."""
        if not signed.staff:
            raise Forbidden("Staff pages need a staff account with two-factor authentication.")
        try:
            await branding.set_branding(
                session, clock=self.clock, institution_id=self.institution_id, sandbox=sandbox,
                accent_color=accent_color, header_color=header_color, sign_in_url=sign_in_url,
                frame_ancestors=frame_ancestors,
            )
        except branding.BrandingInvalid as bad:
            raise Refused(str(bad)[:1].upper() + str(bad)[1:] + ".") from None
        await self._audit(session, "portal.reset_page_look", developer_id=signed.developer.id,
                          by=signed.developer.email)

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
