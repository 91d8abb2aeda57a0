"""The PostgreSQL bulk path of ``pwreset customers import``: one transaction per batch.

New customers, their contact methods and accounts are COPYed straight into the tables, with keys
that sort by creation time (``ordered_id``). Lines of customers the database already holds are
COPYed into temporary staging tables, then applied with a handful of set-based statements: one
UPDATE (only the fields a line carries, and only where something differs), and for contact methods
and accounts a DELETE of those no longer in the file plus one ``INSERT ... ON CONFLICT DO UPDATE
... WHERE IS DISTINCT``.
The statements' RETURNING clauses tell created, updated and unchanged apart, so a re-run reports
"unchanged" and writes nothing. Existing customers are written first (parking the logins that move),
then new ones, so a login id an earlier line gives up a later line may take. Same rules as the
row-by-row path of ``importer.py`` (SQLite), which the tests run on both databases.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from pwreset.customers import marks
from pwreset.customers.lines import BIT, FIELDS, Holders, Line, Tally, initial_password_hash
from pwreset.customers.shapes import ACCOUNT, ACCOUNT_FLAGS, ACCOUNT_PLAIN, CUSTOMER_OPTIONAL, METHOD, Column, names
from pwreset.db import Database
from pwreset.kit.clock import Clock
from pwreset.kit.crypto import ordered_ids
from pwreset.oauth.service import OAuthService
from pwreset.passwords.hashing import PasswordHashing

# The staging tables, named column by column (every COPY into them names its columns too).
STAGE_CUSTOMERS = (
    Column("pk", None, "text"), Column("customer_id", "customerId", "text"), Column("login_id", "loginId", "text"),
    Column("login_key", None, "text"), *CUSTOMER_OPTIONAL, Column("password_hash", None, "text"),
    Column("present", None, "int"),
)
STAGE_METHODS = (
    Column("id", None, "text"), Column("customer_pk", None, "text"), Column("position", None, "int"), *METHOD,
)
STAGE_ACCOUNTS = (
    Column("id", None, "text"), Column("customer_pk", None, "text"), Column("source_id", "id", "text"), *ACCOUNT,
)


def _create(table: str, columns: tuple[Column, ...]) -> str:
    return f"CREATE TEMP TABLE {table} ({', '.join(f'{c.quoted} {c.sql}' for c in columns)}) ON COMMIT DROP;"


def _list(columns: tuple[str, ...], prefix: str = "") -> str:
    return ", ".join(f'{prefix}"{c}"' for c in columns)


_STAGE = "\n".join((
    _create("stage_customers", STAGE_CUSTOMERS), _create("stage_methods", STAGE_METHODS),
    _create("stage_accounts", STAGE_ACCOUNTS),
))

_TAKE = " OR ".join(
    f"(s.present & {BIT[f]} > 0 AND c.{f} IS DISTINCT FROM s.{f})" for f in FIELDS
)
_SET = ", ".join(f"{f} = CASE WHEN s.present & {BIT[f]} > 0 THEN s.{f} ELSE c.{f} END" for f in FIELDS)

# Statements are built once, here, from the constant column names above (ruff's S608 is off for this
# file for that reason); values are always bound parameters.
_UPDATE = f"""
UPDATE customers AS c SET login_id = s.login_id, login_key = s.login_key, {_SET},
  password_hash = COALESCE(c.password_hash, s.password_hash), updated_at = :now
FROM stage_customers s
WHERE c.id = s.pk AND (
  c.login_id IS DISTINCT FROM s.login_id OR c.login_key IS DISTINCT FROM s.login_key OR {_TAKE}
  OR (c.password_hash IS NULL AND s.password_hash IS NOT NULL))
RETURNING c.id
"""
# Logins moving within a batch (one customer gives up a login id that a later line gives another)
# first park on a key no login can have (keys are trimmed, so none starts with a space), then take
# their new ids in the UPDATE: one statement checks uniqueness row by row, so a chain of moves in
# it could collide with itself halfway.
_PARK_LOGINS = """
UPDATE customers c SET login_key = ' ' || c.id FROM unnest(CAST(:pks AS text[])) AS x(pk) WHERE c.id = x.pk
"""
_TOUCH = """
UPDATE customers c SET updated_at = :now FROM unnest(CAST(:pks AS text[])) AS x(pk)
WHERE c.id = x.pk AND c.updated_at <> :now
"""
#: What a method's upsert compares and writes: everything but the keys.
_METHOD_VALUES = ("position", *names(METHOD[1:]))
_DELETE_METHODS = """
DELETE FROM contact_methods m USING unnest(CAST(:pks AS text[])) AS x(pk) WHERE m.customer_pk = x.pk
  AND NOT EXISTS (SELECT 1 FROM stage_methods s WHERE s.customer_pk = m.customer_pk AND s.method_id = m.method_id)
RETURNING m.customer_pk
"""
# Unchanged rows are left out before the upsert, not only by its WHERE: ON CONFLICT DO UPDATE locks
# every conflicting row, a write each, even where its WHERE then updates nothing.
_UPSERT_METHODS = f"""
INSERT INTO contact_methods AS m (id, customer_pk, institution_id, method_id, {_list(_METHOD_VALUES)}, changed_at)
SELECT id, customer_pk, :institution, method_id, {_list(_METHOD_VALUES)}, CAST(:now AS timestamptz)
FROM stage_methods s
WHERE NOT EXISTS (SELECT 1 FROM contact_methods o WHERE o.customer_pk = s.customer_pk AND o.method_id = s.method_id
  AND ({_list(_METHOD_VALUES, "o.")}) IS NOT DISTINCT FROM ({_list(_METHOD_VALUES, "s.")}))
ON CONFLICT (customer_pk, method_id) DO UPDATE SET
  {", ".join(f'"{c}" = EXCLUDED."{c}"' for c in _METHOD_VALUES)},
  changed_at = CASE WHEN m.destination IS DISTINCT FROM EXCLUDED.destination THEN EXCLUDED.changed_at
                    ELSE m.changed_at END
WHERE ({_list(_METHOD_VALUES, "m.")}) IS DISTINCT FROM ({_list(_METHOD_VALUES, "EXCLUDED.")})
RETURNING m.customer_pk
"""
_DELETE_ACCOUNTS = """
DELETE FROM accounts a USING unnest(CAST(:pks AS text[])) AS x(pk) WHERE a.customer_pk = x.pk
  AND NOT EXISTS (SELECT 1 FROM stage_accounts s WHERE s.customer_pk = a.customer_pk AND s.source_id = a.source_id)
RETURNING a.customer_pk
"""
_PLAIN = names(ACCOUNT_PLAIN)
_FLAGS = names(ACCOUNT_FLAGS)  # JSON, compared as jsonb


def _compared(prefix: str) -> str:
    return ", ".join([*(f'{prefix}"{c}"' for c in _PLAIN), *(f'{prefix}"{c}"::jsonb' for c in _FLAGS)])


_UPSERT_ACCOUNTS = f"""
INSERT INTO accounts AS a (id, institution_id, customer_pk, source_id, {_list(names(ACCOUNT))}, created_at, updated_at)
SELECT id, :institution, customer_pk, source_id, {_list(_PLAIN)}, {", ".join(f'"{c}"::json' for c in _FLAGS)},
  :now, :now FROM stage_accounts s
WHERE NOT EXISTS (SELECT 1 FROM accounts o WHERE o.customer_pk = s.customer_pk AND o.source_id = s.source_id
  AND ({_compared("o.")}) IS NOT DISTINCT FROM ({_compared("s.")}))
ON CONFLICT (customer_pk, source_id) DO UPDATE SET
  {", ".join(f'"{c}" = EXCLUDED."{c}"' for c in names(ACCOUNT))}, updated_at = EXCLUDED.updated_at
WHERE ({_compared("a.")}) IS DISTINCT FROM ({_compared("EXCLUDED.")})
RETURNING a.customer_pk
"""


@dataclass
class Staged:
    """One validated line of a customer the database holds, ready for the staging tables."""

    customer_id: str
    pk: str
    moves_login: bool  # the line gives the customer another login id (not only another case)
    customer: tuple[Any, ...]
    methods: list[tuple[Any, ...]]
    accounts: list[tuple[Any, ...]] | None  # None: the line carries no accounts (leave them alone)
    deactivates: bool


def customer_row(pk: str, line: Line, *, password_hash: str | None) -> tuple[Any, ...]:
    """A line as a row of ``stage_customers`` (``STAGE_CUSTOMERS``)."""
    return (pk, line.customer_id, line.login_id, line.login_key, *line.values, password_hash, line.present)


def method_row(row_id: str, customer_pk: str, position: int, method: tuple[Any, ...]) -> tuple[Any, ...]:
    """A ``Line.methods`` entry as a row of ``stage_methods`` (``STAGE_METHODS``)."""
    return (row_id, customer_pk, position, *method)


def account_row(row_id: str, customer_pk: str, source_id: str, columns: tuple[Any, ...]) -> tuple[Any, ...]:
    """A ``Line.accounts`` entry as a row of ``stage_accounts`` (``STAGE_ACCOUNTS``)."""
    return (row_id, customer_pk, source_id, *columns)


_ACTIVE = FIELDS.index("active")  # in Line.values

#: The columns a new customer's rows are COPYed into, in the order ``New.add`` builds them.
_CUSTOMER_COLUMNS = (
    "id", "institution_id", "customer_id", "login_id", "login_key", *FIELDS, "failed_login_count",
    "failed_reset_count", "password_hash", "created_at", "updated_at",
)
_METHOD_COLUMNS_NEW = ("id", "customer_pk", *names(METHOD), "position", "institution_id")  # asyncpg quotes
_ACCOUNT_COLUMNS_NEW = ("id", "customer_pk", "source_id", *names(ACCOUNT), "institution_id", "created_at", "updated_at")


@dataclass
class New:
    """The batch's new customers as rows of their tables, built once, in the order of the columns
    above (a second pass that rebuilt every row for COPY was a sixth of the importing process's
    time)."""

    institution_id: str
    now: datetime
    customer_ids: list[str] = field(default_factory=list)
    customers: list[tuple[Any, ...]] = field(default_factory=list)
    methods: list[tuple[Any, ...]] = field(default_factory=list)
    accounts: list[tuple[Any, ...]] = field(default_factory=list)

    def add(self, line: Line, pk: str, keys: Iterator[str], *, password_hash: str | None) -> None:
        institution, now = self.institution_id, self.now
        self.customer_ids.append(line.customer_id)
        self.customers.append((
            pk, institution, line.customer_id, line.login_id, line.login_key, *line.values, 0, 0, password_hash, now,
            now,
        ))
        self.methods.extend(
            (next(keys), pk, *method, position, institution) for position, method in enumerate(line.methods)
        )
        if line.accounts:
            self.accounts.extend(
                (next(keys), pk, source_id, *columns, institution, now, now) for source_id, columns in line.accounts
            )


async def write(
    conn: AsyncConnection, new: New, old: list[Staged], *, institution_id: str, now: datetime, oauth: Any = None
) -> dict[str, str]:
    """Apply a batch in the connection's transaction; each line's outcome by customer id.

    New customers, with their methods and accounts, are COPYed straight into the tables (nothing of
    theirs can conflict but a customer or login id taken since the batch looked, which fails the
    batch as the INSERT would). Existing ones go through the staging tables and the set-based
    statements above."""
    # The transaction must have begun (SQLAlchemy begins it on the first statement) before the
    # driver connection is used directly, or the staging tables would go at once (ON COMMIT DROP).
    await conn.execute(text("SELECT 1"))
    driver = (await conn.get_raw_connection()).driver_connection
    assert driver is not None
    # Existing customers first: a new one may take a login id that one of them gives up.
    changed = await _update(conn, driver, old, institution_id=institution_id, now=now) if old else set()
    if new.customers:
        await driver.copy_records_to_table("customers", columns=_CUSTOMER_COLUMNS, records=new.customers)
        if new.methods:
            await driver.copy_records_to_table("contact_methods", columns=_METHOD_COLUMNS_NEW, records=new.methods)
        if new.accounts:
            await driver.copy_records_to_table("accounts", columns=_ACCOUNT_COLUMNS_NEW, records=new.accounts)
    deactivated = [s.customer_id for s in old if s.deactivates]
    if deactivated and oauth is not None:
        session = AsyncSession(bind=conn)
        for customer_id in deactivated:
            await oauth.revoke_customer_tokens(session, institution_id=institution_id, customer_id=customer_id)
        await session.flush()
    outcomes = dict.fromkeys(new.customer_ids, "created")
    outcomes.update((s.customer_id, "updated" if s.pk in changed else "unchanged") for s in old)
    return outcomes


async def _update(
    conn: AsyncConnection, driver: Any, old: list[Staged], *, institution_id: str, now: datetime
) -> set[str]:
    """Existing customers: stage, then update only what differs; the pks of those that changed."""
    await driver.execute(_STAGE)
    await driver.copy_records_to_table(
        "stage_customers", columns=names(STAGE_CUSTOMERS), records=[s.customer for s in old]
    )
    methods = [row for s in old for row in s.methods]
    if methods:
        await driver.copy_records_to_table("stage_methods", columns=names(STAGE_METHODS), records=methods)
    accounts = [row for s in old if s.accounts for row in s.accounts]
    if accounts:
        await driver.copy_records_to_table("stage_accounts", columns=names(STAGE_ACCOUNTS), records=accounts)
    params = {"institution": institution_id, "now": now}
    moving = [s.pk for s in old if s.moves_login]
    if moving:
        await conn.execute(text(_PARK_LOGINS), {"pks": moving})
    changed = {row[0] for row in (await conn.execute(text(_UPDATE), params)).all()}
    pks = [s.pk for s in old]
    changed |= {row[0] for row in (await conn.execute(text(_DELETE_METHODS), {"pks": pks})).all()}
    if methods:
        changed |= {row[0] for row in (await conn.execute(text(_UPSERT_METHODS), params)).all()}
    account_pks = [s.pk for s in old if s.accounts is not None]
    if account_pks:
        changed |= {row[0] for row in (await conn.execute(text(_DELETE_ACCOUNTS), {"pks": account_pks})).all()}
    if accounts:
        changed |= {row[0] for row in (await conn.execute(text(_UPSERT_ACCOUNTS), params)).all()}
    touched = [s.pk for s in old if s.pk in changed]
    if touched:  # contact methods or accounts changed: the customer was updated too
        await conn.execute(text(_TOUCH), {"pks": touched, "now": now})
    return changed


# Each key of the batch is looked up on its own, through the unique index, whatever the planner's
# statistics say. A plain join of unnest() with customers was planned, on a table a load was filling
# and nobody had analysed yet, as a scan of all the institution's customers into a hash: 0.1 ms a
# batch at the start, 130 ms at a million customers, 54 s of a 121 s import (PostgreSQL's statement
# log). "= ANY(array)" was worse (a full scan testing every row against the array: 7 s a batch at
# 50,000). OFFSET 0 keeps the planner from flattening the LATERAL subquery into such a join, so the
# plan stays a nested loop of index lookups (4 ms a batch at a million).
_EXISTING = text(
    "SELECT c.id, c.customer_id, c.login_key, c.has_password, c.active "
    "FROM unnest(CAST(:ids AS text[])) AS x(customer_id) "
    "CROSS JOIN LATERAL (SELECT c.id, c.customer_id, c.login_key, c.password_hash IS NOT NULL AS has_password, "
    "c.active FROM customers c WHERE c.institution_id = :i AND c.customer_id = x.customer_id OFFSET 0) AS c"
)
_LOGIN_HOLDERS = text(
    "SELECT c.login_key, c.customer_id FROM unnest(CAST(:keys AS text[])) AS x(login_key) "
    "CROSS JOIN LATERAL (SELECT c.login_key, c.customer_id FROM customers c "
    "WHERE c.institution_id = :i AND c.login_key = x.login_key OFFSET 0) AS c"
)


class BulkWriter:
    """A batch in one transaction: what its lines refer to read in two index lookups, new customers
    COPYed, existing ones staged and applied by :func:`write`."""

    def __init__(self, *, db: Database, hashing: PasswordHashing, clock: Clock, oauth: OAuthService | None) -> None:
        self.db = db
        self.hashing = hashing
        self.clock = clock
        self.oauth = oauth

    async def write(self, lines: list[Line], *, institution_id: str, tally: Tally, run_id: str | None) -> None:
        now = self.clock.now()
        async with self.db.engine.begin() as conn:
            ids = [line.customer_id for line in lines]
            existing = {
                row.customer_id: row for row in (await conn.execute(_EXISTING, {"i": institution_id, "ids": ids})).all()
            }
            holders = Holders((await conn.execute(
                _LOGIN_HOLDERS, {"i": institution_id, "keys": [line.login_key for line in lines]}
            )).all())
            new = New(institution_id=institution_id, now=now)
            old: list[Staged] = []
            # Keys for every row the batch may add (a customer, its methods and accounts), drawn at once.
            keys = iter(ordered_ids(sum(1 + len(line.methods) + len(line.accounts or ()) for line in lines)))
            for line in lines:
                if (taken := holders.refusal(line)) is not None:
                    tally.refused.append((line.number, taken))
                    continue
                found = existing.get(line.customer_id)
                if found is None:
                    new.add(line, next(keys), keys, password_hash=initial_password_hash(self.hashing, line, None))
                else:
                    old.append(self._stage(line, found, keys))
                holders.took(line, found.login_key if found is not None else None)
            outcomes = await write(conn, new, old, institution_id=institution_id, now=now, oauth=self.oauth)
            if run_id is not None:
                await marks.add(conn, institution_id=institution_id, run_id=run_id,
                                customer_ids=[line.customer_id for line in lines], at=now)
        for outcome in outcomes.values():
            tally.count(outcome)

    def _stage(self, line: Line, found: Any, keys: Iterator[str]) -> Staged:
        """A line of a customer the database holds (``found``), for the staging tables."""
        # The SQL keeps a hash the customer has (COALESCE); hash a plain password only if needed.
        password_hash = None if found.has_password else initial_password_hash(self.hashing, line, None)
        return Staged(
            customer_id=line.customer_id, pk=found.id, moves_login=found.login_key != line.login_key,
            customer=customer_row(found.id, line, password_hash=password_hash),
            methods=[method_row(next(keys), found.id, n, method) for n, method in enumerate(line.methods)],
            accounts=None if line.accounts is None else [
                account_row(next(keys), found.id, source_id, columns) for source_id, columns in line.accounts
            ],
            deactivates=(
                found.active and bool(line.present & BIT["active"]) and not line.values[_ACTIVE]
            ),
        )
