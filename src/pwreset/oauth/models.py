from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, String, false
from sqlalchemy.orm import Mapped, mapped_column

from pwreset.audit.models import BigId
from pwreset.db import Base, UTCDateTime


class ApiClient(Base):
    """A partner application: one institution, a public shared key and a hashed secret key."""

    __tablename__ = "api_clients"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    institution_id: Mapped[str] = mapped_column(ForeignKey("institutions.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    shared_key: Mapped[str] = mapped_column(String(64), unique=True)
    secret_hash: Mapped[str] = mapped_column(String(64))
    scopes: Mapped[str] = mapped_column(String(500))  # space-separated allowed scopes
    grant_types: Mapped[str] = mapped_column(String(200))  # space-separated allowed grants
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    secret_rotated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    #: The secret a rotation with a grace period replaced: still accepted until its expiry, so partners
    #: can switch without a moment of refused tokens (``pwreset clients rotate --grace 24h``).
    previous_secret_hash: Mapped[str | None] = mapped_column(String(64))
    previous_secret_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    #: Trusted to name the end customer's address in the ``originating_ip`` header, which the audit
    #: trail then records (``pwreset clients set --trust-originating-ip``); anyone else's is ignored.
    trusted_origin: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class Token(Base):
    """An access or refresh token, stored only as a keyed hash.

    ``customer_id`` is set for customer-scoped tokens (the ``password`` grant); ``family_id`` ties a
    refresh token chain and the access tokens issued from it together, so reuse of a spent refresh
    token can revoke the whole family.
    """

    __tablename__ = "tokens"
    __table_args__ = (
        Index("ix_tokens_family_id", "family_id"),
        Index("ix_tokens_customer_id", "institution_id", "customer_id"),
        Index("ix_tokens_client_id", "client_id"),
        Index("ix_tokens_expires_at", "expires_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    kind: Mapped[str] = mapped_column(String(8))  # access | refresh
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    client_id: Mapped[str] = mapped_column(ForeignKey("api_clients.id"))
    institution_id: Mapped[str] = mapped_column(String(64))
    customer_id: Mapped[str | None] = mapped_column(String(64))
    scope: Mapped[str] = mapped_column(String(500))
    family_id: Mapped[str | None] = mapped_column(String(32))
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    #: For refresh tokens: when it was exchanged (rotation). A second use is reuse.
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class TokenRevocation(Base):
    """The revocation log every node reads to drop cached tokens (see ``oauth/revocation.py``).

    Written in the same transaction as the revocation itself; pruned once older than the longest
    access-token lifetime.
    """

    __tablename__ = "token_revocations"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))  # token | family | client | client_updated | customer
    key: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
