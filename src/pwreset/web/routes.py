"""The reset page's HTTP edge: ``/reset/{institutionId}`` and its steps (issue 15, docs/reset-page.md).

Every page is rendered on the server and every form works without JavaScript; ``reset.js`` adds the code's
countdown, the resend wait, the password's live check and its show/hide button. Each handler parses its
form (CSRF first), calls the flow's service (``web/service.py``) in one transaction and answers a page or a
redirect to the flow's next step.

Headers: a strict CSP (no inline script or style; images, styles, scripts and fetches from pwreset alone;
``frame-ancestors`` the institution's own list, else ``'none'``), ``no-store``, ``Referrer-Policy:
no-referrer`` and HSTS outside the sandbox (``ops/middleware.py``).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import lru_cache
from importlib.resources import files
from typing import Any, Literal

from jinja2 import (
    BaseLoader,
    ChoiceLoader,
    DictLoader,
    Environment,
    PackageLoader,
    StrictUndefined,
)
from jinja2.sandbox import ImmutableSandboxedEnvironment
from sqlalchemy import select
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from pwreset.container import Container
from pwreset.db import is_outage
from pwreset.errors import RateLimited
from pwreset.institutions.errors import InstitutionNotFound
from pwreset.kit.webforms import BadForm, CSRFForm, address_key, csrf_binding, read_form
from pwreset.web import branding, i18n
from pwreset.web.branding import Look
from pwreset.web.forms import ActionForm, ChooseForm, CodeForm, PasswordForm, StartForm
from pwreset.web.i18n import N_
from pwreset.web.models import Branding, ResetFlow
from pwreset.web.service import (
    CodeRefused,
    Destination,
    FlowEnded,
    PasswordNotAccepted,
    ResetPage,
    WrongStep,
)

log = logging.getLogger(__name__)
Handler = Callable[[Request], Awaitable[Response]]
_INSTITUTION = re.compile(r"[A-Za-z0-9._~-]{1,64}")
#: Where each step's page is, under /reset/{institutionId}.
STEP_PATHS = {"choose": "/choose", "code": "/code", "password": "/password", "done": "/done"}
PROTOCOLS = {"SMS": N_("Text message to %(where)s"), "VOICE": N_("Phone call to %(where)s"),
             "EMAIL": N_("Email to %(where)s")}
SENT = {"SMS": N_("We sent a code by text message to %(where)s."),
        "VOICE": N_("We are calling %(where)s to read you a code."),
        "EMAIL": N_("We sent a code by email to %(where)s.")}
CODE_REFUSALS = {
    "wrong": N_("That code is not right. Check it and try again."),
    "exhausted": N_("That code was tried too many times and no longer works. Send a new code."),
    "expired": N_("That code has expired or was replaced by a newer one. Send a new code."),
    "suspended": N_("For your security, password resets are paused for this login after too many wrong codes. "
                    "Try again tomorrow, or call us."),
}
#: The password policy's rules as the checklist shows them (web/service.policy_rule names them).
RULES = {
    "length": N_("At least %(n)s characters"),
    "login": N_("Does not contain your login ID"),
    "common": N_("Not a common or breached password"),
    "guessable": N_("Hard to guess: several uncommon words work well"),
    "history": N_("Not your current password or one of your last four"),
    "characters": N_("Letters, numbers, spaces and symbols only"),
    "length_max": N_("At most 256 characters"),
}
CHECKLIST = ("length", "login", "common", "guessable")
WAIT = N_("You can ask for a new code in %(seconds)s seconds.")


@lru_cache(maxsize=1)
def _builtin() -> Environment:
    return Environment(loader=PackageLoader("pwreset.web", "templates"), autoescape=True, auto_reload=False,
                       undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)


@lru_cache(maxsize=64)
def _overridden(overrides: tuple[tuple[str, str], ...]) -> Environment:
    """An institution's own templates (``pwreset page template``) in Jinja2's sandbox, ours behind them. The
    immutable sandbox: a template cannot change what it is given (the page's shared tables among them)."""
    loader: BaseLoader = ChoiceLoader([DictLoader(dict(overrides)), PackageLoader("pwreset.web", "templates")])
    return ImmutableSandboxedEnvironment(loader=loader, autoescape=True, auto_reload=False,
                                         undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)


def cookie_names(sandbox: bool) -> tuple[str, str]:
    """The flow's cookie and the CSRF cookie: ``__Host-`` (Secure, this host only) outside the sandbox."""
    return ("pwreset_flow", "pwreset_page_csrf") if sandbox else ("__Host-pwreset_flow", "__Host-pwreset_page_csrf")


@dataclass(frozen=True)
class PageInstitution:
    """What a page (and an institution's template) sees of the institution."""

    id: str
    name: str
    contact_line: str | None


@dataclass
class Context:
    """One request to the page: its institution, look, language and templates."""

    institution: PageInstitution
    look: Look
    lang: str
    overrides: tuple[tuple[str, str], ...]
    set_lang: bool

    @property
    def base(self) -> str:
        return f"/reset/{self.institution.id}"


@dataclass(frozen=True)
class _Dressing:
    """An institution's look, its templates and its pages' CSRF key, cached for a few seconds."""

    until: float
    generation: int
    look: Look
    overrides: tuple[tuple[str, str], ...]
    csrf_key: bytes


class Pages:
    #: Seconds a node keeps an institution's look and templates (a change made on this node shows at once).
    DRESSING_TTL = 10.0

    def __init__(self, services: Container, page: ResetPage) -> None:
        self.services = services
        self.settings = services.settings
        self.page = page
        self.flow_cookie, self.csrf_cookie = cookie_names(self.settings.sandbox)
        self._dressing: dict[str, _Dressing] = {}
        self._static = {name: (files("pwreset.web").joinpath("static", name).read_bytes(), kind)
                        for name, kind in (("reset.css", "text/css"), ("reset.js", "text/javascript"))}

    # -- plumbing

    async def context(self, request: Request) -> Context:
        institution_id = str(request.path_params.get("institution_id", ""))
        if not _INSTITUTION.fullmatch(institution_id) or institution_id == "-":
            raise InstitutionNotFound()
        institution = await self.services.institutions.get(institution_id)
        if institution.sandbox and not self.settings.sandbox:
            # A portal organisation's sandbox (its name a developer's choice) gets no page on a production origin.
            raise InstitutionNotFound()
        dressing = await self._dressed(institution_id)
        request.state.page_csrf_key = dressing.csrf_key
        look, overrides = dressing.look, dressing.overrides
        asked = request.query_params.get("lang")
        lang = i18n.choose(asked=asked, cookie=request.cookies.get(i18n.COOKIE),
                           accept_language=request.headers.get("accept-language", ""))
        return Context(PageInstitution(institution.id, institution.name, institution.contact_line), look, lang,
                       overrides, set_lang=asked in i18n.LANGUAGES)

    async def _dressed(self, institution_id: str) -> _Dressing:
        now = time.monotonic()
        found = self._dressing.get(institution_id)
        if found is not None and found.until > now and found.generation == branding.GENERATION[0]:
            return found
        generation = branding.GENERATION[0]
        async with self.services.db.reading() as session:
            row = (await session.execute(select(
                Branding.accent_color, Branding.header_color, Branding.logo.is_not(None), Branding.sign_in_url,
                Branding.frame_ancestors, Branding.updated_at,
            ).where(Branding.institution_id == institution_id))).first()
            overrides = tuple(sorted((await branding.templates(session, institution_id)).items()))
        look = Look() if row is None else branding.look_of(Branding(
            accent_color=row[0], header_color=row[1], logo=b"x" if row[2] else None, sign_in_url=row[3],
            frame_ancestors=row[4], updated_at=row[5]))
        key = self.services.hasher.derive(f"reset-page-csrf\x00{institution_id}").encode()
        if len(self._dressing) > 1000:
            self._dressing.clear()
        self._dressing[institution_id] = found = _Dressing(now + self.DRESSING_TTL, generation, look, overrides, key)
        return found

    async def asset(self, request: Request) -> Response:
        """The page's CSS and script, from memory (files of the installed package, read once)."""
        found = self._static.get(str(request.path_params.get("name", "")))
        if found is None:
            return PlainTextResponse("Not found.", 404)
        return Response(found[0], media_type=found[1], headers={"Cache-Control": "public, max-age=3600"})

    def form(self, cls: type[CSRFForm], request: Request, data: FormData | None = None, **kw: Any) -> Any:
        binding = csrf_binding(request, self.csrf_cookie)
        request.state.csrf_binding = binding
        # A key per institution: a token of one institution's page is no token of another's.
        return cls(formdata=data, meta={"csrf_context": (request.state.page_csrf_key, binding)}, **kw)

    def csp(self, look: Look) -> str:
        ancestors = " ".join(look.frame_ancestors) or "'none'"
        return ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; form-action 'self'; "
                f"base-uri 'none'; connect-src 'self'; frame-ancestors {ancestors}")

    def render(self, request: Request, ctx: Context, template: str, status: int = 200, *,
               headers: dict[str, str] | None = None, builtin: bool = False, **values: Any) -> HTMLResponse:
        other = "es" if ctx.lang == "en" else "en"
        variables = dict(
            _=i18n.gettext_for(ctx.lang), lang=ctx.lang, other=other, other_name=i18n.NAMES[other],
            institution=ctx.institution, look=ctx.look, base=ctx.base, path=request.url.path,
            support=ctx.institution.contact_line, tel=_tel(ctx.institution.contact_line), **values,
        )
        own = ctx.overrides and not builtin
        try:
            html = (_overridden(ctx.overrides) if own else _builtin()).get_template(template).render(**variables)
        except Exception as broken:  # an institution's template that does not render: ours instead
            if not own:
                raise
            log.warning("reset page: institution %s's %s does not render (%s); pwreset's own is shown",
                        ctx.institution.id, template, type(broken).__name__)
            html = _builtin().get_template(template).render(**variables)
        response = HTMLResponse(html, status, headers={"Content-Security-Policy": self.csp(ctx.look),
                                                       **(headers or {})})
        binding = getattr(request.state, "csrf_binding", None)
        if binding is not None and binding != request.cookies.get(self.csrf_cookie):
            self._cookie(response, ctx, self.csrf_cookie, binding, max_age=None)
        if ctx.set_lang:
            self._cookie(response, ctx, i18n.COOKIE, ctx.lang, max_age=365 * 86400)
        return response

    def _samesite(self, ctx: Context) -> Literal["lax", "none"]:
        """A page framed by the institution's own site on another site needs its cookies sent in that frame."""
        return "none" if ctx.look.frame_ancestors and not self.settings.sandbox else "lax"

    def _cookie(self, response: Response, ctx: Context, name: str, value: str, *, max_age: int | None) -> None:
        response.set_cookie(name, value, max_age=max_age, path="/", secure=not self.settings.sandbox,
                            httponly=True, samesite=self._samesite(ctx))

    def redirect(self, to: str) -> RedirectResponse:
        return RedirectResponse(to, status_code=303)

    def address(self, request: Request) -> str:
        return address_key(request.client.host if request.client else "unknown")

    def message(self, request: Request, ctx: Context, status: int, title: str, text: str, *,
                restart: bool = True, retry_after: int | None = None) -> HTMLResponse:
        headers = {"Retry-After": str(retry_after)} if retry_after else None
        response = self.render(request, ctx, "message.html", status, headers=headers, title=title, text=text,
                               restart=restart, builtin=True)  # (ours: the error may be the institution's template)
        if restart:
            self.forget_flow(response, ctx)
        return response

    def forget_flow(self, response: Response, ctx: Context) -> None:
        """Drop the flow's cookie (with the attributes it was set with: a browser ignores a ``__Host-`` cookie
        set without ``Secure``, its removal included)."""
        response.delete_cookie(self.flow_cookie, path="/", secure=not self.settings.sandbox, httponly=True,
                               samesite=self._samesite(ctx))

    def guarded(self, handler: Callable[[Request, Context], Awaitable[Response]], *,
                floored: tuple[str, ...] = ()) -> Handler:
        """The page's error handling around ``handler``; requests of the ``floored`` methods answer no sooner
        than the page's floor (the steps whose work differs for a customer and a decoy)."""
        async def endpoint(request: Request) -> Response:
            started = time.perf_counter()
            response = await answer(request)
            if request.method in floored:
                await self.at_least(started)
            return response

        async def answer(request: Request) -> Response:
            try:
                ctx = await self.context(request)
            except InstitutionNotFound:
                return PlainTextResponse("There is no such page.", 404)
            except Exception as error:
                return self._failed(error)
            try:
                return await handler(request, ctx)
            except BadForm:
                return self.message(request, ctx, 400, N_("That form could not be read"),
                                    N_("Go back, reload the page and try again."), restart=False)
            except FlowEnded:
                return self.message(request, ctx, 400, N_("This reset has ended"),
                                    N_("It expired, was finished, or was replaced by a newer one. Start again."))
            except WrongStep as wrong:
                return self.redirect(ctx.base + STEP_PATHS.get(wrong.step, ""))
            except RateLimited as limited:
                return self.throttled(request, ctx, limited)
            except Exception as error:
                response = self._failed(error)
                return self.message(request, ctx, response.status_code, N_("Something went wrong"),
                                    N_("Nothing was changed. Try again in a few minutes."), restart=False)
        return endpoint

    def throttled(self, request: Request, ctx: Context, limited: RateLimited) -> HTMLResponse:
        return self.message(request, ctx, 429, N_("Please wait"),
                            N_("Too many attempts from here. Wait a while, then start again."),
                            restart=False, retry_after=limited.retry_after)

    def _failed(self, error: Exception) -> Response:
        if is_outage(error):
            log.warning("reset page: a dependency is unavailable (%s)", type(error).__name__)
            return PlainTextResponse("The service is unavailable. Try again in a few minutes.", 503)
        log.exception("reset page: unexpected error")
        return PlainTextResponse("Something went wrong. Try again in a few minutes.", 500)

    async def flow(self, request: Request, ctx: Context) -> ResetFlow:
        async with self.services.db.reading() as session:
            return await self.page.flow(session, institution_id=ctx.institution.id,
                                        token=request.cookies.get(self.flow_cookie))

    async def at_least(self, started: float) -> None:
        """Answer no sooner than the floor after ``started``: a login on file and one that is not take as long."""
        left = self.settings.reset_page_floor - (time.perf_counter() - started)
        if left > 0:
            await asyncio.sleep(left)

    # -- the steps

    async def start(self, request: Request, ctx: Context) -> Response:
        if request.method == "GET":
            return self.render(request, ctx, "start.html", form=self.form(StartForm, request), step=1)
        form = self.form(StartForm, request, await read_form(request))
        if not form.validate():
            return self.render(request, ctx, "start.html", 400, form=form, step=1)
        login = form.login.data.strip()
        try:
            entry = await self.page.look_up(institution_id=ctx.institution.id, login=login,
                                            address=self.address(request))
        except RateLimited as limited:
            await self.page.limited(institution_id=ctx.institution.id, rule="login")
            return self.render(request, ctx, "start.html", 429, form=form, step=1,
                               error=N_("Too many attempts. Wait a while, then try again."),
                               headers={"Retry-After": str(limited.retry_after)})
        async with self.services.db.transaction() as session:
            token = await self.page.start(session, institution_id=ctx.institution.id, login=login, entry=entry,
                                          replacing=request.cookies.get(self.flow_cookie))
        response = self.redirect(ctx.base + "/choose")
        self._cookie(response, ctx, self.flow_cookie, token, max_age=self.settings.reset_page_flow_ttl)
        return response

    async def choose(self, request: Request, ctx: Context) -> Response:
        flow = await self.flow(request, ctx)
        if flow.step not in ("choose", "code"):
            raise WrongStep(flow.step)
        async with self.services.db.reading() as session:
            step = await self.page.step(session, flow)
        choices = {d.key: d for d in step.destinations}
        form = self.form(ChooseForm, request, await read_form(request) if request.method == "POST" else None)
        form.destination.choices = list(choices)
        if request.method == "GET":
            return self._choose_page(request, ctx, form, step.destinations, step.second)
        if not form.validate():
            return self._choose_page(request, ctx, form, step.destinations, step.second, status=400)
        chosen = choices[form.destination.data]
        try:
            real = await self.page.send(step=step, chosen=chosen, resend=False)
        except RateLimited as limited:
            return self._choose_page(request, ctx, form, step.destinations, step.second, status=429,
                                     error=WAIT, wait=limited.retry_after,
                                     headers={"Retry-After": str(limited.retry_after)})
        async with self.services.db.transaction() as session:
            live = await self.page.flow(session, institution_id=ctx.institution.id, token=request.cookies.get(
                self.flow_cookie), lock=True)
            await self.page.sent(session, flow=live, chosen=chosen, real=real)
        return self.redirect(ctx.base + "/code")

    def _choose_page(self, request: Request, ctx: Context, form: Any, destinations: list[Destination], second: bool,
                     *, status: int = 200, error: str | None = None, wait: int = 0,
                     headers: dict[str, str] | None = None) -> HTMLResponse:
        if form.errors and error is None:
            error = N_("Choose where to send your code.") if "destination" in form.errors else form.errors.get(
                "csrf_token", [None])[0]
        return self.render(request, ctx, "choose.html", status, form=form, destinations=destinations,
                           labels=dict(PROTOCOLS), second=second, error=error, wait=wait, step=2, headers=headers)

    async def code(self, request: Request, ctx: Context) -> Response:
        flow = await self.flow(request, ctx)
        if flow.step != "code":
            raise WrongStep(flow.step)
        if request.method == "GET":
            return await self._code_page(request, ctx, flow, self.form(CodeForm, request),
                                         resent=request.query_params.get("sent") == "again")
        form = self.form(CodeForm, request, await read_form(request))
        if not form.validate():
            return await self._code_page(request, ctx, flow, form, status=400)
        address = self.address(request)

        async def work(session: Any) -> str:
            live = await self.page.flow(session, institution_id=ctx.institution.id,
                                        token=request.cookies.get(self.flow_cookie), lock=True)
            await self.page.verify(session, flow=live, code=form.code.data, address=address)
            return live.step  # where the flow goes next: the password, or a second channel

        next_step, refused = await self.page.keeping(work)
        if isinstance(refused, RateLimited):
            return self.throttled(request, ctx, refused)
        if isinstance(refused, FlowEnded):
            raise refused
        if isinstance(refused, CodeRefused):
            form.code.errors = [CODE_REFUSALS[refused.why]]
            if refused.why in ("exhausted", "expired", "suspended"):
                form.code.data = ""
            return await self._code_page(request, ctx, await self.flow(request, ctx), form, status=400)
        assert next_step is not None
        return self.redirect(ctx.base + STEP_PATHS[next_step])

    async def _code_page(self, request: Request, ctx: Context, flow: ResetFlow, form: Any, *, status: int = 200,
                         resent: bool = False, wait: int | None = None,
                         headers: dict[str, str] | None = None) -> HTMLResponse:
        async with self.services.db.reading() as session:
            step = await self.page.step(session, flow)
        chosen = step.chosen
        if chosen is None:
            raise WrongStep("choose")
        if wait is None:
            wait = await self.page.send_wait(flow, chosen)
        now = self.services.clock.now()
        left = max(0, int((flow.code_expires_at - now).total_seconds())) if flow.code_expires_at else 0
        return self.render(
            request, ctx, "code.html", status, form=form, resend=self.form(ActionForm, request), chosen=chosen,
            sent=SENT[chosen.protocol], left=left, wait=wait, resent=resent, second=step.second,
            length=self.settings.passcode_length,
            numeric=self.settings.passcode_alphabet.isdigit(), step=3, headers=headers, WAIT=WAIT,
        )

    async def resend(self, request: Request, ctx: Context) -> Response:
        flow = await self.flow(request, ctx)
        if flow.step != "code":
            raise WrongStep(flow.step)
        form = self.form(ActionForm, request, await read_form(request))
        if not form.validate():
            return await self._code_page(request, ctx, flow, self.form(CodeForm, request), status=400)
        async with self.services.db.reading() as session:
            step = await self.page.step(session, flow)
        chosen = step.chosen
        if chosen is None:
            raise WrongStep("choose")
        try:
            real = await self.page.send(step=step, chosen=chosen, resend=True)
        except RateLimited as limited:
            code_form = self.form(CodeForm, request)
            return await self._code_page(request, ctx, flow, code_form, status=429, wait=limited.retry_after,
                                         headers={"Retry-After": str(limited.retry_after)})
        async with self.services.db.transaction() as session:
            live = await self.page.flow(session, institution_id=ctx.institution.id,
                                        token=request.cookies.get(self.flow_cookie), lock=True)
            await self.page.sent(session, flow=live, chosen=chosen, real=real)
        return self.redirect(ctx.base + "/code?sent=again")

    async def password(self, request: Request, ctx: Context) -> Response:
        flow = await self.flow(request, ctx)
        if flow.step != "password":
            raise WrongStep(flow.step)
        if request.method == "GET":
            return await self._password_page(request, ctx, flow, self.form(PasswordForm, request))
        form = self.form(PasswordForm, request, await read_form(request))
        if not form.validate():
            return await self._password_page(request, ctx, flow, form, status=400)

        async def work(session: Any) -> None:
            live = await self.page.flow(session, institution_id=ctx.institution.id,
                                        token=request.cookies.get(self.flow_cookie), lock=True)
            await self.page.set_password(session, flow=live, password=form.password.data)

        _, refused = await self.page.keeping(work)
        if isinstance(refused, RateLimited):
            return self.throttled(request, ctx, refused)
        if isinstance(refused, FlowEnded):
            raise refused
        if isinstance(refused, PasswordNotAccepted):
            form.password.errors = [N_("That password cannot be used. It must meet every rule below.")]
            return await self._password_page(request, ctx, flow, form, status=400, failed=refused.rules)
        response = self.redirect(ctx.base + "/done")
        self.forget_flow(response, ctx)
        return response

    async def _password_page(self, request: Request, ctx: Context, flow: ResetFlow, form: Any, *,
                             status: int = 200, failed: list[str] | None = None) -> HTMLResponse:
        async with self.services.db.reading() as session:
            step = await self.page.step(session, flow)
            minimum = await self.page.min_length(session, flow)
        shown = [*CHECKLIST, *[rule for rule in (failed or []) if rule not in CHECKLIST]]
        return self.render(request, ctx, "password.html", status, form=form, login_id=step.login_id or "",
                           rules=[(rule, RULES[rule], rule in (failed or [])) for rule in shown], minimum=minimum,
                           checked=failed is not None, step=4)

    async def check(self, request: Request, ctx: Context) -> Response:
        """The live check as the customer types (``reset.js``): which of the checklist's rules fail."""
        flow = await self.flow(request, ctx)
        if flow.step != "password":  # (the same answer as a bad token: a framing site learns nothing of the step)
            return JSONResponse({"failed": []}, 400)
        form = self.form(PasswordForm, request, await read_form(request))
        if not form.validate():
            if "csrf_token" in form.errors:
                return JSONResponse({"failed": []}, 400)
            return JSONResponse({"failed": ["length"] if not form.password.data else ["length_max"]})
        async with self.services.db.reading() as session:
            failed = await self.page.check_password(session, flow=flow, password=form.password.data)
        return JSONResponse({"failed": failed})

    async def done(self, request: Request, ctx: Context) -> Response:
        return self.render(request, ctx, "done.html", step=5)

    # -- the institution's look

    async def theme(self, request: Request, ctx: Context) -> Response:
        css = (f":root {{ --accent: {ctx.look.accent}; --header: {ctx.look.header}; }}\n")
        return Response(css, media_type="text/css", headers={"Cache-Control": "public, max-age=300"})

    async def logo(self, request: Request, ctx: Context) -> Response:
        async with self.services.db.reading() as session:
            row = await branding.branding(session, ctx.institution.id)
        if row is None or row.logo is None:
            return PlainTextResponse("No logo.", 404)
        etag = '"' + hashlib.sha256(row.logo).hexdigest()[:32] + '"'
        return Response(row.logo, media_type=row.logo_type, headers={
            "Cache-Control": "public, max-age=300", "ETag": etag,
            # an SVG opened on its own runs nothing, loads nothing, and cannot be framed
            "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; sandbox",
        })


def _tel(line: str | None) -> str:
    return "".join(ch for ch in (line or "") if ch.isdigit() or ch == "+")


def routes(services: Container) -> list[BaseRoute]:
    if not services.settings.reset_page:
        return []
    pages = Pages(services, services.reset_page)
    g = pages.guarded
    both = ("GET", "POST")
    return [
        Route("/reset/-/{name:str}", pages.asset, methods=["GET"]),
        Route("/reset/{institution_id:str}", g(pages.start, floored=("POST",)), methods=["GET", "POST"]),
        Route("/reset/{institution_id:str}/choose", g(pages.choose, floored=both), methods=["GET", "POST"]),
        Route("/reset/{institution_id:str}/code", g(pages.code, floored=both), methods=["GET", "POST"]),
        Route("/reset/{institution_id:str}/resend", g(pages.resend, floored=both), methods=["POST"]),
        Route("/reset/{institution_id:str}/password", g(pages.password), methods=["GET", "POST"]),
        Route("/reset/{institution_id:str}/password/check", g(pages.check), methods=["POST"]),
        Route("/reset/{institution_id:str}/done", g(pages.done), methods=["GET"]),
        Route("/reset/{institution_id:str}/theme.css", g(pages.theme), methods=["GET"]),
        Route("/reset/{institution_id:str}/logo", g(pages.logo), methods=["GET"]),
    ]
