"""The customer directory: finding customers, their views, sign-in, unlocking."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from pwreset.audit import service as audit
from pwreset.customers import repository
from pwreset.customers.errors import CustomerNotFound, InvalidUserIdType
from pwreset.customers.models import Customer
from pwreset.db import Database
from pwreset.kit.clock import Clock
from pwreset.passwords.hashing import PasswordHashing

#: ``userIdType`` values of the ux-users operations (6.1, 7).
CUSTOMER_ID_TYPES = ("CUSTOMER_ID", "LOGIN_ID")
#: ``userIdType`` values of the institution-users operation: the spec's, its default first, and
#: ``CUSTOMER_ID`` [ext]. Which identifier each is: ``customers/views.py``.
INSTITUTION_USER_ID_TYPES = ("INSTITUTION_USER_ID", "HOST_USER_ID", "LOGIN_ID", "LEGACY_USER_GUID", "USER_ID",
                             "CUSTOMER_ID")


async def find_customer(
    session: AsyncSession, *, institution_id: str, user_id: str, id_type: str = "CUSTOMER_ID",
    allowed: tuple[str, ...] = CUSTOMER_ID_TYPES,
) -> Customer:
    """The customer of this institution named by ``user_id``; another institution's does not exist."""
    if id_type not in allowed:
        raise InvalidUserIdType(f"userIdType must be one of {', '.join(allowed)}")
    if id_type in ("CUSTOMER_ID", "LEGACY_USER_GUID"):
        found = await repository.by_customer_id(session, institution_id=institution_id, customer_id=user_id)
    elif id_type == "LOGIN_ID":
        found = await repository.by_login_id(session, institution_id=institution_id, login_id=user_id)
    elif id_type == "HOST_USER_ID":
        found = await repository.by_host_user_id(session, institution_id=institution_id, host_user_id=user_id)
    else:  # INSTITUTION_USER_ID (the key in upper case) and USER_ID (in lower case)
        found = await repository.by_key(session, institution_id=institution_id, pk=user_id.lower())
    if found is None:
        raise CustomerNotFound()
    return found


@dataclass(frozen=True)
class MethodEntry:
    pk: str
    method_id: str
    protocol: str
    country_code: str | None
    contact_info: str
    destination: str
    activated: bool
    enrolled_at: datetime | None
    #: When the destination last changed (:contact-info or an import): inside the cool-off it gets no passcode.
    changed_at: datetime | None = None


@dataclass(frozen=True)
class DirectoryEntry:
    """What the hot paths need of a customer, read in one query without the ORM (6.1, 6.2).

    A snapshot: a path that changes the customer's row takes it again under a lock.
    """

    pk: str
    institution_id: str
    customer_id: str
    language: str
    registered: bool
    accepted_disclosure: bool
    active: bool
    reset_blocked_until: datetime | None
    methods: tuple[MethodEntry, ...]


async def directory_entry(db: Database, *, institution_id: str, user_id: str, id_type: str) -> DirectoryEntry:
    """One customer of this institution, named by CUSTOMER_ID or LOGIN_ID, with its methods in order."""
    if id_type not in CUSTOMER_ID_TYPES:
        raise InvalidUserIdType(f"userIdType must be one of {', '.join(CUSTOMER_ID_TYPES)}")
    rows = await repository.entry_rows(db, institution_id=institution_id, id_type=id_type, value=user_id)
    if not rows:
        raise CustomerNotFound()
    first = rows[0]
    return DirectoryEntry(
        pk=first["customer_pk"], institution_id=institution_id, customer_id=first["customer_id"],
        language=first["language"], registered=first["registered"], accepted_disclosure=first["accepted_disclosure"],
        active=first["active"], reset_blocked_until=first["reset_blocked_until"],
        methods=tuple(
            MethodEntry(
                pk=row["method_pk"], method_id=row["method_id"], protocol=row["protocol"],
                country_code=row["country_code"], contact_info=row["contact_info"], destination=row["destination"],
                activated=row["activated"], enrolled_at=row["enrolled_at"], changed_at=row["changed_at"],
            )
            for row in rows
            if row["method_pk"] is not None
        ),
    )


async def unlock_customer(
    session: AsyncSession, *, customer: Customer, clock: Clock, client_id: str | None, correlation_id: str | None
) -> None:
    customer.locked = False
    customer.failed_login_count = 0
    customer.updated_at = clock.now()
    await session.flush()
    await audit.record_event(
        session, clock=clock, event_type="customer.unlocked", outcome="success", institution_id=customer.institution_id,
        client_id=client_id, customer_id=customer.customer_id, correlation_id=correlation_id,
    )


@dataclass
class Directory:
    """The ``CustomerDirectory`` port of the token service (``oauth/directory.py``)."""

    hashing: PasswordHashing
    clock: Clock
    lock_after: int = 6

    async def authenticate(
        self, session: AsyncSession, *, institution_id: str, username: str, password: str
    ) -> str | None:
        customer = await repository.by_login_id(
            session, institution_id=institution_id, login_id=username, for_update=True
        )
        if customer is None:
            self.hashing.verify(None, password)  # same cost as a real check: no enumeration by timing
            return None
        verdict = self.hashing.verify(customer.password_hash, password)
        if not verdict.ok:
            _, locked_now = await repository.add_failed_login(session, customer_pk=customer.id, lock_at=self.lock_after)
            await audit.record_event(
                session, clock=self.clock, event_type="customer.sign_in_failed",
                outcome="locked" if locked_now else "wrong_password", institution_id=institution_id,
                customer_id=customer.customer_id,
            )
            return None
        if customer.locked or not customer.active or not customer.registered:
            return None
        changed = False
        if customer.failed_login_count:
            customer.failed_login_count = 0
            changed = True
        if verdict.needs_upgrade:
            customer.password_hash = self.hashing.hash(password)  # legacy hash replaced by argon2id
            changed = True
        if changed:
            customer.updated_at = self.clock.now()
            await session.flush()
        return customer.customer_id

    async def may_refresh(
        self, session: AsyncSession, *, institution_id: str, customer_id: str, issued_at: datetime
    ) -> bool:
        customer = await repository.by_customer_id(
            session, institution_id=institution_id, customer_id=customer_id, for_update=True
        )
        if customer is None or not customer.active or customer.locked:
            return False
        # A session that began before the last password change does not outlive it.
        return customer.password_changed_at is None or issued_at > customer.password_changed_at
