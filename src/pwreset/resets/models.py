from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from pwreset.db import Base, UTCDateTime


class Passcode(Base):
    """A one-time passcode, stored as a keyed hash. ``status``: active, used, superseded, exhausted."""

    __tablename__ = "passcodes"
    __table_args__ = (
        Index("ix_passcodes_customer_created", "customer_pk", "created_at"),
        Index("ix_passcodes_destination_created", "destination_hash", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    institution_id: Mapped[str] = mapped_column(String(64))
    customer_pk: Mapped[str] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    contact_method_pk: Mapped[str] = mapped_column(ForeignKey("contact_methods.id", ondelete="CASCADE"))
    protocol: Mapped[str] = mapped_column(String(8))
    #: Keyed hash of where it was sent: the send limit per destination counts these when the rate
    #: limiter's counters may have forgotten (ratelimit/limiter.py, decision 0010).
    destination_hash: Mapped[str | None] = mapped_column(String(64))
    code_hash: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="active")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class ResetTicket(Base):
    """Proof that a passcode was verified: single use, bound to the customer and the passcode."""

    __tablename__ = "reset_tickets"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    institution_id: Mapped[str] = mapped_column(String(64))
    customer_pk: Mapped[str] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), index=True)
    passcode_id: Mapped[str] = mapped_column(ForeignKey("passcodes.id", ondelete="CASCADE"), unique=True)
    #: With two-channel assurance: the passcode verified on the other channel before this one.
    first_passcode_id: Mapped[str | None] = mapped_column(
        ForeignKey("passcodes.id", ondelete="CASCADE"), unique=True
    )
    ticket_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
