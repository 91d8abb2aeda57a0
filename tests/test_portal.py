"""The developer portal's accounts, sessions, keys and pages, in process on SQLite and PostgreSQL (issue 13).

The browser tests (tests/browser/) walk the same paths in Chromium; these pin the rules a browser does not
show: CSRF, one answer whether or not an email is known, limits, session expiry, tenant isolation, and
what a hostile form body gets.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import yaml
from sqlalchemy import func, select

from pwreset.app import create_app
from pwreset.config import ConfigurationError, Settings
from pwreset.container import Container, build_container
from pwreset.delivery.models import OutboxMessage
from pwreset.institutions.service import create_institution
from pwreset.kit.clock import FrozenClock
from pwreset.oauth.models import ApiClient
from pwreset.portal.models import Developer, PortalSession
from pwreset.portal.service import FORGOT_ATTEMPTS
from tests.support import FakeDirectory

BASE = "https://developers.bank.example"
PASSWORD = "harbour lantern quietly 42 orbits"
CSRF = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')


@pytest.fixture
async def portal_services(settings: Settings, clock: FrozenClock) -> AsyncIterator[Container]:
    portal_settings = settings.model_copy(update={
        "portal_institution_id": "07675", "public_url": BASE, "portal_representative_email": "rep@bank.example",
    })
    services = build_container(portal_settings, clock=clock, directory=FakeDirectory())
    async with services.db.transaction() as session:
        await create_institution(session, institution_id="07675", name="First Harbor CU", clock=clock)
    yield services
    await services.close()


def client_for(services: Container) -> httpx.AsyncClient:
    app = create_app(services.settings, container=services, background=False)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE)


@pytest.fixture
async def browser(portal_services: Container) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(portal_services) as client:
        yield client


ONCE = re.compile(r'name="once" type="hidden" value="([^"]+)"')


async def csrf(client: httpx.AsyncClient, path: str) -> str:
    return (await form_fields(client, path))["csrf_token"]


async def form_fields(client: httpx.AsyncClient, path: str) -> dict[str, str]:
    """A page's CSRF token and, when it has a form that makes something, that form's single-use value."""
    page = await client.get(path)
    assert page.status_code == 200, page.text
    found = CSRF.search(page.text)
    assert found is not None
    once = ONCE.search(page.text)
    return {"csrf_token": found.group(1), **({"once": once.group(1)} if once else {})}


async def post(
    client: httpx.AsyncClient, path: str, data: dict[str, Any], *, page: str | None = None
) -> httpx.Response:
    return await client.post(path, data={**await form_fields(client, page or path), **data})


async def emails(services: Container, kind: str) -> list[dict[str, Any]]:
    async with services.db.reading() as session:
        rows = (await session.scalars(select(OutboxMessage).where(OutboxMessage.kind == kind)
                                      .order_by(OutboxMessage.created_at))).all()
    return [{"to": (o := services.outbox.open(row)).destination, **o.variables} for row in rows]


async def sign_up(client: httpx.AsyncClient, services: Container, email: str, name: str = "Ana Ortiz") -> str:
    """Sign up and verify; returns the verification link that was spent."""
    answer = await post(client, "/portal/sign-up", {"name": name, "email": email, "password": PASSWORD})
    assert answer.status_code == 200 and "Check your email" in answer.text
    link = [e for e in await emails(services, "portal_verify") if e["to"] == email][-1]["link"]
    assert link.startswith(f"{BASE}/portal/verify?token=pwr_pv_")
    token = link.split("token=")[1]
    confirmed = await post(client, "/portal/verify", {"token": token}, page=f"/portal/verify?token={token}")
    assert confirmed.status_code == 303 and confirmed.headers["location"] == "/portal/sign-in?notice=verified"
    return link


async def sign_in(client: httpx.AsyncClient, email: str, password: str = PASSWORD) -> httpx.Response:
    return await post(client, "/portal/sign-in", {"email": email, "password": password})


async def new_app(
    client: httpx.AsyncClient, name: str = "App", scopes: tuple[str, ...] = ("institution-users:read",)
) -> tuple[str, str, str]:
    created = await post(client, "/portal/apps/new", {"name": name, "scopes": list(scopes)})
    assert created.status_code == 200, created.text
    shared = re.search(r'id="shared-key">([^<]+)<', created.text)
    secret = re.search(r'id="secret-key">([^<]+)<', created.text)
    app_id = re.search(r'href="/portal/apps/(\w+)"', created.text)
    assert shared and secret and app_id
    return app_id.group(1), shared.group(1), secret.group(1)


async def join_as(
    admin: httpx.AsyncClient, member: httpx.AsyncClient, services: Container, *, role: str
) -> None:
    """``admin`` (signed up, signed in) invites vic@partner.example with ``role``; Vic signs up and joins."""
    await post(admin, "/portal/team/invite", {"email": "vic@partner.example", "role": role}, page="/portal/dashboard")
    token = (await emails(services, "portal_invite"))[-1]["link"].split("token=")[1]
    await sign_up(member, services, "vic@partner.example", name="Vic")
    await sign_in(member, "vic@partner.example")
    joined = await post(member, "/portal/invite", {"token": token}, page=f"/portal/invite?token={token}")
    assert joined.status_code == 303


async def test_sign_up_verify_sign_in_and_an_app_with_keys_that_work(browser, portal_services):
    await sign_up(browser, portal_services, "ana@partner.example")
    signed = await sign_in(browser, "ana@partner.example")
    assert signed.status_code == 303 and signed.headers["location"] == "/portal/dashboard"
    cookie = signed.headers.get_list("set-cookie")
    assert any(c.startswith("__Host-pwreset_portal=pwr_ps_") and "HttpOnly" in c and "Secure" in c
               and "SameSite=lax" in c for c in cookie), cookie
    dashboard = await browser.get("/portal/dashboard")
    institution = re.search(r"<code>(sbx-\w+)</code>", dashboard.text)
    assert institution is not None and "5a1d0e5d3c2b4a1f9e8d7c6b5a4f0006" in dashboard.text
    app_id, shared, secret = await new_app(browser)
    async with portal_services.db.reading() as session:
        client = (await session.scalars(select(ApiClient).where(ApiClient.shared_key == shared))).one()
    assert client.institution_id == institution.group(1) and secret not in client.secret_hash
    token = await browser.post("/oauth2/v1/token", auth=(shared, secret), data={"grant_type": "client_credentials"},
                               headers={"transactionId": str(uuid.uuid4()), "institutionId": institution.group(1)})
    assert token.status_code == 200, token.text
    page = await browser.get(f"/portal/apps/{app_id}")
    assert shared in page.text and secret not in page.text


async def test_a_known_email_gets_the_same_answer_and_an_email_instead_of_a_second_account(browser, portal_services):
    await sign_up(browser, portal_services, "ana@partner.example")
    again = await post(browser, "/portal/sign-up", {"name": "Someone", "email": "ANA@partner.example",
                                                    "password": PASSWORD})
    fresh = await post(browser, "/portal/sign-up", {"name": "Someone", "email": "new@partner.example",
                                                    "password": PASSWORD})
    assert again.status_code == fresh.status_code == 200
    assert again.text.replace("ANA@partner.example", "X") == fresh.text.replace("new@partner.example", "X")
    assert [e["to"] for e in await emails(portal_services, "portal_exists")] == ["ana@partner.example"]
    async with portal_services.db.reading() as session:
        assert await session.scalar(select(func.count()).select_from(Developer)) == 2


async def test_every_form_needs_its_csrf_token_bound_to_this_browser(browser, portal_services):
    missing = await browser.post("/portal/sign-up", data={"name": "A", "email": "a@b.example", "password": PASSWORD})
    assert missing.status_code == 400 and "This form has expired" in missing.text
    async with client_for(portal_services) as other:
        stolen = await csrf(other, "/portal/sign-up")  # valid, but for another browser's cookie
    await browser.get("/portal/sign-up")
    forged = await browser.post("/portal/sign-up", data={"csrf_token": stolen, "name": "A", "email": "a@b.example",
                                                         "password": PASSWORD})
    assert forged.status_code == 400 and "This form has expired" in forged.text
    assert await emails(portal_services, "portal_verify") == []


@pytest.mark.parametrize(("body", "content_type"), [
    (b"name=%FF%FE&email=x", "application/x-www-form-urlencoded"),
    (b"name=a%00b", "application/x-www-form-urlencoded"),
    (b"x=" + b"a" * 20_000, "application/x-www-form-urlencoded"),
    (b'{"name": "a"}', "application/json"),
    (b"--b\r\nContent-Disposition: form-data; name=a\r\n\r\nb\r\n--b--", "multipart/form-data; boundary=b"),
])
async def test_a_hostile_form_body_gets_a_page_not_a_500(browser, portal_services, body, content_type):
    await browser.get("/portal/sign-up")
    answer = await browser.post("/portal/sign-up", content=body, headers={"content-type": content_type})
    assert answer.status_code == 400 and "That form could not be read" in answer.text
    assert answer.headers["content-type"].startswith("text/html")


async def test_sign_in_refusals_are_one_answer_and_limited(browser, portal_services):
    await sign_up(browser, portal_services, "ana@partner.example")
    wrong = await sign_in(browser, "ana@partner.example", "not the password at all")
    unknown = await sign_in(browser, "nobody@partner.example", "not the password at all")
    assert wrong.status_code == unknown.status_code == 400
    assert "The email or password is not right." in wrong.text and "The email or password is not right." in unknown.text
    for _ in range(9):
        await sign_in(browser, "ana@partner.example", "not the password at all")
    limited = await sign_in(browser, "ana@partner.example", PASSWORD)  # the right one, after ten failures
    assert limited.status_code == 429 and "Try again in" in limited.text and int(limited.headers["retry-after"]) > 0


async def test_an_unverified_account_cannot_sign_in_and_a_link_works_once(browser, portal_services):
    for _ in range(2):  # signed up twice: two links, each for its own sign-up
        await post(browser, "/portal/sign-up", {"name": "Ana", "email": "ana@partner.example", "password": PASSWORD})
    refused = await sign_in(browser, "ana@partner.example")
    assert refused.status_code == 400 and "Confirm your email address first" in refused.text
    first, second = (e["link"].split("token=")[1] for e in await emails(portal_services, "portal_verify"))
    assert (await post(browser, "/portal/verify", {"token": second}, page="/portal/verify")).status_code == 303
    for spent in (second, first):  # using one retires the others
        again = await post(browser, "/portal/verify", {"token": spent}, page="/portal/verify")
        assert again.status_code == 400 and "expired or was already used" in again.text
    assert (await sign_in(browser, "ana@partner.example")).status_code == 303


async def test_sessions_end_when_idle_at_their_limit_and_on_a_password_change(browser, portal_services, clock):
    await sign_up(browser, portal_services, "ana@partner.example")
    await sign_in(browser, "ana@partner.example")
    assert (await browser.get("/portal/dashboard")).status_code == 200
    clock.advance(portal_services.settings.portal_session_idle + 1)
    assert (await browser.get("/portal/dashboard")).headers["location"].startswith("/portal/sign-in")
    await sign_in(browser, "ana@partner.example")
    for _ in range(portal_services.settings.portal_session_absolute // 1500 + 1):  # active all along
        clock.advance(1500)
        if (await browser.get("/portal/dashboard")).status_code != 200:
            break
    assert (await browser.get("/portal/dashboard")).status_code == 303

    await sign_in(browser, "ana@partner.example")
    async with client_for(portal_services) as other:  # a second browser changes the password
        await post(other, "/portal/forgot", {"email": "ana@partner.example"})
        code = (await emails(portal_services, "portal_forgot"))[-1]["code"]
        changed = await post(other, "/portal/forgot/reset", {"email": "ana@partner.example", "code": code,
                                                              "password": "another river 88 stones"})
        assert changed.status_code == 303
    assert (await browser.get("/portal/dashboard")).status_code == 303
    async with portal_services.db.reading() as session:
        assert await session.scalar(select(func.count()).select_from(PortalSession)) == 0


async def test_a_forgot_code_dies_after_five_wrong_tries_and_unknown_emails_get_the_same_page(browser, portal_services):
    await sign_up(browser, portal_services, "ana@partner.example")
    known = await post(browser, "/portal/forgot", {"email": "ana@partner.example"})
    unknown = await post(browser, "/portal/forgot", {"email": "nobody@partner.example"})
    assert known.status_code == unknown.status_code == 200
    assert "If an account uses that address" in known.text and "If an account uses that address" in unknown.text
    [sent] = await emails(portal_services, "portal_forgot")
    wrong = "00000000" if sent["code"] != "00000000" else "11111111"
    for _ in range(FORGOT_ATTEMPTS):
        refused = await post(browser, "/portal/forgot/reset", {"email": "ana@partner.example", "code": wrong,
                                                               "password": "another river 88 stones"})
        assert refused.status_code == 400
    late = await post(browser, "/portal/forgot/reset", {"email": "ana@partner.example", "code": sent["code"],
                                                        "password": "another river 88 stones"})
    assert late.status_code == 400 and "The code is not right" in late.text
    assert (await sign_in(browser, "ana@partner.example")).status_code == 303  # the password is unchanged


async def test_a_weak_password_is_refused_next_to_its_field(browser):
    answer = await post(browser, "/portal/sign-up", {"name": "Ana", "email": "ana@partner.example",
                                                     "password": "Password123!"})
    assert answer.status_code == 400
    assert re.search(r'<p class="error" id="password-error">.*The password', answer.text)
    assert 'aria-describedby="password-hint password-error"' in answer.text
    assert "Password123!" not in answer.text  # never sent back
    own = await post(browser, "/portal/sign-up", {"name": "Ana", "email": "ana@partner.example",
                                                  "password": "ana long enough words"})
    assert "must not contain your email address" in own.text and "login id" not in own.text


async def test_another_organisation_sees_nothing_of_mine(portal_services):
    async with client_for(portal_services) as ana, client_for(portal_services) as bob:
        await sign_up(ana, portal_services, "ana@partner.example")
        await sign_in(ana, "ana@partner.example")
        app_id, shared, _ = await new_app(ana)
        await sign_up(bob, portal_services, "bob@other.example", name="Bob")
        await sign_in(bob, "bob@other.example")
        assert (await bob.get(f"/portal/apps/{app_id}")).status_code == 404
        client_id = re.search(r"/keys/(\w+)/revoke", (await ana.get(f"/portal/apps/{app_id}")).text)
        assert client_id is not None
        token = await csrf(bob, "/portal/dashboard")
        for action in ("rotate", "revoke"):
            hit = await bob.post(f"/portal/apps/{app_id}/keys/{client_id.group(1)}/{action}",
                                 data={"csrf_token": token, "confirmed": "y"})
            assert hit.status_code == 404
        assert (await bob.post(f"/portal/apps/{app_id}/keys", data={"csrf_token": token})).status_code == 404
        assert shared not in (await bob.get("/portal/dashboard")).text
    async with portal_services.db.reading() as session:
        assert (await session.scalars(select(ApiClient).where(ApiClient.shared_key == shared))).one().revoked_at is None


async def test_rotation_keeps_the_old_secret_for_a_day_and_revoking_the_last_pair_asks_first(browser, portal_services,
                                                                                          clock):
    await sign_up(browser, portal_services, "ana@partner.example")
    await sign_in(browser, "ana@partner.example")
    app_id, shared, old_secret = await new_app(browser)
    institution = re.search(r"<code>(sbx-\w+)</code>", (await browser.get(f"/portal/apps/{app_id}")).text)
    assert institution is not None
    page = await browser.get(f"/portal/apps/{app_id}")
    client_id = re.search(r"/keys/(\w+)/rotate", page.text)
    assert client_id is not None
    rotated = await post(browser, f"/portal/apps/{app_id}/keys/{client_id.group(1)}/rotate", {},
                         page=f"/portal/apps/{app_id}")
    new_secret = re.search(r'id="secret-key">([^<]+)<', rotated.text)
    assert rotated.status_code == 200 and new_secret is not None and "keeps working for 24 hours" in rotated.text

    async def token(secret: str) -> int:
        answer = await browser.post(
            "/oauth2/v1/token", auth=(shared, secret), data={"grant_type": "client_credentials"},
            headers={"transactionId": str(uuid.uuid4()), "institutionId": institution.group(1)},
        )
        return answer.status_code

    assert await token(old_secret) == 200 and await token(new_secret.group(1)) == 200
    clock.advance(24 * 3600 + 1)
    await sign_in(browser, "ana@partner.example")
    assert await token(old_secret) == 401 and await token(new_secret.group(1)) == 200
    ask = await post(browser, f"/portal/apps/{app_id}/keys/{client_id.group(1)}/revoke", {},
                     page=f"/portal/apps/{app_id}")
    assert ask.status_code == 200 and "Revoke the last key pair?" in ask.text
    assert await token(new_secret.group(1)) == 200
    done = await post(browser, f"/portal/apps/{app_id}/keys/{client_id.group(1)}/revoke", {"confirmed": "y"},
                      page=f"/portal/apps/{app_id}")
    assert done.status_code == 303 and await token(new_secret.group(1)) == 401


async def test_the_sandbox_inbox_shows_only_this_organisations_messages_which_reach_no_provider(
    browser, portal_services
):
    await sign_up(browser, portal_services, "ana@partner.example")
    await sign_in(browser, "ana@partner.example")
    _, shared, secret = await new_app(browser, scopes=("institution-users:read", "institution-users:write"))
    dashboard = (await browser.get("/portal/dashboard")).text
    institution = re.search(r"<code>(sbx-\w+)</code>", dashboard)
    assert institution is not None
    headers = {"transactionId": str(uuid.uuid4()), "institutionId": institution.group(1)}
    token = (await browser.post("/oauth2/v1/token", auth=(shared, secret), headers=headers,
                                data={"grant_type": "client_credentials"})).json()["access_token"]
    sent = await browser.put("/v1/customers/5a1d0e5d3c2b4a1f9e8d7c6b5a4f0001:reset-password",
                             headers={"Authorization": f"Bearer {token}", "correlationId": str(uuid.uuid4())},
                             json={"contactMethodId": "100000001"})
    assert sent.status_code == 204, sent.text
    assert await portal_services.worker.run_once() >= 1
    assert not [m for m in portal_services.sink.sent if m.channel == "SMS"]  # SMS's provider (console) got nothing
    inbox = await browser.get("/portal/inbox")
    assert re.search(r"reset code is \d{6}", inbox.text) and "+12025550143" in inbox.text
    async with client_for(portal_services) as bob:
        await sign_up(bob, portal_services, "bob@other.example", name="Bob")
        await sign_in(bob, "bob@other.example")
        assert "reset code is" not in (await bob.get("/portal/inbox")).text


async def test_each_api_document_holds_its_own_operations_and_the_collection_is_postman_v21(browser):
    apis = await browser.get("/portal/apis")
    assert apis.status_code == 200
    whole = (await browser.get("/openapi.json")).json()
    seen = set()
    for slug in ("authentication", "reset-password", "institution-users", "accounts", "extensions"):
        as_json = (await browser.get(f"/portal/apis/{slug}/openapi.json")).json()
        as_yaml = yaml.safe_load((await browser.get(f"/portal/apis/{slug}/openapi.yaml")).text)
        assert as_json == as_yaml and as_json["paths"]
        for path, item in as_json["paths"].items():
            assert set(item) <= set(whole["paths"][path])
            seen.update((path, m) for m in item)
        refs = set(re.findall(r'"#/components/schemas/(\w+)"', str(as_json).replace("'", '"')))
        assert refs <= set(as_json["components"]["schemas"])
        page = await browser.get(f"/portal/apis/{slug}")
        assert page.status_code == 200 and "Download Swagger spec" in page.text
    assert seen == {(p, m) for p, item in whole["paths"].items() for m in item}  # every operation has a page
    downloaded = (await browser.get("/portal/apis/all/openapi.json")).json()
    assert downloaded.pop("servers") == [{"url": BASE}] and downloaded == whole  # with the base URL to call
    assert (await browser.get("/portal/apis/nope")).status_code == 404
    collection = (await browser.get("/portal/postman/collection.json")).json()
    assert collection["info"]["schema"].endswith("/v2.1.0/collection.json")
    assert collection["item"][0]["name"] == "Get a token" and collection["item"][-1]["name"] == "Revoke the token"
    names = [request["name"] for folder in collection["item"] for request in folder["item"]]
    assert "Send a one-time passcode to a contact method (wire contract 6.2)" in names


def test_the_portal_needs_an_https_public_url_outside_the_sandbox():
    base = {"secret_key": "x", "portal_institution_id": "07675"}
    with pytest.raises(ConfigurationError, match="PWRESET_PUBLIC_URL"):
        Settings(**base, _env_file=None).check_portal()  # type: ignore[call-arg]
    with pytest.raises(ConfigurationError, match="https"):
        Settings(**base, public_url="http://developers.bank.example", _env_file=None).check_portal()  # type: ignore[call-arg]
    Settings(**base, public_url="https://developers.bank.example", _env_file=None).check_portal()  # type: ignore[call-arg]
    Settings(**base, public_url="http://localhost:8000", _env_file=None).check_portal()  # type: ignore[call-arg]
    Settings.for_sandbox(**base, public_url="http://10.0.0.5:8000", _env_file=None).check_portal()


async def test_the_test_drive_calls_the_sandbox_with_a_token_the_browser_never_sees(browser, portal_services):
    await sign_up(browser, portal_services, "ana@partner.example")
    await sign_in(browser, "ana@partner.example")
    page = await browser.get("/portal/apis/reset-password")
    assert "Try it in your sandbox" in page.text
    token = CSRF.search(page.text)
    assert token is not None
    tried = await browser.post("/portal/apis/reset-password/try/reset-password-put", data={
        "csrf_token": token.group(1), "path_customerId": "5a1d0e5d3c2b4a1f9e8d7c6b5a4f0001",
        "body": '{"contactMethodId": "100000001"}',
    })
    assert tried.status_code == 200 and "Response: 204" in tried.text
    assert "pwr_at_" not in tried.text and "sandbox inbox" in tried.text
    await portal_services.worker.run_once()
    assert re.search(r"reset code is \d{6}", (await browser.get("/portal/inbox")).text)
    refused = await browser.post("/portal/apis/reset-password/try/reset-password-put", data={
        "csrf_token": token.group(1), "path_customerId": "5a1d0e5d3c2b4a1f9e8d7c6b5a4f0004",
        "body": '{"contactMethodId": "100000004"}',
    })
    assert refused.status_code == 200 and "Response: 400" in refused.text and "UXU_" in refused.text
    bad = await browser.post("/portal/apis/reset-password/try/reset-password-put", data={
        "csrf_token": token.group(1), "path_customerId": "x", "body": "{not json"})
    assert bad.status_code == 400 and "The body is not JSON" in bad.text
    other = await browser.post("/portal/apis/authentication/try/token-post", data={"csrf_token": token.group(1)})
    assert other.status_code == 404  # the token service's operations take keys, not the test drive's token


def totp_now(secret: str, clock: FrozenClock, offset: int = 0) -> str:
    import pyotp

    return str(pyotp.TOTP(secret).at(int(clock.timestamp()) + offset))


async def turn_on_two_factor(
    client: httpx.AsyncClient, clock: FrozenClock, password: str = PASSWORD
) -> tuple[str, list[str]]:
    page = await post(client, "/portal/account/two-factor", {"password": password})
    secret = re.search(r'id="totp-secret">([A-Z2-7]+)<', page.text)
    assert secret is not None and "<svg" in page.text, page.text
    token = CSRF.search(page.text)
    assert token is not None
    wrong = await client.post("/portal/account/two-factor", data={"csrf_token": token.group(1), "code": "000000"})
    assert wrong.status_code == 400 and "That code is not right" in wrong.text
    done = await client.post("/portal/account/two-factor",
                             data={"csrf_token": token.group(1), "code": totp_now(secret.group(1), clock)})
    assert done.status_code == 200, done.text
    codes = re.findall(r"<li><code>([a-z2-7]{4}-[a-z2-7]{4})</code></li>", done.text)
    assert len(codes) == 10
    return secret.group(1), codes


async def test_two_factor_sign_in_refuses_a_replayed_code_and_takes_a_recovery_code_once(browser, portal_services,
                                                                                         clock):
    await sign_up(browser, portal_services, "ana@partner.example")
    await sign_in(browser, "ana@partner.example")
    secret, codes = await turn_on_two_factor(browser, clock)
    async with portal_services.db.reading() as session:
        developer = (await session.scalars(select(Developer))).one()
    assert developer.totp_sealed is not None and secret.encode() not in developer.totp_sealed
    async with client_for(portal_services) as other:
        first = await sign_in(other, "ana@partner.example")
        assert first.status_code == 200 and "Enter your code" in first.text  # no session yet
        assert "set-cookie" not in first.headers or "pwreset_portal" not in first.headers["set-cookie"]
        challenge = re.search(r'name="challenge" type="hidden" value="([^"]+)"', first.text)
        token = CSRF.search(first.text)
        assert challenge and token
        replay = await other.post("/portal/sign-in/code", data={
            "csrf_token": token.group(1), "challenge": challenge.group(1), "code": totp_now(secret, clock)})
        assert replay.status_code == 400  # the code that turned two-factor on was already used
        clock.advance(30)
        ok = await other.post("/portal/sign-in/code", data={
            "csrf_token": token.group(1), "challenge": challenge.group(1), "code": totp_now(secret, clock)})
        assert ok.status_code == 303 and ok.headers["location"] == "/portal/dashboard"
        again = await other.post("/portal/sign-in/code", data={  # (signing in replaced the CSRF binding)
            "csrf_token": await csrf(other, "/portal/sign-in"), "challenge": challenge.group(1),
            "code": totp_now(secret, clock, 30)})
        assert again.status_code == 400 and "This sign-in has expired" in again.text
    async with client_for(portal_services) as third:
        for attempt in range(2):
            page = await sign_in(third, "ana@partner.example")
            challenge = re.search(r'name="challenge" type="hidden" value="([^"]+)"', page.text)
            token = CSRF.search(page.text)
            assert challenge and token
            used = await third.post("/portal/sign-in/code", data={
                "csrf_token": token.group(1), "challenge": challenge.group(1), "code": codes[0].upper()})
            assert used.status_code == (303 if attempt == 0 else 400)


async def test_production_access_needs_two_factor_and_staff_approval_then_production_keys_work(
    browser, portal_services, clock
):
    from pwreset.cli import main as cli

    await sign_up(browser, portal_services, "ana@partner.example")
    await sign_in(browser, "ana@partner.example")
    app_id, _, _ = await new_app(browser, scopes=("institution-users:read", "institution-users:write"))
    page = await browser.get(f"/portal/apps/{app_id}")
    assert "Production access needs two-factor authentication" in page.text
    token = CSRF.search(page.text)
    assert token is not None
    early = await browser.post(f"/portal/apps/{app_id}/production",
                               data={"csrf_token": token.group(1), "purpose": "Password reset in our mobile app"})
    assert early.status_code == 403
    await turn_on_two_factor(browser, clock)
    asked = await post(browser, f"/portal/apps/{app_id}/production", {"purpose": "Password reset in our mobile app"},
                       page=f"/portal/apps/{app_id}")
    assert asked.status_code == 303
    told = [e for e in await emails(portal_services, "portal_access_requested")]
    assert [e["to"] for e in told] == ["rep@bank.example"] and told[0]["email"] == "ana@partner.example"
    twice = await post(browser, f"/portal/apps/{app_id}/production", {"purpose": "Password reset in our mobile app"},
                       page=f"/portal/apps/{app_id}")
    assert twice.status_code == 400 and "already has a request waiting" in twice.text

    # Staff: a developer made staff by the command line, with two-factor on.
    async with client_for(portal_services) as staff:
        await sign_up(staff, portal_services, "ops@bank.example", name="Olu Ops")
        await sign_in(staff, "ops@bank.example")
        assert (await staff.get("/portal/staff")).status_code == 403
        async with portal_services.db.transaction() as session:
            await portal_services.portal.set_staff(session, email="ops@bank.example", staff=True)
        assert (await staff.get("/portal/staff")).status_code == 403  # staff pages need two-factor too
        await turn_on_two_factor(staff, clock)
        desk = await staff.get("/portal/staff")
        assert desk.status_code == 200 and "Password reset in our mobile app" in desk.text
        request_id = re.search(r"/portal/staff/requests/(\w+)/approve", desk.text)
        assert request_id is not None
        assert "institution-users:write" in desk.text  # the scopes asked for are shown
        nothing = await post(staff, f"/portal/staff/requests/{request_id.group(1)}/approve", {"note": ""},
                             page="/portal/staff")
        assert nothing.status_code == 400  # approving grants at least one scope
        more = await post(staff, f"/portal/staff/requests/{request_id.group(1)}/approve",
                          {"scopes": ["accounts:read_unmasked"]}, page="/portal/staff")
        assert more.status_code == 400  # and none that was not asked for
        approved = await post(staff, f"/portal/staff/requests/{request_id.group(1)}/approve",
                              {"note": "", "scopes": ["institution-users:read"]}, page="/portal/staff")
        assert approved.status_code == 303
        whatever = await post(staff, f"/portal/staff/requests/{request_id.group(1)}/whatever", {},
                              page="/portal/dashboard")
        assert whatever.status_code == 404
    assert (await browser.get("/portal/staff")).status_code == 403  # a developer is not staff
    [decided] = await emails(portal_services, "portal_access_decided")
    assert decided["to"] == "ana@partner.example" and decided["decision"] == "approved"
    dashboard = await browser.get("/portal/dashboard")
    production = re.search(r'href="/portal/apps/(\w+)">App \(production\)</a>', dashboard.text)
    assert production is not None
    created = await post(browser, f"/portal/apps/{production.group(1)}/keys", {},
                         page=f"/portal/apps/{production.group(1)}")
    shared = re.search(r'id="shared-key">([^<]+)<', created.text)
    secret = re.search(r'id="secret-key">([^<]+)<', created.text)
    assert shared and secret
    assert "institutionId: 07675" in created.text  # the pair's own institution in its curl line
    environment = (await browser.get(f"/portal/apps/{production.group(1)}/postman-environment.json")).json()
    values = {v["key"]: v["value"] for v in environment["values"]}
    assert values["institutionId"] == "07675" and values["sharedKey"] == shared.group(1)
    assert "customerId" not in values  # no demo customers in production
    issued = await browser.post("/oauth2/v1/token", auth=(shared.group(1), secret.group(1)),
                                data={"grant_type": "client_credentials"},
                                headers={"transactionId": str(uuid.uuid4()), "institutionId": "07675"})
    assert issued.status_code == 200, issued.text  # bound to the real institution
    assert issued.json()["scope"] == "institution-users:read"  # what the staff granted, not all it asked
    again = await post(browser, f"/portal/apps/{app_id}/production", {"purpose": "Password reset in our mobile app"},
                       page=f"/portal/apps/{app_id}")
    assert again.status_code == 400 and "already has its production twin" in again.text
    assert cli is not None


async def test_an_invited_viewer_joins_and_cannot_change_apps(portal_services):
    async with client_for(portal_services) as ana, client_for(portal_services) as vic:
        await sign_up(ana, portal_services, "ana@partner.example")
        await sign_in(ana, "ana@partner.example")
        app_id, _, _ = await new_app(ana)
        invited = await post(ana, "/portal/team/invite", {"email": "vic@partner.example", "role": "viewer"},
                             page="/portal/dashboard")
        assert invited.status_code == 303
        [invite] = await emails(portal_services, "portal_invite")
        assert invite["to"] == "vic@partner.example" and invite["role"] == "Viewer"
        token = invite["link"].split("token=")[1]
        await sign_up(vic, portal_services, "vic@partner.example", name="Vic")
        await sign_in(vic, "vic@partner.example")
        joined = await post(vic, "/portal/invite", {"token": token}, page=f"/portal/invite?token={token}")
        assert joined.status_code == 303
        dashboard = await vic.get("/portal/dashboard")
        assert "Ana Ortiz&#39;s organisation" in dashboard.text and "Viewer" in dashboard.text
        assert (await vic.get(f"/portal/apps/{app_id}")).status_code == 200
        refused = await post(vic, "/portal/apps/new", {"name": "Mine", "scopes": ["institution-users:read"]},
                             page="/portal/dashboard")
        assert refused.status_code == 403
        added = await post(vic, f"/portal/apps/{app_id}/keys", {}, page="/portal/dashboard")
        assert added.status_code == 403
        again = await vic.get(f"/portal/invite?token={token}")
        assert again.status_code == 400  # used


async def test_an_invitation_expires_after_72_hours_and_is_only_for_its_address(portal_services, clock):
    async with client_for(portal_services) as ana, client_for(portal_services) as eve:
        await sign_up(ana, portal_services, "ana@partner.example")
        await sign_in(ana, "ana@partner.example")
        await post(ana, "/portal/team/invite", {"email": "vic@partner.example", "role": "admin"},
                   page="/portal/dashboard")
        token = (await emails(portal_services, "portal_invite"))[0]["link"].split("token=")[1]
        await sign_up(eve, portal_services, "eve@elsewhere.example", name="Eve")
        await sign_in(eve, "eve@elsewhere.example")
        stolen = await post(eve, "/portal/invite", {"token": token}, page=f"/portal/invite?token={token}")
        assert stolen.status_code == 403
        clock.advance(72 * 3600 + 1)
        assert (await eve.get(f"/portal/invite?token={token}")).status_code == 400


# Found by the security review of the portal (each fails on the code before its fix).


async def test_a_stranger_who_signs_up_first_with_my_email_does_not_get_my_account(portal_services):
    async with client_for(portal_services) as mallory, client_for(portal_services) as victim:
        await post(mallory, "/portal/sign-up", {"name": "Mallory", "email": "vic@partner.example",
                                                "password": "mallory's own 77 passphrase"})
        await sign_up(victim, portal_services, "vic@partner.example", name="Vic")  # confirms the newest link
        assert (await sign_in(mallory, "vic@partner.example", "mallory's own 77 passphrase")).status_code == 400
        assert (await sign_in(victim, "vic@partner.example")).status_code == 303
        assert "Signed in as Vic" in (await victim.get("/portal/dashboard")).text


async def test_an_unverified_sign_in_sends_no_mail(browser, portal_services):
    await post(browser, "/portal/sign-up", {"name": "Ana", "email": "ana@partner.example", "password": PASSWORD})
    for _ in range(5):
        refused = await sign_in(browser, "ana@partner.example")
        assert refused.status_code == 400 and "Confirm your email address first" in refused.text
    assert len(await emails(portal_services, "portal_verify")) == 1


async def test_parallel_wrong_passwords_cannot_pass_the_limit_together(portal_services):
    import asyncio

    async with client_for(portal_services) as client:
        await sign_up(client, portal_services, "ana@partner.example")
        token = await csrf(client, "/portal/sign-in")
        answers = await asyncio.gather(*(
            client.post("/portal/sign-in", data={"csrf_token": token, "email": "ana@partner.example",
                                                 "password": f"wrong guess number {n}"})
            for n in range(30)
        ))
    codes = [a.status_code for a in answers]
    assert codes.count(400) <= 10 and codes.count(429) >= 20, codes


async def test_forgot_and_sign_up_answer_alike_for_known_and_unknown_emails_past_the_email_limit(
    browser, portal_services
):
    await sign_up(browser, portal_services, "ana@partner.example")
    for email in ("ana@partner.example", "nobody@partner.example"):
        answers = [(await post(browser, "/portal/forgot", {"email": email})).status_code for _ in range(5)]
        assert answers == [200] * 5, (email, answers)
    again = await post(browser, "/portal/sign-up", {"name": "A", "email": "ana@partner.example", "password": PASSWORD})
    fresh = await post(browser, "/portal/sign-up", {"name": "A", "email": "new@partner.example", "password": PASSWORD})
    assert again.status_code == fresh.status_code == 200
    # The email limit (three an hour per address; the verification link was the first) still holds, silently.
    assert len(await emails(portal_services, "portal_forgot")) == 2


@pytest.mark.parametrize("path", ["/portal/apps/%00", "/portal/apps/a%00b", "/portal/apps/" + "f" * 40])
async def test_ids_that_cannot_exist_are_404_not_500(browser, portal_services, path):
    await sign_up(browser, portal_services, "ana@partner.example")
    await sign_in(browser, "ana@partner.example")
    assert (await browser.get(path)).status_code == 404
    token = await csrf(browser, "/portal/dashboard")
    assert (await browser.post(path + "/keys", data={"csrf_token": token})).status_code == 404
    assert (await browser.post(path + "/keys/a%00b/rotate", data={"csrf_token": token})).status_code == 404


async def test_concurrent_sign_ups_and_watches_of_one_email_get_pages_not_500s(portal_services):
    import asyncio

    async with client_for(portal_services) as client:
        token = await csrf(client, "/portal/sign-up")
        answers = await asyncio.gather(*(
            client.post("/portal/sign-up", data={"csrf_token": token, "name": "Ana", "email": "ana@partner.example",
                                                 "password": PASSWORD}) for _ in range(4)
        ))
        assert all(a.status_code in (200, 429) for a in answers), [a.status_code for a in answers]
        await sign_up(client, portal_services, "bob@partner.example", name="Bob")
        await sign_in(client, "bob@partner.example")
        token = await csrf(client, "/portal/apis/accounts")
        watches = await asyncio.gather(*(
            client.post("/portal/apis/accounts/watch", data={"csrf_token": token}) for _ in range(4)
        ))
        assert [w.status_code for w in watches] == [303] * 4
    assert len(await emails(portal_services, "portal_interest")) == 1


async def test_sign_out_with_a_bad_token_changes_nothing_and_a_good_one_ends_the_session(browser, portal_services):
    await sign_up(browser, portal_services, "ana@partner.example")
    await sign_in(browser, "ana@partner.example")
    bad = await browser.post("/portal/sign-out", data={"csrf_token": "1.bad"})
    assert bad.status_code == 400
    assert (await browser.get("/portal/dashboard")).status_code == 200
    good = await post(browser, "/portal/sign-out", {}, page="/portal/dashboard")
    assert good.status_code == 303
    async with portal_services.db.reading() as session:
        assert await session.scalar(select(func.count()).select_from(PortalSession)) == 0


def test_ipv6_addresses_are_limited_by_their_64_bit_network():
    from pwreset.kit.webforms import address_key

    assert address_key("2001:db8:1:2:aaaa::1") == address_key("2001:db8:1:2:ffff::9")
    assert address_key("2001:db8:1:3::1") != address_key("2001:db8:1:2::1")
    assert address_key("203.0.113.7") == "203.0.113.7"


# Found by the second security review (two-factor, production access, the test drive, invitations).


async def test_a_password_only_session_cannot_set_up_two_factor_without_the_password(browser, portal_services,
                                                                                       clock):
    await sign_up(browser, portal_services, "ana@partner.example")
    await sign_in(browser, "ana@partner.example")
    page = await browser.get("/portal/account/two-factor")
    assert "totp-secret" not in page.text and "Enter your password to begin" in page.text
    wrong = await post(browser, "/portal/account/two-factor", {"password": "not my password at all"})
    assert wrong.status_code == 400 and "totp-secret" not in wrong.text
    async with client_for(portal_services) as other:
        await sign_in(other, "ana@partner.example")
        started = await post(browser, "/portal/account/two-factor", {"password": PASSWORD})
        assert "totp-secret" in started.text
        assert "totp-secret" not in (await other.get("/portal/account/two-factor")).text  # this session's only
        clock.advance(11 * 60)
        late = await browser.get("/portal/account/two-factor")
        assert "totp-secret" not in late.text  # the set-up lasted ten minutes
        await turn_on_two_factor(browser, clock)
        assert (await other.get("/portal/dashboard")).status_code == 303  # other sessions ended


async def test_a_stolen_session_of_a_two_factor_account_has_no_second_factor_powers(browser, portal_services, clock):
    await sign_up(browser, portal_services, "ana@partner.example")
    await sign_in(browser, "ana@partner.example")
    await turn_on_two_factor(browser, clock)
    async with portal_services.db.transaction() as session:  # a session opened with the password alone
        from pwreset.portal.service import Signed as _Signed  # noqa: F401

        developer = (await session.scalars(select(Developer))).one()
        token, _ = await portal_services.portal._open_session(session, developer)
    async with client_for(portal_services) as thief:
        thief.cookies.set("__Host-pwreset_portal", token, domain="developers.bank.example")
        app_id, _, _ = await new_app(thief)
        asked = await post(thief, f"/portal/apps/{app_id}/production", {"purpose": "Password reset in our app"},
                           page=f"/portal/apps/{app_id}")
        assert asked.status_code == 403


async def test_one_code_cannot_open_two_sessions_at_once(portal_services, clock):
    import asyncio

    async with client_for(portal_services) as ana:
        await sign_up(ana, portal_services, "ana@partner.example")
        await sign_in(ana, "ana@partner.example")
        secret, _ = await turn_on_two_factor(ana, clock)
    clock.advance(30)
    challenges = []
    clients = [client_for(portal_services) for _ in range(5)]
    try:
        for client in clients:
            page = await sign_in(client, "ana@partner.example")
            found = re.search(r'name="challenge" type="hidden" value="([^"]+)"', page.text)
            token = CSRF.search(page.text)
            assert found and token
            challenges.append((client, found.group(1), token.group(1)))
        code = totp_now(secret, clock)
        answers = await asyncio.gather(*(
            client.post("/portal/sign-in/code", data={"csrf_token": token, "challenge": challenge, "code": code})
            for client, challenge, token in challenges
        ))
    finally:
        for client in clients:
            await client.aclose()
    assert [a.status_code for a in answers].count(303) == 1


async def test_wrong_codes_in_a_row_tell_the_owner_and_lock_two_factor_until_a_new_password(browser, portal_services,
                                                                                            clock):
    await sign_up(browser, portal_services, "ana@partner.example")
    await sign_in(browser, "ana@partner.example")
    secret, _ = await turn_on_two_factor(browser, clock)

    async def attempt(client: httpx.AsyncClient, code: str) -> httpx.Response:
        page = await sign_in(client, "ana@partner.example")
        found = re.search(r'name="challenge" type="hidden" value="([^"]+)"', page.text)
        token = CSRF.search(page.text)
        assert found and token, page.text
        return await client.post("/portal/sign-in/code",
                                 data={"csrf_token": token.group(1), "challenge": found.group(1), "code": code})

    async with portal_services.db.transaction() as session:
        (await session.scalars(select(Developer))).one().mfa_failures = 9
    async with client_for(portal_services) as guesser:
        assert (await attempt(guesser, "000001")).status_code == 400
        [told] = await emails(portal_services, "portal_mfa_failures")
        assert told["to"] == "ana@partner.example" and told["count"] == 10
        async with portal_services.db.transaction() as session:
            (await session.scalars(select(Developer))).one().mfa_failures = 100
        clock.advance(30)
        locked = await attempt(guesser, totp_now(secret, clock))  # even the right code
        assert locked.status_code == 403 and "locked" in locked.text
    await post(browser, "/portal/forgot", {"email": "ana@partner.example"})
    code = (await emails(portal_services, "portal_forgot"))[-1]["code"]
    await post(browser, "/portal/forgot/reset", {"email": "ana@partner.example", "code": code,
                                                 "password": "another river 88 stones"})
    clock.advance(30)
    async with client_for(portal_services) as owner:
        page = await sign_in(owner, "ana@partner.example", "another river 88 stones")
        found = re.search(r'name="challenge" type="hidden" value="([^"]+)"', page.text)
        token = CSRF.search(page.text)
        assert found and token
        unlocked = await owner.post("/portal/sign-in/code", data={
            "csrf_token": token.group(1), "challenge": found.group(1), "code": totp_now(secret, clock)})
        assert unlocked.status_code == 303


async def test_a_password_change_retires_sign_in_challenges(browser, portal_services, clock):
    await sign_up(browser, portal_services, "ana@partner.example")
    await sign_in(browser, "ana@partner.example")
    _, codes = await turn_on_two_factor(browser, clock)
    async with client_for(portal_services) as thief:
        page = await sign_in(thief, "ana@partner.example")
        challenge = re.search(r'name="challenge" type="hidden" value="([^"]+)"', page.text)
        token = CSRF.search(page.text)
        assert challenge and token
        await post(browser, "/portal/forgot", {"email": "ana@partner.example"})
        code = (await emails(portal_services, "portal_forgot"))[-1]["code"]
        await post(browser, "/portal/forgot/reset", {"email": "ana@partner.example", "code": code,
                                                     "password": "another river 88 stones"})
        late = await thief.post("/portal/sign-in/code", data={
            "csrf_token": token.group(1), "challenge": challenge.group(1), "code": codes[0]})
        assert late.status_code == 400


async def test_a_viewer_can_try_only_reading_calls_and_the_test_drive_is_limited(portal_services):
    async with client_for(portal_services) as ana, client_for(portal_services) as vic:
        await sign_up(ana, portal_services, "ana@partner.example")
        await sign_in(ana, "ana@partner.example")
        await join_as(ana, vic, portal_services, role="viewer")
        csrf_token = await csrf(vic, "/portal/apis/reset-password")
        write = await vic.post("/portal/apis/reset-password/try/reset-password-put", data={
            "csrf_token": csrf_token, "path_customerId": "5a1d0e5d3c2b4a1f9e8d7c6b5a4f0001",
            "body": '{"contactMethodId": "100000001"}'})
        assert write.status_code == 403
        answers = [
            (await vic.post("/portal/apis/reset-password/try/contact-methods-get", data={
                "csrf_token": csrf_token, "path_customerId": "5a1d0e5d3c2b4a1f9e8d7c6b5a4f0001"})).status_code
            for _ in range(61)
        ]
        assert answers[:60] == [200] * 60 and answers[60] == 429
    async with portal_services.db.reading() as session:
        from pwreset.oauth.models import Token

        assert await session.scalar(select(func.count()).select_from(Token)) <= 3  # one token, reused


async def test_deeply_nested_json_in_the_test_drive_is_a_400(browser, portal_services):
    await sign_up(browser, portal_services, "ana@partner.example")
    await sign_in(browser, "ana@partner.example")
    token = await csrf(browser, "/portal/apis/reset-password")
    deep = await browser.post("/portal/apis/reset-password/try/reset-password-put", data={
        "csrf_token": token, "path_customerId": "x", "body": "[" * 1200 + "]" * 1200})
    assert deep.status_code == 400 and "nests more than" in deep.text


async def test_invitations_have_their_own_allowance_and_say_nothing_of_it(portal_services):
    async with client_for(portal_services) as ana, client_for(portal_services) as vic:
        await sign_up(ana, portal_services, "ana@partner.example")
        await sign_up(vic, portal_services, "vic@partner.example", name="Vic")
        await sign_in(ana, "ana@partner.example")
        answers = [(await post(ana, "/portal/team/invite", {"email": "vic@partner.example", "role": "viewer"},
                               page="/portal/dashboard")).status_code for _ in range(4)]
        assert answers == [303] * 4
        assert len(await emails(portal_services, "portal_invite")) == 3
        await post(vic, "/portal/forgot", {"email": "vic@partner.example"})
        assert len(await emails(portal_services, "portal_forgot")) == 1  # vic's own emails are untouched


async def test_right_passwords_are_limited_per_address_and_sessions_per_developer(browser, portal_services):
    await sign_up(browser, portal_services, "ana@partner.example")
    answers = [(await sign_in(browser, "ana@partner.example")).status_code for _ in range(101)]
    assert answers[:100] == [303] * 100 and answers[100] == 429
    async with portal_services.db.reading() as session:
        assert await session.scalar(select(func.count()).select_from(PortalSession)) == 20


@pytest.mark.parametrize(("then", "lands"), [
    ("/portal/apis/reset-password", "/portal/apis/reset-password"),
    ("//evil.example/portal/x", "/portal/dashboard"), ("https://evil.example/", "/portal/dashboard"),
    ("/portal//evil.example", "/portal/dashboard"), ("/portal/\\evil", "/portal/dashboard"),
])
async def test_signing_in_returns_to_the_portal_page_it_came_from_and_nowhere_else(browser, portal_services, then,
                                                                                   lands):
    await sign_up(browser, portal_services, "ana@partner.example")
    page = await browser.get("/portal/sign-in", params={"next": then})
    token = CSRF.search(page.text)
    assert token is not None
    signed = await browser.post("/portal/sign-in", data={"csrf_token": token.group(1), "email": "ana@partner.example",
                                                         "password": PASSWORD, "next": then})
    assert signed.status_code == 303 and signed.headers["location"] == lands


async def test_the_send_limited_demo_customer_meets_the_send_limit_after_the_button(browser, portal_services):
    await sign_up(browser, portal_services, "ana@partner.example")
    await sign_in(browser, "ana@partner.example")
    used = await post(browser, "/portal/sandbox/use-up-send-limit", {}, page="/portal/dashboard")
    assert used.status_code == 303 and "limit-used-up" in used.headers["location"]
    token = await csrf(browser, "/portal/apis/reset-password")
    tried = await browser.post("/portal/apis/reset-password/try/reset-password-put", data={
        "csrf_token": token, "path_customerId": "5a1d0e5d3c2b4a1f9e8d7c6b5a4f0008",
        "body": '{"contactMethodId": "100000008"}'})
    assert "Response: 429" in tried.text and "UXU_40029" in tried.text


# Found by trying the portal as a new developer would.


async def test_reloading_the_answer_of_a_form_that_makes_something_makes_nothing_twice(browser, portal_services):
    await sign_up(browser, portal_services, "ana@partner.example")
    await sign_in(browser, "ana@partner.example")
    fields = await form_fields(browser, "/portal/apps/new")
    data = {**fields, "name": "Budget Buddy", "scopes": ["institution-users:read"]}
    first = await browser.post("/portal/apps/new", data=data)
    again = await browser.post("/portal/apps/new", data=data)  # the browser's reload sends the same form
    assert first.status_code == 200 and again.status_code == 409 and "Already done" in again.text
    assert (await browser.get("/portal/dashboard")).text.count(">Budget Buddy</a>") == 1


async def test_a_sandbox_apps_environment_has_the_demo_customers_real_ids(browser, portal_services):
    await sign_up(browser, portal_services, "ana@partner.example")
    await sign_in(browser, "ana@partner.example")
    app_id, shared, _ = await new_app(browser)
    environment = (await browser.get(f"/portal/apps/{app_id}/postman-environment.json")).json()
    values = {v["key"]: v["value"] for v in environment["values"]}
    assert values["sharedKey"] == shared and values["institutionId"].startswith("sbx-")
    assert re.fullmatch(r"[0-9a-f]{32}", values["accountId"]) and values["hostUserId"] == "HOST-0001"
    assert values["passcode"] == "" and values["secretKey"] == ""


@pytest.mark.parametrize(("method", "path"), [("GET", "/portal/nope"), ("GET", "/portal/apps/x/keys/y/rotate")])
async def test_other_portal_addresses_get_the_portals_page(browser, method, path):
    answer = await browser.request(method, path)
    assert answer.status_code == 404 and answer.headers["content-type"].startswith("text/html")
    assert '<html lang="en">' in answer.text and "<title>" in answer.text


async def test_inviting_a_member_again_is_refused_next_to_the_field(browser, portal_services):
    await sign_up(browser, portal_services, "ana@partner.example")
    await sign_in(browser, "ana@partner.example")
    again = await post(browser, "/portal/team/invite", {"email": "ana@partner.example", "role": "admin"},
                       page="/portal/dashboard")
    assert again.status_code == 400 and "already a member" in again.text
    assert await emails(portal_services, "portal_invite") == []


async def test_staff_set_the_reset_pages_look_and_colours_that_fail_contrast_are_refused(
    browser, portal_services, clock
):
    async with client_for(portal_services) as staff:
        await sign_up(staff, portal_services, "ops@bank.example", name="Olu Ops")
        await sign_in(staff, "ops@bank.example")
        async with portal_services.db.transaction() as session:
            await portal_services.portal.set_staff(session, email="ops@bank.example", staff=True)
        await turn_on_two_factor(staff, clock)
        desk = await staff.get("/portal/staff")
        assert 'href="/reset/07675"' in desk.text and 'name="accent_color" value="#0b5394"' in desk.text
        assert "<title>Staff" in desk.text and desk.text.count('id="reset-page"') == 1  # in the page, once
        look = {"accent_color": "#7a1f5c", "header_color": "#1d3b2a",
                "sign_in_url": "https://online.bank.example/sign-in", "frame_ancestors": "https://www.bank.example"}
        saved = await post(staff, "/portal/staff/reset-page", look, page="/portal/staff")
        assert saved.status_code == 303 and saved.headers["location"].startswith("/portal/staff?notice=page-look")
        page = await staff.get("/reset/07675")
        assert "frame-ancestors https://www.bank.example" in page.headers["content-security-policy"]
        assert "--accent: #7a1f5c" in (await staff.get("/reset/07675/theme.css")).text
        refused = await post(staff, "/portal/staff/reset-page", {**look, "accent_color": "#ffcc00"},
                             page="/portal/staff")
        assert refused.status_code == 400 and "contrast of 1." in refused.text
        assert "--accent: #7a1f5c" in (await staff.get("/reset/07675/theme.css")).text  # nothing changed
    # A developer who is not staff cannot change it.
    await sign_up(browser, portal_services, "dev@partner.example")
    await sign_in(browser, "dev@partner.example")
    token = await csrf(browser, "/portal/dashboard")
    denied = await browser.post("/portal/staff/reset-page", data={"csrf_token": token, "accent_color": "#000000"})
    assert denied.status_code == 403
