"""The hosted reset page in a real browser (issue 15): customers on SMS, voice and email reset their
password with the passcode taken from the test's SMTP server and a local server that plays Twilio; axe-core
checks every screen and state for WCAG 2.2 AA; a phone's viewport, Spanish, and the keyboard alone."""

from __future__ import annotations

import asyncio
import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import pytest

from tests.browser.conftest import Mailbox, assert_accessible, scratch_database, text_of
from tests.conftest import TEST_SECRET_KEY
from tests.directory_support import cid, customer, email, sms, voice
from tests.servers import REPO_ROOT, free_port, server

pytestmark = pytest.mark.slow
INSTITUTION = "07675"
SID, TOKEN = "AC" + "1" * 32, "twilio-token-for-browser-tests"
PHONE = {"width": 390, "height": 844}
NEW_PASSWORD = "harbour lantern quietly orbits"
LOGO = (b'<svg xmlns="http://www.w3.org/2000/svg" width="160" height="40" viewBox="0 0 160 40">'
        b'<rect width="160" height="40" fill="#12304d"/><text x="10" y="26" fill="#fff" font-size="16">'
        b'First Harbor</text></svg>')
CUSTOMERS = [
    customer(cid("page-sms"), "sam.sms", sms("1", "2025550143"), email("2", "sam@example.com")),
    customer(cid("page-voice"), "val.voice", voice("1", "2025550144")),
    customer(cid("page-email"), "emma.email", email("1", "emma@example.com"), language="es"),
    customer(cid("page-wrong"), "wren.wrong", sms("1", "2025550145")),
    customer(cid("page-resend"), "ray.resend", sms("1", "2025550146")),
    customer(cid("page-expired"), "exa.expired", sms("1", "2025550147")),
    customer(cid("page-keys"), "kay.keys", sms("1", "2025550148")),
    customer(cid("page-es"), "sol.es", sms("1", "2025550149")),
]


@dataclass
class Phone:
    """A local server that plays Twilio's Messages and Calls endpoints; what it took, waited on with a condition."""

    url: str = ""
    taken: list[dict[str, str]] = field(default_factory=list)
    changed: threading.Condition = field(default_factory=threading.Condition)

    def code_for(self, number: str, after: int = 0, timeout: float = 15.0) -> str:
        """The passcode in the ``after``+1-th message or call to ``number``."""
        def found() -> list[dict[str, str]]:
            return [m for m in self.taken if m["To"] == number]
        with self.changed:
            if not self.changed.wait_for(lambda: len(found()) > after, timeout=timeout):
                raise AssertionError(f"nothing reached {number}; the fake took {len(self.taken)} requests")
            message = found()[after]
        if "Twiml" in message:  # a call reads the digits one by one
            spoken = re.search(r"<Say[^>]*>(.*?)</Say>", message["Twiml"], re.S)
            assert spoken is not None
            digits = re.findall(r"\b\d\b", spoken.group(1))
            return "".join(digits[:6])
        match = re.search(r"\b(\d{6})\b", message["Body"])
        assert match is not None, message["Body"]
        return match.group(1)


@pytest.fixture(scope="module")
def phone() -> Iterator[Phone]:
    fake = Phone()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            form = dict(parse_qsl(self.rfile.read(length).decode()))
            kind = "SM" if self.path.endswith("/Messages.json") else "CA"
            with fake.changed:
                fake.taken.append(form)
                fake.changed.notify_all()
            body = json.dumps({"sid": f"{kind}{len(fake.taken):032d}"}).encode()
            self.send_response(201)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    fake.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        httpd.shutdown()


async def _prepare(url: str) -> None:
    from pwreset.config import Settings
    from pwreset.container import build_container
    from pwreset.institutions.service import configure_institution, create_institution
    from pwreset.web import branding
    from tests.directory_support import load

    services = build_container(Settings(database_url=url, secret_key=TEST_SECRET_KEY, _env_file=None))  # type: ignore[call-arg]
    try:
        async with services.db.transaction() as session:
            await create_institution(session, institution_id=INSTITUTION, name="First Harbor Credit Union",
                                     clock=services.clock)
            await configure_institution(session, institution_id=INSTITUTION, clock=services.clock,
                                        contact_line="1-800-555-0100")
            await branding.set_branding(session, clock=services.clock, institution_id=INSTITUTION, sandbox=False,
                                        accent_color="#1f5f8b", header_color="#12304d", logo=LOGO,
                                        sign_in_url="https://online.firstharbor.example/sign-in")
        report = await load(services, INSTITUTION, CUSTOMERS)
        assert not report.refused, report.refused
    finally:
        await services.close()


@dataclass(frozen=True)
class Site:
    base: str
    url: str  # the database's, for what a test does to it directly (a code's expiry)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, mailbox: tuple[Mailbox, int], phone: Phone) -> Iterator[Site]:
    here = tmp_path_factory.mktemp("reset-page")
    with scratch_database("pwreset_page", here) as url:
        asyncio.run(_prepare(url))
        yield from _serve(url, here, mailbox, phone)


def _serve(url: str, here: Path, mailbox: tuple[Mailbox, int], phone: Phone) -> Iterator[Site]:
    env = {
        "PWRESET_DATABASE_URL": url, "PWRESET_SECRET_KEY": TEST_SECRET_KEY, "PWRESET_LOG_JSON": "false",
        "PWRESET_EMAIL_PROVIDER": "smtp", "PWRESET_SMTP_HOST": "127.0.0.1", "PWRESET_SMTP_PORT": str(mailbox[1]),
        "PWRESET_SMTP_SECURITY": "none", "PWRESET_EMAIL_FROM": "reset@firstharbor.example",
        "PWRESET_SMS_PROVIDER": "twilio", "PWRESET_VOICE_PROVIDER": "twilio", "PWRESET_TWILIO_ACCOUNT_SID": SID,
        "PWRESET_TWILIO_AUTH_TOKEN": TOKEN, "PWRESET_TWILIO_FROM_NUMBER": "+12025550100",
        "PWRESET_TWILIO_BASE_URL": phone.url, "PWRESET_ARGON2_MEMORY_KIB": "1024", "PWRESET_ARGON2_TIME_COST": "1",
        # a resend at once (the in-process tests hold the one-a-minute default)
        "PWRESET_SEND_LIMIT_SHORT": "3", "PWRESET_REDIS_URL": "",
    }
    with server(["pwreset", "serve"], env, here / "server.log") as base:
        yield Site(base.replace("127.0.0.1", "localhost"), url)


def start(page: Any, site: Site, login: str, *, label: str = "Login ID", go: str = "Continue") -> None:
    page.goto(f"{site.base}/reset/{INSTITUTION}")
    page.get_by_role("heading", level=1).wait_for()
    assert_accessible(page)
    page.get_by_label(label).fill(login)
    page.get_by_role("button", name=go).click()


def choose(page: Any, name: str, *, go: str = "Send code") -> None:
    page.get_by_label(name).check()
    assert_accessible(page)
    page.get_by_role("button", name=go, exact=True).click()


def new_password(page: Any, password: str = NEW_PASSWORD) -> None:
    page.get_by_role("heading", name="Choose a new password").wait_for()
    assert_accessible(page)
    page.get_by_label("New password").fill(password)
    page.locator('.rules li[data-rule="guessable"].met').wait_for()  # the live check answered
    assert_accessible(page)
    page.get_by_role("button", name="Set new password").click()
    page.get_by_role("heading", name="Your password is changed").wait_for()
    assert_accessible(page)
    assert page.get_by_role("link", name="Sign in").get_attribute("href") == (
        "https://online.firstharbor.example/sign-in")


def test_an_sms_customer_resets_on_a_phone(site: Site, phone: Phone, browse: Any) -> None:
    page = browse(viewport=PHONE, is_mobile=True, has_touch=True)
    start(page, site, "sam.sms")
    page.get_by_role("heading", name="Choose where to send your code").wait_for()
    assert page.get_by_label("Text message to •••• 0143").is_visible()
    assert page.get_by_label("Email to s•••@example.com").is_visible()
    choose(page, "Text message to •••• 0143")
    page.get_by_role("heading", name="Enter your code").wait_for()
    assert page.locator(".countdown .clock").inner_text().startswith(("10:00", "9:5"))
    assert "The code expires in 10 minutes." in page.locator(".countdown [aria-live=polite]").inner_text()
    assert_accessible(page)
    code = page.get_by_label("Code")
    assert code.get_attribute("autocomplete") == "one-time-code"
    code.fill(phone.code_for("+12025550143"))
    page.get_by_role("button", name="Continue").click()
    # No horizontal scrolling at 390 CSS pixels (WCAG 1.4.10 reflow).
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    new_password(page)


def test_a_voice_customer_hears_the_code(site: Site, phone: Phone, browse: Any) -> None:
    page = browse()
    start(page, site, "val.voice")
    choose(page, "Phone call to •••• 0144")
    page.get_by_text("We are calling •••• 0144 to read you a code.").wait_for()
    page.get_by_label("Code").fill(phone.code_for("+12025550144"))
    page.get_by_role("button", name="Continue").click()
    new_password(page)


def test_an_email_customer_resets_in_spanish(site: Site, mailbox: tuple[Mailbox, int], browse: Any) -> None:
    page = browse(locale="es-ES", viewport=PHONE)  # Accept-Language: es-ES
    start(page, site, "emma.email", label="ID de inicio de sesión", go="Continuar")
    page.get_by_role("heading", name="Elija adónde enviar su código").wait_for()
    assert page.locator("html").get_attribute("lang") == "es"
    choose(page, "Correo electrónico a e•••@example.com", go="Enviar código")
    page.get_by_role("heading", name="Escriba su código").wait_for()
    assert_accessible(page)
    message = mailbox[0].wait_for("emma@example.com", "")
    code = re.search(r"\b(\d{6})\b", text_of(message))
    assert code is not None
    page.get_by_label("Código").fill(code.group(1))
    page.get_by_role("button", name="Continuar").click()
    page.get_by_role("heading", name="Elija una contraseña nueva").wait_for()
    page.get_by_label("Contraseña nueva").fill("pass")
    page.locator('.rules li[data-rule="length"].unmet').wait_for()
    assert "No cumple:" in page.locator('.rules li[data-rule="length"]').inner_text()
    assert_accessible(page)
    page.get_by_role("button", name="Mostrar contraseña").click()
    assert page.get_by_label("Contraseña nueva").get_attribute("type") == "text"
    page.get_by_label("Contraseña nueva").fill(NEW_PASSWORD)
    page.locator('.rules li[data-rule="length"].met').wait_for()
    page.get_by_role("button", name="Guardar la contraseña nueva").click()
    page.get_by_role("heading", name="Su contraseña ha cambiado").wait_for()
    assert_accessible(page)
    page.get_by_role("link", name="English").click()  # the switch, on every page
    page.get_by_role("heading", name="Your password is changed").wait_for()


def test_wrong_codes_until_the_cap_then_a_resend(site: Site, phone: Phone, browse: Any) -> None:
    page = browse()
    start(page, site, "wren.wrong")
    choose(page, "Text message to •••• 0145")
    right = phone.code_for("+12025550145")
    wrong = "000000" if right != "000000" else "111111"
    for _ in range(4):
        page.get_by_label("Code").fill(wrong)
        page.get_by_role("button", name="Continue").click()
        page.get_by_text("That code is not right. Check it and try again.").wait_for()
        assert page.get_by_label("Code").get_attribute("aria-invalid") == "true"
    assert_accessible(page)
    page.get_by_label("Code").fill(wrong)
    page.get_by_role("button", name="Continue").click()
    page.get_by_text("That code was tried too many times").wait_for()
    assert_accessible(page)
    page.get_by_role("button", name="Send a new code").click()
    page.get_by_text("We sent a new code. Only the newest code works.").wait_for()
    assert_accessible(page)
    page.get_by_label("Code").fill(phone.code_for("+12025550145", after=1))
    page.get_by_role("button", name="Continue").click()
    page.get_by_role("heading", name="Choose a new password").wait_for()


def test_a_resend_replaces_the_code(site: Site, phone: Phone, browse: Any) -> None:
    page = browse()
    start(page, site, "ray.resend")
    choose(page, "Text message to •••• 0146")
    first = phone.code_for("+12025550146")
    page.get_by_role("button", name="Send a new code").click()
    page.get_by_text("We sent a new code.").wait_for()
    second = phone.code_for("+12025550146", after=1)
    if first != second:
        page.get_by_label("Code").fill(first)
        page.get_by_role("button", name="Continue").click()
        page.get_by_text("replaced by a newer one").wait_for()
    page.get_by_label("Code").fill(second)
    page.get_by_role("button", name="Continue").click()
    new_password(page)


def test_an_expired_code(site: Site, phone: Phone, browse: Any) -> None:
    page = browse()
    start(page, site, "exa.expired")
    choose(page, "Text message to •••• 0147")
    code = phone.code_for("+12025550147")
    _expire_passcodes(site.url)  # ten minutes pass
    page.get_by_label("Code").fill(code)
    page.get_by_role("button", name="Continue").click()
    page.get_by_text("That code has expired").wait_for()
    assert_accessible(page)


def test_a_refused_password(site: Site, phone: Phone, browse: Any) -> None:
    page = browse()
    start(page, site, "sol.es")
    choose(page, "Text message to •••• 0149")
    page.get_by_label("Code").fill(phone.code_for("+12025550149"))
    page.get_by_role("button", name="Continue").click()
    page.get_by_role("heading", name="Choose a new password").wait_for()
    page.evaluate("document.querySelector('form[data-check]').removeAttribute('data-check')")  # as without script
    page.get_by_label("New password").fill("sol.es2024!")
    page.get_by_role("button", name="Set new password").click()
    page.get_by_text("That password cannot be used.").wait_for()
    assert "Not met:" in page.locator('.rules li[data-rule="login"]').inner_text()
    assert page.get_by_label("New password").get_attribute("aria-invalid") == "true"
    assert_accessible(page)


def test_an_unknown_login_looks_like_any_other(site: Site, browse: Any) -> None:
    page = browse()
    start(page, site, "nobody.here")
    page.get_by_role("heading", name="Choose where to send your code").wait_for()
    labels = page.locator(".choice label").all_inner_texts()
    assert labels and all(re.fullmatch(r"(Text message to|Phone call to) •••• \d{4}|Email to \w•••@[\w.]+", x)
                          for x in labels)
    assert_accessible(page)
    page.locator(".choice input").first.check()
    page.get_by_role("button", name="Send code").click()
    page.get_by_role("heading", name="Enter your code").wait_for()
    page.get_by_label("Code").fill("123456")
    page.get_by_role("button", name="Continue").click()
    page.get_by_text("That code is not right. Check it and try again.").wait_for()


def test_keyboard_only(site: Site, phone: Phone, browse: Any) -> None:
    """Tab, type, Space and Enter alone, from the skip link to the sign-in link."""
    page = browse()
    page.goto(f"{site.base}/reset/{INSTITUTION}")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to main content"
    page.keyboard.press("Enter")
    _tab_to(page, "#login")
    page.keyboard.type("kay.keys")
    page.keyboard.press("Enter")
    page.get_by_role("heading", name="Choose where to send your code").wait_for()
    _tab_to(page, "input[name=destination]")
    page.keyboard.press("Space")
    page.keyboard.press("Enter")
    page.get_by_role("heading", name="Enter your code").wait_for()
    _tab_to(page, "#code")
    page.keyboard.type(phone.code_for("+12025550148"))
    page.keyboard.press("Enter")
    page.get_by_role("heading", name="Choose a new password").wait_for()
    _tab_to(page, "#password")
    page.keyboard.type(NEW_PASSWORD)
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent.trim()") == "Show password"
    page.keyboard.press("Enter")
    assert page.locator("#password").get_attribute("type") == "text"
    _tab_to(page, "button[type=submit]")
    page.keyboard.press("Enter")
    page.get_by_role("heading", name="Your password is changed").wait_for()
    _tab_to(page, "a.button")
    assert page.evaluate("document.activeElement.getAttribute('href')").startswith("https://online.firstharbor")


def _tab_to(page: Any, selector: str, limit: int = 15) -> None:
    """Press Tab until ``selector`` has the focus, and check that the focus can be seen there."""
    for _ in range(limit):
        if page.evaluate(f"document.activeElement && document.activeElement.matches({json.dumps(selector)})"):
            outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
            assert outline != "none", f"no visible focus on {selector}"
            return
        page.keyboard.press("Tab")
    raise AssertionError(f"Tab never reached {selector}")


def _expire_passcodes(url: str) -> None:
    async def run() -> None:
        from sqlalchemy import text
        from sqlalchemy.ext.asyncio import create_async_engine

        from pwreset.db import async_url

        engine = create_async_engine(async_url(url))
        try:
            async with engine.begin() as conn:
                await conn.execute(text("UPDATE passcodes SET expires_at = created_at WHERE status = 'active'"))
        finally:
            await engine.dispose()

    # (Playwright's sync API keeps an event loop on this thread: the database is reached from another.)
    worker = threading.Thread(target=lambda: asyncio.run(run()))
    worker.start()
    worker.join(timeout=30)


def test_screens_for_people_to_look_at(site: Site, browse: Any) -> None:
    """Not an assertion of looks: the first screens at a phone's size in both languages, kept under
    test-results/reset-page/ for a person to look at (and checked by axe on the way)."""
    folder = REPO_ROOT / "test-results" / "reset-page"
    folder.mkdir(parents=True, exist_ok=True)
    for lang in ("en", "es"):
        page = browse(viewport=PHONE, locale="es-ES" if lang == "es" else "en-US")
        page.goto(f"{site.base}/reset/{INSTITUTION}?lang={lang}")
        assert_accessible(page)
        page.screenshot(path=str(folder / f"{lang}-1-start.png"), full_page=True)
        page.locator("#login").fill("nobody.at.all")
        page.locator("button[type=submit]").click()
        page.locator("input[name=destination]").first.wait_for()
        page.screenshot(path=str(folder / f"{lang}-2-choose.png"), full_page=True)
        page.locator("input[name=destination]").first.check()
        page.locator("button[type=submit]").click()
        page.locator("#code").wait_for()
        page.screenshot(path=str(folder / f"{lang}-3-code.png"), full_page=True)
        assert_accessible(page)
