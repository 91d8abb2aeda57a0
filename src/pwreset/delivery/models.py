from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from pwreset.db import Base, UTCDateTime


class OutboxMessage(Base):
    """A message to deliver, written in the same transaction as the change that caused it.

    The destination and the message's variables (the passcode) are sealed (AES-GCM under a key
    derived from the server secret): a passcode is never stored in the clear. The worker renders
    the text from the templates when it sends. ``not_after`` drops a passcode message that could
    no longer be used.

    ``status``: pending -> sending (claimed: ``available_at`` is then the end of the lease, after
    which another worker may take it over) -> sent | pending again (a transient failure, with
    backoff) | dead (permanent failure or attempts exhausted) | expired. ``claim`` is the token of
    the current claim: only its holder may record the outcome.
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
    language: Mapped[str] = mapped_column(String(16), default="en")
    claim: Mapped[str | None] = mapped_column(String(32))
    #: The provider's id for the accepted message (Twilio SID, SMTP queue id), for support.
    provider_ref: Mapped[str | None] = mapped_column(String(128))


class MessageTemplate(Base):
    """An institution's own text for one kind of message on one channel in one language (Jinja2)."""

    __tablename__ = "message_templates"
    __table_args__ = (
        UniqueConstraint("institution_id", "kind", "channel", "language", name="uq_message_templates_key"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    institution_id: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(32))
    channel: Mapped[str] = mapped_column(String(8))
    language: Mapped[str] = mapped_column(String(16))
    subject: Mapped[str | None] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    html: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
