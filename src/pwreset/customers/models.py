from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from pwreset.db import Base, UTCDateTime


class Customer(Base):
    """A customer of one institution. ``customer_id`` is the contract's ``customerId``."""

    __tablename__ = "customers"
    __table_args__ = (
        UniqueConstraint("institution_id", "customer_id", name="uq_customers_institution_customer"),
        UniqueConstraint("institution_id", "login_key", name="uq_customers_institution_login"),
        Index("ix_customers_host_user", "institution_id", "host_user_id"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    institution_id: Mapped[str] = mapped_column(ForeignKey("institutions.id"))
    customer_id: Mapped[str] = mapped_column(String(64))
    login_id: Mapped[str] = mapped_column(String(128))
    #: The login id case-folded: login ids are unique per institution, case-insensitively.
    login_key: Mapped[str] = mapped_column(String(128))
    host_user_id: Mapped[str | None] = mapped_column(String(64))
    member_number: Mapped[str | None] = mapped_column(String(64))
    first_name: Mapped[str] = mapped_column(String(100), default="")
    last_name: Mapped[str] = mapped_column(String(100), default="")
    language: Mapped[str] = mapped_column(String(8), default="en")
    registered: Mapped[bool] = mapped_column(Boolean, default=True)
    accepted_disclosure: Mapped[bool] = mapped_column(Boolean, default=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    locked: Mapped[bool] = mapped_column(Boolean, default=False)
    failed_login_count: Mapped[int] = mapped_column(Integer, default=0)
    #: Consecutive wrong passcodes across passcodes, and when the current run of them began.
    failed_reset_count: Mapped[int] = mapped_column(Integer, default=0)
    reset_failures_since: Mapped[datetime | None] = mapped_column(UTCDateTime())
    reset_blocked_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    password_hash: Mapped[str | None] = mapped_column(String(255))
    password_changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())

    contact_methods: Mapped[list[ContactMethod]] = relationship(
        back_populates="customer", cascade="all, delete-orphan", order_by="ContactMethod.position",
        lazy="selectin",
    )

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()


class ContactMethod(Base):
    """A way to reach a customer: ``SMS``, ``VOICE`` (E.164 phone numbers) or ``EMAIL``."""

    __tablename__ = "contact_methods"
    __table_args__ = (UniqueConstraint("customer_pk", "method_id", name="uq_contact_methods_customer_method"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    #: Looked up through ``uq_contact_methods_customer_method`` (customer_pk first): no index of its own.
    customer_pk: Mapped[str] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    institution_id: Mapped[str] = mapped_column(String(64))
    #: The contract's contact method ``id`` (a string such as ``"123310058"``).
    method_id: Mapped[str] = mapped_column(String(64))
    position: Mapped[int] = mapped_column(Integer, default=0)
    protocol: Mapped[str] = mapped_column(String(8))
    country_code: Mapped[str | None] = mapped_column(String(4))
    #: National number for phones (the contract's ``contactInfo``), the address for email.
    contact_info: Mapped[str] = mapped_column(String(320))
    #: Where messages go: E.164 for phones, the normalised address for email.
    destination: Mapped[str] = mapped_column(String(320))
    activated: Mapped[bool] = mapped_column(Boolean, default=True)
    validated: Mapped[bool] = mapped_column(Boolean, default=False)
    primary: Mapped[bool] = mapped_column(Boolean, default=False)
    enrolled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    #: When the destination last changed (``:contact-info`` or an import): a destination changed within
    #: the institution's cool-off receives no reset passcode (issue 14; a SIM-swap or account-takeover
    #: fraudster changes the number, then resets at once).
    changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    customer: Mapped[Customer] = relationship(back_populates="contact_methods")


class PasswordHistory(Base):
    """Hashes of a customer's last passwords, kept only to refuse their reuse (PCI DSS 8.3.7)."""

    __tablename__ = "password_history"
    __table_args__ = (Index("ix_password_history_customer", "customer_pk", "created_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    customer_pk: Mapped[str] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    password_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
