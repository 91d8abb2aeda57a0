"""The hosted reset page (issue 15), in process: the flow over the same rules as the API, no enumeration,
the flow's session, CSRF, limits, headers, languages, the institution's look and templates.

The browser tests (tests/browser/test_reset_page.py) drive the same pages in Chromium, with axe-core."""

from __future__ import annotations

import html
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import func, select, update

from pwreset.app import create_app
from pwreset.audit.models import AuditEvent
from pwreset.container import Container, build_container
from pwreset.customers.models import Customer
from pwreset.institutions.service import configure_institution
from pwreset.resets.models import Passcode
from pwreset.web import branding
from pwreset.web.models import ResetFlow
from pwreset.web.service import FlowEnded
from tests.directory_support import C1, DIRECTORY, load

NEW_PASSWORD = "correct horse battery staple lamp"


@pytest.fixture
def directory():
    return None


@dataclass
class Browser:
    """A browser as the page sees one: cookies kept, forms read from the page and sent back with their CSRF."""

    client: httpx.AsyncClient
    services: Container
    institution: str = "07675"
    last: httpx.Response | None = None
    history: list[httpx.Response] = field(default_factory=list)

    @property
    def base(self) -> str:
        return f"/reset/{self.institution}"

    async def get(self, path: str = "", **kw) -> httpx.Response:
        self.last = await self.client.get(self.base + path, **kw)
        self.history.append(self.last)
        return self.last

    def another(self) -> Browser:
        """A second browser (its own cookies) on the same service."""
        return Browser(httpx.AsyncClient(transport=self.client._transport, base_url="https://pwreset.test"),
                       self.services, self.institution)

    def csrf(self, page: httpx.Response | None = None, index: int = 0) -> str:
        text = (page or self.last).text  # type: ignore[union-attr]
        return re.findall(r'name="csrf_token" type="hidden" value="([^"]+)"', text)[index]

    async def post(self, path: str, data: dict[str, str], *, csrf: str | None = None, follow: bool = True,
                   index: int = 0) -> httpx.Response:
        body = {"csrf_token": csrf if csrf is not None else self.csrf(index=index), **data}
        self.last = await self.client.post(self.base + path, data=body, follow_redirects=follow)
        self.history.append(self.last)
        return self.last

    def destinations(self) -> list[tuple[str, str]]:
        """(value, label) of each destination offered."""
        text = self.last.text  # type: ignore[union-attr]
        values = re.findall(r'name="destination" value="([^"]+)"', text)
        labels = [html.unescape(x) for x in re.findall(r'<label for="d-\d+">([^<]+)</label>', text)]
        return list(zip(values, labels, strict=True))

    async def start(self, login: str) -> httpx.Response:
        await self.get()
        return await self.post("", {"login": login})

    async def choose(self, label_part: str) -> httpx.Response:
        value = next(v for v, label in self.destinations() if label_part in label)
        return await self.post("/choose", {"destination": value})

    async def code(self, code: str) -> httpx.Response:
        return await self.post("/code", {"code": code})


def text_of(response: httpx.Response) -> str:
    """The page's words, without tags."""
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.text))).strip()


def h1(response: httpx.Response) -> str:
    return html.unescape(re.search(r"<h1>(.*?)</h1>", response.text, re.S).group(1)).strip()  # type: ignore[union-attr]


async def last_code(services: Container, to: str | None = None) -> str:
    """The passcode in the last message sent (to ``to``, when the test sent to several)."""
    await services.worker.run_once()
    sent = [m for m in services.sink.sent if m.kind == "passcode" and to in (None, m.destination)]
    return re.search(r"\b(\d{6})\b", sent[-1].text).group(1)  # type: ignore[union-attr]


@pytest.fixture
async def page(settings, clock) -> AsyncIterator[Browser]:
    configured = settings.model_copy(update={"reset_page_floor": 0.0})
    services = build_container(configured, clock=clock)
    async with services.db.transaction() as session:
        from pwreset.institutions.service import create_institution

        await create_institution(session, institution_id="07675", name="Demo Credit Union", clock=clock)
        await create_institution(session, institution_id="11111", name="Other Bank", clock=clock)
    for institution_id, records in DIRECTORY.items():
        assert not (await load(services, institution_id, records)).refused
    app = create_app(configured, container=services, background=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=("203.0.113.9", 4000)),
                                 base_url="https://pwreset.test") as client:
        yield Browser(client, services)
    await services.close()


async def events(services: Container, *types: str) -> list[AuditEvent]:
    async with services.db.reading() as session:
        query = select(AuditEvent).order_by(AuditEvent.id)
        if types:
            query = query.where(AuditEvent.event_type.in_(types))
        return list((await session.scalars(query)).all())


# the flow


async def test_a_customer_resets_the_password_through_the_page(page: Browser):
    services = page.services
    first = await page.get()
    assert first.status_code == 200 and h1(first) == "Reset your password"
    assert 'autocomplete="username"' in first.text
    chosen = await page.start("Pat.Doe")
    assert chosen.status_code == 200 and str(chosen.url).endswith("/reset/07675/choose")
    assert page.destinations()[0][1] == "Text message to •••• 0143"
    assert [label for _, label in page.destinations()] == [
        "Text message to •••• 0143", "Phone call to •••• 0143", "Email to p•••@example.com"]
    code_page = await page.choose("Text message")
    assert str(code_page.url).endswith("/code") and "We sent a code by text message to •••• 0143." in text_of(code_page)
    assert 'autocomplete="one-time-code"' in code_page.text and 'inputmode="numeric"' in code_page.text
    assert 'data-left="600"' in code_page.text  # the SMS code's lifetime, for the countdown
    password_page = await page.code(await last_code(services))
    assert str(password_page.url).endswith("/password") and h1(password_page) == "Choose a new password"
    assert 'autocomplete="new-password"' in password_page.text
    assert 'value="Pat.Doe" autocomplete="username"' in password_page.text  # for password managers
    done = await page.post("/password", {"password": NEW_PASSWORD})
    assert str(done.url).endswith("/done") and h1(done) == "Your password is changed"
    async with services.db.reading() as session:
        customer = (await session.scalars(select(Customer).where(Customer.customer_id == C1))).one()
        assert services.hashing.verify(customer.password_hash, NEW_PASSWORD).ok
    await services.worker.run_once()
    notices = [m for m in services.sink.sent if m.kind == "password_changed"]
    assert sorted(m.channel for m in notices) == ["EMAIL", "SMS"]  # every destination hears of it
    trail = [(e.event_type, e.outcome, e.client_id) for e in await events(services)
             if e.event_type.startswith(("reset", "passcode"))]
    assert trail == [
        ("reset_page.started", "started", "reset-page:07675"),
        ("reset.requested", "passcode_queued", "reset-page:07675"),
        ("passcode.verified", "success", "reset-page:07675"),
        ("reset.completed", "password_changed", "reset-page:07675"),
    ]
    recorded = await events(services, "reset_page.started")
    assert recorded[0].origin_ip == "203.0.113.9" and recorded[0].user_agent is not None
    assert "Pat.Doe" not in str([(e.details, e.customer_id) for e in await events(services)])
    # The flow is spent: its pages now say so, and the cookie is gone.
    ended = await page.get("/password")
    assert ended.status_code == 400 and h1(ended) == "This reset has ended"


async def test_an_unknown_login_sees_the_same_screens_to_the_same_cap(page: Browser):
    known = await page.start("Pat.Doe")
    await page.get()
    unknown = await page.start("no.such.person")
    assert unknown.status_code == known.status_code == 200 and h1(unknown) == h1(known)
    decoys = page.destinations()
    assert decoys and all(re.fullmatch(r"(Text message to|Phone call to) •••• \d{4}|Email to [a-z]•••@[a-z.]+", label)
                          for _, label in decoys)
    await page.start("no.such.person")
    assert page.destinations() == decoys  # the same each time it is typed
    await page.start("No.Such.Person")
    assert page.destinations() == decoys
    code_page = await page.post("/choose", {"destination": decoys[0][0]})
    assert str(code_page.url).endswith("/code") and h1(code_page) == "Enter your code"
    for attempt in range(4):
        wrong = await page.code(f"00000{attempt}")
        assert wrong.status_code == 400 and "That code is not right" in text_of(wrong)
    fifth = await page.code("000009")
    assert "tried too many times" in text_of(fifth)
    services = page.services
    await services.worker.run_once()
    assert [m for m in services.sink.sent if m.kind == "passcode"] == []  # a stranger's login sends nothing
    started = await events(services, "reset_page.started")
    assert [e.details["onFile"] for e in started] == [True, False, False, False]
    assert [e.customer_id for e in started][1:] == [None, None, None]


async def test_the_two_steps_that_differ_take_at_least_the_floor(settings, clock, page: Browser):
    floor = 0.3
    page.services.settings.reset_page_floor = floor  # (the Pages read it per request)
    for login in ("Pat.Doe", "no.such.person"):
        await page.get()
        began = time.perf_counter()
        await page.post("", {"login": login}, follow=False)
        assert time.perf_counter() - began >= floor
        await page.get("/choose")
        began = time.perf_counter()
        await page.post("/choose", {"destination": page.destinations()[-1][0]}, follow=False)
        assert time.perf_counter() - began >= floor


async def test_refusals_that_would_tell_a_stranger_something_look_like_a_sent_code(page: Browser):
    services = page.services
    await page.start("no.such.person")
    await page.post("/choose", {"destination": page.destinations()[0][0]})
    stranger = await page.code("123456")
    for login in ("unregistered", "nodisclosure", "inactive"):
        await page.start(login)
        sent = await page.post("/choose", {"destination": page.destinations()[0][0]})
        assert str(sent.url).endswith("/code") and h1(sent) == "Enter your code"
        assert "You can ask for a new code in" in text_of(sent)  # the same wait as a real send's
        answer = await page.code("123456")  # and the same answer as a stranger's
        assert answer.status_code == stranger.status_code == 400
        assert "That code is not right" in text_of(answer)
    await services.worker.run_once()
    assert [m for m in services.sink.sent if m.kind == "passcode"] == []
    refused = await events(services, "reset_page.refused")
    assert [e.outcome for e in refused] == [
        "reset.not_registered", "reset.disclosure_not_accepted", "reset.customer_inactive"]


async def test_deactivated_methods_are_not_offered(page: Browser):
    await page.start("sam")
    assert [label for _, label in page.destinations()] == ["Text message to •••• 0178"]


async def test_a_customer_with_nothing_activated_looks_like_a_stranger(page: Browser):
    from tests.directory_support import cid, customer, sms

    services = page.services
    dark = customer(cid("dark"), "dark.horse", sms("1", "2025550111", isActivated=False))
    report = await load(services, "07675", [dark])
    assert not report.refused
    await page.start("dark.horse")
    offered = page.destinations()
    assert offered and "0111" not in str(offered)  # a decoy's, not an empty list
    await page.start("dark.horse")
    assert page.destinations() == offered
    sent = await page.post("/choose", {"destination": offered[0][0]})
    assert h1(sent) == "Enter your code"
    assert "That code is not right" in text_of(await page.code("123456"))
    assert [e.outcome for e in await events(services, "reset_page.refused")] == ["reset.method_not_activated"]


async def test_wrong_codes_count_on_the_passcode_like_the_api(page: Browser):
    services = page.services
    await page.start("Pat.Doe")
    await page.choose("Email")
    right = await last_code(services)
    wrong = "000000" if right != "000000" else "111111"
    for _ in range(4):
        assert "That code is not right" in text_of(await page.code(wrong))
    assert "tried too many times" in text_of(await page.code(wrong))
    still = await page.code(right)  # the cap holds for the right code too
    assert "tried too many times" in text_of(still)
    async with services.db.reading() as session:
        attempts = (await session.scalars(select(Passcode.attempts))).all()
    assert list(attempts) == [5]


async def test_resending_waits_for_the_send_limit_and_shows_the_wait(page: Browser):
    services = page.services
    await page.start("Pat.Doe")
    code_page = await page.choose("Text message")
    assert "You can ask for a new code in" in text_of(code_page)  # one a minute per customer
    refused = await page.post("/resend", {}, index=1)
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
    assert re.search(r"You can ask for a new code in \d+ seconds", text_of(refused))
    first = await last_code(services)
    services.clock.advance(61)
    again = await page.post("/resend", {}, index=1)
    assert again.status_code == 200 and "We sent a new code. Only the newest code works." in text_of(again)
    second = await last_code(services)
    if first != second:
        assert "replaced by a newer one" in text_of(await page.code(first))
    assert str((await page.code(second)).url).endswith("/password")


async def test_an_expired_code_asks_for_a_new_one(page: Browser):
    services = page.services
    await page.start("Pat.Doe")
    await page.choose("Text message")
    code = await last_code(services)
    services.clock.advance(601)
    expired = await page.code(code)
    assert expired.status_code == 400 and "has expired" in text_of(expired)


async def test_a_refused_password_names_the_rules_and_keeps_the_flow(page: Browser):
    services = page.services
    await page.start("Pat.Doe")
    await page.choose("Email")
    await page.code(await last_code(services))
    refused = await page.post("/password", {"password": "Pat.Doe123"})
    assert refused.status_code == 400
    assert 'data-rule="login" class="unmet"' in refused.text and 'data-rule="length" class="met"' in refused.text
    token = page.csrf()
    live = await page.post("/password/check", {"password": "short"}, csrf=token)
    assert "length" in live.json()["failed"]
    assert (await page.post("/password/check", {"password": "Pat.Doe!!"}, csrf=token)).json()["failed"] == ["login"]
    assert (await page.post("/password/check", {"password": NEW_PASSWORD}, csrf=token)).json() == {"failed": []}
    assert (await page.post("/password/check", {"password": NEW_PASSWORD}, csrf="1.bad")).status_code == 400
    assert str((await page.post("/password", {"password": NEW_PASSWORD}, csrf=token)).url).endswith("/done")


async def test_two_channel_institutions_ask_for_a_second_code(page: Browser):
    services = page.services
    async with services.db.transaction() as session:
        await configure_institution(session, institution_id="07675", clock=services.clock,
                                    recovery_assurance="two_channel")
    await page.start("Pat.Doe")
    await page.choose("Text message")
    second = await page.code(await last_code(services))
    assert str(second.url).endswith("/choose") and h1(second) == "Choose a second way to get a code"
    assert [label for _, label in page.destinations()] == ["Email to p•••@example.com"]  # not the same number
    waiting = await page.choose("Email")  # the customer's send limit (one a minute) holds here too
    assert waiting.status_code == 429 and "You can ask for a new code in" in text_of(waiting)
    services.clock.advance(61)
    await page.choose("Email")
    assert str((await page.code(await last_code(services))).url).endswith("/password")
    assert str((await page.post("/password", {"password": NEW_PASSWORD})).url).endswith("/done")


# the flow's session


async def test_forms_without_their_csrf_token_change_nothing(page: Browser):
    await page.get()
    refused = await page.post("", {"login": "Pat.Doe"}, csrf="")
    assert refused.status_code == 400 and "This form has expired" in text_of(refused)
    stranger = await page.post("", {"login": "Pat.Doe"}, csrf=str(int(time.time()) + 100) + ".00")
    assert stranger.status_code == 400
    async with page.services.db.reading() as session:
        assert await session.scalar(select(func.count()).select_from(ResetFlow)) == 0


async def test_a_flow_belongs_to_one_institution_and_one_browser(page: Browser):
    await page.start("Pat.Doe")
    page.institution = "11111"
    elsewhere = await page.get("/choose")
    assert elsewhere.status_code == 400 and h1(elsewhere) == "This reset has ended"
    dropped = [c for c in elsewhere.headers.get_list("set-cookie") if c.startswith("__Host-pwreset_flow=")]
    assert dropped and "Secure" in dropped[0] and "Max-Age=0" in dropped[0]  # a browser honours only that
    page.institution = "07675"
    assert (await page.get("/choose")).status_code == 400  # the refusal cleared the cookie
    async with httpx.AsyncClient(transport=page.client._transport, base_url="https://pwreset.test") as other:
        assert (await other.get("/reset/07675/choose")).status_code == 400


async def test_a_flow_expires(page: Browser):
    await page.start("Pat.Doe")
    page.services.clock.advance(page.services.settings.reset_page_flow_ttl + 1)
    assert h1(await page.get("/choose")) == "This reset has ended"


async def test_starting_again_ends_the_last_flow(page: Browser):
    await page.start("Pat.Doe")
    old = page.client.cookies.get("__Host-pwreset_flow")
    await page.start("sam")
    async with page.services.db.reading() as session:
        flows = (await session.scalars(select(ResetFlow).order_by(ResetFlow.created_at))).all()
    assert [f.ended_at is not None for f in flows] == [True, False]
    assert old != page.client.cookies.get("__Host-pwreset_flow")


async def test_the_forms_pages_skip_ahead_to_nothing(page: Browser):
    await page.start("Pat.Doe")
    early = await page.client.get("/reset/07675/password")
    assert early.status_code == 303 and early.headers["location"] == "/reset/07675/choose"


async def test_logins_are_limited_per_address_and_per_login(page: Browser):
    limit = page.services.settings.reset_page_login_limit
    for _ in range(limit):
        assert (await page.start("sam")).status_code == 200
    limited = await page.start("sam")
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) > 0
    assert "Too many attempts" in text_of(limited)
    assert (await page.start("Pat.Doe")).status_code == 200  # another login from here still works


async def test_bad_bytes_get_a_page_not_a_traceback(page: Browser):
    await page.get()
    token = page.csrf()
    for body, kind in ((b"login=%ff%fe&csrf_token=" + token.encode(), "application/x-www-form-urlencoded"),
                       (b"login=a%00b&csrf_token=" + token.encode(), "application/x-www-form-urlencoded"),
                       (b'{"login": "x"}', "application/json"),
                       (b"login=" + b"a" * 20000, "application/x-www-form-urlencoded")):
        answer = await page.client.post("/reset/07675", content=body, headers={"Content-Type": kind})
        assert answer.status_code == 400 and h1(answer) == "That form could not be read"
    assert (await page.client.get("/reset/no-such-bank")).status_code == 404
    assert (await page.client.get("/reset/%00")).status_code == 404


# headers, languages, the institution's look


async def test_the_page_sends_a_strict_policy(page: Browser):
    answer = await page.get()
    csp = answer.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "'unsafe-inline'" not in csp and "frame-ancestors 'none'" in csp
    assert answer.headers["referrer-policy"] == "no-referrer"
    assert answer.headers["x-frame-options"] == "DENY"
    assert answer.headers["strict-transport-security"].startswith("max-age=")
    assert answer.headers["cache-control"] == "no-store"
    assert "<script>" not in answer.text and " style=" not in answer.text
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith("__Host-pwreset_page_csrf=") and "Secure" in cookie and "HttpOnly" in cookie


async def test_an_institution_lets_its_own_site_frame_the_page(page: Browser):
    services = page.services
    async with services.db.transaction() as session:
        await branding.set_branding(session, clock=services.clock, institution_id="07675", sandbox=False,
                                    frame_ancestors="https://www.bank.example https://*.bank.example")
    answer = await page.get()
    assert "frame-ancestors https://www.bank.example https://*.bank.example" in answer.headers[
        "content-security-policy"]
    assert "x-frame-options" not in answer.headers
    flow = await page.post("", {"login": "Pat.Doe"}, follow=False)
    assert "samesite=none" in flow.headers["set-cookie"].lower()  # sent in the institution's frame
    other = await page.client.get("/reset/11111")
    assert "frame-ancestors 'none'" in other.headers["content-security-policy"]  # per institution


async def test_spanish_by_accept_language_and_by_the_switch(page: Browser):
    spanish = await page.get(headers={"Accept-Language": "es-MX,es;q=0.9,en;q=0.5"})
    assert '<html lang="es">' in spanish.text and h1(spanish) == "Restablezca su contraseña"
    assert 'href="/reset/07675?lang=en" lang="en" hreflang="en">English</a>' in spanish.text
    english = await page.get("?lang=en", headers={"Accept-Language": "es"})
    assert h1(english) == "Reset your password" and "pwreset_lang=en" in english.headers["set-cookie"]
    assert h1(await page.get(headers={"Accept-Language": "es"})) == "Reset your password"  # the switch is kept
    await page.get("?lang=es")
    await page.post("", {"login": "Pat.Doe"})
    assert page.destinations()[0][1] == "Mensaje de texto al •••• 0143"
    refused = await page.post("/choose", {"destination": "nothing"})
    assert "Elija adónde enviar su código." in text_of(refused)


async def test_every_message_has_a_spanish_translation():
    from babel.messages.extract import extract_from_dir

    from pwreset.kit.webforms import EXPIRED
    from pwreset.web import forms, i18n

    assert forms.CSRF_EXPIRED == EXPIRED
    found = {message for _, _, message, _, _ in extract_from_dir(
        "src/pwreset/web", method_map=[("**.py", "python"), ("templates/**.html", "jinja2.ext:babel_extract")],
        keywords={"_": None, "N_": None},
        options_map={"templates/**.html": {"trim_blocks": "true", "lstrip_blocks": "true"}},
    )}
    assert len(found) > 60
    spanish = i18n.translations("es")
    missing = [m for m in found if spanish.gettext(m) == m and m not in ("Error",)]
    assert missing == []


def test_colours_that_fail_contrast_are_refused():
    assert round(branding.contrast("#767676", "#ffffff"), 2) == 4.54
    assert branding.check_color("accent", "#0B5394") == "#0b5394"
    with pytest.raises(branding.BrandingInvalid, match=r"contrast of 2\.\d+:1"):
        branding.check_color("the accent colour", "#ff9900")
    with pytest.raises(branding.BrandingInvalid, match="#rrggbb"):
        branding.check_color("the accent colour", "red")
    with pytest.raises(branding.BrandingInvalid, match="PNG, JPEG or SVG"):
        branding.logo_type(b"GIF89a....")
    with pytest.raises(branding.BrandingInvalid, match="https"):
        branding.check_sign_in_url("javascript:alert(1)", sandbox=True)
    with pytest.raises(branding.BrandingInvalid, match="origins"):
        branding.check_frame_ancestors("https://bank.example/path *")


async def test_the_look_and_a_replaced_template_reach_the_page(page: Browser):
    services = page.services
    svg = b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" height="10"/></svg>'
    async with services.db.transaction() as session:
        await branding.set_branding(session, clock=services.clock, institution_id="07675", sandbox=False,
                                    accent_color="#7a1f5c", header_color="#1d3b2a", logo=svg,
                                    sign_in_url="https://online.bank.example/sign-in")
        await branding.set_template(session, clock=services.clock, institution_id="07675", name="done.html",
                                    source='{% extends "base.html" %}{% block title %}Done{% endblock %}'
                                           '{% block main %}<h1>All set at {{ institution.name }}</h1>'
                                           '{% endblock %}')
        await branding.set_template(session, clock=services.clock, institution_id="07675", name="start.html",
                                    source="<h1>{{ institution.__class__.__mro__ }}</h1>")
    start = await page.get()  # the replaced start page reaches for what the sandbox refuses: ours is shown
    assert start.status_code == 200 and h1(start) == "Reset your password"
    assert 'alt="Demo Credit Union"' in start.text and 'href="https://online.bank.example/sign-in"' in start.text
    theme = await page.client.get("/reset/07675/theme.css")
    assert "--accent: #7a1f5c" in theme.text and "--header: #1d3b2a" in theme.text
    logo = await page.client.get("/reset/07675/logo")
    assert logo.content == svg and logo.headers["content-type"] == "image/svg+xml"
    assert "sandbox" in logo.headers["content-security-policy"]
    done = await page.get("/done")
    assert h1(done) == "All set at Demo Credit Union"
    async with services.db.transaction() as session:
        with pytest.raises(branding.BrandingInvalid, match="does not parse"):
            await branding.set_template(session, clock=services.clock, institution_id="07675", name="done.html",
                                        source="{% block %}")
        await branding.delete_template(session, institution_id="07675", name="done.html")
    assert h1(await page.get("/done")) == "Your password is changed"


async def test_a_flow_in_progress_when_the_customer_is_deleted_ends(page: Browser):
    await page.start("Pat.Doe")
    async with page.services.db.transaction() as session:
        await session.execute(update(Customer).where(Customer.customer_id == C1).values(active=False))
    sent = await page.choose("Email")
    assert h1(sent) == "Enter your code"  # an inactive customer is not told apart from a sent code


# what the security review found (each failed before its fix)


async def test_destinations_are_named_by_their_place_for_customers_and_decoys(page: Browser):
    await page.start("Pat.Doe")
    assert [value for value, _ in page.destinations()] == ["d0", "d1", "d2"]
    await page.start("no.such.person")
    assert all(re.fullmatch(r"d\d", value) for value, _ in page.destinations())


async def test_decoys_take_the_shapes_of_the_institutions_own_customers(page: Browser):
    from tests.directory_support import cid, customer, email

    services = page.services
    many = [customer(cid(f"m{n}"), f"member{n}", email("1", f"k{n}@cu-mail.example")) for n in range(30)]
    many.append(customer(cid("vain"), "vain", email("1", "v@vanity-of-one.example")))
    assert not (await load(services, "07675", many)).refused
    services.reset_page._models.clear()
    seen = []
    for n in range(12):
        await page.start(f"stranger.{n}")
        seen += [label for _, label in page.destinations()]
    assert seen and all(label == "Email to k•••@cu-mail.example" for label in seen), seen  # the shared shape only
    assert not any("vanity" in label for label in seen)  # one customer's own domain is never shown


async def test_a_send_limited_by_someone_elses_send_looks_like_any_other(page: Browser):
    services = page.services
    await page.start("Pat.Doe")
    await page.choose("Text message")  # Pat's number is also twin's
    await page.start("twin")
    sent = await page.choose("Text message")
    assert sent.status_code == 200 and h1(sent) == "Enter your code"  # not the 429 a shared number would show
    assert "That code is not right" in text_of(await page.code(await last_code(services)))  # Pat's code
    assert [e.outcome for e in await events(services, "reset_page.refused")] == ["request.rate_limited"]


async def wrong_codes_until_suspended(page: Browser, login: str) -> list[str]:
    """The page's answers to 21 wrong codes, sending a new code whenever one is used up."""
    answers = []
    await page.start(login)
    await page.post("/choose", {"destination": "d0"})
    for _ in range(21):
        text = text_of(await page.code("999999"))
        answer = next(why for why, words in (("suspended", "paused"), ("exhausted", "too many times"),
                                             ("expired", "has expired"), ("wrong", "not right")) if words in text)
        answers.append(answer)
        if answer == "exhausted":
            page.services.clock.advance(61)
            await page.post("/resend", {}, index=1)
    return answers


async def test_a_strangers_wrong_codes_run_exactly_as_a_customers_do(page: Browser):
    real = await wrong_codes_until_suspended(page, "sam")
    decoy = await wrong_codes_until_suspended(page, "nobody.at.all")
    assert real == decoy
    assert real[19] == "suspended" and real.count("exhausted") == 3


async def test_the_pages_wrong_codes_do_not_use_up_the_institutions_api_budget(page: Browser):
    from pwreset.ratelimit.limiter import Rule

    velocity = page.services.resets.velocity
    velocity.institution_failures = Rule("institution-verify-failures", 3, 3600)
    velocity.client_failures = Rule("client-verify-failures", 1000, 3600)
    await page.start("sam")
    await page.post("/choose", {"destination": "d0"})
    for _ in range(4):
        assert "not right" in text_of(await page.code("999999"))
    await page.start("Pat.Doe")
    await page.choose("Email")
    assert str((await page.code(await last_code(page.services, "pat@example.com"))).url).endswith("/password")


async def test_an_institutions_template_cannot_reach_another_or_break_its_own_page(page: Browser):
    services = page.services
    async with services.db.transaction() as session:
        await branding.set_template(session, clock=services.clock, institution_id="11111", name="choose.html",
                                    source="{{ labels.update({'SMS': 'Call 1-900-555-0199 %(where)s'}) }}"
                                           "{{ form.meta.csrf_context }}")
        await branding.set_template(session, clock=services.clock, institution_id="11111", name="base.html",
                                    source="{{ 1 // 0 }}")
    page.institution = "11111"
    broken = await page.get()
    assert broken.status_code == 200 and h1(broken) == "Reset your password"  # ours, not a 500
    foreign_token = page.csrf()
    other = await page.start("other.pat")
    assert other.status_code == 200 and "1-900" not in other.text and "csrf_context" not in other.text
    page.institution = "07675"
    await page.start("Pat.Doe")
    assert page.destinations()[0][1] == "Text message to •••• 0143"  # untouched
    refused = await page.post("", {"login": "Pat.Doe"}, csrf=foreign_token)  # another institution's token
    assert refused.status_code == 400


async def test_a_portal_sandbox_institution_has_no_page_in_production(page: Browser):
    services = page.services
    async with services.db.transaction() as session:
        from pwreset.institutions.models import Institution

        found = await session.get(Institution, "11111")
        found.sandbox = True
    services.institutions._entries.clear()
    assert (await page.client.get("/reset/11111")).status_code == 404


async def test_passwords_sent_are_limited_per_flow(page: Browser):
    await page.start("Pat.Doe")
    await page.choose("Email")
    await page.code(await last_code(page.services))
    token = page.csrf()
    for _ in range(10):
        assert (await page.post("/password", {"password": "Pat.Doe"}, csrf=token)).status_code == 400
    limited = await page.post("/password", {"password": NEW_PASSWORD}, csrf=token)
    assert limited.status_code == 429
    too_long = await page.post("/password/check", {"password": "x" * 300}, csrf=token)
    assert too_long.json() == {"failed": ["length_max"]}


async def test_a_sealed_ticket_works_only_in_its_own_flow(page: Browser):
    services = page.services
    await page.start("Pat.Doe")
    await page.choose("Email")
    await page.code(await last_code(services))
    async with services.db.transaction() as session:
        mine = (await session.scalars(select(ResetFlow).where(ResetFlow.step == "password"))).one()
        other = ResetFlow(id="f" * 32, token_hash="0" * 64, institution_id="07675", customer_pk=mine.customer_pk,
                          step="password", ticket_sealed=mine.ticket_sealed,
                          created_at=services.clock.now(), expires_at=mine.expires_at)
        session.add(other)
        await session.flush()
        with pytest.raises(FlowEnded):
            await services.reset_page.set_password(session, flow=other, password=NEW_PASSWORD)
    assert str((await page.post("/password", {"password": NEW_PASSWORD})).url).endswith("/done")


async def test_each_start_clears_flows_a_day_past_their_end(page: Browser):
    services = page.services
    now = services.clock.now()
    async with services.db.transaction() as session:
        await session.execute(ResetFlow.__table__.insert(), [
            {"id": f"{n:032x}", "token_hash": f"{n:064x}", "institution_id": "07675", "step": "choose",
             "created_at": now, "expires_at": now - timedelta(hours=23 if n < 5 else 25)}
            for n in range(150)])
    await page.start("sam")
    await page.start("sam")
    async with services.db.reading() as session:
        left = (await session.scalars(select(ResetFlow.id).where(ResetFlow.step == "choose",
                                                                 ResetFlow.customer_pk.is_(None)))).all()
    assert sorted(left) == [f"{n:032x}" for n in range(5)]  # 145 cleared, 100 a start; the recent ones kept


async def test_a_strangers_destinations_stay_when_the_directory_changes(page: Browser):
    from tests.directory_support import cid, customer, email

    services = page.services
    await page.start("never.on.file")
    before = page.destinations()
    many = [customer(cid(f"n{n}"), f"new{n}", email("1", f"k{n}@cu-mail.example")) for n in range(40)]
    assert not (await load(services, "07675", many)).refused
    services.reset_page._models.clear()  # (the next hour's sample)
    await page.start("never.on.file")
    assert page.destinations() == before


async def two_browsers_on_one_login(page: Browser, login: str) -> str:
    """Two flows of one login each send a code; five wrong in the first, then one in the second."""
    second = page.another()
    await page.start(login)
    await page.post("/choose", {"destination": "d0"})
    page.services.clock.advance(61)
    await second.start(login)
    await second.post("/choose", {"destination": "d0"})
    for _ in range(5):
        await page.code("999999")
    answer = text_of(await second.code("999999"))
    await second.client.aclose()
    return answer


async def test_two_browsers_on_a_strangers_login_share_its_code_as_on_a_customers(page: Browser):
    real = await two_browsers_on_one_login(page, "sam")
    page.services.clock.advance(3600)
    stranger = await two_browsers_on_one_login(page, "nobody.at.all")
    # Both flows answer for the login's last code (the second's): five wrong in the first used it up.
    assert "tried too many times" in real and "tried too many times" in stranger, (real, stranger)


async def test_a_customers_live_code_still_works_when_a_resend_is_hidden(page: Browser):
    services = page.services
    await page.start("Pat.Doe")
    await page.choose("Text message")
    first = await last_code(services)
    services.clock.advance(61)
    other = page.another()
    await other.start("twin")  # shares Pat's number: uses the number's send allowance for the minute
    await other.choose("Text message")
    await other.client.aclose()
    resent = await page.post("/resend", {}, index=1)
    assert "We sent a new code" in text_of(resent)  # hidden: the service refused the number
    assert str((await page.code(first)).url).endswith("/password")


async def test_a_full_page_budget_refuses_strangers_and_customers_alike(page: Browser):
    from pwreset.ratelimit.limiter import Rule

    velocity = page.services.resets.velocity
    velocity.client_sends = (Rule("client-send-minute", 1, 60), Rule("client-send-hour", 1, 3600))
    await page.start("sam")
    await page.post("/choose", {"destination": "d0"})  # uses the page's budget
    answers = []
    for login in ("nobody.at.all", "Pat.Doe"):
        await page.start(login)
        sent = await page.post("/choose", {"destination": "d0"}, follow=False)
        answers.append((sent.status_code, sent.headers.get("location")))
    assert answers == [(303, "/reset/07675/code")] * 2
