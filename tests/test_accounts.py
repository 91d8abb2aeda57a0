"""Contract section 8: the Accounts API, in both URL styles, on both databases; accounts in the
import format; masking; tenant isolation; $filter inputs that try SQL or OData tricks."""

from __future__ import annotations

import re
import uuid
from decimal import Decimal

import pytest
from sqlalchemy import select

from pwreset.accounts.catalogue import ACTION_FLAGS, STATUS_FLAGS
from pwreset.accounts.models import Account
from tests.directory_support import C1, C2, C9, PAT_PASSWORD, X1, cid, customer, load, sms
from tests.support import get_token

PREFIXES = ["", "/digitalbanking/db-accounts"]


def account(source_id: str, number: str, type_value: str = "CHECKING", **fields) -> dict:
    return {"id": source_id, "accountNumber": number, "type": {"value": type_value}, **fields}


CHECKING = account("chk-1", "000123456789", nickName="Everyday", description="Checking", primaryHolderName="Pat Doe",
                   routingNumber="011000015", currentBalance={"currencyCode": "USD", "amount": "1520.35"},
                   availableBalance={"currencyCode": "USD", "amount": "1490.3"}, status={"open": True},
                   allowedActions={"transferFrom": True})
SAVINGS = account("sav-1", "000987654321", "SAVINGS", currentBalance={"currencyCode": "USD", "amount": "8200"})
LOAN = account("loan-1", "555000111", "CONSUMER_LOAN", currentBalance={"currencyCode": "USD", "amount": "-12850.75"})
PESO = account("clp-1", "CL0001", "SAVINGS", currentBalance={"currencyCode": "CLP", "amount": 125000})


@pytest.fixture
def directory():
    return None  # the real directory behind the password grant (customer tokens)


@pytest.fixture
async def bank(api, make_partner, services):
    """Two institutions; Pat (07675) with four accounts; Sam with one; Olga at 11111 with one."""
    records = {
        "07675": [
            customer(C1, "pat.doe", sms("101"), hostUserId="HOST001", password=PAT_PASSWORD,
                     accounts=[CHECKING, SAVINGS, LOAN, PESO]),
            customer(C2, "sam", sms("201", "2025550178"), hostUserId="HOST002",
                     accounts=[account("chk-2", "000111222333")]),
        ],
        "11111": [customer(X1, "olga", sms("901", "2025550190"), hostUserId="HOST001",
                           accounts=[account("chk-1", "000444555666")])],
    }
    masked = await make_partner("07675", scopes="accounts:read", grant_types="client_credentials password")
    unmasked = await make_partner("07675", scopes="accounts:read accounts:read_unmasked")
    other = await make_partner("11111", scopes="accounts:read")
    for institution_id, rows in records.items():
        report = await load(services, institution_id, rows)
        assert not report.refused, report.refused

    async def token(partner, institution_id="07675", **form) -> str:
        response = await get_token(api, partner.auth, institution_id=institution_id, **form)
        assert response.status_code == 200, response.text
        return response.json()["access_token"]

    class Bank:
        pass

    bank = Bank()
    bank.masked = await token(masked)
    bank.unmasked = await token(unmasked)
    bank.other = await token(other, "11111")
    bank.pat = await token(masked, grant_type="password", username="pat.doe", password=PAT_PASSWORD,
                           scope="accounts:read")
    return bank


def headers(token: str, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "transactionId": str(uuid.uuid4()), **extra}


def acc_error(response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == code and body["message"] and set(body) == {"code", "message"}


@pytest.mark.parametrize("prefix", PREFIXES)
async def test_a_users_accounts_as_the_contract_shows_them(api, bank, prefix):
    response = await api.get(f"{prefix}/v1/accounts", params={"hostUserId": "HOST001"},
                             headers=headers(bank.masked, transactionId="tx-42"))
    assert response.status_code == 200, response.text
    assert response.headers["transactionId"] == "tx-42"
    assert "totalGroupCount" not in response.json()  # only with $apply=groupBy(customer)
    assert b'"amount":1520.35}' in response.content and b'"amount":1490.30}' in response.content  # exact digits
    body = response.json()
    assert len(body["accounts"]) == 4
    checking = body["accounts"][0]
    assert set(checking) == {
        "id", "institutionId", "institutionUserId", "institutionCustomerId", "accountNumber", "nickName",
        "description", "type", "category", "primaryHolderName", "currentBalance", "availableBalance", "status",
        "allowedActions", "routingNumber",
    }
    assert checking["accountNumber"] == "6789" and checking["institutionId"] == "07675"
    assert re.fullmatch(r"[0-9A-F]{32}", checking["institutionUserId"]) and checking["institutionCustomerId"] == C1
    assert checking["type"] == {"value": "CHECKING", "fiAccountType": 2, "description": "Checking"}
    assert checking["category"] == "DEPOSIT" and checking["routingNumber"] == "011000015"
    assert checking["currentBalance"] == {"currencyCode": "USD", "amount": 1520.35}
    assert checking["availableBalance"] == {"currencyCode": "USD", "amount": 1490.30}
    assert checking["status"] == {flag: flag == "open" for flag in STATUS_FLAGS}
    assert checking["allowedActions"] == {flag: flag == "transferFrom" for flag in ACTION_FLAGS}
    assert [a["category"] for a in body["accounts"]] == ["DEPOSIT", "DEPOSIT", "LOAN", "DEPOSIT"]
    assert body["accounts"][2]["currentBalance"]["amount"] == -12850.75
    assert body["accounts"][2]["type"]["value"] == "CONSUMER_LOAN"
    assert body["accounts"][3]["currentBalance"] == {"currencyCode": "CLP", "amount": 125000}
    savings = body["accounts"][1]  # optional fields without a value are left out, never null
    assert "nickName" not in savings and "routingNumber" not in savings and "availableBalance" not in savings
    assert None not in savings.values()
    by_login = await api.get(f"{prefix}/v1/accounts", params={"loginId": "PAT.DOE"}, headers=headers(bank.masked))
    assert by_login.json() == body


@pytest.mark.parametrize("prefix", PREFIXES)
async def test_one_account_and_unmasked_numbers(api, bank, prefix):
    listed = (await api.get("/v1/accounts", params={"loginId": "pat.doe"}, headers=headers(bank.masked))).json()
    account_id = listed["accounts"][1]["id"]
    assert len(account_id) == 32 and account_id != "sav-1"  # opaque, not the host's id
    one = await api.get(f"{prefix}/v1/accounts/{account_id}", params={"loginId": "pat.doe"},
                        headers=headers(bank.unmasked))
    assert one.status_code == 200 and one.json()["accountNumber"] == "000987654321"
    assert one.json()["id"] == account_id and one.json()["type"]["value"] == "SAVINGS"


@pytest.mark.parametrize("prefix", PREFIXES)
async def test_a_customer_token_reads_only_its_own_accounts(api, bank, prefix):
    own = await api.get(f"{prefix}/v1/accounts", headers=headers(bank.pat))
    assert own.status_code == 200 and len(own.json()["accounts"]) == 4
    for params in ({"hostUserId": "HOST002"}, {"loginId": "pat.doe"}):
        acc_error(await api.get(f"{prefix}/v1/accounts", params=params, headers=headers(bank.pat)), 400, "ACC_99992")
    sams = (await api.get("/v1/accounts", params={"loginId": "sam"}, headers=headers(bank.masked))).json()
    acc_error(await api.get(f"{prefix}/v1/accounts/{sams['accounts'][0]['id']}", headers=headers(bank.pat)),
              404, "ACC_00012")


@pytest.mark.parametrize("prefix", PREFIXES)
@pytest.mark.parametrize(("params", "status", "code"), [
    ({}, 400, "ACC_99992"),
    ({"hostUserId": "HOST001", "loginId": "pat.doe"}, 400, "ACC_99992"),
    ({"hostUserId": ""}, 400, "ACC_99992"),
    ({"loginId": "x" * 129}, 400, "ACC_99992"),
    ({"loginId": "nobody"}, 404, "ACC_00101"),
    ({"hostUserId": "HOST404"}, 404, "ACC_00101"),
    ({"loginId": "olga"}, 404, "ACC_00101"),  # another institution's user does not exist here
])
async def test_user_parameter_refusals(api, bank, prefix, params, status, code):
    acc_error(await api.get(f"{prefix}/v1/accounts", params=params, headers=headers(bank.masked)), status, code)


@pytest.mark.parametrize("prefix", PREFIXES)
async def test_tracing_and_auth_refusals(api, bank, prefix, make_partner):
    url = f"{prefix}/v1/accounts"
    params = {"loginId": "pat.doe"}
    acc_error(await api.get(url, params=params, headers={"Authorization": f"Bearer {bank.masked}"}), 400, "ACC_99998")
    acc_error(await api.get(url, params=params, headers=headers(bank.masked, transactionId="t" * 65)), 400,
              "ACC_99997")
    acc_error(await api.get(url, params=params, headers={"transactionId": "t"}), 401, "ACC_00601")
    acc_error(await api.get(url, params=params, headers=headers("pwr_at_nope")), 401, "ACC_00601")
    users_only = await make_partner("07675", scopes="institution-users:read")
    token = (await get_token(api, users_only.auth)).json()["access_token"]
    acc_error(await api.get(url, params=params, headers=headers(token)), 403, "ACC_00602")


@pytest.mark.parametrize("prefix", PREFIXES)
async def test_unknown_and_foreign_account_ids(api, bank, prefix):
    olga = (await api.get("/v1/accounts", params={"loginId": "olga"}, headers=headers(bank.other))).json()
    foreign = olga["accounts"][0]["id"]
    for account_id in (foreign, "0" * 32, "chk-1", "x" * 65):
        response = await api.get(f"{prefix}/v1/accounts/{account_id}", params={"hostUserId": "HOST001"},
                                 headers=headers(bank.masked))
        acc_error(response, 404, "ACC_00012")
    # The same host user id names a different user at the other institution, who sees only their own.
    assert [a["accountNumber"] for a in olga["accounts"]] == ["5666"]


@pytest.mark.parametrize("prefix", PREFIXES)
async def test_filters(api, bank, prefix):
    listed = (await api.get("/v1/accounts", params={"loginId": "pat.doe"}, headers=headers(bank.masked))).json()
    loan_id = listed["accounts"][2]["id"]

    async def ids(value: str):
        response = await api.get(f"{prefix}/v1/accounts", params={"loginId": "pat.doe", "$filter": value},
                                 headers=headers(bank.masked))
        assert response.status_code == 200, response.text
        return [a.get("nickName") or a["type"]["value"] for a in response.json()["accounts"]]

    assert await ids("category eq 'DEPOSIT'") == ["Everyday", "SAVINGS", "SAVINGS"]
    assert await ids("  category   eq  'LOAN' ") == ["CONSUMER_LOAN"]
    assert await ids("category eq 'INVESTMENT'") == []
    assert await ids(f"id eq '{loan_id}'") == ["CONSUMER_LOAN"]
    assert await ids("id eq 'it''s not there'") == []
    # The spec's own example, and the rest of its grammar.
    assert await ids("(category eq 'DEPOSIT') and (type eq 'CHECKING')") == ["Everyday"]
    assert await ids("category ne 'DEPOSIT'") == ["CONSUMER_LOAN"]
    assert await ids("name eq 'Everyday' or type eq 'CONSUMER_LOAN'") == ["Everyday", "CONSUMER_LOAN"]
    assert await ids("nickName eq 'Everyday'") == ["Everyday"]
    masked = await api.get(f"{prefix}/v1/accounts", headers=headers(bank.masked),
                           params={"loginId": "pat.doe", "$filter": "contains(accountNumber, '9876')"})
    acc_error(masked, 400, "ACC_00005")  # a masked token may not learn the hidden digits by asking
    assert await ids("contains(tolower(name), 'every')") == ["Everyday"]
    assert await ids("contains(name, 'every')") == []  # contains is case-sensitive on both databases
    assert await ids("toupper(type) eq 'SAVINGS' and id ne 'x'") == ["SAVINGS", "SAVINGS"]
    whole = await api.get(f"{prefix}/v1/accounts", headers=headers(bank.unmasked),
                          params={"loginId": "pat.doe", "$filter": "contains(accountNumber, '9876')"})
    assert [a["type"]["value"] for a in whole.json()["accounts"]] == ["SAVINGS"]
    assert await ids("category eq 'deposit'") == []


@pytest.mark.parametrize("value", [
    "category eq 'DEPOSIT' or 1 eq 1", "category eq 'DEPOSIT'; DROP TABLE accounts; --", "id eq '' OR '1'='1'",
    "category eq DEPOSIT", "Category eq 'LOAN'", "category eq 'DEPOSIT' and", "(category eq 'LOAN'",
    "not category eq 'LOAN'", "contains(id)", "tolower(id, 'a') eq 'a'", "status eq 'open'",
    "category eq 'DEPOSIT", "", " ", "id eq \"x\"", "id eq 'a''",
    "$filter=category eq 'LOAN'", "x" * 1001, "id in ('a','b')", "(" * 40 + "id eq 'a'" + ")" * 40,
    " or ".join(["id eq 'a'"] * 40), "id eq 1", "id eq null", "id eq 'a' --",
])
async def test_filter_tricks_are_acc_00005_and_change_nothing(api, bank, services, value):
    response = await api.get("/v1/accounts", params={"loginId": "pat.doe", "$filter": value},
                             headers=headers(bank.masked))
    acc_error(response, 400, "ACC_00005")
    async with services.db.reading() as session:
        assert len((await session.scalars(select(Account))).all()) == 6


@pytest.mark.parametrize("value", ["category eq 'DEPOSIT'\x00", "id eq 'a\x00b'"])
async def test_a_nul_in_the_filter_is_an_invalid_query_parameter(api, bank, value):
    """Refused at the edge, before the filter is parsed, like a NUL in any query parameter (issue 12, item 3)."""
    response = await api.get("/v1/accounts", params={"loginId": "pat.doe", "$filter": value},
                             headers=headers(bank.masked))
    acc_error(response, 400, "ACC_00011")


async def test_accounts_in_the_import_format(services, make_partner):
    await make_partner("07675")
    base = customer(C9, "nine", sms("1"), accounts=[CHECKING])
    assert (await load(services, "07675", [base])).created == 1
    assert (await load(services, "07675", [base])).unchanged == 1  # a re-run changes nothing
    async with services.db.reading() as session:
        first = (await session.scalars(select(Account))).one()
    assert first.current_amount == Decimal("1520.35") and isinstance(first.current_amount, Decimal)
    moved = {**CHECKING, "currentBalance": {"currencyCode": "USD", "amount": "99.99"}}
    assert (await load(services, "07675", [{**base, "accounts": [moved, SAVINGS]}])).updated == 1
    assert (await load(services, "07675", [customer(C9, "nine", sms("1"))])).unchanged == 1  # no accounts key
    async with services.db.reading() as session:
        rows = {a.source_id: a for a in (await session.scalars(select(Account))).all()}
    assert set(rows) == {"chk-1", "sav-1"} and rows["chk-1"].id == first.id  # the API id is stable
    assert rows["chk-1"].current_amount == Decimal("99.99")
    assert (await load(services, "07675", [{**base, "accounts": []}])).updated == 1
    async with services.db.reading() as session:
        assert (await session.scalars(select(Account))).all() == []


@pytest.mark.parametrize(("bad", "reason"), [
    ({"amount": 12345678901234.567, "currencyCode": "USD"}, "15 significant digits"),
    ({"amount": True, "currencyCode": "USD"}, "decimal string or a JSON number"),
    ({"amount": "1e400", "currencyCode": "USD"}, "finite"),
    ({"amount": "1.23456", "currencyCode": "USD"}, "at most 4 decimals"),
    ({"amount": "NaN", "currencyCode": "USD"}, "finite"),
    ({"amount": "1_000", "currencyCode": "USD"}, "decimal string"),
    ({"amount": " 5 ", "currencyCode": "USD"}, "decimal string"),
    ({"amount": "12", "currencyCode": "usd"}, "currencyCode"),
    ({"amount": "12", "currencyCode": "JPY"}, "CurrencyCode"),  # not in the spec's list
])
async def test_bad_amounts_are_refused_with_the_line(services, make_partner, bad, reason):
    await make_partner("07675")
    report = await load(services, "07675", [customer(C9, "nine", sms("1"),
                                                     accounts=[{**CHECKING, "currentBalance": bad}])])
    assert report.created == 0 and len(report.refused) == 1 and reason in report.refused[0][1], report.refused


@pytest.mark.parametrize(("bad", "reason"), [
    ({"type": {"value": "TIME_MACHINE"}}, "unknown account type"),
    ({"type": {"value": "AUTO_LOAN"}}, "AUTO_LOAN is now CONSUMER_LOAN"),
    ({"type": {"value": "USER_DEFINED"}}, "needs a category"),
    ({"status": {"open": True, "frozen": True}}, "unknown flag frozen"),
    ({"allowedActions": {"transferFrom": True, "wire": True}}, "unknown flag wire"),
    ({"category": "SHOES"}, "category must be one of"),
    ({"routingNumber": "011000016"}, "ABA checksum"),
    ({"accountNumber": "12"}, "accountNumber"),
    ({"colour": "red"}, "colour"),
])
async def test_bad_accounts_are_refused(services, make_partner, bad, reason):
    await make_partner("07675")
    report = await load(services, "07675", [customer(C9, "nine", sms("1"), accounts=[{**CHECKING, **bad}])])
    assert len(report.refused) == 1 and reason in report.refused[0][1], report.refused


async def test_amounts_given_as_json_numbers_are_kept_exact(services, make_partner):
    await make_partner("07675")
    money = {"currentBalance": {"currencyCode": "USD", "amount": 1520.35},
             "availableBalance": {"currencyCode": "USD", "amount": 12345678901.1234}}
    report = await load(services, "07675", [customer(C9, "nine", sms("1"), accounts=[{**CHECKING, **money}])])
    assert report.created == 1, report.refused
    async with services.db.reading() as session:
        stored = (await session.scalars(select(Account))).one()
    assert stored.current_amount == Decimal("1520.35") and stored.available_amount == Decimal("12345678901.1234")


async def test_a_category_other_than_the_types_default_is_the_institutions_choice(services, make_partner):
    await make_partner("07675")
    ira = account("ira-1", "000111222", "RETIREMENT_IRA", category="DEPOSIT")
    other = account("gl-1", "000111333", "USER_DEFINED", category="INVESTMENT")
    report = await load(services, "07675", [customer(C9, "nine", sms("1"), accounts=[ira, other])])
    assert report.created == 1, report.refused


@pytest.mark.parametrize("prefix", PREFIXES)
async def test_grouped_paging_by_customer(api, bank, prefix):
    """``$apply=groupBy(customer)`` pages by institution customer; a pwreset user is one, so one
    group, and only then does ``totalGroupCount`` appear, as an integer."""
    url, base = f"{prefix}/v1/accounts", {"loginId": "pat.doe", "$apply": "groupBy(customer)"}
    first = await api.get(url, params={**base, "$topGroups": "1", "$skipGroups": "0"}, headers=headers(bank.masked))
    assert first.status_code == 200, first.text
    assert first.json()["totalGroupCount"] == 1 and len(first.json()["accounts"]) == 4
    past = await api.get(url, params={**base, "$topGroups": "1", "$skipGroups": "1"}, headers=headers(bank.masked))
    assert past.json() == {"accounts": [], "totalGroupCount": 1}
    for bad in ({**base, "$apply": "groupBy(account)"}, {"loginId": "pat.doe", "$skipGroups": "0"},
                {**base, "$topGroups": "-1"}, {**base, "$skipGroups": "x"}):
        acc_error(await api.get(url, params=bad, headers=headers(bank.masked)), 400, "ACC_00011")


async def test_a_cross_user_account_keeps_its_type(services, make_partner):
    await make_partner("07675")
    shared = {**SAVINGS, "category": "CROSS_USER_ACCOUNT"}
    assert (await load(services, "07675", [customer(C9, "nine", sms("1"), accounts=[shared])])).created == 1


async def test_a_pruned_customer_loses_accounts_and_tokens(api, bank, services):
    from pwreset.customers.importer import Importer

    importer = Importer(db=services.db, hashing=services.hashing, clock=services.clock, oauth=services.oauth)
    keep = customer(C2, "sam", sms("201", "2025550178"), hostUserId="HOST002")
    report = await importer.run([(1, keep)], institution_id="07675", prune=True)
    assert report.pruned == 1 and not report.prune_skipped  # Pat is gone
    response = await api.get("/v1/accounts", headers=headers(bank.pat))
    acc_error(response, 401, "ACC_00601")  # Pat's token was revoked
    async with services.db.reading() as session:
        left = {a.source_id for a in (await session.scalars(select(Account))).all()}
    assert left == {"chk-2", "chk-1"}  # Sam's, and Olga's at the other institution


async def test_a_failed_batch_writes_nothing_of_it(services, make_partner, monkeypatch, backend):
    from pwreset.customers import bulk
    from pwreset.customers.importer import Importer

    await make_partner("07675")
    importer = Importer(db=services.db, hashing=services.hashing, clock=services.clock, batch_size=2)
    rows = [customer(cid(f"B{n}"), f"b{n}", sms("1"), accounts=[CHECKING]) for n in range(4)]
    if backend == "postgresql":
        real = bulk.write

        async def fail_second(conn, new, old, **kwargs):
            outcomes = await real(conn, new, old, **kwargs)
            if new.customer_ids[0] == cid("B2"):
                raise OSError("connection lost mid-batch")
            return outcomes

        monkeypatch.setattr(bulk, "write", fail_second)
    else:
        from pwreset.customers.rowwise import RowWriter

        real_upsert = RowWriter._upsert

        async def fail_b3(self, session, line, *args):
            if line.customer_id == cid("B3"):
                raise OSError("disk full")
            return await real_upsert(self, session, line, *args)

        monkeypatch.setattr(RowWriter, "_upsert", fail_b3)
    with pytest.raises(OSError):
        await importer.run(list(enumerate(rows, 1)), institution_id="07675")
    async with services.db.reading() as session:
        from pwreset.customers.models import Customer

        ids = sorted((await session.scalars(select(Customer.customer_id))).all())
        accounts = (await session.scalars(select(Account))).all()
    assert ids == sorted([cid("B0"), cid("B1")]) and len(accounts) == 2  # the first batch, whole; nothing of the second
