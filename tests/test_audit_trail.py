"""Audit evidence (issue 14, item 5): origin, the sealed chain and its verification, export, retention."""

from __future__ import annotations

import json

import httpx
import pytest
from sqlalchemy import delete, func, insert, select, update
from typer.testing import CliRunner

from pwreset.app import create_app
from pwreset.audit.chain import BLOCK, cef, jsonl
from pwreset.audit.models import AuditEvent, AuditExport, AuditSeal
from pwreset.container import build_container
from tests.directory_support import C1, World
from tests.support import get_token, ux_error


@pytest.fixture
def directory():
    return None


async def reset(api, world: World, **headers: str) -> httpx.Response:
    return await api.put(f"/v1/customers/{C1}:reset-password", headers={**world.headers(), **headers},
                         json={"contactMethodId": "103"})


async def requested(services) -> AuditEvent:
    async with services.db.reading() as session:
        return (await session.scalars(select(AuditEvent).where(AuditEvent.event_type == "reset.requested")
                                      .order_by(AuditEvent.id.desc()))).first()


# origin


async def test_an_event_records_the_client_address_through_trusted_proxies_and_its_user_agent(api, world, services):
    response = await reset(api, world, **{"X-Forwarded-For": "198.51.100.7, 203.0.113.9",
                                          "User-Agent": "PartnerApp/2.1 (+ios)"})
    assert response.status_code == 204
    event = await requested(services)
    # 127.0.0.1 (the test's peer) is a trusted proxy by default: the address to its left is the client's.
    assert event.origin_ip == "203.0.113.9" and event.user_agent == "PartnerApp/2.1 (+ios)"
    assert event.originating_ip is None


async def test_an_untrusted_peer_cannot_choose_its_address(settings, clock, api, world, services):
    other = settings.model_copy(update={"trusted_proxies": "10.0.0.0/8"})
    app = create_app(other, container=services, background=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://pwreset.test") as client:
        response = await reset(client, world, **{"X-Forwarded-For": "203.0.113.9"})
    assert response.status_code == 204
    assert (await requested(services)).origin_ip == "127.0.0.1"


async def test_only_a_trusted_partner_names_the_customers_address(api, world, services):
    assert (await reset(api, world, originating_ip="192.0.2.44")).status_code == 204
    assert (await requested(services)).originating_ip is None  # not trusted: ignored
    async with services.db.transaction() as session:
        await services.oauth.set_trusted_origin(session, shared_key=world.partner.shared_key, trusted=True)
    token = (await get_token(api, world.partner.auth)).json()["access_token"]
    services.clock.advance(61)  # (the send limit: one a minute)
    response = await api.put(f"/v1/customers/{C1}:reset-password",
                             headers={**world.headers(token), "originating_ip": "2001:DB8::0:1"},
                             json={"contactMethodId": "103"})
    assert response.status_code == 204
    assert (await requested(services)).originating_ip == "2001:db8::1"
    bad = await api.put(f"/v1/customers/{C1}:reset-password", json={"contactMethodId": "103"},
                        headers={**world.headers(token), "originating_ip": "999.1.1.1"})
    ux_error(bad, 400, "UXU_10008")


# the chain


async def write_events(services, n: int, institution_id: str = "07675") -> None:
    async with services.db.transaction() as session:
        await session.execute(insert(AuditEvent), [
            {"occurred_at": services.clock.now(), "event_type": "test.event", "outcome": "success", "actor": "api",
             "institution_id": institution_id, "details": {"n": i}} for i in range(n)
        ])


async def findings(services, chain: str = "07675") -> set[str]:
    report = await services.audit_chain.verify(chain)
    return {finding.kind for finding in report.findings}


async def first_seal_count(services) -> int:
    async with services.db.reading() as session:
        return await session.scalar(select(AuditSeal.count).where(AuditSeal.chain == "07675", AuditSeal.seq == 1))


async def sealed_chain(services, n: int = 10) -> list[int]:
    await write_events(services, n)
    assert await services.audit_chain.seal() >= n
    assert await findings(services) == set()
    async with services.db.reading() as session:
        return list((await session.scalars(select(AuditEvent.id).where(AuditEvent.institution_id == "07675")
                                            .order_by(AuditEvent.id))).all())


async def test_a_sealed_chain_verifies_and_says_what_waits(services, make_partner):
    await make_partner("07675")
    await sealed_chain(services, 5)
    await write_events(services, 3)
    report = await services.audit_chain.verify("07675")
    assert report.intact and report.unsealed == 3 and report.seals == 1 and report.head_seq == 1
    await services.audit_chain.seal()
    report = await services.audit_chain.verify("07675")
    async with services.db.reading() as session:
        total = await session.scalar(select(func.count()).where(AuditEvent.institution_id == "07675"))
    assert report.intact and report.unsealed == 0 and report.seals == 2 and report.events == total >= 8


async def test_an_edited_event_is_caught(services, make_partner):
    await make_partner("07675")
    ids = await sealed_chain(services)
    async with services.db.transaction() as session:
        await session.execute(update(AuditEvent).where(AuditEvent.id == ids[4]).values(outcome="denied"))
    report = await services.audit_chain.verify("07675")
    assert [(f.kind, f.event_id) for f in report.findings] == [("edited", ids[4])]


async def test_a_deleted_event_is_caught(services, make_partner):
    await make_partner("07675")
    ids = await sealed_chain(services)
    async with services.db.transaction() as session:
        await session.execute(delete(AuditEvent).where(AuditEvent.id == ids[3]))
    assert await findings(services) == {"deleted"}


async def test_an_inserted_event_is_caught_sealed_or_not(services, make_partner):
    await make_partner("07675")
    ids = await sealed_chain(services)
    async with services.db.transaction() as session:
        event = await session.get(AuditEvent, ids[0])
        await session.execute(insert(AuditEvent).values(
            occurred_at=event.occurred_at, event_type="reset.completed", outcome="password_changed", actor="api",
            institution_id="07675", details={}, seal_id=event.seal_id, mac=event.mac,
        ))
    assert await findings(services) == {"inserted", "edited"}


async def test_reordered_events_are_caught(services, make_partner):
    await make_partner("07675")
    ids = await sealed_chain(services)
    a, b = ids[2], ids[5]
    async with services.db.transaction() as session:  # swap two events, each with its own mac
        await session.execute(update(AuditEvent).where(AuditEvent.id == a).values(id=-1))
        await session.execute(update(AuditEvent).where(AuditEvent.id == b).values(id=a))
        await session.execute(update(AuditEvent).where(AuditEvent.id == -1).values(id=b))
    assert await findings(services) == {"reordered"}


async def test_a_removed_seal_and_a_rewritten_one_are_caught(services, make_partner):
    await make_partner("07675")
    await sealed_chain(services, 3)
    for _ in range(2):
        await write_events(services, 3)
        await services.audit_chain.seal()
    async with services.db.transaction() as session:
        middle = (await session.scalars(select(AuditSeal).where(AuditSeal.seq == 2, AuditSeal.chain == "07675"))).one()
        await session.execute(delete(AuditEvent).where(AuditEvent.seal_id == middle.id))
        await session.execute(delete(AuditSeal).where(AuditSeal.id == middle.id))
    assert await findings(services) == {"missing_seal", "broken_link"}


async def test_a_rewritten_seal_digest_breaks_the_link_after_it(services, make_partner):
    await make_partner("07675")
    await sealed_chain(services, 3)
    await write_events(services, 3)
    await services.audit_chain.seal()
    async with services.db.transaction() as session:
        await session.execute(update(AuditSeal).where(AuditSeal.seq == 1, AuditSeal.chain == "07675")
                              .values(digest="f" * 64))
    assert "broken_link" in await findings(services)


async def test_large_backlogs_seal_in_blocks_and_chains_stay_apart(services, make_partner):
    await make_partner("07675")
    await make_partner("11111")
    await write_events(services, BLOCK + 5)
    await write_events(services, 4, "11111")
    await services.audit_chain.seal()
    first, second = await services.audit_chain.verify("07675"), await services.audit_chain.verify("11111")
    assert first.intact and first.seals == 2 and second.intact and second.seals == 1
    async with services.db.transaction() as session:  # an event moved to another institution's chain
        moved = (await session.scalars(select(AuditEvent.id).where(AuditEvent.institution_id == "11111"))).first()
        await session.execute(update(AuditEvent).where(AuditEvent.id == moved).values(institution_id="07675"))
    assert "edited" in await findings(services, "11111")


# export and retention


async def test_export_streams_every_event_in_range_as_jsonl_and_cef(services, make_partner, api, world):
    await reset(api, world, **{"User-Agent": "Agent|with=odd\\chars"})
    await services.audit_chain.seal()
    rows = [row async for row in services.audit_chain.export("07675", since=services.clock.now().replace(year=2000),
                                                              until=services.clock.now().replace(year=2100))]
    async with services.db.reading() as session:
        total = await session.scalar(select(func.count()).where(AuditEvent.institution_id == "07675"))
    assert len(rows) == total and [r.id for r in rows] == sorted(r.id for r in rows)
    line = json.loads(jsonl(rows[-1]))
    assert line["eventType"] == "reset.requested" and line["seal"] == 1 and len(line["mac"]) == 64
    assert line["userAgent"] == "Agent|with=odd\\chars" and line["originIp"] == "127.0.0.1"
    record = cef(rows[-1], version="1.0").decode()
    assert record.startswith("CEF:0|pwreset|pwreset|1.0|reset.requested|reset.requested|3|")
    assert "requestClientApplication=Agent|with\\=odd\\\\chars" in record and record.count("\n") == 1


async def test_purge_keeps_the_retention_and_what_was_not_exported(services, make_partner):
    await make_partner("07675")
    old_start = services.clock.now()
    await sealed_chain(services, 4)
    services.clock.advance(401 * 86400)
    await write_events(services, 2)  # young: inside the retention
    kept = await services.audit_chain.purge("07675", retention_days=400)
    assert (kept.seals, kept.events, kept.uncovered) == (0, 0, 1)
    sealed = await first_seal_count(services)  # the 4, and the institution's and its client's creation
    assert sealed >= 4
    await services.audit_chain.record_export("07675", since=old_start.replace(year=2000), until=services.clock.now(),
                                             fmt="jsonl", events=0, started_at=services.clock.now())
    purged = await services.audit_chain.purge("07675", retention_days=400)
    assert (purged.seals, purged.events, purged.uncovered) == (1, sealed, 0)
    report = await services.audit_chain.verify("07675")
    assert report.intact and report.purged_seals == 1
    async with services.db.reading() as session:
        left = (await session.scalars(select(AuditEvent.event_type).where(AuditEvent.institution_id == "07675"))).all()
        exports = (await session.scalars(select(AuditExport))).all()
    assert left.count("test.event") == 2 and "audit.purged" in left and len(exports) == 1


async def test_force_purges_the_unexported_but_never_inside_the_retention(services, make_partner):
    await make_partner("07675")
    await sealed_chain(services, 4)
    services.clock.advance(399 * 86400)
    inside = await services.audit_chain.purge("07675", retention_days=400, force=True)
    assert (inside.seals, inside.events) == (0, 0)
    services.clock.advance(2 * 86400)
    forced = await services.audit_chain.purge("07675", retention_days=400, force=True)
    assert (forced.seals, forced.events) == (1, await first_seal_count(services))


def test_the_commands_seal_verify_export_and_refuse_a_tampered_chain(tmp_path, database_url, monkeypatch):
    from pwreset.cli.main import app
    from tests.conftest import TEST_SECRET_KEY

    monkeypatch.setenv("PWRESET_DATABASE_URL", database_url)
    monkeypatch.setenv("PWRESET_SECRET_KEY", TEST_SECRET_KEY)
    runner = CliRunner()
    assert runner.invoke(app, ["institutions", "create", "07675", "--name", "Demo CU"]).exit_code == 0
    verified = runner.invoke(app, ["audit", "verify", "--institution", "07675", "--seal"])
    assert verified.exit_code == 0 and "intact" in verified.output and "1 events checked" in verified.output
    out = tmp_path / "audit.cef"
    exported = runner.invoke(app, ["audit", "export", "--institution", "07675", "--format", "cef", "-o", str(out)])
    assert exported.exit_code == 0, exported.output
    assert out.read_text().startswith("CEF:0|pwreset|pwreset|") and "institution.created" in out.read_text()

    async def tamper() -> None:
        from pwreset.config import Settings

        services = build_container(Settings(database_url=database_url, secret_key=TEST_SECRET_KEY))
        async with services.db.transaction() as session:
            await session.execute(update(AuditEvent).values(actor="system"))
        await services.close()

    import asyncio

    asyncio.run(tamper())
    refused = runner.invoke(app, ["audit", "verify", "--institution", "07675"])
    assert refused.exit_code == 1 and "TAMPERED edited" in refused.output


async def test_a_running_worker_seals_what_is_written(services, make_partner):
    import asyncio

    await make_partner("07675")
    await write_events(services, 7)
    sealing, done = services.audit_chain.seal, asyncio.Event()

    async def seal_and_tell(**kwargs):  # the worker's own call, reported to the test
        sealed = await sealing(**kwargs)
        if sealed:
            done.set()
        return sealed

    services.audit_chain.seal = seal_and_tell
    runner = asyncio.create_task(services.worker.run())
    try:
        await asyncio.wait_for(done.wait(), timeout=20)
    finally:
        services.worker.stop()
        await runner
    report = await services.audit_chain.verify("07675")
    assert report.intact and report.unsealed == 0 and report.events >= 7 and report.seals >= 1


# the security review's attacks on the chain (each passed unnoticed before its fix)


async def test_a_seal_marked_purged_without_the_key_hides_nothing(services, make_partner):
    await make_partner("07675")
    ids = await sealed_chain(services)
    async with services.db.transaction() as session:
        await session.execute(update(AuditEvent).where(AuditEvent.id == ids[4]).values(outcome="denied"))
        await session.execute(update(AuditSeal).where(AuditSeal.chain == "07675", AuditSeal.seq == 1)
                              .values(purged_at=services.clock.now()))
    assert await findings(services) == {"forged_purge", "inserted"}


async def test_purge_cannot_be_steered_by_backdated_seals_or_forged_exports(services, make_partner):
    await make_partner("07675")
    await sealed_chain(services, 8)
    long_ago = services.clock.now().replace(year=2020)
    async with services.db.transaction() as session:
        await session.execute(update(AuditSeal).where(AuditSeal.chain == "07675")
                              .values(first_at=long_ago, last_at=long_ago))
        await session.execute(insert(AuditExport).values(
            chain="07675", since=long_ago.replace(year=2019), until=services.clock.now(), format="jsonl", events=8,
            exported_at=services.clock.now(), started_at=services.clock.now(), mac="0" * 64,
        ))
    purged = await services.audit_chain.purge("07675", retention_days=400)
    assert (purged.seals, purged.events, purged.tampered) == (0, 0, 1)
    assert "reordered" in await findings(services)  # the seal's own fields are not the sealed ones


async def test_an_event_backdated_into_a_later_seal_is_caught(services, make_partner):
    await make_partner("07675")
    await sealed_chain(services, 3)
    services.clock.advance(3 * 3600)
    async with services.db.transaction() as session:
        await session.execute(insert(AuditEvent).values(
            occurred_at=services.clock.now().replace(year=2025), event_type="reset.completed",
            outcome="password_changed", actor="api", institution_id="07675", details={},
        ))
    await services.audit_chain.seal()
    assert await findings(services) == {"backdated"}


async def test_a_backlog_of_old_events_seals_clean(services, make_partner):
    """The events an upgrade finds unsealed are old, and in order: several blocks of them are not back-dated."""
    from datetime import timedelta

    start = services.clock.now() - timedelta(days=400)
    async with services.db.transaction() as session:
        await session.execute(insert(AuditEvent), [
            {"occurred_at": start + timedelta(minutes=n), "event_type": "test.event", "outcome": "success",
             "actor": "api", "institution_id": "07675", "details": {}} for n in range(BLOCK + 10)
        ])
    await make_partner("07675")  # (events of today after them)
    await services.audit_chain.seal()
    report = await services.audit_chain.verify("07675")
    assert report.intact and report.seals == 2, report.findings[:3]
    async with services.db.transaction() as session:  # one of them rewritten to the future's past: caught
        await session.execute(insert(AuditEvent).values(
            occurred_at=start, event_type="reset.completed", outcome="password_changed", actor="api",
            institution_id="07675", details={}))
    await services.audit_chain.seal()
    assert await findings(services) == {"backdated"}
