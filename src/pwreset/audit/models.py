from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from pwreset.db import Base, UTCDateTime

BigId = BigInteger().with_variant(Integer(), "sqlite")


class AuditEvent(Base):
    __tablename__ = "audit_events"
    __table_args__ = (
        # What the sealer reads (audit/chain.py): only the events waiting for a seal, by chain, in id order.
        # Without it each block would walk the sealed events before the first waiting one.
        Index("ix_audit_events_unsealed", "institution_id", "id",
              postgresql_where=text("seal_id IS NULL"), sqlite_where=text("seal_id IS NULL")),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    event_type: Mapped[str] = mapped_column(String(64), index=True)
    outcome: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(32))  # api, cli, worker, system
    institution_id: Mapped[str | None] = mapped_column(String(64), index=True)
    client_id: Mapped[str | None] = mapped_column(String(64))
    customer_id: Mapped[str | None] = mapped_column(String(64))
    correlation_id: Mapped[str | None] = mapped_column(String(64))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    #: Where the request came from (PCI DSS 10.2.2): the client's address (through the trusted
    #: proxies), its user agent, and the end customer's address when a trusted partner passes it.
    origin_ip: Mapped[str | None] = mapped_column(String(45))
    user_agent: Mapped[str | None] = mapped_column(String(256))
    originating_ip: Mapped[str | None] = mapped_column(String(45))
    #: Keyed hash of the event's content (audit/chain.py): an edit without the key shows.
    mac: Mapped[str | None] = mapped_column(String(64))
    #: The seal that covers this event, once sealed (chained seals show deletions, insertions, reorders).
    seal_id: Mapped[int | None] = mapped_column(ForeignKey("audit_seals.id"), index=True)


class AuditSeal(Base):
    """A sealed block of one chain's events: the keyed hash of the previous seal's digest and of each
    event's id and mac in id order (audit/chain.py). The chain is the institution (``-`` for events of
    none). A purge deletes a seal's events and keeps the seal, so the chain still verifies."""

    __tablename__ = "audit_seals"
    __table_args__ = (UniqueConstraint("chain", "seq", name="uq_audit_seals_chain_seq"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    chain: Mapped[str] = mapped_column(String(64))
    seq: Mapped[int] = mapped_column(Integer)
    count: Mapped[int] = mapped_column(Integer)
    first_event_id: Mapped[int] = mapped_column(BigId)
    last_event_id: Mapped[int] = mapped_column(BigId)
    first_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_at: Mapped[datetime] = mapped_column(UTCDateTime())
    prev_digest: Mapped[str] = mapped_column(String(64))
    digest: Mapped[str] = mapped_column(String(64))
    sealed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    purged_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    #: Keyed hash of the purge (chain, number, digest, last event's time, purge time): a seal marked
    #: purged by anyone without the key does not verify.
    purge_mac: Mapped[str | None] = mapped_column(String(64))


class AuditExport(Base):
    """A finished export: ``audit purge`` deletes only what an export covered, unless forced."""

    __tablename__ = "audit_exports"
    __table_args__ = (Index("ix_audit_exports_chain", "chain", "since"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    chain: Mapped[str] = mapped_column(String(64))
    since: Mapped[datetime] = mapped_column(UTCDateTime())
    until: Mapped[datetime] = mapped_column(UTCDateTime())
    format: Mapped[str] = mapped_column(String(8))
    events: Mapped[int] = mapped_column(Integer)
    exported_at: Mapped[datetime] = mapped_column(UTCDateTime())
    #: When the export began: only seals made before it are known to be in it.
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    #: Keyed hash of the record: a forged export row does not let ``purge`` delete anything.
    mac: Mapped[str] = mapped_column(String(64))
