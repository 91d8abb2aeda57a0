"""The portal's HTTP edge: parse the form, call one service function in one transaction, render a page.

Pages are rendered on the server and every form works without JavaScript; the one script copies a
secret to the clipboard. Every page carries a strict CSP (no inline script or style), ``frame-ancestors
'none'`` and ``no-store``; every POST checks its CSRF token before anything else.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import orjson
import segno
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from wtforms.fields.choices import SelectChoice

from pwreset import sandbox as demo
from pwreset.container import Container
from pwreset.institutions.errors import InstitutionNotFound
from pwreset.kit.webforms import BadForm, address_key, csrf_binding, read_form
from pwreset.portal import catalogue, postman, testdrive
from pwreset.portal.errors import AlreadySent, NotFound, PortalError, Refused, Throttled
from pwreset.portal.forms import (
    AccessForm,
    ActionForm,
    AppForm,
    CodeForm,
    DecisionForm,
    ForgotForm,
    InviteForm,
    PageLookForm,
    PasswordForm,
    PortalForm,
    ResetForm,
    RevokeForm,
    SignInForm,
    SignUpForm,
    SwitchForm,
    TotpForm,
    VerifyForm,
)
from pwreset.portal.service import NewKey, Signed

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; form-action 'self'; "
       "base-uri 'none'; frame-ancestors 'none'; connect-src 'self'")
NOTICES = {
    "verified": "Your email address is confirmed and your sandbox is ready. Sign in to start.",
    "signed-out": "You are signed out.",
    "password-changed": "Your password is changed and every other session has ended. Sign in with it.",
    "revoked": "The key pair is revoked: tokens issued with it no longer work.",
    "requested": "Your request for production access is with the institution's team. You will get an email.",
    "decided": "The decision is recorded and the developer has been told.",
    "page-look": "The reset page's look is saved. Customers see it within 10 seconds.",
    "invited": "The invitation is on its way. It works for 72 hours.",
    "joined": "You have joined the organisation.",
    "limit-used-up": "kit.busy's send limit is used up (the passcode it was sent is in your sandbox inbox): a "
                     "reset request for kit.busy within the next minute gets the limit's refusal, 429 UXU_40029.",
}

_pages = Environment(
    loader=PackageLoader("pwreset.portal", "templates"), autoescape=select_autoescape(["html"]),
    undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True,
)
_pages.tests["match_code"] = lambda value: re.fullmatch(r"[A-Z]{2,5}_\d{5}", str(value)) is not None
Handler = Callable[[Request], Awaitable[Response]]
T = TypeVar("T")


_ID = re.compile(r"[0-9a-f]{32}")


def local_page(value: str) -> str:
    """A page of the portal to go back to after signing in, or "" (never another site: ``//host``,
    ``/\\host`` and anything outside ``/portal/`` are refused)."""
    if re.fullmatch(r"/portal/[A-Za-z0-9/_-]{0,150}", value) and "//" not in value:
        return value
    return ""


def path_id(request: Request, name: str) -> str:
    """An id from the path, which is 32 lower-case hex digits or names nothing (never sent to a query)."""
    value = str(request.path_params.get(name, ""))
    if not _ID.fullmatch(value):
        raise NotFound("There is no such thing here.")
    return value


def cookie_names(sandbox: bool) -> tuple[str, str]:
    """The session and CSRF cookies: ``__Host-`` (Secure, this host only, path /) outside the sandbox,
    which is served over plain HTTP."""
    return ("pwreset_portal", "pwreset_csrf") if sandbox else ("__Host-pwreset_portal", "__Host-pwreset_csrf")


class Pages:
    def __init__(self, services: Container) -> None:
        self.services = services
        self.settings = services.settings
        self.portal = services.portal
        self.session_cookie, self.csrf_cookie = cookie_names(self.settings.sandbox)
        self.csrf_key = services.hasher.derive("portal-csrf").encode()
        self._catalogue: dict[str, list[catalogue.Operation]] = {}
        self._documents: dict[str, dict[str, Any]] = {}
        self._meanings = catalogue.error_meanings()

    # -- plumbing

    def form(self, cls: type[PortalForm], request: Request, data: FormData | None = None, **kw: Any) -> Any:
        binding = csrf_binding(request, self.csrf_cookie)
        request.state.csrf_binding = binding
        return cls(formdata=data, meta={"csrf_context": (self.csrf_key, binding)}, **kw)

    async def body(self, request: Request) -> FormData:
        cached = getattr(request.state, "form_data", None)
        if cached is not None:
            return cached  # type: ignore[no-any-return]
        request.state.form_data = found = await read_form(request)
        return found

    def render(self, request: Request, template: str, status: int = 200, *, signed: Signed | None = None,
               headers: dict[str, str] | None = None, **context: Any) -> HTMLResponse:
        notice = NOTICES.get(request.query_params.get("notice", ""))
        sign_out_form = self.form(ActionForm, request) if signed is not None else None
        html = _pages.get_template(template).render(
            signed=signed, notice=notice, sandbox=self.settings.sandbox, apis=catalogue.APIS,
            sign_out_form=sign_out_form, accounts=self.settings.portal_institution_id is not None,
            path=request.url.path, **context,
        )
        response = HTMLResponse(html, status, headers={"Content-Security-Policy": CSP, **(headers or {})})
        binding = getattr(request.state, "csrf_binding", None)
        if binding is not None and binding != request.cookies.get(self.csrf_cookie):
            self._set_cookie(response, self.csrf_cookie, binding, max_age=None)
        return response

    def _set_cookie(self, response: Response, name: str, value: str, *, max_age: int | None) -> None:
        response.set_cookie(name, value, max_age=max_age, path="/", secure=not self.settings.sandbox, httponly=True,
                            samesite="lax")

    def redirect(self, to: str) -> RedirectResponse:
        return RedirectResponse(to, status_code=303)

    def address(self, request: Request) -> str:
        return address_key(request.client.host if request.client else "unknown")

    async def signed(self, request: Request) -> Signed | None:
        token = request.cookies.get(self.session_cookie)
        if not token:
            return None
        async with self.services.db.transaction() as session:
            return await self.portal.signed_in(session, token)

    async def submitted(self, request: Request, cls: type[PortalForm], template: str) -> tuple[Any, Response | None]:
        """The POSTed form, and the page that shows its errors when it does not validate (else None)."""
        form = self.form(cls, request, await self.body(request))
        if not form.validate():
            return form, self.render(request, template, 400, form=form)
        return form, None

    def expired(self, request: Request, signed: Signed | None) -> HTMLResponse:
        """A button whose form no longer checks (its CSRF token expired, or came from another browser)."""
        return self.render(request, "message.html", 400, signed=signed, title="That form has expired",
                           message="Reload the page and try again.")

    async def keeping(
        self, work: Callable[[AsyncSession], Awaitable[T]]
    ) -> tuple[T | None, PortalError | None]:
        """One service call in one transaction whose refusal is returned, not raised, so that what the call
        recorded on the way (a counted wrong code, a failed sign-in's audit event) commits with the answer."""
        async with self.services.db.transaction() as session:
            try:
                return await work(session), None
            except PortalError as refused:
                return None, refused

    def refused(self, request: Request, error: PortalError, template: str, *, signed: Signed | None = None,
                **context: Any) -> HTMLResponse:
        headers = {"Retry-After": str(error.retry_after)} if isinstance(error, Throttled) else None
        form = context.get("form")
        if error.field and form is not None and error.field in form:
            form[error.field].errors = [*form[error.field].errors, error.message]
            return self.render(request, template, error.status, signed=signed, headers=headers, **context)
        return self.render(request, template, error.status, signed=signed, headers=headers, error=error.message,
                           **context)

    def guarded(self, handler: Handler, *, needs_session: bool = False) -> Handler:
        async def endpoint(request: Request) -> Response:
            try:
                if needs_session:
                    signed = await self.signed(request)
                    if signed is None:
                        return self.redirect("/portal/sign-in?next=" + request.url.path)
                    request.state.signed = signed
                return await handler(request)
            except BadForm as bad:
                return self.render(request, "message.html", 400, title="That form could not be read",
                                   message=f"{str(bad).capitalize()}. Go back, reload the page and try again.")
            except (AlreadySent, IntegrityError):  # a reload of a form's answer, or two clicks at once
                return self.render(request, "message.html", 409, title="Already done",
                                   message="This form was already sent, and what it asked for is done. A secret "
                                           "key is shown only once: if you did not save it, rotate the pair's "
                                           "secret on the app's page.", signed=getattr(request.state, "signed", None))
            except NotFound as missing:
                return self.render(request, "message.html", 404, title="Not found", message=missing.message,
                                   signed=getattr(request.state, "signed", None))
            except PortalError as error:
                return self.render(request, "message.html", error.status, title="That did not work",
                                   message=error.message, signed=getattr(request.state, "signed", None))
        return endpoint

    # -- public pages

    async def not_found(self, request: Request) -> Response:
        """Any other address under /portal: the portal's own page, not the API's JSON."""
        return self.render(request, "message.html", 404, title="Not found", signed=await self.signed(request),
                           message="There is no such page in the portal. Some addresses are reached only "
                                   "through a form's button.")

    async def home(self, request: Request) -> Response:
        return self.render(request, "home.html", signed=await self.signed(request),
                           institution=await self._institution_name())

    async def _institution_name(self) -> str:
        institution_id = self.settings.portal_institution_id
        if institution_id is None:
            return "pwreset"
        try:
            return (await self.services.institutions.get(institution_id)).name
        except InstitutionNotFound:
            return "pwreset"

    async def sign_up(self, request: Request) -> Response:
        if request.method == "GET":
            return self.render(request, "sign_up.html", form=self.form(SignUpForm, request))
        form, invalid = await self.submitted(request, SignUpForm, "sign_up.html")
        if invalid is not None:
            return invalid
        try:
            async with self.services.db.transaction() as session:
                await self.portal.sign_up(session, name=form.name.data, email=form.email.data,
                                          password=form.password.data, address=self.address(request))
        except PortalError as error:
            return self.refused(request, error, "sign_up.html", form=form)
        except IntegrityError:
            pass  # the same address signed up at the same moment: that sign-up's link is on its way
        return self.render(request, "check_email.html", email=form.email.data)

    async def verify(self, request: Request) -> Response:
        if request.method == "GET":  # a page with a button: mail scanners that follow links spend nothing
            token = request.query_params.get("token", "")[:100]
            return self.render(request, "verify.html", form=self.form(VerifyForm, request, token=token))
        form, invalid = await self.submitted(request, VerifyForm, "verify.html")
        if invalid is not None:
            return invalid
        try:
            async with self.services.db.transaction() as session:
                sandbox = await self.portal.verify_email(session, token=form.token.data, address=self.address(request))
        except PortalError as error:
            return self.refused(request, error, "verify.html", form=form)
        if sandbox is not None:
            await demo.seed_customers(self.services, sandbox, demo.PORTAL_CUSTOMERS)
        return self.redirect("/portal/sign-in?notice=verified")

    async def sign_in(self, request: Request) -> Response:
        if request.method == "GET":
            return self.render(request, "sign_in.html", form=self.form(
                SignInForm, request, next=local_page(request.query_params.get("next", ""))))
        form, invalid = await self.submitted(request, SignInForm, "sign_in.html")
        if invalid is not None:
            return invalid
        result, error = await self.keeping(lambda session: self.portal.sign_in(
            session, email=form.email.data, password=form.password.data, address=self.address(request)))
        if error is not None:
            return self.refused(request, error, "sign_in.html", form=form)
        assert result is not None
        if result.challenge is not None:
            return self.render(request, "sign_in_code.html",
                               form=self.form(CodeForm, request, challenge=result.challenge, next=form.next.data))
        assert result.token is not None
        return self._signed_in(result.token, form.next.data)

    def _signed_in(self, token: str, then: str | None) -> Response:
        response = self.redirect(local_page(then or "") or "/portal/dashboard")
        self._set_cookie(response, self.session_cookie, token, max_age=self.settings.portal_session_absolute)
        self._set_cookie(response, self.csrf_cookie, secrets.token_urlsafe(32), max_age=None)  # a new binding
        return response

    async def sign_in_code(self, request: Request) -> Response:
        form, invalid = await self.submitted(request, CodeForm, "sign_in_code.html")
        if invalid is not None:
            return invalid
        token, error = await self.keeping(lambda session: self.portal.second_factor(
            session, challenge=form.challenge.data, code=form.code.data, address=self.address(request)))
        if error is not None:
            return self.refused(request, error, "sign_in_code.html", form=form)
        assert token is not None
        return self._signed_in(token, form.next.data)

    async def sign_out(self, request: Request) -> Response:
        form = self.form(ActionForm, request, await self.body(request))
        signed = await self.signed(request)
        if not form.validate():  # nothing changes without this browser's own token
            return self.render(request, "sign_out.html", 400, signed=signed, form=self.form(ActionForm, request))
        if signed is not None:
            async with self.services.db.transaction() as session:
                await self.portal.sign_out(session, signed)
        response = self.redirect("/portal?notice=signed-out")
        response.delete_cookie(self.session_cookie, path="/", secure=not self.settings.sandbox, httponly=True)
        self._set_cookie(response, self.csrf_cookie, secrets.token_urlsafe(32), max_age=None)
        return response

    async def forgot(self, request: Request) -> Response:
        if request.method == "GET":
            return self.render(request, "forgot.html", form=self.form(ForgotForm, request))
        form, invalid = await self.submitted(request, ForgotForm, "forgot.html")
        if invalid is not None:
            return invalid
        try:
            async with self.services.db.transaction() as session:
                await self.portal.forgot(session, email=form.email.data, address=self.address(request))
        except PortalError as error:
            return self.refused(request, error, "forgot.html", form=form)
        return self.render(request, "reset.html", form=self.form(ResetForm, request, email=form.email.data),
                           sent=True)

    async def reset(self, request: Request) -> Response:
        if request.method == "GET":
            return self.render(request, "reset.html", form=self.form(ResetForm, request), sent=False)
        form = self.form(ResetForm, request, await self.body(request))
        if not form.validate():
            return self.render(request, "reset.html", 400, form=form, sent=False)
        _, error = await self.keeping(lambda session: self.portal.reset_password(
            session, email=form.email.data, code=form.code.data, password=form.password.data,
            address=self.address(request)))
        if error is not None:
            return self.refused(request, error, "reset.html", form=form, sent=False)
        return self.redirect("/portal/sign-in?notice=password-changed")

    # -- signed-in pages

    async def dashboard(self, request: Request) -> Response:
        return await self._dashboard(request, request.state.signed)

    async def _dashboard(self, request: Request, signed: Signed, *, invite: Any = None, status: int = 200) -> Response:
        async with self.services.db.transaction() as session:
            apps = await self.portal.apps(session, signed) if signed.organisation else []
            customers = await self.portal.sandbox_customers(session, signed) if signed.organisation else 0
            members = await self.portal.members(session, signed) if signed.organisation else []
        if signed.organisation is not None and customers == 0:  # a verification whose seeding did not finish
            await demo.seed_customers(self.services, signed.organisation.sandbox_institution_id, demo.PORTAL_CUSTOMERS)
        return self.render(request, "dashboard.html", status, signed=signed, apps=apps, members=members,
                           demo_customers=demo.DEMO_CUSTOMERS, edge_customers=demo.EDGE_CUSTOMERS,
                           base_url=self._base_url(), sign_out=self.form(ActionForm, request),
                           invite=invite or self.form(InviteForm, request), switch=self.form(SwitchForm, request))

    def _base_url(self) -> str:
        return (self.settings.public_url or "").rstrip("/")

    async def new_app(self, request: Request) -> Response:
        signed: Signed = request.state.signed
        organisation = signed.organisation
        if organisation is None:
            raise NotFound("You are not in an organisation.")
        choices = [SelectChoice(scope, scope) for scope in self.portal.allowed_scopes(organisation)]
        if request.method == "GET":
            form = self.form(AppForm, request)
            form.scopes.choices = choices
            return self.render(request, "app_new.html", signed=signed, form=form)
        form = self.form(AppForm, request, await self.body(request))
        form.scopes.choices = choices
        if not form.validate():
            return self.render(request, "app_new.html", 400, signed=signed, form=form)
        try:
            async with self.services.db.transaction() as session:
                await self.portal.spend_form(session, signed, form.once.data)
                created = await self.portal.create_app(session, signed, name=form.name.data,
                                                       scopes=list(form.scopes.data or []))
        except AlreadySent:
            raise
        except PortalError as error:
            return self.refused(request, error, "app_new.html", signed=signed, form=form)
        return self._show_secret(request, signed, created, rotated=False)

    def _show_secret(self, request: Request, signed: Signed, key: NewKey, *, rotated: bool) -> HTMLResponse:
        """The one time a secret key is shown: in the answer to the POST that made it, never stored, no-store.
        The curl line names the pair's own institution (the sandbox's, or the institution's for production)."""
        return self.render(request, "secret.html", signed=signed, shared_key=key.client.shared_key,
                           secret_key=key.secret_key, app_id=key.app_id, rotated=rotated,
                           institution_id=key.client.institution_id, base_url=self._base_url())

    def _sandbox_id(self, signed: Signed) -> str:
        return signed.organisation.sandbox_institution_id if signed.organisation else ""

    async def app(self, request: Request) -> Response:
        return await self._app_page(request, request.state.signed, path_id(request, "app_id"))

    async def _app_page(self, request: Request, signed: Signed, app_id: str, *, access: Any = None,
                        status: int = 200, error: str | None = None) -> Response:
        async with self.services.db.transaction() as session:
            app, keys = await self.portal.app(session, signed, app_id)
            requests = await self.portal.access_requests(session, signed, app.id)
        institution = self.settings.portal_institution_id if app.environment == "production" else \
            self._sandbox_id(signed)
        return self.render(request, "app.html", status, signed=signed, app=app, keys=keys, requests=requests,
                           action=self.form(ActionForm, request), institution_id=institution,
                           access=access or self.form(AccessForm, request), error=error)

    async def add_key(self, request: Request) -> Response:
        signed: Signed = request.state.signed
        form = self.form(ActionForm, request, await self.body(request))
        if not form.validate():
            return self.expired(request, signed)
        async with self.services.db.transaction() as session:
            await self.portal.spend_form(session, signed, form.once.data)
            created = await self.portal.add_key(session, signed, path_id(request, "app_id"))
        return self._show_secret(request, signed, created, rotated=False)

    async def rotate_key(self, request: Request) -> Response:
        signed: Signed = request.state.signed
        form = self.form(ActionForm, request, await self.body(request))
        if not form.validate():
            return self.expired(request, signed)
        async with self.services.db.transaction() as session:
            await self.portal.spend_form(session, signed, form.once.data)
            rotated = await self.portal.rotate_key(session, signed, app_id=path_id(request, "app_id"),
                                                   client_id=path_id(request, "client_id"))
        return self._show_secret(request, signed, rotated, rotated=True)

    async def revoke_key(self, request: Request) -> Response:
        signed: Signed = request.state.signed
        app_id, client_id = path_id(request, "app_id"), path_id(request, "client_id")
        form = self.form(RevokeForm, request, await self.body(request))
        if not form.validate():
            return self.expired(request, signed)
        async with self.services.db.transaction() as session:
            done = await self.portal.revoke_key(session, signed, app_id=app_id, client_id=client_id,
                                                confirmed=bool(form.confirmed.data))
        if not done:
            return self.render(request, "revoke_confirm.html", signed=signed, app_id=app_id, client_id=client_id,
                               form=self.form(RevokeForm, request))
        return self.redirect(f"/portal/apps/{app_id}?notice=revoked")

    async def two_factor(self, request: Request) -> Response:
        """Turn on TOTP: the password again, then a secret (with its QR code) waits ten minutes for a first
        code from the app; then the recovery codes, once."""
        signed: Signed = request.state.signed
        async with self.services.db.transaction() as session:
            setup = None if signed.two_factor_on else await self.portal.pending_totp(session, signed)
        if request.method == "GET":
            return self._two_factor_page(request, signed, setup, self.form(TotpForm, request))
        data = await self.body(request)
        if setup is None:  # the first step: the password again
            start = self.form(PasswordForm, request, data)
            if start.validate():
                try:
                    async with self.services.db.transaction() as session:
                        setup = await self.portal.start_totp(session, signed, password=start.password.data)
                except Refused as wrong:
                    start.password.errors = [*start.password.errors, wrong.message]
                else:
                    return self._two_factor_page(request, signed, setup, self.form(TotpForm, request))
            return self._two_factor_page(request, signed, None, start, status=400)
        form = self.form(TotpForm, request, data)
        if form.validate():
            codes, error = await self.keeping(lambda session: self.portal.confirm_totp(
                session, signed, code=form.code.data))
            if error is None:
                return self.render(request, "recovery_codes.html", signed=signed, codes=codes)
            form.code.errors = [*form.code.errors, error.message]
        return self._two_factor_page(request, signed, setup, form, status=400)

    def _two_factor_page(self, request: Request, signed: Signed, setup: Any, form: Any, status: int = 200) -> Response:
        qr = segno.make(setup.uri, error="m").svg_inline(scale=4, title="QR code of the setup key") if setup else None
        if setup is None and not isinstance(form, PasswordForm):
            form = self.form(PasswordForm, request)
        return self.render(request, "two_factor.html", status, signed=signed, setup=setup, form=form, qr=qr)

    async def request_access(self, request: Request) -> Response:
        signed: Signed = request.state.signed
        app_id = path_id(request, "app_id")
        form = self.form(AccessForm, request, await self.body(request))
        if form.validate():
            try:
                async with self.services.db.transaction() as session:
                    await self.portal.spend_form(session, signed, form.once.data)
                    await self.portal.request_access(session, signed, app_id=app_id, purpose=form.purpose.data)
            except Refused as error:
                if error.field is None:
                    return await self._app_page(request, signed, app_id, access=form, status=400, error=error.message)
                form.purpose.errors = [*form.purpose.errors, error.message]
            else:
                return self.redirect(f"/portal/apps/{app_id}?notice=requested")
        return await self._app_page(request, signed, app_id, access=form, status=400)

    async def staff(self, request: Request) -> Response:
        signed: Signed = request.state.signed
        async with self.services.db.transaction() as session:
            view = await self.portal.staff_view(session, signed)
            look = await self.portal.page_look(session, signed)
        stored = {"accent_color": look.accent, "header_color": look.header, "sign_in_url": look.sign_in_url or "",
                  "frame_ancestors": " ".join(look.frame_ancestors)}
        return self.render(request, "staff.html", signed=signed, view=view, decision=self.form(DecisionForm, request),
                           look_form=self.form(PageLookForm, request, None, **stored), look=look,
                           institution_id=self.settings.portal_institution_id)

    async def page_look(self, request: Request) -> Response:
        """The staff's form for the hosted reset page's look (web/)."""
        signed: Signed = request.state.signed
        form = self.form(PageLookForm, request, await self.body(request))
        if not form.validate():
            return self.expired(request, signed)
        async with self.services.db.transaction() as session:
            await self.portal.set_page_look(
                session, signed, accent_color=(form.accent_color.data or "").strip(),
                header_color=(form.header_color.data or "").strip(), sign_in_url=(form.sign_in_url.data or "").strip(),
                frame_ancestors=(form.frame_ancestors.data or "").strip(), sandbox=self.settings.sandbox,
            )
        return self.redirect("/portal/staff?notice=page-look#reset-page")

    async def decide(self, request: Request) -> Response:
        signed: Signed = request.state.signed
        form = self.form(DecisionForm, request, await self.body(request))
        if not form.validate():
            return self.expired(request, signed)
        decision = request.path_params["decision"]
        if decision not in ("approve", "deny"):
            raise NotFound("There is no such decision.")
        values = await self.body(request)
        scopes = [str(v) for v in values.getlist("scopes")] if decision == "approve" else None
        async with self.services.db.transaction() as session:
            await self.portal.decide(session, request_id=path_id(request, "request_id"), approve=decision == "approve",
                                     by=signed.developer.email, note=form.note.data or "", scopes=scopes, staff=signed)
        return self.redirect("/portal/staff?notice=decided")

    async def invite(self, request: Request) -> Response:
        signed: Signed = request.state.signed
        form = self.form(InviteForm, request, await self.body(request))
        if form.validate():
            try:
                async with self.services.db.transaction() as session:
                    await self.portal.spend_form(session, signed, form.once.data)
                    await self.portal.invite(session, signed, email=form.email.data, role=form.role.data)
            except (Throttled, Refused) as error:
                form.email.errors = [*form.email.errors, error.message]
            else:
                return self.redirect("/portal/dashboard?notice=invited#team")
        return await self._dashboard(request, signed, invite=form, status=400)

    async def invitation(self, request: Request) -> Response:
        """An invitation link: join the organisation, once signed in as the invited address."""
        signed = await self.signed(request)
        if request.method == "GET":
            token = request.query_params.get("token", "")[:100]
            async with self.services.db.transaction() as session:
                found, organisation = await self.portal.invitation(session, token)
            return self.render(request, "invitation.html", signed=signed, invitation=found, organisation=organisation,
                               form=self.form(VerifyForm, request, token=token),
                               here=f"/portal/invite?token={token}")
        form = self.form(VerifyForm, request, await self.body(request))
        if signed is None or not form.validate():
            return self.redirect("/portal/sign-in")
        async with self.services.db.transaction() as session:
            await self.portal.accept(session, signed, token=form.token.data)
        return self.redirect("/portal/dashboard?notice=joined")

    async def switch(self, request: Request) -> Response:
        signed: Signed = request.state.signed
        form = self.form(SwitchForm, request, await self.body(request))
        if form.validate():
            async with self.services.db.transaction() as session:
                await self.portal.switch_organisation(session, signed, form.organisation.data)
        return self.redirect("/portal/dashboard")

    async def inbox(self, request: Request) -> Response:
        signed: Signed = request.state.signed
        async with self.services.db.transaction() as session:
            entries = await self.portal.inbox(session, signed)
        return self.render(request, "inbox.html", signed=signed, entries=entries)

    # -- the catalogue

    def _document(self, request: Request) -> dict[str, Any]:
        return request.app.state.openapi  # type: ignore[no-any-return]

    async def apis(self, request: Request) -> Response:
        return self.render(request, "apis.html", signed=await self.signed(request))

    async def api(self, request: Request) -> Response:
        slug = request.path_params["slug"]
        if slug not in catalogue.BY_SLUG:
            raise NotFound("There is no such API.")
        signed = await self.signed(request)
        watched: set[str] = set()
        defaults: dict[str, str] = {}
        if signed is not None and signed.organisation is not None:
            async with self.services.db.transaction() as session:
                watched = await self.portal.watched(session, signed)
                defaults = await self.portal.sandbox_ids(session, signed)
        return self.render(request, "api.html", signed=signed, api=catalogue.BY_SLUG[slug],
                           defaults=defaults, try_example=self._try_example, meanings=self._meanings,
                           operations=self._operations(request, slug), watching=slug in watched,
                           watch=self.form(ActionForm, request), example_json=catalogue.example_json,
                           schemas=self._document_of(request, slug)["components"]["schemas"],
                           noted=request.query_params.get("watch") == "noted")

    def _operations(self, request: Request, slug: str) -> list[catalogue.Operation]:
        """An API's operations as its page shows them (the document is fixed for the process: made once)."""
        if slug not in self._catalogue:
            self._catalogue[slug] = catalogue.operations(self._document(request), slug)
        return self._catalogue[slug]

    def _document_of(self, request: Request, slug: str) -> dict[str, Any]:
        if slug not in self._documents:
            self._documents[slug] = catalogue.document_for(self._document(request), slug)
        return self._documents[slug]

    async def try_operation(self, request: Request) -> Response:
        """The test drive: call one operation against the organisation's sandbox, with a token issued here."""
        signed: Signed = request.state.signed
        slug, anchor = request.path_params["slug"], request.path_params["anchor"]
        operation = next((op for op in self._operations(request, slug) if op.anchor == anchor), None) \
            if slug in catalogue.BY_SLUG else None
        if operation is None or not operation.tryable or signed.organisation is None:
            raise NotFound("There is no such operation to try.")
        data = await self.body(request)
        form = self.form(ActionForm, request, data)
        values = {name: str(data.get(f"path_{name}", "")) for name in operation.path_parameters()}
        query = {p["name"]: str(data.get(f"query_{p['name']}", "")) for p in operation.query_parameters()}
        body_text = str(data.get("body", ""))
        context = {"signed": signed, "api": catalogue.BY_SLUG[slug], "op": operation, "values": values,
                   "query": query, "body_text": body_text, "action": self.form(ActionForm, request)}
        if not form.validate():
            return self.render(request, "try.html", 400, error="This form has expired. Reload the page and try again.",
                               **context)
        try:
            target = testdrive.target_of(operation.path, values, query)
            body = testdrive.parse_body(body_text)
        except testdrive.TrialRefused as refused:
            return self.render(request, "try.html", 400, problem=(refused.field, str(refused)), **context)
        async with self.services.db.transaction() as session:
            client = await self.portal.test_drive_client(session, signed, operation=operation.operation_id,
                                                         method=operation.method)
        token = await self.portal.test_drive_token(client)
        trial = await testdrive.call(request.app.state.asgi, base_url=self._base_url() or "http://portal.local",
                                     method=operation.method, target=target, body=body, token=token,
                                     institution_id=signed.organisation.sandbox_institution_id)
        return self.render(request, "try.html", trial=trial, **context)

    async def use_up_send_limit(self, request: Request) -> Response:
        """Send the sandbox's send-limited demo customer passcodes until its send limit refuses one (each a
        real send through the service, filed in the inbox), so that the developer's next reset request for
        that customer meets the limit's 429 (for a minute: one a minute, five an hour)."""
        signed: Signed = request.state.signed
        form = self.form(ActionForm, request, await self.body(request))
        if not form.validate() or signed.organisation is None:
            return self.expired(request, signed)
        customer = next(e.customer for e in demo.EDGE_CUSTOMERS if e.send_limited)
        async with self.services.db.transaction() as session:
            client = await self.portal.test_drive_client(session, signed, operation="reset_password_put",
                                                         method="PUT")
        token = await self.portal.test_drive_token(client)
        for _ in range(self.settings.send_limit_long + 1):
            trial = await testdrive.call(
                request.app.state.asgi, base_url=self._base_url() or "http://portal.local", method="PUT",
                target=f"/v1/customers/{customer.customer_id}:reset-password",
                body={"contactMethodId": customer.method_id}, token=token,
                institution_id=signed.organisation.sandbox_institution_id,
            )
            if trial.status != 204:
                break
        return self.redirect("/portal/dashboard?notice=limit-used-up#sandbox-heading")

    def _try_example(self, operation: catalogue.Operation, defaults: dict[str, str]) -> str:
        example = operation.request_example
        if isinstance(example, dict):
            example = {k: defaults.get(k, v) for k, v in example.items()}
        return "" if example is None else catalogue.example_json(example)

    async def watch(self, request: Request) -> Response:
        slug = request.path_params["slug"]
        if slug not in catalogue.BY_SLUG:
            raise NotFound("There is no such API.")
        signed = await self.signed(request)
        if signed is None:
            return self.redirect(f"/portal/sign-in?next=/portal/apis/{slug}")
        form = self.form(ActionForm, request, await self.body(request))
        if not form.validate():
            return self.expired(request, signed)
        try:
            async with self.services.db.transaction() as session:
                await self.portal.watch(session, signed, api=slug, title=catalogue.BY_SLUG[slug].title)
        except IntegrityError:
            pass  # added by a click a moment before this one
        return self.redirect(f"/portal/apis/{slug}?watch=noted#watch")

    async def spec(self, request: Request) -> Response:
        slug, fmt = request.path_params["slug"], request.path_params["fmt"]
        if (slug != "all" and slug not in catalogue.BY_SLUG) or fmt not in ("json", "yaml"):
            raise NotFound("There is no such document.")
        document = catalogue.document_for(self._document(request), slug, server=self._base_url() or None)
        name = f"pwreset-{slug}.{fmt}"
        disposition = {"Content-Disposition": f'attachment; filename="{name}"'}
        if fmt == "json":
            return Response(orjson.dumps(document, option=orjson.OPT_INDENT_2), media_type="application/json",
                            headers=disposition)
        return Response(catalogue.as_yaml(document), media_type="application/yaml", headers=disposition)

    async def postman_collection(self, request: Request) -> Response:
        title = f"{await self._institution_name()} APIs (pwreset)"
        body = postman.collection(self._document(request), title=title)
        return Response(orjson.dumps(body, option=orjson.OPT_INDENT_2), media_type="application/json",
                        headers={"Content-Disposition": 'attachment; filename="pwreset.postman_collection.json"'})

    async def postman_environment(self, request: Request) -> Response:
        """The organisation's sandbox as a Postman environment (no app's key: the app page has that one)."""
        signed: Signed = request.state.signed
        if signed.organisation is None:
            raise NotFound("You are not in an organisation.")
        async with self.services.db.transaction() as session:
            values = {"baseUrl": self._base_url(), "institutionId": signed.organisation.sandbox_institution_id,
                      "sharedKey": "", **await self.portal.sandbox_ids(session, signed)}
        return self._environment(f"{signed.organisation.name} sandbox", values)

    async def app_environment(self, request: Request) -> Response:
        """One app's Postman environment: its institution (the sandbox, or the institution itself for a
        production app), its newest active shared key, and for a sandbox app the demo customer's ids."""
        signed: Signed = request.state.signed
        async with self.services.db.transaction() as session:
            app, _ = await self.portal.app(session, signed, path_id(request, "app_id"))
            values = await self.portal.environment_values(session, signed, app.id)
        return self._environment(f"{app.name} ({app.environment})", values)

    def _environment(self, name: str, values: dict[str, str]) -> Response:
        body = postman.environment(name=name, values=values)
        return Response(orjson.dumps(body, option=orjson.OPT_INDENT_2), media_type="application/json",
                        headers={"Content-Disposition": 'attachment; filename="pwreset.postman_environment.json"'})


def routes(services: Container) -> list[BaseRoute]:
    pages = Pages(services)
    g = pages.guarded

    def signed_in(handler: Handler) -> Handler:
        return g(handler, needs_session=True)

    catalogue_routes: list[BaseRoute] = [
        Mount("/portal/static", app=StaticFiles(packages=[("pwreset.portal", "static")]), name="portal-static"),
        Route("/portal/apis", g(pages.apis), methods=["GET"]),
        Route("/portal/apis/{slug:str}", g(pages.api), methods=["GET"]),
        Route("/portal/apis/{slug:str}/openapi.{fmt:str}", g(pages.spec), methods=["GET"]),
        Route("/portal/postman/collection.json", g(pages.postman_collection), methods=["GET"]),
    ]
    fallback = Route("/portal/{rest:path}", g(pages.not_found))
    if services.settings.portal_institution_id is None:  # the documentation alone (PWRESET_DOCS)
        return [*catalogue_routes, fallback]
    return [
        *catalogue_routes,
        Route("/portal", g(pages.home), methods=["GET"]),
        Route("/portal/sign-up", g(pages.sign_up), methods=["GET", "POST"]),
        Route("/portal/verify", g(pages.verify), methods=["GET", "POST"]),
        Route("/portal/sign-in", g(pages.sign_in), methods=["GET", "POST"]),
        Route("/portal/sign-out", g(pages.sign_out), methods=["POST"]),
        Route("/portal/forgot", g(pages.forgot), methods=["GET", "POST"]),
        Route("/portal/forgot/reset", g(pages.reset), methods=["GET", "POST"]),
        Route("/portal/dashboard", signed_in(pages.dashboard), methods=["GET"]),
        Route("/portal/apps/new", signed_in(pages.new_app), methods=["GET", "POST"]),
        Route("/portal/apps/{app_id:str}", signed_in(pages.app), methods=["GET"]),
        Route("/portal/apps/{app_id:str}/keys", signed_in(pages.add_key), methods=["POST"]),
        Route("/portal/apps/{app_id:str}/keys/{client_id:str}/rotate", signed_in(pages.rotate_key), methods=["POST"]),
        Route("/portal/apps/{app_id:str}/keys/{client_id:str}/revoke", signed_in(pages.revoke_key), methods=["POST"]),
        Route("/portal/inbox", signed_in(pages.inbox), methods=["GET"]),
        Route("/portal/sign-in/code", g(pages.sign_in_code), methods=["POST"]),
        Route("/portal/account/two-factor", signed_in(pages.two_factor), methods=["GET", "POST"]),
        Route("/portal/apps/{app_id:str}/production", signed_in(pages.request_access), methods=["POST"]),
        Route("/portal/staff", signed_in(pages.staff), methods=["GET"]),
        Route("/portal/staff/requests/{request_id:str}/{decision:str}", signed_in(pages.decide), methods=["POST"]),
        Route("/portal/staff/reset-page", signed_in(pages.page_look), methods=["POST"]),
        Route("/portal/team/invite", signed_in(pages.invite), methods=["POST"]),
        Route("/portal/invite", g(pages.invitation), methods=["GET", "POST"]),
        Route("/portal/organisation", signed_in(pages.switch), methods=["POST"]),
        Route("/portal/sandbox/use-up-send-limit", signed_in(pages.use_up_send_limit), methods=["POST"]),
        Route("/portal/apis/{slug:str}/watch", g(pages.watch), methods=["POST"]),
        Route("/portal/apis/{slug:str}/try/{anchor:str}", signed_in(pages.try_operation), methods=["POST"]),
        Route("/portal/postman/environment.json", signed_in(pages.postman_environment), methods=["GET"]),
        Route("/portal/apps/{app_id:str}/postman-environment.json", signed_in(pages.app_environment),
              methods=["GET"]),
        fallback,
    ]
