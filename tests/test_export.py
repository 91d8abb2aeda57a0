"""``pwreset customers export``: the import format back, and a round trip that changes nothing."""

from __future__ import annotations

from sqlalchemy import select

from pwreset.customers.exporter import export
from pwreset.customers.models import Customer
from tests.directory_support import C1, C2, C3, C4, C5, C6, DIRECTORY, load
from tests.test_accounts import CHECKING, LOAN, PESO, SAVINGS


async def records(services, institution_id: str = "07675", **options) -> list[dict]:
    return [r async for r in export(services.db, institution_id=institution_id, **options)]


async def test_export_then_import_changes_nothing(services, make_partner, monkeypatch):
    await make_partner("07675")
    await make_partner("11111")
    rows = [dict(r) for r in DIRECTORY["07675"]]
    rows[0] = {**rows[0], "accounts": [CHECKING, SAVINGS, LOAN, PESO], "language": "es"}
    assert not (await load(services, "07675", rows)).refused
    assert not (await load(services, "11111", DIRECTORY["11111"])).refused
    monkeypatch.setattr("pwreset.customers.exporter.PAGE", 4)  # several pages
    exported = await records(services)
    assert sorted(r["customerId"] for r in exported) == sorted([C1, C2, C3, C4, C5, C6])  # 07675 only
    assert all("passwordHash" not in r and "password" not in r for r in exported)
    pat = next(r for r in exported if r["customerId"] == C1)
    assert [a["id"] for a in pat["accounts"]] == ["chk-1", "sav-1", "loan-1", "clp-1"]
    assert pat["accounts"][0]["currentBalance"] == {"currencyCode": "USD", "amount": "1520.35"}
    assert pat["accounts"][1]["currentBalance"]["amount"] == "8200"
    assert pat["contactMethods"][0]["enrolledDateTime"].startswith("2022-03-31T00:00:00")
    report = await load(services, "07675", exported)
    assert (report.unchanged, report.created, report.updated, report.refused) == (6, 0, 0, [])
    secret = await records(services, with_secrets=True)
    async with services.db.reading() as session:
        stored = await session.scalar(select(Customer.password_hash).where(Customer.customer_id == C1))
    assert next(r for r in secret if r["customerId"] == C1)["passwordHash"] == stored
    assert (await load(services, "07675", secret)).unchanged == 6
