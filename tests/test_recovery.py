"""Bank-grade recovery (issue 14): notices to every destination, password rules per institution, contact
changes and their cool-off, SIM-swap checks, two-channel assurance, security-event webhooks."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import select

from pwreset.app import create_app
from pwreset.audit.models import AuditEvent
from pwreset.container import Container, build_container
from pwreset.institutions.service import configure_institution
from tests.directory_support import C1, World, cid, email, load, sms, voice
from tests.provider_server import FakeProvider, Mailbox, fake_provider, smtp_server
from tests.support import get_token, ux_error


@pytest.fixture
def directory():
    return None


MULTI = cid("MULTI")
SID, TOKEN, FROM = "AC" + "0" * 32, "twilio-auth-token-for-tests", "+12025550100"


@dataclass
class Delivery:
    services: Container
    api: httpx.AsyncClient
    mailbox: Mailbox
    phone: FakeProvider

    def texts(self) -> list[tuple[str, str]]:
        """(To, Body) of every SMS and call the phone provider took."""
        found = []
        for request in self.phone.requests:
            body = request.form.get("Body") or request.form.get("Twiml", "")
            found.append((request.form["To"], body))
        return found


@asynccontextmanager
async def real_delivery(settings, clock, **extra) -> AsyncIterator[Delivery]:
    """The service with SMTP to a server the test runs and Twilio calls to a local fake of it."""
    async with smtp_server() as (mailbox, port), fake_provider() as phone:
        configured = settings.model_copy(update={
            "email_provider": "smtp", "smtp_host": "127.0.0.1", "smtp_port": port, "smtp_security": "none",
            "email_from": "reset@cu.example", "sms_provider": "twilio", "voice_provider": "twilio",
            "twilio_account_sid": SID, "twilio_auth_token": SecretStr(TOKEN), "twilio_from_number": FROM,
            "twilio_base_url": phone.url, **extra,
        })
        services = build_container(configured, clock=clock)
        app = create_app(configured, container=services, background=False)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://pwreset.test") as api:
            try:
                yield Delivery(services, api, mailbox, phone)
            finally:
                await services.close()


async def partner_world(delivery: Delivery, make_partner) -> World:
    from tests.directory_support import DIRECTORY

    partner = await make_partner("07675")
    await load(delivery.services, "07675", DIRECTORY["07675"])
    token = (await get_token(delivery.api, partner.auth)).json()["access_token"]
    return World(partner, None, token, "")


async def configure(services: Container, **values) -> None:
    async with services.db.transaction() as session:
        await configure_institution(session, institution_id="07675", clock=services.clock, **values)
    services.institutions._entries.clear()


def code_in(text: str) -> str:
    found = re.search(r"\b(\d{6})\b", text) or re.search(r"((?:\d, ){5}\d)", text)
    assert found, text
    return found.group(1).replace(", ", "")


async def reset_with_email(delivery: Delivery, world: World, customer: str, method: str) -> str:
    """:reset-password to an email method, the code from the test's SMTP server, :verify-passcode."""
    api = delivery.api
    sent = await api.put(f"/v1/customers/{customer}:reset-password", headers=world.headers(),
                         json={"contactMethodId": method})
    assert sent.status_code == 204, sent.text
    await delivery.services.worker.run_once()
    code = code_in(delivery.mailbox.messages[-1].get_body(("plain",)).get_content())
    verified = await api.post(f"/v1/customers/{customer}:verify-passcode", headers=world.headers(),
                              json={"passcode": code})
    assert verified.status_code == 200, verified.text
    return str(verified.json()["resetTicket"])


# notices to every destination (item 2)


async def test_the_password_changed_notice_reaches_every_activated_destination_once(settings, clock, make_partner):
    async with real_delivery(settings, clock) as delivery:
        world = await partner_world(delivery, make_partner)
        await configure(delivery.services, contact_line="1-800-555-0100")
        await load(delivery.services, "07675", [{
            "customerId": MULTI, "loginId": "multi", "firstName": "Mo", "lastName": "Lee",
            "contactMethods": [sms("1", "2025550101"), voice("2", "2025550101"), voice("3", "2025550102"),
                               email("4", "mo@example.com"), email("5", "old@example.com", isActivated=False)],
        }])
        ticket = await reset_with_email(delivery, world, MULTI, "4")
        done = await delivery.api.put(f"/v1/customers/{MULTI}:set-password", headers=world.headers(),
                                      json={"resetTicket": ticket, "newPassword": "a quiet harbour at dawn"})
        assert done.status_code == 204
        before = len(delivery.mailbox.messages)
        await delivery.services.worker.run_once()
        mails = delivery.mailbox.messages[before:]
        assert [m["To"] for m in mails] == ["mo@example.com"]
        body = mails[0].get_body(("plain",)).get_content()
        assert "password was changed" in body and "1-800-555-0100" in body
        calls = delivery.texts()
        assert sorted(to for to, _ in calls) == ["+12025550101", "+12025550102"]  # one per number, SMS first
        sms_text = next(body for to, body in calls if to == "+12025550101")
        assert "Not you? Call 1-800-555-0100 now." in sms_text
        assert "1-800-555-0100" in next(body for to, body in calls if to == "+12025550102")
        async with delivery.services.db.reading() as session:
            event = (await session.scalars(select(AuditEvent).where(AuditEvent.event_type == "reset.completed"))).one()
        assert event.details["notified"] == 3


# password rules (item 7)


async def test_a_password_that_is_the_only_factor_needs_15_characters(api, world: World, services):
    from tests.test_resets import delivered_code, request_reset, set_password, verify

    await configure(services, password_factor="single")
    await request_reset(api, world)
    ticket = (await verify(api, world, await delivered_code(services))).json()["resetTicket"]
    short = await set_password(api, world, ticket, "quiet harbour!")  # 14 characters
    assert "at least 15 characters" in str(ux_error(short, 400, "UXU_20022"))
    assert (await set_password(api, world, ticket, "quiet harbours!")).status_code == 204
    await services.worker.run_once()  # (the notices go out before the next passcode)
    await configure(services, password_factor="multi")
    services.clock.advance(61)
    again = await request_reset(api, world)
    assert again.status_code == 204, again.text
    ticket = (await verify(api, world, await delivered_code(services))).json()["resetTicket"]
    assert (await set_password(api, world, ticket, "Vx9#qLm2!pz")).status_code == 204  # 11: fine with MFA


async def test_the_last_four_passwords_are_refused_the_fifth_is_not(api, world: World, services):
    from tests.test_resets import delivered_code, request_reset, set_password, verify

    async def change(password: str) -> httpx.Response:
        services.clock.advance(3600)  # (the send limits) and a fresh token
        world.token = (await get_token(api, world.partner.auth)).json()["access_token"]
        assert (await request_reset(api, world)).status_code == 204
        ticket = (await verify(api, world, await delivered_code(services))).json()["resetTicket"]
        answer = await set_password(api, world, ticket, password)
        await services.worker.run_once()  # (the notices go out before the next passcode)
        return answer

    passwords = ["first harbour lantern", "second meadow kettle", "third canyon bicycle", "fourth glacier violin",
                 "fifth orchard compass"]
    for password in passwords:
        assert (await change(password)).status_code == 204
    for old in passwords[1:4]:  # the current one and the three before it
        refused = await change(old)
        assert "last 4 passwords" in str(ux_error(refused, 400, "UXU_20022")) or "current" in refused.text
    assert (await change(passwords[0])).status_code == 204  # five changes ago: allowed again
    from pwreset.customers.models import Customer, PasswordHistory

    async with services.db.reading() as session:
        pk = (await session.scalars(select(Customer.id).where(Customer.customer_id == C1))).one()
        kept = (await session.scalars(select(PasswordHistory).where(PasswordHistory.customer_pk == pk))).all()
    assert len(kept) == 4 and all(row.password_hash.startswith("$argon2id$") for row in kept)


# contact info (item 3)


async def change_contact(api, world: World, customer: str = C1, token: str | None = None, **body) -> httpx.Response:
    return await api.put(f"/v1/customers/{customer}:contact-info", headers=world.headers(token), json=body)


async def test_a_changed_number_is_told_and_gets_no_passcode_during_the_cool_off(settings, clock, make_partner):
    async with real_delivery(settings, clock) as delivery:
        world = await partner_world(delivery, make_partner)
        api, services = delivery.api, delivery.services
        changed = await change_contact(api, world, phoneNumber={
            "oldPhoneNumber": "2025550143", "oldCountryCode": "1", "newPhoneNumber": 2025550199, "newCountryCode": "1",
        })
        assert changed.status_code == 204 and changed.content == b""
        await services.worker.run_once()
        assert [(to, "phone number on your profile was changed" in body) for to, body in delivery.texts()] == [
            ("+12025550143", True)]  # the old number is told, once
        methods = (await api.get(f"/v1/customers/{C1}/contact-methods", headers=world.headers())).json()
        assert [m["contactInfo"] for m in methods["contactMethods"]] == ["2025550199", "2025550199", "pat@example.com"]
        services.clock.advance(86_400)  # a day later
        world.token = (await get_token(api, world.partner.auth)).json()["access_token"]
        for method in ("101", "102"):
            refused = await api.put(f"/v1/customers/{C1}:reset-password", headers=world.headers(),
                                    json={"contactMethodId": method})
            ux_error(refused, 400, "UXU_20007")
        email_ok = await api.put(f"/v1/customers/{C1}:reset-password", headers=world.headers(),
                                 json={"contactMethodId": "103"})
        assert email_ok.status_code == 204  # another method stays open
        services.clock.advance(6 * 86_400 + 1)  # the default cool-off, 7 days, is over
        world.token = (await get_token(api, world.partner.auth)).json()["access_token"]
        again = await api.put(f"/v1/customers/{C1}:reset-password", headers=world.headers(),
                              json={"contactMethodId": "101"})
        assert again.status_code == 204
        async with services.db.reading() as session:
            events = (await session.scalars(select(AuditEvent).where(AuditEvent.event_type.in_(
                ("contact.changed", "reset.refused"))).order_by(AuditEvent.id))).all()
        assert [(e.event_type, e.outcome) for e in events] == [
            ("contact.changed", "success"), ("reset.refused", "destination_changed"),
            ("reset.refused", "destination_changed")]
        assert events[0].details == {"changed": "phone", "contactMethodIds": ["101", "102"],
                                     "protocols": ["SMS", "VOICE"]}
        assert "2025550" not in str([e.details for e in events])


async def test_an_email_change_tells_the_old_address(api, world: World, services):
    assert (await change_contact(api, world, email={"emailAddress": "Pat.New@Example.COM"})).status_code == 204
    await services.worker.run_once()
    told = services.sink.sent[-1]
    assert told.kind == "contact_changed" and told.destination == "pat@example.com" and "email address" in told.text
    methods = (await api.get(f"/v1/customers/{C1}/contact-methods", headers=world.headers())).json()
    assert methods["contactMethods"][2]["contactInfo"] == "Pat.New@example.com"
    assert (await change_contact(api, world, email={"emailAddress": "Pat.New@example.com"})).status_code == 204


@pytest.mark.parametrize(("body", "status", "code"), [
    ({"postalAddress": {"city": "Austin", "postalCode": 78701}}, 400, "UXU_88891"),
    ({"phoneNumber": {"oldPhoneNumber": "2025550100", "newPhoneNumber": "2025550199"}}, 400, "UXU_88891"),
    ({"phoneNumber": {"newPhoneNumber": "12"}}, 400, "UXU_99999"),
    ({"phoneNumber": {"oldPhoneNumber": "2025550143"}}, 400, "UXU_99999"),
    ({"email": {"emailAddress": "not an address"}}, 400, "UXU_99999"),
    ({}, 400, "UXU_99999"),
    ({"userIdType": "HOST_USER_ID", "email": {"emailAddress": "a@b.example"}}, 400, "UXU_99999"),
    ({"email": {"emailAddress": "x@example.com"}, "postalAddress": {"address1": "1 Main St"}}, 400, "UXU_88891"),
])
async def test_contact_changes_that_cannot_be_made_are_refused_whole(api, world: World, services, body, status, code):
    ux_error(await change_contact(api, world, **body), status, code)
    methods = (await api.get(f"/v1/customers/{C1}/contact-methods", headers=world.headers())).json()
    assert [m["contactInfo"] for m in methods["contactMethods"]] == ["2025550143", "2025550143", "pat@example.com"]
    await services.worker.run_once()
    assert list(services.sink.sent) == []


async def test_contact_changes_find_the_customer_by_login_and_refuse_strangers(api, world: World, make_partner):
    by_login = await change_contact(api, world, customer="pat.doe", userIdType="LOGIN_ID",
                                    email={"emailAddress": "pat2@example.com"})
    assert by_login.status_code == 204
    ux_error(await change_contact(api, world, customer=cid("nobody"), email={"emailAddress": "a@b.example"}),
             404, "UXU_88888")
    reader = await make_partner("07675", scopes="institution-users:read")
    token = (await get_token(api, reader.auth)).json()["access_token"]
    ux_error(await change_contact(api, world, token=token, email={"emailAddress": "a@b.example"}), 403, "UXU_10002")


async def test_a_customers_contact_changes_are_limited(api, world: World):
    for n in range(5):
        assert (await change_contact(api, world, email={"emailAddress": f"pat{n}@example.com"})).status_code == 204
    limited = await change_contact(api, world, email={"emailAddress": "pat9@example.com"})
    ux_error(limited, 429, "UXU_40029")
    assert int(limited.headers["Retry-After"]) > 0


async def test_a_number_changed_by_an_import_waits_out_the_cool_off_too(api, world: World, services):
    from tests.directory_support import DIRECTORY

    pat = dict(DIRECTORY["07675"][0])
    pat["contactMethods"] = [sms("101", "2025550177"), voice("102"), email("103")]
    report = await load(services, "07675", [pat])
    assert not report.refused
    refused = await api.put(f"/v1/customers/{C1}:reset-password", headers=world.headers(),
                            json={"contactMethodId": "101"})
    ux_error(refused, 400, "UXU_20007")
    unchanged = await api.put(f"/v1/customers/{C1}:reset-password", headers=world.headers(),
                              json={"contactMethodId": "102"})
    assert unchanged.status_code == 204  # the voice number did not change
    await configure(services, contact_cooloff=0)
    services.clock.advance(61)
    assert (await api.put(f"/v1/customers/{C1}:reset-password", headers=world.headers(),
                          json={"contactMethodId": "101"})).status_code == 204
