"""The portal's HTTP edge: parse the form, call one service function in one transaction, render a page.

Pages are rendered on the server and every form works without JavaScript; the one script copies a
secret to the clipboard. Every page carries a strict CSP (no inline script or style), ``frame-ancestors
'none'`` and ``no-store``; every POST checks its CSRF token before anything else.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl

import orjson
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from pwreset import sandbox as demo
from pwreset.container import Container
from pwreset.institutions.errors import InstitutionNotFound
from pwreset.kit.text import storable
from pwreset.portal import catalogue, postman
from pwreset.portal.errors import NotFound, PortalError, Throttled
from pwreset.portal.forms import (
    ActionForm,
    AppForm,
    ForgotForm,
    PortalForm,
    ResetForm,
    RevokeForm,
    SignInForm,
    SignUpForm,
    VerifyForm,
)
from pwreset.portal.service import Signed

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; form-action 'self'; "
       "base-uri 'none'; frame-ancestors 'none'; connect-src 'self'")
FORM_LIMIT = 16 * 1024
NOTICES = {
    "verified": "Your email address is confirmed and your sandbox is ready. Sign in to start.",
    "signed-out": "You are signed out.",
    "password-changed": "Your password is changed and every other session has ended. Sign in with it.",
    "revoked": "The key pair is revoked: tokens issued with it no longer work.",
}

_pages = Environment(
    loader=PackageLoader("pwreset.portal", "templates"), autoescape=select_autoescape(["html"]),
    undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True,
)
Handler = Callable[[Request], Awaitable[Response]]


class BadForm(Exception):
    """A body that is not a small, well-formed, storable HTML form."""


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

    # -- plumbing

    def _csrf_binding(self, request: Request) -> tuple[str, bool]:
        value = request.cookies.get(self.csrf_cookie, "")
        if len(value) == 43 and value.replace("-", "").replace("_", "").isalnum():
            return value, False
        return secrets.token_urlsafe(32), True

    def form(self, cls: type[PortalForm], request: Request, data: FormData | None = None, **kw: Any) -> Any:
        binding, _ = self._csrf_binding(request)
        request.state.csrf_binding = binding
        return cls(formdata=data, meta={"csrf_context": (self.csrf_key, binding)}, **kw)

    async def body(self, request: Request) -> FormData:
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/x-www-form-urlencoded":
            raise BadForm("send the form as application/x-www-form-urlencoded")
        declared = request.headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > FORM_LIMIT):
            raise BadForm("the form is too large")
        raw = bytearray()
        async for chunk in request.stream():
            raw += chunk
            if len(raw) > FORM_LIMIT:
                raise BadForm("the form is too large")
        try:
            pairs = parse_qsl(raw.decode("utf-8"), keep_blank_values=True, strict_parsing=False, max_num_fields=64,
                              errors="strict")
        except (UnicodeDecodeError, ValueError):
            raise BadForm("the form could not be read") from None
        if not all(storable(k) and storable(v) for k, v in pairs):
            raise BadForm("the form holds characters that cannot be stored")
        form_pairs: list[tuple[str, str | Any]] = list(pairs)
        return FormData(form_pairs)

    def render(self, request: Request, template: str, status: int = 200, *, signed: Signed | None = None,
               headers: dict[str, str] | None = None, **context: Any) -> HTMLResponse:
        notice = NOTICES.get(request.query_params.get("notice", ""))
        html = _pages.get_template(template).render(
            signed=signed, notice=notice, sandbox=self.settings.sandbox, apis=catalogue.APIS,
            accounts=self.settings.portal_institution_id is not None,
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
        return request.client.host if request.client else "unknown"

    async def signed(self, request: Request) -> Signed | None:
        token = request.cookies.get(self.session_cookie)
        if not token:
            return None
        async with self.services.db.transaction() as session:
            return await self.portal.signed_in(session, token)

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
                                   message=f"{bad} Go back, reload the page and try again.")
            except NotFound as missing:
                return self.render(request, "message.html", 404, title="Not found", message=missing.message,
                                   signed=getattr(request.state, "signed", None))
            except PortalError as error:
                return self.render(request, "message.html", error.status, title="That did not work",
                                   message=error.message, signed=getattr(request.state, "signed", None))
        return endpoint

    # -- public pages

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
        form = self.form(SignUpForm, request, await self.body(request))
        if not form.validate():
            return self.render(request, "sign_up.html", 400, form=form)
        try:
            async with self.services.db.transaction() as session:
                await self.portal.sign_up(session, name=form.name.data, email=form.email.data,
                                          password=form.password.data, address=self.address(request))
        except PortalError as error:
            return self.refused(request, error, "sign_up.html", form=form)
        return self.render(request, "check_email.html", email=form.email.data)

    async def verify(self, request: Request) -> Response:
        if request.method == "GET":  # a page with a button: mail scanners that follow links spend nothing
            token = request.query_params.get("token", "")[:100]
            return self.render(request, "verify.html", form=self.form(VerifyForm, request, token=token))
        form = self.form(VerifyForm, request, await self.body(request))
        if not form.validate():
            return self.render(request, "verify.html", 400, form=form)
        try:
            async with self.services.db.transaction() as session:
                developer = await self.portal.verify_email(session, token=form.token.data,
                                                           address=self.address(request))
                found = await self._organisation_of(session, developer.id)
        except PortalError as error:
            return self.refused(request, error, "verify.html", form=form)
        if found is not None:
            await demo.seed_customers(self.services, found, (*demo.DEMO_CUSTOMERS, *demo.EDGE_CUSTOMERS))
        return self.redirect("/portal/sign-in?notice=verified")

    async def _organisation_of(self, session: Any, developer_id: str) -> str | None:
        from pwreset.portal import repository

        found = await repository.membership_of(session, developer_id)
        return found[1].sandbox_institution_id if found else None

    async def sign_in(self, request: Request) -> Response:
        if request.method == "GET":
            return self.render(request, "sign_in.html", form=self.form(SignInForm, request))
        form = self.form(SignInForm, request, await self.body(request))
        if not form.validate():
            return self.render(request, "sign_in.html", 400, form=form)
        error: PortalError | None = None
        async with self.services.db.transaction() as session:
            try:
                token, _ = await self.portal.sign_in(session, email=form.email.data, password=form.password.data,
                                                     address=self.address(request))
            except PortalError as refused:
                error = refused  # kept: the failure's audit event and a new verification link still commit
        if error is not None:
            return self.refused(request, error, "sign_in.html", form=form)
        response = self.redirect("/portal/dashboard")
        self._set_cookie(response, self.session_cookie, token, max_age=self.settings.portal_session_absolute)
        self._set_cookie(response, self.csrf_cookie, secrets.token_urlsafe(32), max_age=None)  # a new binding
        return response

    async def sign_out(self, request: Request) -> Response:
        form = self.form(ActionForm, request, await self.body(request))
        signed = await self.signed(request)
        if form.validate() and signed is not None:
            async with self.services.db.transaction() as session:
                await self.portal.sign_out(session, signed)
        response = self.redirect("/portal?notice=signed-out")
        response.delete_cookie(self.session_cookie, path="/", secure=not self.settings.sandbox, httponly=True)
        self._set_cookie(response, self.csrf_cookie, secrets.token_urlsafe(32), max_age=None)
        return response

    async def forgot(self, request: Request) -> Response:
        if request.method == "GET":
            return self.render(request, "forgot.html", form=self.form(ForgotForm, request))
        form = self.form(ForgotForm, request, await self.body(request))
        if not form.validate():
            return self.render(request, "forgot.html", 400, form=form)
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
        error: PortalError | None = None
        async with self.services.db.transaction() as session:
            try:
                await self.portal.reset_password(session, email=form.email.data, code=form.code.data,
                                                 password=form.password.data)
            except PortalError as refused:
                error = refused  # a wrong code's count commits
        if error is not None:
            return self.refused(request, error, "reset.html", form=form, sent=False)
        return self.redirect("/portal/sign-in?notice=password-changed")

    # -- signed-in pages

    async def dashboard(self, request: Request) -> Response:
        signed: Signed = request.state.signed
        async with self.services.db.transaction() as session:
            apps = await self.portal.apps(session, signed) if signed.organisation else []
            customers = await self.portal.sandbox_customers(session, signed) if signed.organisation else 0
        if signed.organisation is not None and customers == 0:  # a verification whose seeding did not finish
            await demo.seed_customers(self.services, signed.organisation.sandbox_institution_id,
                                      (*demo.DEMO_CUSTOMERS, *demo.EDGE_CUSTOMERS))
        return self.render(request, "dashboard.html", signed=signed, apps=apps,
                           demo_customers=demo.DEMO_CUSTOMERS, edge_customers=demo.EDGE_CUSTOMERS,
                           base_url=self._base_url(), sign_out=self.form(ActionForm, request))

    def _base_url(self) -> str:
        return (self.settings.public_url or "").rstrip("/")

    async def new_app(self, request: Request) -> Response:
        signed: Signed = request.state.signed
        organisation = signed.organisation
        if organisation is None:
            raise NotFound("You are not in an organisation.")
        choices = [(scope, scope) for scope in self.portal.allowed_scopes(organisation)]
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
                created = await self.portal.create_app(session, signed, name=form.name.data,
                                                       scopes=list(form.scopes.data or []))
        except PortalError as error:
            return self.refused(request, error, "app_new.html", signed=signed, form=form)
        return self._show_secret(request, signed, created.client.shared_key, created.secret_key,
                                 app_id=created.app_id, rotated=False)

    def _show_secret(self, request: Request, signed: Signed, shared_key: str, secret_key: str, *, app_id: str,
                     rotated: bool) -> HTMLResponse:
        """The one time a secret key is shown: in the answer to the POST that made it, never stored, no-store."""
        return self.render(request, "secret.html", signed=signed, shared_key=shared_key, secret_key=secret_key,
                           app_id=app_id, rotated=rotated, institution_id=self._sandbox_id(signed),
                           base_url=self._base_url())

    def _sandbox_id(self, signed: Signed) -> str:
        return signed.organisation.sandbox_institution_id if signed.organisation else ""

    async def app(self, request: Request) -> Response:
        signed: Signed = request.state.signed
        async with self.services.db.transaction() as session:
            app, keys = await self.portal.app(session, signed, request.path_params["app_id"])
        return self.render(request, "app.html", signed=signed, app=app, keys=keys,
                           action=self.form(ActionForm, request), institution_id=self._sandbox_id(signed))

    async def add_key(self, request: Request) -> Response:
        signed: Signed = request.state.signed
        form = self.form(ActionForm, request, await self.body(request))
        if not form.validate():
            return self.render(request, "message.html", 400, signed=signed, title="That form has expired",
                               message="Reload the page and try again.")
        async with self.services.db.transaction() as session:
            created = await self.portal.add_key(session, signed, request.path_params["app_id"])
        return self._show_secret(request, signed, created.client.shared_key, created.secret_key,
                                 app_id=request.path_params["app_id"], rotated=False)

    async def rotate_key(self, request: Request) -> Response:
        signed: Signed = request.state.signed
        form = self.form(ActionForm, request, await self.body(request))
        if not form.validate():
            return self.render(request, "message.html", 400, signed=signed, title="That form has expired",
                               message="Reload the page and try again.")
        async with self.services.db.transaction() as session:
            rotated = await self.portal.rotate_key(session, signed, app_id=request.path_params["app_id"],
                                                   client_id=request.path_params["client_id"])
        return self._show_secret(request, signed, rotated.client.shared_key, rotated.secret_key,
                                 app_id=request.path_params["app_id"], rotated=True)

    async def revoke_key(self, request: Request) -> Response:
        signed: Signed = request.state.signed
        app_id, client_id = request.path_params["app_id"], request.path_params["client_id"]
        form = self.form(RevokeForm, request, await self.body(request))
        if not form.validate():
            return self.render(request, "message.html", 400, signed=signed, title="That form has expired",
                               message="Reload the page and try again.")
        async with self.services.db.transaction() as session:
            done = await self.portal.revoke_key(session, signed, app_id=app_id, client_id=client_id,
                                                confirmed=bool(form.confirmed.data))
        if not done:
            return self.render(request, "revoke_confirm.html", signed=signed, app_id=app_id, client_id=client_id,
                               form=self.form(RevokeForm, request))
        return self.redirect(f"/portal/apps/{app_id}?notice=revoked")

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
        if signed is not None and signed.organisation is not None:
            async with self.services.db.transaction() as session:
                watched = await self.portal.watched(session, signed)
        document = self._document(request)
        return self.render(request, "api.html", signed=signed, api=catalogue.BY_SLUG[slug],
                           operations=catalogue.operations(document, slug), watching=slug in watched,
                           watch=self.form(ActionForm, request), example_json=catalogue.example_json,
                           schemas=catalogue.document_for(document, slug)["components"]["schemas"],
                           noted=request.query_params.get("watch") == "noted")

    async def watch(self, request: Request) -> Response:
        slug = request.path_params["slug"]
        if slug not in catalogue.BY_SLUG:
            raise NotFound("There is no such API.")
        signed = await self.signed(request)
        if signed is None:
            return self.redirect(f"/portal/sign-in?next=/portal/apis/{slug}")
        form = self.form(ActionForm, request, await self.body(request))
        if not form.validate():
            return self.render(request, "message.html", 400, signed=signed, title="That form has expired",
                               message="Reload the page and try again.")
        async with self.services.db.transaction() as session:
            await self.portal.watch(session, signed, api=slug, title=catalogue.BY_SLUG[slug].title)
        return self.redirect(f"/portal/apis/{slug}?watch=noted#watch")

    async def spec(self, request: Request) -> Response:
        slug, fmt = request.path_params["slug"], request.path_params["fmt"]
        if (slug != "all" and slug not in catalogue.BY_SLUG) or fmt not in ("json", "yaml"):
            raise NotFound("There is no such document.")
        document = catalogue.document_for(self._document(request), slug)
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
        signed: Signed = request.state.signed
        if signed.organisation is None:
            raise NotFound("You are not in an organisation.")
        first = demo.DEMO_CUSTOMERS[0]
        async with self.services.db.transaction() as session:
            user_id = await self.portal.institution_user_id(session, signed, first.customer_id)
        shared_key = request.query_params.get("sharedKey", "")
        body = postman.environment(name=f"{signed.organisation.name} sandbox", values={
            "baseUrl": self._base_url(), "institutionId": signed.organisation.sandbox_institution_id,
            "sharedKey": shared_key if shared_key.startswith("pwr_ck_") and len(shared_key) < 80 else "",
            "customerId": first.customer_id, "contactMethodId": first.method_id, "loginId": first.login_id,
            "institutionUserId": user_id, "accountId": "chk-1", "passcode": "000000",
        })
        return Response(orjson.dumps(body, option=orjson.OPT_INDENT_2), media_type="application/json",
                        headers={"Content-Disposition": 'attachment; filename="pwreset-sandbox.postman_environment'
                                                        '.json"'})


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
    if services.settings.portal_institution_id is None:  # the documentation alone (PWRESET_DOCS)
        return catalogue_routes
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
        Route("/portal/apis/{slug:str}/watch", g(pages.watch), methods=["POST"]),
        Route("/portal/postman/environment.json", signed_in(pages.postman_environment), methods=["GET"]),
    ]
