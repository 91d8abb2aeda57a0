"""The customer directory: finding customers, their views, sign-in, unlocking."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from pwreset.audit import service as audit
from pwreset.customers import repository
from pwreset.customers.contact import mask
from pwreset.customers.errors import CustomerNotFound, InvalidUserIdType
from pwreset.customers.models import Customer
from pwreset.db import Database
from pwreset.kit.clock import Clock
from pwreset.passwords.hashing import PasswordHashing

USER_ID_TYPES = ("CUSTOMER_ID", "LOGIN_ID", "HOST_USER_ID")


async def find_customer(
    session: AsyncSession, *, institution_id: str, user_id: str, id_type: str = "CUSTOMER_ID",
    allowed: tuple[str, ...] = ("CUSTOMER_ID", "LOGIN_ID"),
) -> Customer:
    """The customer of this institution named by ``user_id``; another institution's does not exist."""
    if id_type not in allowed:
        raise InvalidUserIdType(f"userIdType must be one of {', '.join(allowed)}")
    if id_type == "CUSTOMER_ID":
        found = await repository.by_customer_id(session, institution_id=institution_id, customer_id=user_id)
    elif id_type == "LOGIN_ID":
        found = await repository.by_login_id(session, institution_id=institution_id, login_id=user_id)
    else:
        found = await repository.by_host_user_id(session, institution_id=institution_id, host_user_id=user_id)
    if found is None:
        raise CustomerNotFound()
    return found


class MethodFields(Protocol):
    """A contact method as the ORM or a directory entry carries it."""

    @property
    def method_id(self) -> str: ...
    @property
    def protocol(self) -> str: ...
    @property
    def country_code(self) -> str | None: ...
    @property
    def contact_info(self) -> str: ...
    @property
    def activated(self) -> bool: ...
    @property
    def enrolled_at(self) -> datetime | None: ...


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
    if id_type not in ("CUSTOMER_ID", "LOGIN_ID"):
        raise InvalidUserIdType("userIdType must be one of CUSTOMER_ID, LOGIN_ID")
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
                activated=row["activated"], enrolled_at=row["enrolled_at"],
            )
            for row in rows
            if row["method_pk"] is not None
        ),
    )


def contact_method_view(method: MethodFields, *, masked: bool = False) -> dict[str, object]:
    """One contact method as contract 6.1 shows it."""
    view: dict[str, object] = {"id": method.method_id}
    if method.protocol != "EMAIL":
        view["telephoneCountryCode"] = method.country_code
    view["contactInfo"] = mask(method.contact_info) if masked else method.contact_info
    view["protocol"] = method.protocol
    view["isActivated"] = method.activated
    if method.enrolled_at is not None:
        view["enrolledDateTime"] = method.enrolled_at.strftime("%Y-%m-%dT%H:%M:%S.") + (
            f"{method.enrolled_at.microsecond // 1000:03d}Z"
        )
    return view


def profile_view(customer: Customer, *, masked: bool = False) -> dict[str, object]:
    """Contract section 7, ``GET /v1/customers/{customerId}``."""
    return {
        "userId": customer.id,
        "fiId": customer.institution_id,
        "loginId": customer.login_id,
        "firstName": customer.first_name,
        "lastName": customer.last_name,
        "fullName": customer.full_name,
        "acceptedDisclosure": customer.accepted_disclosure,
        "failedLoginCount": customer.failed_login_count,
        "failedPasswordResetCount": customer.failed_reset_count,
        "userStatus": {
            "active": customer.active,
            "locked": customer.locked,
            "registered": customer.registered,
            "acceptedDisclosure": customer.accepted_disclosure,
        },
        "customers": [{"customerId": customer.customer_id, "memberNumber": customer.member_number}],
        "contactMethods": [contact_method_view(m, masked=masked) for m in customer.contact_methods],
    }


def institution_user_view(customer: Customer) -> dict[str, object]:
    """Contract section 7, ``GET /v1/institution-users/{id}``."""
    return {
        "institutionUserId": customer.id,
        "institutionId": customer.institution_id,
        "institutionUserType": "RETAIL",
        "institutionCustomers": [
            {
                "institutionCustomerId": customer.customer_id,
                "memberNumber": customer.member_number,
                "hostLoginId": customer.login_id,
            }
        ],
    }


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
