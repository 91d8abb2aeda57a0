"""The outbox worker: claims, leases, retries with backoff, dead and expired messages, waking,
stopping, templates, the operator tools; and a passcode travelling to real local providers."""

from __future__ import annotations

import asyncio
import re
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from pwreset.audit.models import AuditEvent
from pwreset.delivery import admin
from pwreset.delivery.models import OutboxMessage
from pwreset.delivery.outbox import Message, Outbox
from pwreset.delivery.providers import SmtpProvider, TwilioProvider
from pwreset.delivery.providers.base import Accepted, Outgoing, PermanentFailure, TransientFailure
from pwreset.delivery.worker import Worker, backoff
from pwreset.institutions.service import create_institution
from tests.directory_support import C1, World
from tests.provider_server import fake_provider, smtp_server


class Scripted:
    """A provider double for the worker's own rules (the adapters are tested on real servers)."""

    name = "scripted"

    def __init__(self) -> None:
        self.sent: list[Outgoing] = []
        self.failures: dict[str, list[Exception]] = {}
        self.gate: asyncio.Event | None = None
        self.started = asyncio.Event()
        self.delivered = asyncio.Event()

    async def send(self, message: Outgoing) -> Accepted:
        self.started.set()
        if self.gate is not None:
            await self.gate.wait()
        queued = self.failures.get(message.text)
        if queued:
            raise queued.pop(0)
        self.sent.append(message)
        self.delivered.set()
        return Accepted(f"ref-{message.id}")

    async def close(self) -> None:
        return None


@pytest.fixture
async def scripted(services) -> Scripted:
    async with services.db.transaction() as session:
        await create_institution(session, institution_id="07675", name="Credit Union", clock=services.clock)
    provider = Scripted()
    services.worker.providers = {"SMS": provider, "VOICE": provider, "EMAIL": provider}
    return provider


async def queue(services, code: str = "", *, outbox: Outbox | None = None, **extra: Any) -> str:
    fields: dict[str, Any] = {"institution_id": "07675", "kind": "passcode", "channel": "SMS",
                              "destination": "+12025550143", "variables": {"code": code, "minutes": 10}}
    async with services.db.transaction() as session:
        row = await (outbox or services.outbox).enqueue(session, Message(**{**fields, **extra}))
    return row.id


async def rows(services) -> dict[str, OutboxMessage]:
    async with services.db.reading() as session:
        return {r.id: r for r in (await session.scalars(select(OutboxMessage))).all()}


async def events(services, event_type: str) -> list[AuditEvent]:
    async with services.db.reading() as session:
        return list((await session.scalars(select(AuditEvent).where(AuditEvent.event_type == event_type))).all())


def code_in(text: str) -> str:
    found = re.search(r"\b(\d{6})\b", text) or re.search(r"code is: ((?:\d, ){5}\d)", text)
    assert found, text
    return found.group(1).replace(", ", "")


# Retries, dead and expired messages


async def test_one_failing_message_neither_undoes_nor_holds_up_the_others(services, scripted, clock):
    first, poison, third = [await queue(services, c) for c in ("111111", "222222", "333333")]
    poison_text = "Credit Union: your password reset code is 222222. It expires in 10 min. Never share it."
    scripted.failures[poison_text] = [TransientFailure("HTTP 503")] * 3
    assert await services.worker.run_once() == 3
    state = await rows(services)
    assert (state[first].status, state[poison].status, state[third].status) == ("sent", "pending", "sent")
    assert state[poison].last_error == "HTTP 503" and state[poison].available_at > clock.now()
    assert await services.worker.run_once() == 0  # not due before its backoff
    for _ in range(3):
        clock.advance(services.settings.outbox_backoff_cap)
        await services.worker.run_once()
    state = await rows(services)
    assert state[poison].status == "sent" and state[poison].attempts == 4
    codes = [code_in(m.text) for m in scripted.sent]
    assert sorted(codes[:2]) == ["111111", "333333"] and codes[2:] == ["222222"]  # none twice
    sent = await events(services, "message.sent")
    assert len(sent) == 3 and all(e.details["destination"] != "+12025550143" for e in sent)


async def test_backoff_grows_exponentially_with_jitter_up_to_the_cap():
    import random

    rng = random.Random(7)
    for attempt, full in ((1, 2.0), (2, 4.0), (3, 8.0), (10, 300.0)):
        delays = [backoff(attempt, base=2.0, cap=300.0, rng=rng) for _ in range(50)]
        assert all(full / 2 <= d <= full for d in delays) and len(set(delays)) > 1


async def test_permanent_failures_and_exhausted_retries_are_dead_with_the_reason(services, scripted, clock):
    refused = await queue(services, "444444", kind="password_changed", not_after=None)
    flaky = await queue(services, "555555", channel="EMAIL", destination="pat@example.com")
    scripted.failures["Credit Union: your online banking password was changed. Not you? Call us now."] = [
        PermanentFailure("HTTP 400")]
    email_text = ("Your Credit Union password reset code is 555555.\n\nIt expires in 10 minutes. If you did not ask "
                  "to reset your password, ignore this message and do not share the code.")
    scripted.failures[email_text] = [TransientFailure("timeout")] * 50
    services.settings.outbox_max_attempts = 3
    services.settings.outbox_backoff_base = 1
    for _ in range(3):
        await services.worker.run_once()
        clock.advance(10)
    state = await rows(services)
    assert (state[refused].status, state[refused].last_error) == ("dead", "HTTP 400")
    assert state[flaky].status == "dead" and state[flaky].last_error == "attempts exhausted; last: timeout"
    assert state[flaky].attempts == 3
    dead = {e.details["messageId"]: e for e in await events(services, "message.dead")}
    assert set(dead) == {refused, flaky} and dead[refused].details["reason"] == "HTTP 400"
    assert scripted.sent == []


async def test_retry_after_is_honoured(services, scripted, clock):
    message = await queue(services, "666666")
    text = "Credit Union: your password reset code is 666666. It expires in 10 min. Never share it."
    scripted.failures[text] = [TransientFailure("HTTP 429", retry_after=120)]
    await services.worker.run_once()
    assert (await rows(services))[message].available_at >= clock.now() + timedelta(seconds=120)


async def test_a_passcode_message_past_its_passcode_is_dropped_not_sent_late(services, scripted, clock):
    late = await queue(services, "777777", not_after=clock.now() + timedelta(seconds=600))
    doomed = await queue(services, "888888", not_after=clock.now() + timedelta(seconds=900))
    clock.advance(601)
    text = "Credit Union: your password reset code is 888888. It expires in 10 min. Never share it."
    scripted.failures[text] = [TransientFailure("HTTP 429", retry_after=600)]  # would come back too late
    await services.worker.run_once()
    state = await rows(services)
    assert state[late].status == "expired" and state[doomed].status == "expired"
    assert scripted.sent == []
    assert {e.details["messageId"] for e in await events(services, "message.expired")} == {late, doomed}


# Claims and leases


async def test_concurrent_claims_never_share_a_message(services, scripted):
    ids = {await queue(services, f"{n:06d}") for n in range(30)}
    claims = await asyncio.gather(*(services.worker.claim(7) for _ in range(6)))
    claimed = [row.id for batch in claims for row, _ in batch]
    assert len(claimed) == len(set(claimed)) == 30 and set(claimed) == ids


async def test_a_dead_workers_claim_is_taken_over_after_the_lease(services, scripted, clock):
    message = await queue(services, "121212")
    (row, old_claim), = await services.worker.claim(10)  # this worker then dies without an outcome
    assert await services.worker.claim(10) == []  # held while the lease runs
    clock.advance(services.settings.outbox_lease + 1)
    assert await services.worker.run_once() == 1
    state = (await rows(services))[message]
    assert state.status == "sent" and state.attempts == 2 and len(scripted.sent) == 1
    # The old claim can no longer record an outcome over the new one, nor audit it.
    stale = services.worker._failed(row, old_claim, PermanentFailure("late"))
    await services.worker.outcomes.submit(stale)
    assert (await rows(services))[message].status == "sent"
    assert await events(services, "message.dead") == []


async def test_a_message_that_kills_its_workers_ends_dead(services, scripted, clock):
    message = await queue(services, "131313")
    for _ in range(services.settings.outbox_max_attempts):
        await services.worker.claim(10)  # each worker dies mid-send
        clock.advance(services.settings.outbox_lease + 1)
    await services.worker.run_once()
    state = (await rows(services))[message]
    assert state.status == "dead" and "attempts exhausted" in state.last_error and scripted.sent == []


async def test_a_message_queued_by_the_previous_version_is_still_sent(services, scripted):
    """Rows sealed before delivery rendered at send time carry their text, not variables."""
    import orjson

    message = await queue(services, "252525")
    legacy = orjson.dumps({"destination": "+12025550143", "subject": None, "text": "Old text 252525"})
    async with services.db.transaction() as session:
        row = await session.get(OutboxMessage, message)
        row.sealed = services.outbox.sealer.seal(legacy)
    await services.worker.run_once()
    assert scripted.sent[-1].text == "Old text 252525"


# Waking and stopping


async def test_a_worker_on_another_node_wakes_for_a_new_message(services, scripted, backend):
    """No in-process wake-up here: the message is queued through another Outbox, as another node would.
    PostgreSQL's NOTIFY wakes the worker (its fallback poll is set to a minute); SQLite's poll does."""
    worker: Worker = services.worker
    worker.listen_poll = 60.0
    task = asyncio.create_task(worker.run())
    try:
        await asyncio.wait_for(worker.listening.wait(), timeout=10)
        other_node = Outbox(sealer=services.outbox.sealer, clock=services.clock)
        await queue(services, "141414", outbox=other_node)
        await asyncio.wait_for(scripted.delivered.wait(), timeout=10)
    finally:
        worker.stop()
        await task
    assert code_in(scripted.sent[0].text) == "141414"


async def test_a_dropped_listen_connection_is_opened_again(services, scripted, backend):
    worker: Worker = services.worker
    worker.listen_poll = 0.05
    task = asyncio.create_task(worker.run())
    try:
        await asyncio.wait_for(worker.listening.wait(), timeout=10)
        first = worker._listener
        if backend != "postgresql":
            assert first is None  # SQLite: no LISTEN, the worker polls
            return
        assert first is not None
        await first.close()  # the database restarted, a proxy dropped it...
        await asyncio.wait_for(worker.relistened.wait(), timeout=10)
        assert worker._listener is not None and worker._listener is not first
        other_node = Outbox(sealer=services.outbox.sealer, clock=services.clock)
        worker.listen_poll = 60.0  # from here on only NOTIFY can wake it
        await queue(services, "262626", outbox=other_node)
        await asyncio.wait_for(scripted.delivered.wait(), timeout=10)
    finally:
        worker.stop()
        await task


async def test_stopping_finishes_the_sends_in_flight(services, scripted):
    scripted.gate = asyncio.Event()
    message = await queue(services, "151515")
    task = asyncio.create_task(services.worker.run())
    await asyncio.wait_for(scripted.started.wait(), timeout=10)
    services.worker.stop()  # SIGTERM arrives mid-send
    assert not task.done()
    scripted.gate.set()
    await asyncio.wait_for(task, timeout=10)
    assert (await rows(services))[message].status == "sent"


# Templates


async def test_an_institution_template_is_used_and_checked(services, scripted):
    async with services.db.transaction() as session:
        await admin.set_template(
            session, institution_id="07675", kind="passcode", channel="SMS", language="en",
            body="{{ institution }} code {{ code }}", subject=None, html=None, clock=services.clock,
        )
    await queue(services, "161616")
    await services.worker.run_once()
    assert scripted.sent[-1].text == "Credit Union code 161616"
    for body, problem in (("{{ institution }} " + "x" * 120, "more than one segment"),
                          ("{{ nope }}", "does not render"), ("{% if %}", "does not render")):
        async with services.db.transaction() as session:
            with pytest.raises(admin.OutboxError, match=problem):
                await admin.set_template(session, institution_id="07675", kind="passcode", channel="SMS",
                                         language="en", body=body, subject=None, html=None, clock=services.clock)


async def test_shipped_texts_speak_the_customers_language_and_fit_one_sms(services, scripted):
    await queue(services, "171717", language="es-MX")
    await queue(services, "181818", channel="VOICE")
    await queue(services, "191919", channel="EMAIL", destination="pat@example.com", language="es")
    await services.worker.run_once()
    by_channel = {m.channel: m for m in scripted.sent}
    sms, voice, email = by_channel["SMS"], by_channel["VOICE"], by_channel["EMAIL"]
    assert sms.text.startswith("Credit Union: su codigo") and len(sms.text) <= 160
    assert voice.text.count("1, 8, 1, 8, 1, 8") == 2
    assert email.subject == "Su código para restablecer la contraseña" and "191919" in (email.html or "")


# Operator tools


async def test_retry_purge_and_list(services, scripted, clock):
    dead = await queue(services, "202020", kind="password_changed")
    scripted.failures["Credit Union: your online banking password was changed. Not you? Call us now."] = [
        PermanentFailure("HTTP 404")]
    expired = await queue(services, "212121", not_after=clock.now() + timedelta(seconds=60))
    clock.advance(61)
    await services.worker.run_once()
    async with services.db.transaction() as session:
        assert [m.id for m in await admin.list_messages(session, status="dead")] == [dead]
        with pytest.raises(admin.OutboxError, match="expired"):
            await admin.retry(session, message_id=expired, clock=clock)
        with pytest.raises(admin.OutboxError, match="no message"):
            await admin.retry(session, message_id="nope", clock=clock)
        await admin.retry(session, message_id=dead, clock=clock)
    await services.worker.run_once()
    assert (await rows(services))[dead].status == "sent"
    clock.advance(86400 * 31)
    await queue(services, "222222")  # still queued: never purged
    async with services.db.transaction() as session:
        assert await admin.purge(session, older_than=timedelta(days=30), clock=clock) == 2
    assert [r.status for r in (await rows(services)).values()] == ["pending"]


# End to end: a reset's passcode reaches real local providers


async def test_a_passcode_travels_by_sms_and_email_to_real_providers(api, world: World, services, clock):
    async with fake_provider() as twilio, smtp_server() as (mailbox, port):
        sms = TwilioProvider(account_sid="AC" + "1" * 32, auth_token="t" * 32, from_number="+12025550100",
                             base_url=twilio.url, timeout=2)
        email = SmtpProvider(host="127.0.0.1", port=port, sender="reset@cu.example", security="none", timeout=2)
        services.worker.providers = {"SMS": sms, "VOICE": sms, "EMAIL": email}
        for method in ("101", "103"):
            response = await api.put(f"/v1/customers/{C1}:reset-password", headers=world.headers(),
                                     json={"contactMethodId": method})
            assert response.status_code == 204
            await services.worker.run_once()
            clock.advance(61)  # past the per-customer send limit
        await sms.close()
    texted = code_in(twilio.requests[-1].form["Body"])
    assert twilio.requests[-1].form["To"] == "+12025550143"
    mailed = mailbox.messages[-1]
    assert mailed["To"] == "pat@example.com"
    emailed = code_in(mailed.get_body(("plain",)).get_content())
    assert texted != emailed  # the second passcode superseded the first
    verified = await api.post(f"/v1/customers/{C1}:verify-passcode", headers=world.headers(),
                              json={"passcode": emailed})
    assert verified.status_code == 200, verified.text


# Observability


async def test_metrics_and_logs_show_the_message_id_and_a_masked_destination(services, scripted, caplog, clock):
    from prometheus_client import REGISTRY

    def sample(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    before = {o: sample("pwreset_outbox_messages_total", channel="SMS", outcome=o) for o in ("queued", "sent", "dead")}
    seen = sample("pwreset_outbox_delivery_seconds_count", channel="SMS")
    sent = await queue(services, "232323")
    dead = await queue(services, "242424", kind="password_changed")
    scripted.failures["Credit Union: your online banking password was changed. Not you? Call us now."] = [
        PermanentFailure("HTTP 400")]
    with caplog.at_level("INFO", logger="pwreset.delivery"):
        await services.worker.run_once()
    assert sample("pwreset_outbox_messages_total", channel="SMS", outcome="queued") == before["queued"] + 2
    assert sample("pwreset_outbox_messages_total", channel="SMS", outcome="sent") == before["sent"] + 1
    assert sample("pwreset_outbox_messages_total", channel="SMS", outcome="dead") == before["dead"] + 1
    assert sample("pwreset_outbox_delivery_seconds_count", channel="SMS") == seen + 1
    records = {r.message_id: r for r in caplog.records if hasattr(r, "message_id")}
    assert set(records) == {sent, dead}
    logged = caplog.text + " ".join(str(vars(r)) for r in caplog.records)
    assert "+12025550143" not in logged and "232323" not in logged
    assert all("•" in r.destination for r in records.values())
