"""``pwreset customers import``: JSON Lines and CSV, per-line refusals, idempotent re-runs."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys

import pytest

from tests.conftest import TEST_SECRET_KEY
from tests.directory_support import C1, C2, C3, C4, C5, C6, C7, C8, C9, cid

GOOD = {
    "customerId": "18fc507616c646048ea400138c8ac887", "loginId": "pat.doe", "hostUserId": "HOST001",
    "memberNumber": "100200300", "firstName": "Pat", "lastName": "Doe", "language": "en", "registered": True,
    "acceptedDisclosure": True, "password": "an initial password",
    "contactMethods": [
        {"id": "123310058", "protocol": "SMS", "telephoneCountryCode": "1", "contactInfo": "2025550143",
         "isActivated": True, "validated": True, "primary": True, "enrolledDateTime": "2022-03-31T00:00:00Z"},
        {"id": "123310060", "protocol": "EMAIL", "contactInfo": "Pat@Example.com", "isActivated": True},
    ],
}


@pytest.fixture
def pwreset(database_url, tmp_path):
    env = {"PWRESET_DATABASE_URL": database_url, "PWRESET_SECRET_KEY": TEST_SECRET_KEY, "PATH": "/usr/bin:/bin",
           "PWRESET_ARGON2_MEMORY_KIB": "1024", "PWRESET_ARGON2_TIME_COST": "1"}

    def run(*args: str, stdin: str | bytes | None = None) -> subprocess.CompletedProcess[str]:
        raw = stdin.encode() if isinstance(stdin, str) else stdin  # (bytes: as they come, in any encoding)
        done = subprocess.run([sys.executable, "-m", "pwreset", *args], capture_output=True, env=env,
                              input=raw, cwd=tmp_path, timeout=120, check=False)
        result = subprocess.CompletedProcess(done.args, done.returncode, done.stdout.decode(), done.stderr.decode())
        assert "Traceback" not in result.stderr, result.stderr
        return result

    assert run("institutions", "create", "07675", "--name", "First CU").returncode == 0
    return run


def jsonl(*records: dict | str) -> str:
    return "\n".join(r if isinstance(r, str) else json.dumps(r) for r in records) + "\n"


def test_import_jsonl_then_rerun_changes_nothing(pwreset, tmp_path):
    path = tmp_path / "customers.jsonl"
    second = {**GOOD, "customerId": C2, "loginId": "sam", "contactMethods": [], "password": None}
    second.pop("password")
    path.write_text(jsonl(GOOD, second))
    first = pwreset("customers", "import", str(path), "--institution", "07675")
    assert first.returncode == 0, first.stderr
    assert "2 customers read: 2 created, 0 updated, 0 unchanged, 0 refused" in first.stdout
    again = pwreset("customers", "import", str(path), "--institution", "07675")
    assert "0 created, 0 updated, 2 unchanged" in again.stdout
    shown = json.loads(pwreset("customers", "show", GOOD["customerId"], "--institution", "07675").stdout)
    assert shown["userName"] == "pat.doe" and shown["hasPassword"] is True
    assert [m["contactInfo"] for m in shown["contactMethods"]] == ["2025550143", "Pat@example.com"]


def test_bad_lines_are_reported_and_skipped_the_rest_goes_in(pwreset, tmp_path):
    lines = jsonl(
        GOOD,
        "{not json",
        {**GOOD, "customerId": C3, "loginId": "x", "favouriteColour": "blue"},
        {**GOOD, "customerId": C4, "loginId": "y", "passwordHash": "$2b$12$" + "a" * 53},
        {**GOOD, "customerId": C5, "loginId": "z",
         "contactMethods": [{"id": "1", "protocol": "SMS", "telephoneCountryCode": "1", "contactInfo": "12"}]},
        {**GOOD, "customerId": C6, "loginId": "PAT.DOE"},
        {**GOOD, "customerId": C7, "loginId": "w", "password": None, "passwordHash": "md5$abc"},
        {**GOOD, "customerId": C8, "loginId": "v",
         "contactMethods": [{"id": "1", "protocol": "EMAIL", "contactInfo": "not an email"}]},
        {**GOOD, "customerId": C9, "loginId": "ok-too", "contactMethods": []},
    )
    result = pwreset("customers", "import", "-", "--institution", "07675", stdin=lines)
    assert result.returncode == 1
    errors = dict(line.split(": ", 1) for line in result.stderr.splitlines() if line.startswith("line "))
    assert set(errors) == {"line 2", "line 3", "line 4", "line 5", "line 6", "line 7", "line 8"}
    assert "not JSON" in errors["line 2"]
    assert "favouriteColour" in errors["line 3"]
    assert "exclusive" in errors["line 4"]
    assert "phone number" in errors["line 5"]
    assert "belongs to customer" in errors["line 6"]
    assert "passwordHash" in errors["line 7"]
    assert "email" in errors["line 8"]
    assert "9 customers read: 2 created, 0 updated, 0 unchanged, 7 refused" in result.stdout
    assert pwreset("customers", "show", C9, "--institution", "07675").returncode == 0
    refused = pwreset("customers", "show", C3, "--institution", "07675")
    assert refused.returncode == 1 and "no such customer" in refused.stderr


def test_csv_carries_the_same_fields(pwreset, tmp_path):
    path = tmp_path / "customers.csv"
    methods = json.dumps([{"id": "7", "protocol": "VOICE", "telephoneCountryCode": "44", "contactInfo": "7911123456"}])
    path.write_text(
        "customerId,loginId,firstName,registered,contactMethods\n"
        f'{C1},pat,Pat,true,"{methods.replace(chr(34), chr(34) * 2)}"\n'
        f"{C2},sam,Sam,maybe,\n"
    )
    result = pwreset("customers", "import", str(path), "--institution", "07675")
    assert result.returncode == 1 and "line 3: registered: expected true or false" in result.stderr
    shown = json.loads(pwreset("customers", "show", C1, "--institution", "07675").stdout)
    assert shown["contactMethods"] == [{"id": "7", "telephoneCountryCode": "44", "contactInfo": "7911123456",
                                        "protocol": "VOICE", "activated": True, "validated": False, "primary": False}]


def test_an_update_replaces_fields_and_contact_methods(pwreset, tmp_path):
    pwreset("customers", "import", "-", "--institution", "07675", stdin=jsonl(GOOD))
    changed = {**GOOD, "firstName": "Patricia", "contactMethods": GOOD["contactMethods"][1:]}
    result = pwreset("customers", "import", "-", "--institution", "07675", stdin=jsonl(changed))
    assert "1 updated" in result.stdout
    shown = json.loads(pwreset("customers", "show", GOOD["customerId"], "--institution", "07675").stdout)
    assert shown["firstName"] == "Patricia" and [m["id"] for m in shown["contactMethods"]] == ["123310060"]


def test_unknown_institution_and_missing_file(pwreset, tmp_path):
    unknown = pwreset("customers", "import", "-", "--institution", "99999", stdin=jsonl(GOOD))
    assert unknown.returncode == 1 and "no institution 99999" in unknown.stderr
    missing = pwreset("customers", "import", str(tmp_path / "nope.jsonl"), "--institution", "07675")
    assert missing.returncode == 1 and "cannot read" in missing.stderr


def test_a_rerun_never_undoes_what_happened_since(pwreset, tmp_path, database_url):
    import asyncio

    from sqlalchemy import update
    from sqlalchemy.ext.asyncio import create_async_engine

    from pwreset.customers.models import Customer
    from pwreset.db import async_url

    pwreset("customers", "import", "-", "--institution", "07675", stdin=jsonl(GOOD))
    before = json.loads(pwreset("customers", "show", GOOD["customerId"], "--institution", "07675").stdout)

    async def lock() -> None:
        engine = create_async_engine(async_url(database_url))
        async with engine.begin() as conn:
            await conn.execute(update(Customer).values(locked=True, password_hash="$argon2id$v=19$changed"))
        await engine.dispose()

    asyncio.run(lock())  # the customer was locked and changed the password since the last import
    again = pwreset("customers", "import", "-", "--institution", "07675",
                    stdin=jsonl({**GOOD, "password": "an older initial password"}))
    assert again.returncode == 0 and "1 unchanged" in again.stdout
    after = json.loads(pwreset("customers", "show", GOOD["customerId"], "--institution", "07675").stdout)
    assert after["userStatus"]["locked"] is True and before["userStatus"]["locked"] is False
    unlocked = pwreset("customers", "import", "-", "--institution", "07675", stdin=jsonl({**GOOD, "locked": False}))
    assert "1 updated" in unlocked.stdout  # a field the line does carry is applied


def test_a_dry_run_and_prune_from_the_command_line(pwreset, tmp_path):
    lines = jsonl(GOOD, {**GOOD, "customerId": C2, "loginId": "sam", "favouriteColour": "blue"})
    dry = pwreset("customers", "import", "-", "--institution", "07675", "--dry-run", stdin=lines)
    assert dry.returncode == 1 and "dry run: 2 customers read: 1 valid, 1 refused; nothing written" in dry.stdout
    assert "line 2: favouriteColour" in dry.stderr
    both = pwreset("customers", "import", "-", "--institution", "07675", "--prune", "--dry-run", stdin=jsonl(GOOD))
    assert both.returncode == 1 and "cannot be evaluated in a --dry-run" in both.stderr
    pruned = pwreset("customers", "import", "-", "--institution", "07675", "--prune", stdin=jsonl(GOOD))
    assert pruned.returncode == 0 and "0 customers absent from the file deleted" in pruned.stdout


async def test_a_dry_run_validates_everything_and_writes_nothing(services, make_partner):
    from sqlalchemy import func, select

    from pwreset.customers.importer import Importer
    from pwreset.customers.models import Customer

    await make_partner("07675")
    importer = Importer(db=services.db, hashing=services.hashing, clock=services.clock)
    lines = [GOOD, {**GOOD, "customerId": C2, "loginId": "sam", "favouriteColour": "blue"},
             {**GOOD, "customerId": C3, "loginId": "PAT.doe"}]  # a login repeated within the file
    report = await importer.run(list(enumerate(lines, 1)), institution_id="07675", dry_run=True)
    assert (report.valid, report.created) == (1, 0)
    assert [n for n, _ in report.refused] == [2, 3] and "belongs to customer" in report.refused[1][1]
    async with services.db.reading() as session:
        assert await session.scalar(select(func.count()).select_from(Customer)) == 0


async def test_prune_deletes_the_customers_a_full_file_leaves_out(services, make_partner):
    from sqlalchemy import select

    from pwreset.customers.importer import Importer, LineError
    from pwreset.customers.models import Customer

    await make_partner("07675")
    importer = Importer(db=services.db, hashing=services.hashing, clock=services.clock, oauth=services.oauth)
    others = [{**GOOD, "customerId": cid(f"C{n}"), "loginId": f"user{n}", "contactMethods": []} for n in range(2, 5)]
    await importer.run(list(enumerate([GOOD, *others], 1)), institution_id="07675")

    async def customers() -> list[str]:
        async with services.db.reading() as session:
            return sorted((await session.scalars(select(Customer.customer_id))).all())

    refused = await importer.run([(1, GOOD), (2, LineError("broken"))], institution_id="07675", prune=True)
    assert refused.prune_skipped and refused.pruned == 0 and len(await customers()) == 4  # nobody deleted
    full = await importer.run([(1, GOOD), (2, others[0])], institution_id="07675", prune=True)
    assert full.pruned == 2 and not full.prune_skipped
    assert await customers() == sorted([GOOD["customerId"], C2])


async def test_a_file_of_many_batches_is_validated_in_worker_processes_in_file_order(services, make_partner):
    import multiprocessing

    from sqlalchemy import select

    from pwreset.customers.importer import Importer
    from pwreset.customers.models import ContactMethod, Customer

    await make_partner("07675")
    bad_phone = [{"id": "1", "protocol": "SMS", "telephoneCountryCode": "1", "contactInfo": "12"}]
    raw = jsonl(
        GOOD,
        "{not json",
        *({**GOOD, "customerId": cid(f"C{n}"), "loginId": f"user{n}"} for n in range(3, 8)),
        {**GOOD, "customerId": C8, "loginId": "user8", "contactMethods": bad_phone},
        {**GOOD, "customerId": C9, "loginId": "USER3"},  # another customer's login, in a later batch
        "[1, 2]",
    ).splitlines(keepends=True)
    workers: list[int] = []
    importer = Importer(db=services.db, hashing=services.hashing, clock=services.clock, batch_size=2, jobs=2)
    report = await importer.run(
        list(enumerate(raw, 1)), institution_id="07675",
        progress=lambda _: workers.append(len(multiprocessing.active_children())),
    )
    assert max(workers) == 2  # the batches were validated by the two worker processes
    assert (report.read, report.created) == (10, 6)
    refused = dict(report.refused)
    assert sorted(refused) == [2, 8, 9, 10]
    assert refused[2].startswith("not JSON") and "phone number" in refused[8]
    assert f"belongs to customer {C3}" in refused[9] and refused[10] == "a line must be a JSON object"
    async with services.db.reading() as session:
        ids = sorted((await session.scalars(select(Customer.customer_id))).all())
        destinations = set((await session.scalars(select(ContactMethod.destination))).all())
    assert ids == sorted([GOOD["customerId"], *(cid(f"C{n}") for n in range(3, 8))])
    assert destinations == {"+12025550143", "Pat@example.com"}  # normalised in the workers
    again = await Importer(db=services.db, hashing=services.hashing, clock=services.clock, batch_size=2,
                           jobs=0).run(list(enumerate(raw, 1)), institution_id="07675")
    assert (again.unchanged, dict(again.refused).keys()) == (6, refused.keys())


def test_worker_processes_run_at_a_lower_priority_than_the_import():
    """They run ahead of the writing, which bounds the import: they take the CPU it leaves."""
    import multiprocessing
    import os
    from concurrent.futures import ProcessPoolExecutor

    from pwreset.customers.lines import start_worker

    with ProcessPoolExecutor(
        1, mp_context=multiprocessing.get_context("spawn"), initializer=start_worker, initargs=(os.getpid(),)
    ) as pool:
        assert pool.submit(os.nice, 0).result() == min(os.nice(0) + 10, 19)


def _many_lines(database_url: str, tmp_path) -> tuple[int, object]:
    # Batches of 500 and of 2,500: eight, more than the five an import with two workers reads
    # before it writes its first (four ahead), so a pipe fed all but the last lines is written from.
    count = 4_000 if database_url.startswith("sqlite") else 20_000
    path = tmp_path / "many.jsonl"
    path.write_text(jsonl(*(
        {"customerId": cid(f"B{n}"), "loginId": f"bulk{n}", "contactMethods": [
            {"id": "s", "protocol": "SMS", "telephoneCountryCode": "1", "contactInfo": f"20220{n:05d}"}]}
        for n in range(count)
    )))
    return count, path


def _committed(database_url: str) -> int:
    import asyncio

    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    from pwreset.db import async_url

    async def count() -> int:
        engine = create_async_engine(async_url(database_url))
        try:
            async with engine.connect() as conn:
                return int((await conn.execute(text("SELECT count(*) FROM customers"))).scalar_one())
        finally:
            await engine.dispose()

    return asyncio.run(count())


def _start_import(database_url: str, path, tmp_path) -> subprocess.Popen[str]:
    """An import of ``path`` in its own process group, reading from a pipe that gets all of the
    file but its last 100 lines and then stays open. Once its first batch is in and it has read
    what it was given, the import is surely still running (waiting for the rest), however fast the
    machine: fed the whole file, it could finish before the test's next step. Its Ctrl-C is a
    terminal's, whatever the test runner was started with (a background job ignores SIGINT, and
    its children with it)."""
    import signal
    import threading
    import time

    env = {"PWRESET_DATABASE_URL": database_url, "PWRESET_SECRET_KEY": TEST_SECRET_KEY, "PATH": "/usr/bin:/bin"}
    process = subprocess.Popen(
        [sys.executable, "-m", "pwreset", "customers", "import", "-", "--institution", "07675", "--jobs", "2"],
        env=env, cwd=tmp_path, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )

    def feed() -> None:
        assert process.stdin is not None
        with contextlib.suppress(BrokenPipeError):
            process.stdin.write("".join(path.read_text().splitlines(keepends=True)[:-100]))
            process.stdin.flush()

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    deadline = time.monotonic() + 60
    while _committed(database_url) == 0 or feeder.is_alive():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            feeder.join(5)
            pytest.fail(f"the import did not write its first batch and wait for input: {process.stderr.read()}")
    return process


def test_ctrl_c_stops_an_import_cleanly_and_a_rerun_finishes_it(pwreset, database_url, tmp_path):
    import os
    import signal

    count, path = _many_lines(database_url, tmp_path)
    process = _start_import(database_url, path, tmp_path)
    os.killpg(process.pid, signal.SIGINT)  # Ctrl-C reaches the whole process group
    # Closing the import's input: a Ctrl-C that lands while the import waits for input (it reads
    # on its event loop's thread) takes effect when the input ends.
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130 and "Traceback" not in err, err
    assert "interrupted: the batches written so far are committed" in err
    written = _committed(database_url)
    assert 0 < written < count
    rerun = pwreset("customers", "import", str(path), "--institution", "07675")
    assert rerun.returncode == 0, rerun.stderr
    assert f"{count} customers read: {count - written} created, 0 updated, {written} unchanged" in rerun.stdout


def test_the_worker_processes_do_not_outlive_a_killed_import(pwreset, database_url, tmp_path):
    import os
    import signal
    import time
    from pathlib import Path

    _, path = _many_lines(database_url, tmp_path)
    process = _start_import(database_url, path, tmp_path)
    children = [int(pid) for task in Path(f"/proc/{process.pid}/task").iterdir()
                for pid in (task / "children").read_text().split()]
    assert len(children) >= 2  # the workers (and multiprocessing's resource tracker)
    process.kill()  # kill -9: no chance to stop its pool
    process.communicate(timeout=30)  # (which closes the import's input)

    def alive(pid: int) -> bool:
        try:
            return Path(f"/proc/{pid}/status").read_text().split("State:")[1].split()[0] != "Z"
        except (OSError, IndexError):
            return False

    deadline = time.monotonic() + 20  # each worker checks on its parent every second
    try:
        while any(alive(pid) for pid in children):
            assert time.monotonic() < deadline, [pid for pid in children if alive(pid)]
            time.sleep(0.1)
    finally:
        for pid in children:  # never leave a stray process behind, even when the test fails
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


async def test_a_login_given_up_earlier_in_the_same_batch_can_be_taken(services, make_partner, backend):
    """Both write paths (row by row on SQLite, bulk on PostgreSQL) follow the batch's lines in file
    order: a login id one customer gives up, a later line may take, even along a chain of moves
    that one UPDATE could not apply in any order without colliding with itself."""
    from sqlalchemy import select

    from pwreset.customers.importer import Importer, ImportReport
    from pwreset.customers.lines import prepare
    from pwreset.customers.models import Customer

    await make_partner("07675")
    importer = Importer(db=services.db, hashing=services.hashing, clock=services.clock, jobs=0)
    pat = {**GOOD, "contactMethods": []}
    sam = {**pat, "customerId": cid("SAM"), "loginId": "sam"}
    await importer.run([(1, pat), (2, sam)], institution_id="07675")
    lines, refused = prepare([
        (1, {**sam, "loginId": "sam.new"}),  # Sam gives up "sam" ...
        (2, {**pat, "loginId": "SAM"}),  # ... which Pat takes, giving up "pat.doe" ...
        (3, {**pat, "customerId": C3, "loginId": "Pat.Doe"}),  # ... which a new customer takes
        (4, {**pat, "customerId": C4, "loginId": "sam.new"}),  # but not the login Sam just took
    ])
    assert [line.number for line in lines] == [1, 2, 3] and refused[0][0] == 4  # (the batch's own check)
    late = prepare([(5, {**pat, "customerId": C5, "loginId": "SAM.NEW"})])[0]
    report = ImportReport()
    await importer.writer.write([*lines, *late], institution_id="07675", tally=report, run_id=None)
    assert (report.updated, report.created) == (2, 1)
    assert report.refused == [(5, f"loginId 'SAM.NEW' belongs to customer {cid('SAM')}")]
    async with services.db.reading() as session:
        logins = dict((await session.execute(select(Customer.customer_id, Customer.login_key))).all())
    assert logins == {cid("SAM"): "sam.new", GOOD["customerId"]: "sam", C3: "pat.doe"}


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
async def test_a_large_import_refreshes_the_planner_statistics(services, make_partner, monkeypatch):
    from sqlalchemy import text

    from pwreset.customers import importer as module

    await make_partner("07675")
    monkeypatch.setattr(module, "ANALYZE_AFTER", 3)  # (10,000 customers in earnest)
    importer = module.Importer(db=services.db, hashing=services.hashing, clock=services.clock, jobs=0)
    analyzed = text("SELECT relname, last_analyze > :since FROM pg_stat_user_tables "
                    "WHERE relname IN ('customers', 'contact_methods', 'accounts')")
    async with services.db.engine.connect() as conn:
        since = (await conn.execute(text("SELECT now()"))).scalar_one()
    lines = [{**GOOD, "customerId": cid(f"C{n}"), "loginId": f"user{n}"} for n in range(2)]
    await importer.run(list(enumerate(lines, 1)), institution_id="07675")
    async with services.db.engine.connect() as conn:
        assert not any(fresh for _, fresh in (await conn.execute(analyzed, {"since": since})).all())
    more = [{**GOOD, "customerId": cid(f"C{n}"), "loginId": f"user{n}"} for n in range(2, 5)]  # 3 created
    await importer.run(list(enumerate(more, 1)), institution_id="07675")
    async with services.db.engine.connect() as conn:
        assert dict((await conn.execute(analyzed, {"since": since})).all()) == {
            "customers": True, "contact_methods": True, "accounts": True,
        }


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
async def test_a_batch_looks_its_customers_up_by_index_on_a_table_never_analysed(backend):
    """Mid-import the tables have no statistics yet; a batch's lookups must still be index lookups,
    not a scan of every customer of the institution (which made a million-customer import
    quadratic). A database of its own: the shared one's tables were analysed by other tests."""
    import os

    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    from pwreset.customers.bulk import _EXISTING, _LOGIN_HOLDERS
    from pwreset.db import async_url
    from pwreset.migrate import upgrade
    from tests.conftest import POSTGRES_ADMIN_URL, _admin

    name = f"pwreset_test_plans_{os.getpid()}"
    await _admin(f'DROP DATABASE IF EXISTS "{name}"')
    await _admin(f'CREATE DATABASE "{name}"')
    engine = None
    try:
        url = POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
        await asyncio.to_thread(upgrade, url)
        engine = create_async_engine(async_url(url))
        async with engine.begin() as conn:
            await conn.execute(text("INSERT INTO institutions (id, name, created_at) VALUES ('07675', 'CU', now())"))
            await conn.execute(text(
                "INSERT INTO customers (id, institution_id, customer_id, login_id, login_key, first_name, "
                "last_name, language, registered, accepted_disclosure, active, locked, failed_login_count, "
                "failed_reset_count, created_at, updated_at) SELECT md5(g::text), '07675', 'C' || g, 'user' || g, "
                "'user' || g, '', '', 'en', true, true, true, false, 0, 0, now(), now() "
                "FROM generate_series(1, 20000) AS g"
            ))
            for statement, params in (
                (_EXISTING, {"i": "07675", "ids": [f"C{n}" for n in range(5001, 7501)]}),
                (_LOGIN_HOLDERS, {"i": "07675", "keys": [f"user{n}" for n in range(5001, 7501)]}),
            ):
                plan = "\n".join(row[0] for row in (await conn.execute(text("EXPLAIN " + statement.text), params)))
                assert "Index Scan using uq_customers_institution" in plan, plan
                assert "Seq Scan on customers" not in plan and "Bitmap Heap Scan" not in plan, plan
            found = (await conn.execute(_EXISTING, {"i": "07675", "ids": ["C5001", "C5002", "C0"]})).all()
            assert sorted(row.customer_id for row in found) == ["C5001", "C5002"]
    finally:
        if engine is not None:
            await engine.dispose()
        await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_progress_lines_when_not_on_a_terminal(capsys, tmp_path):
    import io

    from pwreset.cli.main import _Progress
    from pwreset.customers.importer import ImportReport

    path = tmp_path / "two.jsonl"
    path.write_text("a\nb\n")
    with _Progress(path.open(), size=4) as progress:
        progress.last = -1e9  # the last line was long ago
        progress.update(ImportReport(read=0))
        assert "progress: 0 lines (0 % of the file)" in capsys.readouterr().err
        assert list(progress.handle) == ["a\n", "b\n"]
        progress.last = -1e9
        progress.update(ImportReport(read=2, created=2))
    assert "progress: 2 lines (100 % of the file)" in capsys.readouterr().err
    with _Progress(io.StringIO("a\n"), size=2) as progress:  # (no file position to tell)
        progress.last = -1e9
        progress.update(ImportReport(read=1))
    assert "progress: 1 lines (0 % of the file)" in capsys.readouterr().err


# Issue 12, item 9: malformed files give one clear line; a dry run refuses what the real run refuses.


def _one_clear_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.mark.parametrize(("name", "encode", "expected"), [
    ("latin1.jsonl", lambda text: text.encode("latin-1"), "not UTF-8"),
    ("utf16.jsonl", lambda text: text.encode("utf-16"), "UTF-16"),
    ("utf16.csv", lambda text: text.encode("utf-16"), "UTF-16"),
    ("binary.jsonl", lambda text: bytes(range(256)) * 40, "binary"),
    ("latin1.csv", lambda text: ("customerId,loginId,firstName\n" + f"{C1},pat,Zoë\n").encode("latin-1"),
     "not UTF-8"),
])
def test_a_file_that_is_not_utf8_text_is_one_clear_line_and_nothing_is_written(
    pwreset, tmp_path, name, encode, expected
):
    path = tmp_path / name
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in [
        {**GOOD, "firstName": "Zoë"}, *({**GOOD, "customerId": cid(f"L{n}"), "loginId": f"l{n}"} for n in range(3))])
    path.write_bytes(encode(text))
    for extra in ((), ("--dry-run",)):
        line = _one_clear_line(pwreset("customers", "import", str(path), "--institution", "07675", *extra))
        assert name in line and expected in line, line
    assert pwreset("customers", "show", GOOD["customerId"], "--institution", "07675").returncode == 1


def test_a_latin1_line_on_standard_input_is_refused_alone(pwreset):
    good = jsonl({**GOOD, "customerId": C2, "loginId": "sam"}).encode()
    bad = (json.dumps({**GOOD, "firstName": "Zoë"}, ensure_ascii=False) + "\n").encode("latin-1")
    result = pwreset("customers", "import", "-", "--institution", "07675", stdin=good + bad)
    assert result.returncode == 1
    assert "line 2: " in result.stderr and "UTF-8" in result.stderr
    assert "1 created" in result.stdout and "1 refused" in result.stdout


@pytest.mark.parametrize("field", ["firstName", "loginId", "memberNumber", "hostUserId"])
@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_a_nul_character_is_refused_by_the_dry_run_exactly_as_by_the_real_run(pwreset, tmp_path, field, fmt):
    lines = [{**GOOD, "customerId": cid(f"N{n}"), "loginId": f"n{n}", "contactMethods": []} for n in range(600)]
    lines[1] = {**lines[1], field: "a\u0000b"}
    path = tmp_path / f"nul.{fmt}"
    if fmt == "jsonl":
        path.write_text(jsonl(*lines))
    else:
        columns = ["customerId", "loginId", "firstName", "memberNumber", "hostUserId"]
        rows = [",".join(columns)] + [",".join(str(line.get(c, "")) for c in columns) for line in lines]
        path.write_text("\n".join(rows) + "\n")
    where = f"line {2 if fmt == 'jsonl' else 3}: {field}"  # (a CSV file's line 1 is its header)
    dry = pwreset("customers", "import", str(path), "--institution", "07675", "--dry-run")
    assert dry.returncode == 1 and "599 valid, 1 refused" in dry.stdout, dry.stdout + dry.stderr
    assert where in dry.stderr
    real = pwreset("customers", "import", str(path), "--institution", "07675")
    assert real.returncode == 1 and "599 created" in real.stdout and "1 refused" in real.stdout, real.stderr
    assert where in real.stderr
