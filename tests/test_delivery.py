"""The outbox and the interim in-process dispatcher."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from pwreset.delivery.dispatch import MAX_ATTEMPTS
from pwreset.delivery.models import OutboxMessage
from pwreset.delivery.outbox import Message


async def queue(services, text: str, **extra) -> None:
    async with services.db.transaction() as session:
        services.outbox.enqueue(
            session, Message(institution_id="07675", kind="passcode", channel="SMS", destination="+12025550143",
                             text=text, **extra)
        )


async def statuses(services) -> dict[str, str]:
    async with services.db.reading() as session:
        rows = (await session.scalars(select(OutboxMessage))).all()
        return {services.outbox.open(r).text: r.status for r in rows}


async def test_one_failing_message_neither_undoes_nor_holds_up_the_others(services, monkeypatch):
    await queue(services, "first")
    await queue(services, "poison")
    await queue(services, "third")
    real_send = services.sink.send

    async def flaky(message):
        if message.text == "poison":
            raise ConnectionError("provider down")
        await real_send(message)

    monkeypatch.setattr(services.sink, "send", flaky)
    await services.dispatcher.run_once()
    assert await statuses(services) == {"first": "sent", "poison": "pending", "third": "sent"}
    for _ in range(MAX_ATTEMPTS):
        await services.dispatcher.run_once()
    assert (await statuses(services))["poison"] == "dead"
    assert [m.text for m in services.sink.sent] == ["first", "third"]  # nothing sent twice


async def test_a_passcode_message_past_its_passcode_is_dropped_not_sent_late(services, clock):
    await queue(services, "late", not_after=clock.now() + timedelta(seconds=600))
    clock.advance(601)
    await services.dispatcher.run_once()
    assert await statuses(services) == {"late": "expired"}
    assert not services.sink.sent
