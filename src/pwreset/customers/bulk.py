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

from pwreset.customers.lines import ACCOUNT_COLUMNS as _ACCOUNT_COLUMNS
from pwreset.customers.lines import BIT, FIELDS, METHOD_FIELDS, Line

_STAGE = """
CREATE TEMP TABLE stage_customers (
  pk text, customer_id text, login_id text, login_key text, host_user_id text, member_number text,
  first_name text, last_name text, language text, registered bool, accepted_disclosure bool, active bool,
  locked bool, password_hash text, present int) ON COMMIT DROP;
CREATE TEMP TABLE stage_methods (
  id text, customer_pk text, method_id text, position int, protocol text, country_code text, contact_info text,
  destination text, activated bool, validated bool, is_primary bool, enrolled_at timestamptz) ON COMMIT DROP;
CREATE TEMP TABLE stage_accounts (
  id text, customer_pk text, source_id text, position int, account_number text, nick_name text,
  description text, type_value text, fi_account_type int, type_description text, category text,
  primary_holder_name text, routing_number text, current_currency text, current_amount numeric,
  available_currency text, available_amount numeric, status text, allowed_actions text) ON COMMIT DROP;
"""

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
_METHOD_COLUMNS = ("position", "protocol", "country_code", "contact_info", "destination", "activated", "validated",
                   "enrolled_at")
_DELETE_METHODS = """
DELETE FROM contact_methods m USING unnest(CAST(:pks AS text[])) AS x(pk) WHERE m.customer_pk = x.pk
  AND NOT EXISTS (SELECT 1 FROM stage_methods s WHERE s.customer_pk = m.customer_pk AND s.method_id = m.method_id)
RETURNING m.customer_pk
"""
# Unchanged rows are left out before the upsert, not only by its WHERE: ON CONFLICT DO UPDATE locks
# every conflicting row, a write each, even where its WHERE then updates nothing.
_UPSERT_METHODS = f"""
INSERT INTO contact_methods AS m (id, customer_pk, institution_id, method_id, {", ".join(_METHOD_COLUMNS)}, "primary")
SELECT id, customer_pk, :institution, method_id, {", ".join(_METHOD_COLUMNS)}, is_primary FROM stage_methods s
WHERE NOT EXISTS (SELECT 1 FROM contact_methods o WHERE o.customer_pk = s.customer_pk AND o.method_id = s.method_id
  AND ({", ".join(f"o.{c}" for c in _METHOD_COLUMNS)}, o."primary")
  IS NOT DISTINCT FROM ({", ".join(f"s.{c}" for c in _METHOD_COLUMNS)}, s.is_primary))
ON CONFLICT (customer_pk, method_id) DO UPDATE SET
  {", ".join(f"{c} = EXCLUDED.{c}" for c in _METHOD_COLUMNS)}, "primary" = EXCLUDED."primary"
WHERE ({", ".join(f"m.{c}" for c in _METHOD_COLUMNS)}, m."primary")
  IS DISTINCT FROM ({", ".join(f"EXCLUDED.{c}" for c in _METHOD_COLUMNS)}, EXCLUDED."primary")
RETURNING m.customer_pk
"""
_DELETE_ACCOUNTS = """
DELETE FROM accounts a USING unnest(CAST(:pks AS text[])) AS x(pk) WHERE a.customer_pk = x.pk
  AND NOT EXISTS (SELECT 1 FROM stage_accounts s WHERE s.customer_pk = a.customer_pk AND s.source_id = a.source_id)
RETURNING a.customer_pk
"""
_UPSERT_ACCOUNTS = f"""
INSERT INTO accounts AS a (id, institution_id, customer_pk, source_id, {", ".join(_ACCOUNT_COLUMNS)}, status,
  allowed_actions, created_at, updated_at)
SELECT id, :institution, customer_pk, source_id, {", ".join(_ACCOUNT_COLUMNS)}, status::json, allowed_actions::json,
  :now, :now FROM stage_accounts s
WHERE NOT EXISTS (SELECT 1 FROM accounts o WHERE o.customer_pk = s.customer_pk AND o.source_id = s.source_id
  AND ({", ".join(f"o.{c}" for c in _ACCOUNT_COLUMNS)}, o.status::jsonb, o.allowed_actions::jsonb)
  IS NOT DISTINCT FROM ({", ".join(f"s.{c}" for c in _ACCOUNT_COLUMNS)}, s.status::jsonb, s.allowed_actions::jsonb))
ON CONFLICT (customer_pk, source_id) DO UPDATE SET
  {", ".join(f"{c} = EXCLUDED.{c}" for c in _ACCOUNT_COLUMNS)}, status = EXCLUDED.status,
  allowed_actions = EXCLUDED.allowed_actions, updated_at = EXCLUDED.updated_at
WHERE ({", ".join(f"a.{c}" for c in _ACCOUNT_COLUMNS)}, a.status::jsonb, a.allowed_actions::jsonb)
  IS DISTINCT FROM ({", ".join(f"EXCLUDED.{c}" for c in _ACCOUNT_COLUMNS)}, EXCLUDED.status::jsonb,
  EXCLUDED.allowed_actions::jsonb)
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
    """A line as a row of ``stage_customers``."""
    return (pk, line.customer_id, line.login_id, line.login_key, *line.values, password_hash, line.present)


def method_row(row_id: str, customer_pk: str, position: int, method: tuple[Any, ...]) -> tuple[Any, ...]:
    """A ``Line.methods`` entry as a row of ``stage_methods``."""
    return (row_id, customer_pk, method[0], position, *method[1:])


def account_row(row_id: str, customer_pk: str, source_id: str, columns: tuple[Any, ...]) -> tuple[Any, ...]:
    """A ``Line.accounts`` entry as a row of ``stage_accounts``."""
    return (row_id, customer_pk, source_id, *columns)


#: The columns a new customer's rows are COPYed into, in the order ``New.add`` builds them.
_CUSTOMER_COLUMNS = (
    "id", "institution_id", "customer_id", "login_id", "login_key", *FIELDS, "failed_login_count",
    "failed_reset_count", "password_hash", "created_at", "updated_at",
)
_METHOD_COLUMNS_NEW = ("id", "customer_pk", *METHOD_FIELDS, "position", "institution_id")  # asyncpg quotes
_ACCOUNT_COLUMNS_NEW = (
    "id", "customer_pk", "source_id", *_ACCOUNT_COLUMNS, "status", "allowed_actions", "institution_id", "created_at",
    "updated_at",
)


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
    await driver.copy_records_to_table("stage_customers", records=[s.customer for s in old])
    methods = [row for s in old for row in s.methods]
    if methods:
        await driver.copy_records_to_table("stage_methods", records=methods)
    accounts = [row for s in old if s.accounts for row in s.accounts]
    if accounts:
        await driver.copy_records_to_table("stage_accounts", records=accounts)
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
