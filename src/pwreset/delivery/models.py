from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from pwreset.db import Base, UTCDateTime


class OutboxMessage(Base):
    """A message to deliver, written in the same transaction as the change that caused it.

    The body is sealed (AES-GCM under a key derived from the server secret): a passcode is never
    stored in the clear. ``not_after`` drops a passcode message that could no longer be used.
    """

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_status_available", "status", "available_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    institution_id: Mapped[str] = mapped_column(String(64))
    customer_pk: Mapped[str | None] = mapped_column(String(32))
    #: For the audit trail of the send: who the customer is, which method, who asked, under what id.
    customer_id: Mapped[str | None] = mapped_column(String(64))
    contact_method_id: Mapped[str | None] = mapped_column(String(64))
    client_id: Mapped[str | None] = mapped_column(String(64))
    correlation_id: Mapped[str | None] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(32))  # passcode | password_changed
    channel: Mapped[str] = mapped_column(String(8))  # SMS | VOICE | EMAIL
    destination_masked: Mapped[str] = mapped_column(String(64))
    sealed: Mapped[bytes] = mapped_column(LargeBinary)  # destination, subject, text (sealed JSON)
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending | sent | dead | expired
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    available_at: Mapped[datetime] = mapped_column(UTCDateTime())
    not_after: Mapped[datetime | None] = mapped_column(UTCDateTime())
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(Text)
