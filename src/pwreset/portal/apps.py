"""Apps and their key pairs, the organisation's sandbox (its customers, inbox and the test drive's
client), and the watchlist. The caller owns the transaction."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from pwreset.accounts.models import Account
from pwreset.customers.models import Customer
from pwreset.customers.views import institution_user_id
from pwreset.delivery.models import OutboxMessage
from pwreset.delivery.rendering import render_default, variables_for
from pwreset.institutions.models import Institution
from pwreset.kit.crypto import NotOurKey, new_id
from pwreset.oauth import scopes as scope_names
from pwreset.oauth.models import ApiClient
from pwreset.portal import repository
from pwreset.portal.core import (
    ROTATION_GRACE,
    TEST_DRIVES_PER_DEVELOPER,
    InboxEntry,
    KeyView,
    NewKey,
    PortalCore,
    Signed,
    check_name,
)
from pwreset.portal.errors import Forbidden, NotFound, Refused
from pwreset.portal.models import (
    App,
    AppKey,
    Interest,
    Organisation,
)


class Apps(PortalCore):
    """Apps and key pairs, the organisation's sandbox, the test drive's client, the watchlist."""

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

    async def environment_values(self, session: AsyncSession, signed: Signed, app_id: str) -> dict[str, str]:
        """What a Postman environment for this app holds: the base URL, the app's institution, its newest
        active shared key, and for a sandbox app the first demo customer's ids (its real account id and
        institution user id included). Never a secret: the developer pastes the secret key in."""
        app, keys = await self.app(session, signed, app_id)
        organisation = self._organisation(signed)
        active = [k for k in keys if k.active]
        values = {
            "baseUrl": (self.settings.public_url or "").rstrip("/"),
            "institutionId": self.institution_id if app.environment == "production"
            else organisation.sandbox_institution_id,
            "sharedKey": active[-1].client.shared_key if active else "",
        }
        if app.environment == "sandbox":
            values |= await self.sandbox_ids(session, signed)
        return values

    async def sandbox_ids(self, session: AsyncSession, signed: Signed) -> dict[str, str]:
        """The first demo customer's ids in the organisation's sandbox, as the API shows them; ``passcode``
        and ``resetTicket`` are left empty for the developer (the collection skips the calls that need them)."""
        from pwreset.sandbox import DEMO_CUSTOMERS, host_user_id

        organisation = self._organisation(signed)
        first = DEMO_CUSTOMERS[0]
        row = (await session.execute(
            select(Customer.id, Account.id).outerjoin(Account, Account.customer_pk == Customer.id)
            .where(Customer.institution_id == organisation.sandbox_institution_id,
                   Customer.customer_id == first.customer_id)
            .order_by(Account.position).limit(1)
        )).first()
        return {
            "customerId": first.customer_id, "contactMethodId": first.method_id, "loginId": first.login_id,
            "hostUserId": host_user_id(1), "institutionUserId": institution_user_id(row[0]) if row else "",
            "accountId": (row[1] or "") if row else "", "passcode": "", "resetTicket": "",
        }

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
