from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from pwreset.db import Base, ExactDecimal, UTCDateTime


class Account(Base):
    """A customer's account as the host system reports it (contract section 8).

    ``id`` is the opaque id the API shows (random, 128 bits: not guessable, never reused across
    institutions); ``source_id`` is the institution's own id from the import file, unique per
    customer, which keeps re-imports idempotent. Amounts are exact decimals, never floats.
    """

    __tablename__ = "accounts"
    __table_args__ = (
        # Also the index for a customer's accounts (customer_pk first); a handful are sorted by position.
        UniqueConstraint("customer_pk", "source_id", name="uq_accounts_customer_source"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    institution_id: Mapped[str] = mapped_column(String(64))
    customer_pk: Mapped[str] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    source_id: Mapped[str] = mapped_column(String(64))
    position: Mapped[int] = mapped_column(Integer, default=0)
    account_number: Mapped[str] = mapped_column(String(34))
    nick_name: Mapped[str | None] = mapped_column(String(100))
    description: Mapped[str | None] = mapped_column(String(200))
    type_value: Mapped[str] = mapped_column(String(32))
    fi_account_type: Mapped[int] = mapped_column(Integer)
    type_description: Mapped[str] = mapped_column(String(100))
    category: Mapped[str] = mapped_column(String(32))
    primary_holder_name: Mapped[str | None] = mapped_column(String(200))
    routing_number: Mapped[str | None] = mapped_column(String(9))
    current_currency: Mapped[str | None] = mapped_column(String(3))
    current_amount: Mapped[Decimal | None] = mapped_column(ExactDecimal())
    available_currency: Mapped[str | None] = mapped_column(String(3))
    available_amount: Mapped[Decimal | None] = mapped_column(ExactDecimal())
    status: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    allowed_actions: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
