"""Contract 6.2 to 6.4: passcodes, reset tickets, the new password; and the whole journey."""

from __future__ import annotations

import asyncio
import re

import pytest
from sqlalchemy import select, update

from pwreset.audit.models import AuditEvent
from pwreset.customers.models import Customer
from pwreset.delivery.models import OutboxMessage
from pwreset.resets.models import Passcode
from tests.directory_support import C1, C2, C3, C4, C5, C6, PAT_PASSWORD, World, cid, load
from tests.support import get_token, ux_error


@pytest.fixture
def directory():
    return None  # the real customer directory behind the password grant


E2E, L1 = cid("E2E"), cid("L1")


async def request_reset(api, world, customer=C1, method="101", ux="", **body):
    return await api.put(
        f"{ux}/v1/customers/{customer}:reset-password", headers=world.headers(),
        json={"contactMethodId": method, **body},
    )


async def delivered_code(services) -> str:
    await services.worker.run_once()
    message = services.sink.sent[-1]
    found = re.search(r"\b(\d{6})\b", message.text) or re.search(r"code is: ((?:\d, ){5}\d)", message.text)
    assert found, message.text
    return found.group(1).replace(", ", "")


async def verify(api, world, code, customer=C1, ux=""):
    return await api.post(f"{ux}/v1/customers/{customer}:verify-passcode", headers=world.headers(),
                          json={"passcode": code})


async def set_password(api, world, ticket, password, customer=C1, ux=""):
    return await api.put(f"{ux}/v1/customers/{customer}:set-password", headers=world.headers(),
                         json={"resetTicket": ticket, "newPassword": password})


# 6.2


@pytest.mark.parametrize(("method", "protocol", "channel", "destination"), [
    ("101", None, "SMS", "+12025550143"), ("102", "VOICE", "VOICE", "+12025550143"),
    ("103", "EMAIL", "EMAIL", "pat@example.com"),
])
async def test_a_passcode_goes_to_the_chosen_method(api, world: World, services, ux, method, protocol, channel,
                                                   destination):
    body = {"protocol": protocol} if protocol else {}
    response = await request_reset(api, world, method=method, ux=ux, **body)
    assert response.status_code == 204 and response.content == b""
    code = await delivered_code(services)
    message = services.sink.sent[-1]
    assert message.channel == channel and message.destination == destination
    if channel == "SMS":
        assert len(message.text) <= 160
    if channel == "VOICE":
        assert message.text.count(", ".join(code)) == 2  # read slowly, twice
    async with services.db.reading() as session:
        row = (await session.scalars(select(OutboxMessage))).one()
        stored = (await session.scalars(select(Passcode))).one()
    assert code.encode() not in row.sealed and code not in stored.code_hash  # never stored in the clear
    assert row.status == "sent" and "•" in row.destination_masked


@pytest.mark.parametrize(("customer", "method", "body", "code"), [
    (C1, "999", {}, "UXU_88889"),
    (C1, "201", {}, "UXU_88889"),  # Sam's method, not Pat's
    (C1, "101", {"protocol": "VOICE"}, "UXU_20001"),
    (C2, "202", {}, "UXU_20002"),
    (C3, "301", {}, "UXU_20003"),
    (C4, "401", {}, "UXU_20004"),
    (C5, "501", {}, "UXU_20006"),
])
async def test_refusals_in_the_contracts_order(api, world: World, services, ux, customer, method, body, code):
    ux_error(await request_reset(api, world, customer=customer, method=method, ux=ux, **body), 400, code)
    assert await services.worker.run_once() == 0  # nothing was queued


@pytest.mark.parametrize("body", [{}, {"contactMethodId": ""}, {"contactMethodId": "101", "protocol": "FAX"}, None])
async def test_a_malformed_body_is_uxu_99999(api, world: World, body):
    headers = {**world.headers(), "Content-Type": "application/json"}
    content = b"{not json" if body is None else None
    response = await api.put(f"/v1/customers/{C1}:reset-password", headers=headers, json=body, content=content)
    ux_error(response, 400, "UXU_99999")


async def test_unknown_customer_and_write_scope(api, world: World, make_partner):
    ux_error(await request_reset(api, world, customer="nobody"), 404, "UXU_10000")
    reader = await make_partner("07675", scopes="institution-users:read")
    token = (await get_token(api, reader.auth)).json()["access_token"]
    response = await api.put(f"/v1/customers/{C1}:reset-password", headers=world.headers(token),
                             json={"contactMethodId": "101"})
    ux_error(response, 403, "UXU_10002")


async def test_sending_is_limited_per_customer(api, world: World, clock):
    assert (await request_reset(api, world)).status_code == 204
    refused = ux_error(await request_reset(api, world, method="103"), 429, "UXU_40029")
    assert refused
    retry = int((await request_reset(api, world, method="103")).headers["retry-after"])
    assert 1 <= retry <= 60
    clock.advance(61)
    assert (await request_reset(api, world, method="103")).status_code == 204
    for _ in range(3):
        clock.advance(61)
        assert (await request_reset(api, world, method="103")).status_code == 204
    clock.advance(61)  # five sends in the last hour
    ux_error(await request_reset(api, world, method="103"), 429, "UXU_40029")


async def test_sending_is_limited_per_destination(api, world: World):
    assert (await request_reset(api, world, customer=C1, method="101")).status_code == 204
    # C6 is another customer on the same number: the destination's limit applies too.
    ux_error(await request_reset(api, world, customer=C6, method="601"), 429, "UXU_40029")


# 6.3


async def test_the_right_passcode_gives_a_single_use_ticket(api, world: World, services, ux):
    await request_reset(api, world)
    code = await delivered_code(services)
    response = await verify(api, world, code, ux=ux)
    assert response.status_code == 200
    body = response.json()
    assert body["expiresIn"] == 300 and body["resetTicket"].startswith("pwr_rst_")
    ux_error(await verify(api, world, code), 400, "UXU_20013")  # spent


async def test_wrong_expired_superseded_and_missing_passcodes(api, world: World, services, clock):
    ux_error(await verify(api, world, "123456"), 400, "UXU_20016")
    await request_reset(api, world)
    first = await delivered_code(services)
    wrong = "000000" if first != "000000" else "111111"
    ux_error(await verify(api, world, wrong), 400, "UXU_20011")
    clock.advance(61)
    await request_reset(api, world, method="103")
    second = await delivered_code(services)
    if first != second:
        ux_error(await verify(api, world, first), 400, "UXU_20014")
    clock.advance(15 * 60 + 1)  # the email passcode lives 15 minutes
    ux_error(await verify(api, world, second), 400, "UXU_20012")


async def test_five_wrong_tries_end_the_passcode(api, world: World, services):
    await request_reset(api, world)
    code = await delivered_code(services)
    wrong = [c for c in ("000000", "111111", "222222", "333333", "444444", "555555") if c != code][:5]
    for guess in wrong[:4]:
        ux_error(await verify(api, world, guess), 400, "UXU_20011")
    ux_error(await verify(api, world, wrong[4]), 400, "UXU_20015")
    ux_error(await verify(api, world, code), 400, "UXU_20015")  # even the right one, now


async def test_twenty_wrong_in_a_row_suspend_resets_and_are_audited(api, world: World, services, clock):
    for _ in range(4):  # 4 passcodes x 5 wrong tries = 20 consecutive failures
        await request_reset(api, world, method="103")
        code = await delivered_code(services)
        guesses = [g for g in ("000000", "111111", "222222", "333333", "444444", "555555") if g != code][:5]
        for guess in guesses:
            await verify(api, world, guess)
        clock.advance(61)
    ux_error(await request_reset(api, world, method="103"), 400, "UXU_20005")
    ux_error(await verify(api, world, "123456"), 400, "UXU_20005")
    profile = (await api.get(f"/v1/customers/{C1}", headers=world.headers())).json()
    assert profile["failedPasswordResetCount"] == 20
    async with services.db.reading() as session:
        locked = (await session.scalars(select(AuditEvent).where(AuditEvent.event_type == "reset.locked"))).all()
    assert len(locked) == 1 and locked[0].customer_id == C1 and locked[0].client_id == world.partner.client_id
    clock.advance(86400 + 1)
    world.token = (await get_token(api, world.partner.auth)).json()["access_token"]  # the old one expired
    assert (await request_reset(api, world, method="103")).status_code == 204


async def test_two_simultaneous_right_answers_yield_one_ticket(api, world: World, services):
    await request_reset(api, world)
    code = await delivered_code(services)
    responses = await asyncio.gather(verify(api, world, code), verify(api, world, code))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200, 400], [r.text for r in responses]


async def test_twenty_parallel_wrong_guesses_never_exceed_the_cap(api, world: World, services):
    await request_reset(api, world)
    code = await delivered_code(services)
    guess = "000000" if code != "000000" else "111111"
    responses = await asyncio.gather(*(verify(api, world, guess) for _ in range(20)))
    codes = [r.json()["code"] for r in responses]
    assert set(codes) <= {"UXU_20011", "UXU_20015"}
    async with services.db.reading() as session:
        passcode = (await session.scalars(select(Passcode))).one()
    assert passcode.attempts == 5 and passcode.status == "exhausted"
    assert codes.count("UXU_20011") == 4
    ux_error(await verify(api, world, code), 400, "UXU_20015")


async def test_simultaneous_requests_leave_one_live_passcode(api, world: World, services):
    services.resets.send_rules = ()  # lift the send limits so that the requests race
    responses = await asyncio.gather(*(request_reset(api, world, method="103") for _ in range(8)))
    assert [r.status_code for r in responses] == [204] * 8
    async with services.db.reading() as session:
        statuses = sorted((await session.scalars(select(Passcode.status))).all())
        queued = (await session.scalars(select(OutboxMessage.kind))).all()
    assert statuses == ["active"] + ["superseded"] * 7
    assert queued == ["passcode"] * 8


async def test_the_write_rechecks_the_customer_under_its_lock(api, world: World, services):
    """A customer deleted or deactivated between the request's snapshot and its write: that request
    alone is refused (404 / UXU_20006), the others in the same batch go through."""
    from dataclasses import replace

    from pwreset.customers.service import directory_entry
    from pwreset.resets.service import Actor

    services.resets.send_rules = ()
    pat = await directory_entry(services.db, institution_id="07675", user_id=C1, id_type="CUSTOMER_ID")
    twin = await directory_entry(services.db, institution_id="07675", user_id=C6, id_type="CUSTOMER_ID")
    sam = await directory_entry(services.db, institution_id="07675", user_id=C2, id_type="CUSTOMER_ID")
    async with services.db.transaction() as session:
        await session.execute(update(Customer).where(Customer.id == twin.pk).values(active=False))
    gone = replace(pat, pk="0" * 32)  # as if pruned since the snapshot
    actor = Actor(client_id=None, correlation_id=None)
    results = await asyncio.gather(
        services.resets.request_reset(entry=gone, contact_method_id="101", protocol=None, actor=actor),
        services.resets.request_reset(entry=twin, contact_method_id="601", protocol=None, actor=actor),
        services.resets.request_reset(entry=sam, contact_method_id="201", protocol=None, actor=actor),
        return_exceptions=True,
    )
    assert [getattr(r, "key", r) for r in results] == ["customer.not_found", "reset.customer_inactive", None]
    async with services.db.reading() as session:
        assert len((await session.scalars(select(Passcode))).all()) == 1  # Sam's


async def test_a_customer_deactivated_after_the_send_cannot_verify(api, world: World, services):
    await request_reset(api, world)
    code = await delivered_code(services)
    async with services.db.transaction() as session:
        pat = (Customer.institution_id == "07675") & (Customer.customer_id == C1)
        await session.execute(update(Customer).where(pat).values(active=False))
    ux_error(await verify(api, world, code), 400, "UXU_20006")


# 6.4


async def ticket_for(api, world, services, customer=C1, method="101") -> str:
    await request_reset(api, world, customer=customer, method=method)
    code = await delivered_code(services)
    return (await verify(api, world, code, customer=customer)).json()["resetTicket"]


@pytest.mark.parametrize(("password", "reason"), [
    ("short", "at least 8"), ("x" * 129, "at most 128"), ("my pat.doe password", "login id"),
    ("password123", "too common"), (PAT_PASSWORD, "differ from the current"),
    # Issue 12, item 2: guessable, and built on the institution's or the customer's name.
    ("Welcome1!", "too easy to guess"), ("Summer2024!", "too easy to guess"), ("zaq1@WSX", "too easy to guess"),
    ("Institution07675!", "institution's name"), ("PatDoe2024!", "your name"),
])
async def test_the_password_policy_gives_reasons_and_keeps_the_ticket(api, world: World, services, password, reason):
    ticket = await ticket_for(api, world, services)
    body = ux_error(await set_password(api, world, ticket, password), 400, "UXU_20022")
    assert any(reason in r for r in body["reasons"]), body
    assert (await set_password(api, world, ticket, "a perfectly fine passphrase")).status_code == 204


async def test_unicode_and_spaces_are_welcome(api, world: World, services):
    ticket = await ticket_for(api, world, services)
    assert (await set_password(api, world, ticket, "contraseña con espacios ✓")).status_code == 204


async def test_a_128_character_passphrase_is_accepted(api, world: World, services):
    ticket = await ticket_for(api, world, services)
    passphrase = ("violet kettles argue with midnight trains about " * 3)[:128]
    assert (await set_password(api, world, ticket, passphrase)).status_code == 204


async def test_ticket_refusals(api, world: World, services, clock, ux):
    ux_error(await set_password(api, world, "pwr_rst_unknown", "a perfectly fine passphrase", ux=ux), 400, "UXU_20021")
    ticket = await ticket_for(api, world, services)
    # Bound to its customer: useless on another.
    ux_error(await set_password(api, world, ticket, "a perfectly fine passphrase", customer=C2), 400, "UXU_20021")
    clock.advance(301)
    ux_error(await set_password(api, world, ticket, "a perfectly fine passphrase"), 400, "UXU_20021")
    clock.advance(61)
    fresh = await ticket_for(api, world, services, method="103")
    assert (await set_password(api, world, fresh, "a perfectly fine passphrase")).status_code == 204
    ux_error(await set_password(api, world, fresh, "another fine passphrase"), 400, "UXU_20021")  # single use


# The journey (issue 3, "How we will know")


async def test_a_customer_resets_a_forgotten_password_end_to_end(api, world: World, services):
    partner = world.partner
    await load(services, "07675", [{
        "customerId": E2E, "loginId": "jordan", "password": "old password 2019",
        "contactMethods": [{"id": "71", "protocol": "SMS", "telephoneCountryCode": "1", "contactInfo": "2025550111"}],
    }])
    old = await get_token(api, partner.auth, grant_type="password", username="jordan", password="old password 2019")
    assert old.status_code == 200
    old_tokens = old.json()
    headers = world.headers(old_tokens["access_token"])
    assert (await api.get(f"/v1/customers/{E2E}", headers=headers)).status_code == 200

    assert (await request_reset(api, world, customer=E2E, method="71")).status_code == 204
    code = await delivered_code(services)
    ticket = (await verify(api, world, code, customer=E2E)).json()["resetTicket"]
    assert (await set_password(api, world, ticket, "new passphrase 2026", customer=E2E)).status_code == 204

    # The old tokens stop working, at once.
    assert (await api.get(f"/v1/customers/{E2E}", headers=world.headers(old_tokens["access_token"]))).status_code == 401
    refreshed = await get_token(api, partner.auth, institution_id=None, grant_type="refresh_token",
                                refresh_token=old_tokens["refresh_token"])
    assert refreshed.json()["code"] == "CMN_90016"
    # The new password works, the old one does not.
    new = await get_token(api, partner.auth, grant_type="password", username="JORDAN", password="new passphrase 2026")
    assert new.status_code == 200
    stale = await get_token(api, partner.auth, grant_type="password", username="jordan", password="old password 2019")
    assert stale.json()["code"] == "CMN_90015"
    # The customer is told.
    await services.worker.run_once()
    assert services.sink.sent[-1].kind == "password_changed" and services.sink.sent[-1].destination == "+12025550111"
    async with services.db.reading() as session:
        events = [e.event_type for e in (await session.scalars(
            select(AuditEvent).where(AuditEvent.customer_id == E2E).order_by(AuditEvent.id))).all()]
    assert events[:3] == ["reset.requested", "passcode.verified", "reset.completed"] or (
        {"reset.requested", "passcode.verified", "reset.completed"} <= set(events)
    )
    async with services.db.reading() as session:
        dump = str((await session.execute(select(AuditEvent.details))).all())
    assert code not in dump and "2025550111" not in dump


# Sign-in locks (password grant)


async def test_six_wrong_passwords_lock_until_a_completed_reset(api, world: World, services):
    partner = world.partner
    for _ in range(6):
        response = await get_token(api, partner.auth, grant_type="password", username="pat.doe", password="wrong!")
        assert response.json()["code"] == "CMN_90015"
    locked = await get_token(api, partner.auth, grant_type="password", username="pat.doe", password=PAT_PASSWORD)
    assert locked.json()["code"] == "CMN_90015"
    profile = (await api.get(f"/v1/customers/{C1}", headers=world.headers())).json()
    assert profile["userStatus"]["locked"] is True and profile["failedLoginCount"] == 6
    ticket = await ticket_for(api, world, services)
    assert (await set_password(api, world, ticket, "a fresh passphrase")).status_code == 204
    ok = await get_token(api, partner.auth, grant_type="password", username="pat.doe", password="a fresh passphrase")
    assert ok.status_code == 200


async def test_a_legacy_bcrypt_hash_signs_in_and_is_upgraded(api, world: World, services):
    import bcrypt

    from pwreset.customers.models import Customer

    legacy = bcrypt.hashpw(b"legacy secret 1", bcrypt.gensalt(4)).decode()
    await load(services, "07675", [{"customerId": L1, "loginId": "legacy", "passwordHash": legacy}])
    response = await get_token(api, world.partner.auth, grant_type="password", username="legacy",
                               password="legacy secret 1")
    assert response.status_code == 200
    async with services.db.reading() as session:
        stored = (await session.scalars(select(Customer.password_hash).where(Customer.customer_id == L1))).one()
    assert stored.startswith("$argon2id$")
    again = await get_token(api, world.partner.auth, grant_type="password", username="legacy",
                            password="legacy secret 1")
    assert again.status_code == 200


async def test_an_institution_can_require_longer_passwords(api, world: World, services):
    from pwreset.institutions.service import configure_institution

    async with services.db.transaction() as session:
        await configure_institution(session, institution_id="07675", clock=services.clock, min_password_length=16)
    ticket = await ticket_for(api, world, services)
    body = ux_error(await set_password(api, world, ticket, "fifteen chars!!"), 400, "UXU_20022")
    assert any("at least 16" in r for r in body["reasons"])
    assert (await set_password(api, world, ticket, "sixteen chars ok")).status_code == 204


async def test_sends_are_audited_with_who_asked(api, world: World, services):
    headers = world.headers()
    await api.put(f"/v1/customers/{C1}:reset-password", headers=headers, json={"contactMethodId": "101"})
    await services.worker.run_once()
    async with services.db.reading() as session:
        sent = (await session.scalars(select(AuditEvent).where(AuditEvent.event_type == "message.sent"))).one()
    assert sent.customer_id == C1 and sent.client_id == world.partner.client_id
    assert sent.correlation_id == headers["correlationId"] and sent.details["contactMethodId"] == "101"
    assert "2025550143" not in str(sent.details)


async def test_a_session_older_than_the_password_change_cannot_refresh(api, world: World, services):
    """Even a refresh token the revocation missed (a grant racing the reset) ends at the change."""
    from sqlalchemy import update

    from pwreset.oauth.models import Token

    signed_in = (await get_token(api, world.partner.auth, grant_type="password", username="pat.doe",
                                 password=PAT_PASSWORD)).json()
    ticket = await ticket_for(api, world, services)
    assert (await set_password(api, world, ticket, "a perfectly fine passphrase")).status_code == 204
    async with services.db.transaction() as session:  # as if the revoking UPDATE had missed it
        await session.execute(update(Token).values(revoked_at=None))
    refreshed = await get_token(api, world.partner.auth, institution_id=None, grant_type="refresh_token",
                                refresh_token=signed_in["refresh_token"])
    assert refreshed.json()["code"] == "CMN_90016"


async def test_a_new_reset_or_a_completed_one_voids_older_tickets(api, world: World, services, clock):
    first = await ticket_for(api, world, services)
    clock.advance(61)
    second = await ticket_for(api, world, services, method="103")
    ux_error(await set_password(api, world, first, "a perfectly fine passphrase"), 400, "UXU_20021")
    assert (await set_password(api, world, second, "a perfectly fine passphrase")).status_code == 204


async def test_wrong_customer_passwords_do_not_lock_the_partner_out(api, world: World, services):
    services.auth_failures.rule = services.auth_failures.rule.__class__("auth-failures", 3, 300)
    for _ in range(5):
        wrong = await get_token(api, world.partner.auth, grant_type="password", username="sam", password="nope!")
        assert wrong.json()["code"] == "CMN_90015"
    assert (await get_token(api, world.partner.auth)).status_code == 200
