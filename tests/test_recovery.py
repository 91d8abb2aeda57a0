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
from tests.provider_server import FakeCamara, FakeProvider, Mailbox, camara_server, fake_provider, smtp_server
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


# SIM swap (item 4)


@asynccontextmanager
async def with_carrier(settings, clock, make_partner, **extra) -> AsyncIterator[tuple[Delivery, World, FakeCamara]]:
    async with camara_server() as carrier:
        options = {"sim_swap_url": f"{carrier.url}/sim-swap/v2", "sim_swap_token_url": f"{carrier.url}/token",
                   "sim_swap_client_id": "camara-client", "sim_swap_client_secret": SecretStr("camara-secret"),
                   "sim_swap_timeout": 0.5, **extra}
        async with real_delivery(settings, clock, **options) as delivery:
            world = await partner_world(delivery, make_partner)
            await configure(delivery.services, sim_swap_check=True, sim_swap_max_age=72)
            yield delivery, world, carrier


async def send_to(delivery: Delivery, world: World, method: str, customer: str = C1) -> httpx.Response:
    return await delivery.api.put(f"/v1/customers/{customer}:reset-password", headers=world.headers(),
                                  json={"contactMethodId": method})


async def refusals(services) -> list[tuple[str, dict]]:
    async with services.db.reading() as session:
        rows = (await session.scalars(select(AuditEvent).where(AuditEvent.event_type == "reset.refused")
                                      .order_by(AuditEvent.id))).all()
    return [(row.outcome, row.details) for row in rows]


async def test_a_swapped_sim_refuses_sms_and_voice_but_lets_email_through(settings, clock, make_partner):
    from pwreset.resets.simswap import CHECKS

    swapped_before = CHECKS.labels("swapped")._value.get()
    async with with_carrier(settings, clock, make_partner) as (delivery, world, carrier):
        carrier.swapped.add("+12025550143")
        ux_error(await send_to(delivery, world, "101"), 400, "UXU_20008")
        ux_error(await send_to(delivery, world, "102"), 400, "UXU_20008")
        assert (await send_to(delivery, world, "103")).status_code == 204
        assert carrier.checks == [{"phoneNumber": "+12025550143", "maxAge": 72}] * 2  # email needs no check
        assert carrier.tokens_issued == 1  # the carrier's token is kept
        await delivery.services.worker.run_once()
        assert delivery.texts() == []  # nothing reached the phone
        assert [m["To"] for m in delivery.mailbox.messages] == ["pat@example.com"]
        assert [outcome for outcome, _ in await refusals(delivery.services)] == ["sim_swapped", "sim_swapped"]
    assert CHECKS.labels("swapped")._value.get() == swapped_before + 2


async def test_a_sim_not_swapped_is_sent_to_and_the_check_is_on_the_record(settings, clock, make_partner):
    async with with_carrier(settings, clock, make_partner) as (delivery, world, carrier):
        assert (await send_to(delivery, world, "101")).status_code == 204
        async with delivery.services.db.reading() as session:
            event = (await session.scalars(select(AuditEvent).where(AuditEvent.event_type == "reset.requested"))).one()
        assert event.details["simSwap"] == "not_swapped" and event.details["checker"] == "camara"
        await configure(delivery.services, sim_swap_check=False)
        delivery.services.clock.advance(61)
        assert (await send_to(delivery, world, "101")).status_code == 204
        assert len(carrier.checks) == 1  # off: the carrier is not asked


@pytest.mark.parametrize("failure", [500, 404, "timeout"])
async def test_a_checker_that_fails_closes_phone_channels_by_default(settings, clock, make_partner, failure):
    async with with_carrier(settings, clock, make_partner) as (delivery, world, carrier):
        carrier.failure = failure
        ux_error(await send_to(delivery, world, "101"), 503, "UXU_30002")
        assert (await send_to(delivery, world, "103")).status_code == 204
        [(outcome, details)] = await refusals(delivery.services)
        assert outcome == "sim_swap_unavailable" and details["checker"] == "camara"


async def test_a_checker_that_fails_open_sends_and_says_so(settings, clock, make_partner):
    async with with_carrier(settings, clock, make_partner, sim_swap_failure="open") as (delivery, world, carrier):
        carrier.failure = 503
        assert (await send_to(delivery, world, "101")).status_code == 204
        async with delivery.services.db.reading() as session:
            event = (await session.scalars(select(AuditEvent).where(AuditEvent.event_type == "reset.requested"))).one()
        assert event.details["simSwap"] == "unchecked_failed_open"


# two-channel assurance (item 1)


async def test_two_channels_earn_the_ticket_one_does_not(api, world: World, services):
    from tests.test_resets import delivered_code, request_reset, set_password, verify

    await configure(services, recovery_assurance="two_channel")
    assert (await request_reset(api, world, method="101")).status_code == 204
    first = await verify(api, world, await delivered_code(services))
    assert first.status_code == 202 and "resetTicket" not in first.json()
    assert first.json() == {"secondChannelRequired": True, "verifiedContactMethodId": "101",
                            "contactMethodIds": ["103"], "expiresIn": 900}
    services.clock.advance(61)
    ux_error(await request_reset(api, world, method="102"), 400, "UXU_20032")  # the same number, by voice
    assert (await request_reset(api, world, method="103")).status_code == 204
    second = await verify(api, world, await delivered_code(services))
    assert second.status_code == 200
    assert (await set_password(api, world, second.json()["resetTicket"], "a second channel garden")).status_code == 204
    from pwreset.resets.models import ResetTicket

    async with services.db.reading() as session:
        ticket = (await session.scalars(select(ResetTicket))).one()
    assert ticket.first_passcode_id is not None and ticket.first_passcode_id != ticket.passcode_id


async def test_a_first_channel_waits_only_so_long_and_one_destination_is_not_enough(api, world: World, services):
    from tests.test_resets import delivered_code, request_reset, verify

    await configure(services, recovery_assurance="two_channel")
    assert (await request_reset(api, world, method="103")).status_code == 204
    assert (await verify(api, world, await delivered_code(services))).status_code == 202
    services.clock.advance(901)  # the first channel's window is over
    world.token = (await get_token(api, world.partner.auth)).json()["access_token"]
    assert (await request_reset(api, world, method="101")).status_code == 204
    assert (await verify(api, world, await delivered_code(services))).status_code == 202  # a new first
    from tests.directory_support import C2

    ux_error(await request_reset(api, world, customer=C2, method="201"), 400, "UXU_20031")


async def test_single_channel_institutions_keep_the_contract(api, world: World, services):
    from tests.test_resets import delivered_code, request_reset, verify

    assert (await request_reset(api, world, method="101")).status_code == 204
    verified = await verify(api, world, await delivered_code(services))
    assert verified.status_code == 200 and set(verified.json()) == {"resetTicket", "expiresIn"}


# security events (item 6)


def signed_by(secret: str, request) -> bool:
    import hashlib
    import hmac

    stamp, mac = dict(part.split("=", 1) for part in request.headers["X-Pwreset-Signature"].split(",")).values()
    expected = hmac.new(secret.encode(), f"{stamp}.".encode() + request.raw, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, mac)


async def set_hook(services: Container, url: str) -> str:
    from pwreset.events.admin import set_webhook

    async with services.db.transaction() as session:
        secret = await set_webhook(session, institution_id="07675", url=url, sealer=services.webhook_sealer,
                                   clock=services.clock, sandbox=False)
    services.institutions._entries.clear()
    assert secret is not None and secret.startswith("pwr_whsec_")
    return secret


async def test_security_events_reach_the_institution_signed(settings, clock, make_partner):
    async with real_delivery(settings, clock) as delivery, fake_provider() as hook:
        world = await partner_world(delivery, make_partner)
        services, api = delivery.services, delivery.api
        secret = await set_hook(services, f"{hook.url}/security")
        sent = await api.put(f"/v1/customers/{C1}:reset-password", headers=world.headers(),
                             json={"contactMethodId": "103"})
        assert sent.status_code == 204
        await services.worker.run_once()  # the passcode; its passcode.sent event is queued as it settles
        code = code_in(delivery.mailbox.messages[-1].get_body(("plain",)).get_content())
        wrong = "000000" if code != "000000" else "111111"
        ux_error(await api.post(f"/v1/customers/{C1}:verify-passcode", headers=world.headers(),
                                json={"passcode": wrong}), 400, "UXU_20011")
        ticket = (await api.post(f"/v1/customers/{C1}:verify-passcode", headers=world.headers(),
                                 json={"passcode": code})).json()["resetTicket"]
        done = await api.put(f"/v1/customers/{C1}:set-password", headers=world.headers(),
                             json={"resetTicket": ticket, "newPassword": "a signed harbour lantern"})
        assert done.status_code == 204
        moved = await change_contact(api, world, email={"emailAddress": "pat.moved@example.com"})
        assert moved.status_code == 204
        await services.worker.run_once()
        await services.worker.run_once()
        events = [request.json for request in hook.requests]
        assert sorted(e["type"] for e in events) == ["contact.changed", "passcode.failed", "passcode.sent",
                                                     "reset.completed"]  # (the worker sends them concurrently)
        for request, event in zip(hook.requests, events, strict=True):
            assert request.path == "/security" and signed_by(secret, request)
            assert request.headers["X-Pwreset-Event"] == event["type"]
            assert request.headers["Idempotency-Key"] == event["id"]
            assert event["institutionId"] == "07675" and event["customerId"] == C1
        assert not signed_by("pwr_whsec_not-the-secret", hook.requests[0])
        failed = next(e for e in events if e["type"] == "passcode.failed")
        assert failed["data"] == {"tries": 1, "consecutiveFailures": 1}
        assert "pat@example.com" not in str(events) and "pat.moved" not in str(events)


async def test_a_refused_webhook_is_retried_and_logged(settings, clock, make_partner):
    from pwreset.events.admin import delivery_log, send_test

    async with real_delivery(settings, clock) as delivery, fake_provider() as hook:
        await partner_world(delivery, make_partner)
        services = delivery.services
        await set_hook(services, f"{hook.url}/security")
        hook.answer(500)
        async with services.db.transaction() as session:
            await send_test(session, institution_id="07675", events=services.events)
        await services.worker.run_once()
        async with services.db.reading() as session:
            [row] = await delivery_log(session, institution_id="07675", limit=10)
        assert (row.status, row.attempts, row.destination_masked) == ("pending", 1, hook.url.split("//")[1])
        assert "500" in row.last_error
        services.clock.advance(600)
        await services.worker.run_once()
        async with services.db.reading() as session:
            [row] = await delivery_log(session, institution_id="07675", limit=10)
        assert (row.status, row.attempts) == ("sent", 2)
        assert [r.json["type"] for r in hook.requests] == ["webhook.test", "webhook.test"]
        assert hook.requests[0].headers["Idempotency-Key"] == hook.requests[1].headers["Idempotency-Key"]


async def test_a_swapped_sim_and_a_suspension_are_told_to_the_institution(settings, clock, make_partner):
    async with with_carrier(settings, clock, make_partner) as (delivery, world, carrier), fake_provider() as hook:
        services = delivery.services
        await set_hook(services, f"{hook.url}/security")
        carrier.swapped.add("+12025550143")
        ux_error(await send_to(delivery, world, "101"), 400, "UXU_20008")
        await services.worker.run_once()
        assert [r.json["type"] for r in hook.requests] == ["sim_swap.refused"]
        assert hook.requests[0].json["data"]["checker"] == "camara"


def test_the_webhook_commands(database_url, monkeypatch):
    from typer.testing import CliRunner

    from pwreset.cli.main import app
    from tests.conftest import TEST_SECRET_KEY

    monkeypatch.setenv("PWRESET_DATABASE_URL", database_url)
    monkeypatch.setenv("PWRESET_SECRET_KEY", TEST_SECRET_KEY)
    runner = CliRunner()
    assert runner.invoke(app, ["institutions", "create", "07675", "--name", "Demo CU"]).exit_code == 0
    refused = runner.invoke(app, ["webhooks", "set", "07675", "--url", "http://hooks.example/x"])
    assert refused.exit_code != 0 and "https" in str(refused.exception)  # (`pwreset` prints it as "error: ...")
    made = runner.invoke(app, ["webhooks", "set", "07675", "--url", "https://hooks.example/pwreset"])
    assert made.exit_code == 0 and "pwr_whsec_" in made.output
    again = runner.invoke(app, ["webhooks", "set", "07675", "--url", "https://hooks.example/v2"])
    assert again.exit_code == 0 and "pwr_whsec_" not in again.output  # the secret stays
    queued = runner.invoke(app, ["webhooks", "test", "07675", "--wait", "0"])
    assert queued.exit_code == 2 and "no worker" in queued.output
    log = runner.invoke(app, ["webhooks", "log", "07675", "--json"])
    assert log.exit_code == 0 and '"event": "webhook.test"' in log.output and '"host": "hooks.example"' in log.output


# the security review's findings (each passed before its fix)


async def failed_count(services) -> int:
    from pwreset.customers.models import Customer

    async with services.db.reading() as session:
        return (await session.scalars(select(Customer.failed_reset_count).where(Customer.customer_id == C1))).one()


async def test_a_first_channel_alone_does_not_wipe_wrong_guesses_at_the_second(api, world: World, services):
    from tests.test_resets import delivered_code, request_reset, verify

    await configure(services, recovery_assurance="two_channel")
    assert (await request_reset(api, world, method="101")).status_code == 204
    assert (await verify(api, world, await delivered_code(services))).status_code == 202
    services.clock.advance(61)
    assert (await request_reset(api, world, method="103")).status_code == 204
    code = await delivered_code(services)
    ux_error(await verify(api, world, "000000" if code != "000000" else "111111"), 400, "UXU_20011")
    assert await failed_count(services) == 1
    services.clock.advance(901)  # the first channel's window over, the attacker verifies the channel they hold
    world.token = (await get_token(api, world.partner.auth)).json()["access_token"]
    assert (await request_reset(api, world, method="101")).status_code == 204
    assert (await verify(api, world, await delivered_code(services))).status_code == 202
    assert await failed_count(services) == 1


async def test_a_one_channel_ticket_stops_working_when_the_institution_asks_for_two(api, world: World, services):
    from tests.test_resets import delivered_code, request_reset, set_password, verify

    assert (await request_reset(api, world, method="101")).status_code == 204
    ticket = (await verify(api, world, await delivered_code(services))).json()["resetTicket"]
    await configure(services, recovery_assurance="two_channel")
    ux_error(await set_password(api, world, ticket, "a ticket from before the change"), 400, "UXU_20021")


async def test_the_check_on_without_a_carrier_fails_closed_not_silently(api, world: World, services):
    await configure(services, sim_swap_check=True)
    ux_error(await api.put(f"/v1/customers/{C1}:reset-password", headers=world.headers(),
                           json={"contactMethodId": "101"}), 503, "UXU_30002")
    assert (await api.put(f"/v1/customers/{C1}:reset-password", headers=world.headers(),
                          json={"contactMethodId": "103"})).status_code == 204


async def test_a_contact_change_ends_what_was_under_way(api, world: World, services):
    from tests.test_resets import delivered_code, request_reset, verify

    assert (await request_reset(api, world, method="101")).status_code == 204
    code = await delivered_code(services)
    assert (await change_contact(api, world, phoneNumber={"newPhoneNumber": "2025550177"})).status_code == 204
    await services.worker.run_once()  # (the old number is told first)
    ux_error(await verify(api, world, code), 400, "UXU_20012")  # the passcode to the old number is void
    await configure(services, recovery_assurance="two_channel", contact_cooloff=0)
    services.clock.advance(61)
    assert (await request_reset(api, world, method="103")).status_code == 204
    assert (await verify(api, world, await delivered_code(services))).status_code == 202
    assert (await change_contact(api, world, email={"emailAddress": "pat.elsewhere@example.com"})).status_code == 204
    await services.worker.run_once()  # (the old address is told first)
    services.clock.advance(61)
    assert (await request_reset(api, world, method="101")).status_code == 204
    assert (await verify(api, world, await delivered_code(services))).status_code == 202  # a first again


async def test_contact_changes_are_limited_per_partner_application(api, world: World, services):
    from pwreset.ratelimit.limiter import Rule
    from tests.directory_support import C2, C6

    services.contacts.client_rule = Rule("contact-change-client", 2, 3600)
    assert (await change_contact(api, world, customer=C1, email={"emailAddress": "a1@example.com"})).status_code == 204
    assert (await change_contact(api, world, customer=C6, phoneNumber={"newPhoneNumber": "2025550188"})).status_code \
        == 204
    ux_error(await change_contact(api, world, customer=C2, phoneNumber={"oldPhoneNumber": "2025550178",
                                                                        "newPhoneNumber": "2025550189"}),
             429, "UXU_40029")


async def test_no_institution_may_take_the_name_of_the_chain_of_none(services):
    from pwreset.institutions.errors import InvalidInstitutionId
    from pwreset.institutions.service import create_institution

    async with services.db.transaction() as session:
        with pytest.raises(InvalidInstitutionId):
            await create_institution(session, institution_id="-", name="Dash CU", clock=services.clock)


def test_the_trusted_proxies_default_to_uvicorns_variable(monkeypatch):
    from pwreset.config import Settings

    monkeypatch.setenv("FORWARDED_ALLOW_IPS", "10.0.0.0/8")
    assert Settings().trusted_proxies == "10.0.0.0/8"
    monkeypatch.setenv("PWRESET_TRUSTED_PROXIES", "192.0.2.1")
    assert Settings().trusted_proxies == "192.0.2.1"


async def test_verifying_after_the_institution_cache_expired_answers(api, world: World, services):
    """The two-channel setting is read in verify's own transaction (on SQLite a second connection would
    wait for its write lock, and the answer was a 503)."""
    from tests.test_resets import delivered_code, request_reset, verify

    await configure(services, recovery_assurance="two_channel")
    assert (await request_reset(api, world, method="101")).status_code == 204
    code = await delivered_code(services)
    services.institutions._entries.clear()  # as 30 s later
    assert (await verify(api, world, code)).status_code == 202
