"""The portal's tables. Developers are not bank customers: they live apart from ``customers``."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Integer, String, UniqueConstraint, false
from sqlalchemy.orm import Mapped, mapped_column

from pwreset.db import Base, UTCDateTime


class Developer(Base):
    __tablename__ = "portal_developers"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    #: Lower-cased, as typed otherwise (email-validator's normal form).
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    password_hash: Mapped[str] = mapped_column(String(200))  # argon2id
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    password_changed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    #: The institution's own staff (``pwreset portal staff EMAIL``).
    staff: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class PortalSession(Base):
    """A signed-in browser. The cookie holds an opaque token; the table only its keyed hash."""

    __tablename__ = "portal_sessions"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    developer_id: Mapped[str] = mapped_column(ForeignKey("portal_developers.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())  # the absolute end


class PortalCode(Base):
    """A single-use, expiring secret sent by email: a verification link's token or a forgot-password code.
    Stored as a keyed hash; a newer one of the same purpose replaces the older."""

    __tablename__ = "portal_codes"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    purpose: Mapped[str] = mapped_column(String(16))  # verify | forgot
    developer_id: Mapped[str] = mapped_column(ForeignKey("portal_developers.id", ondelete="CASCADE"), index=True)
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    attempts: Mapped[int] = mapped_column(Integer, default=0)


class Organisation(Base):
    __tablename__ = "portal_organisations"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    #: Its own sandbox institution (``Institution.sandbox``), with demo customers.
    sandbox_institution_id: Mapped[str] = mapped_column(ForeignKey("institutions.id"), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Membership(Base):
    __tablename__ = "portal_memberships"

    organisation_id: Mapped[str] = mapped_column(ForeignKey("portal_organisations.id"), primary_key=True)
    developer_id: Mapped[str] = mapped_column(ForeignKey("portal_developers.id", ondelete="CASCADE"),
                                              primary_key=True, index=True)
    role: Mapped[str] = mapped_column(String(16))  # admin | developer | viewer
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class App(Base):
    __tablename__ = "portal_apps"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    organisation_id: Mapped[str] = mapped_column(ForeignKey("portal_organisations.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    scopes: Mapped[str] = mapped_column(String(500))  # space-separated, within what the organisation may use
    environment: Mapped[str] = mapped_column(String(16))  # sandbox (production: issue 13, item 6)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class AppKey(Base):
    """One key pair of an app: an ``api_clients`` row of the app's institution."""

    __tablename__ = "portal_app_keys"

    client_id: Mapped[str] = mapped_column(ForeignKey("api_clients.id"), primary_key=True)
    app_id: Mapped[str] = mapped_column(ForeignKey("portal_apps.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Interest(Base):
    """A watchlist entry: this developer follows this API (and the institution's representative was told)."""

    __tablename__ = "portal_interests"
    __table_args__ = (UniqueConstraint("developer_id", "api", name="uq_portal_interests_developer_api"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    developer_id: Mapped[str] = mapped_column(ForeignKey("portal_developers.id", ondelete="CASCADE"))
    organisation_id: Mapped[str] = mapped_column(ForeignKey("portal_organisations.id"))
    api: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
