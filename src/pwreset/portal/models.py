"""The portal's tables. Developers are not bank customers: they live apart from ``customers``."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, ForeignKey, Integer, LargeBinary, String, Text, UniqueConstraint, false
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
    #: TOTP (RFC 6238): the shared secret, sealed; a secret being set up waits in ``totp_pending_sealed``
    #: until a code from it is entered. ``totp_last_step``: the newest time step accepted (no replay).
    totp_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    totp_pending_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    totp_enabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger)
    #: The session that started the pending set-up, and when (it is shown to that session only, for ten
    #: minutes).
    totp_pending_session_id: Mapped[str | None] = mapped_column(String(32))
    totp_pending_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    #: Wrong second-factor codes in a row after a right password; two-factor sign-in locks at a hundred
    #: (a new password, by the emailed code, unlocks it; so does ``pwreset portal reset-two-factor``).
    mfa_failures: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class PortalSession(Base):
    """A signed-in browser. The cookie holds an opaque token; the table only its keyed hash."""

    __tablename__ = "portal_sessions"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    developer_id: Mapped[str] = mapped_column(ForeignKey("portal_developers.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())  # the absolute end
    #: The organisation this browser is working in (a developer may belong to several).
    organisation_id: Mapped[str | None] = mapped_column(String(32))
    #: 2 when this session proved the second factor (signed in with it, or set it up): production keys,
    #: production requests and staff pages need it.
    factors: Mapped[int] = mapped_column(Integer, default=1, server_default="1")


class PortalCode(Base):
    """A single-use, expiring secret sent by email: a verification link's token or a forgot-password code.
    Stored as a keyed hash; a newer one of the same purpose replaces the older."""

    __tablename__ = "portal_codes"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    purpose: Mapped[str] = mapped_column(String(16))  # verify | forgot | mfa (a sign-in's second step)
    developer_id: Mapped[str] = mapped_column(ForeignKey("portal_developers.id", ondelete="CASCADE"), index=True)
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    #: A verification link carries the name and password (argon2id) of the sign-up that asked for it, and
    #: the account takes them when that link is used: whoever signed up first with someone else's address
    #: gets nothing when its owner confirms (their own link).
    name: Mapped[str | None] = mapped_column(String(200))
    password_hash: Mapped[str | None] = mapped_column(String(200))


class Organisation(Base):
    __tablename__ = "portal_organisations"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    #: Its own sandbox institution (``Institution.sandbox``), with demo customers.
    sandbox_institution_id: Mapped[str] = mapped_column(ForeignKey("institutions.id"), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    #: The client the portal's test drive calls the sandbox with: its tokens are issued on the server and
    #: never reach the browser; its secret was never kept.
    test_drive_client_id: Mapped[str | None] = mapped_column(String(32))


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


class RecoveryCode(Base):
    """A single-use code that stands in for the authenticator app; only its keyed hash is kept."""

    __tablename__ = "portal_recovery_codes"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    developer_id: Mapped[str] = mapped_column(ForeignKey("portal_developers.id", ondelete="CASCADE"), index=True)
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class AccessRequest(Base):
    """An app's request for production access: pending -> approved | denied, decided by the institution's staff.
    Approval creates the app's production twin, whose keys are bound to the institution itself."""

    __tablename__ = "portal_access_requests"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    organisation_id: Mapped[str] = mapped_column(ForeignKey("portal_organisations.id"), index=True)
    app_id: Mapped[str] = mapped_column(ForeignKey("portal_apps.id"))
    requested_by: Mapped[str] = mapped_column(ForeignKey("portal_developers.id"))
    purpose: Mapped[str] = mapped_column(Text)
    #: What production access is asked for (the app's scopes when it asked); staff may grant a subset.
    scopes: Mapped[str] = mapped_column(String(500))
    status: Mapped[str] = mapped_column(String(16))  # pending | approved | denied
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    decided_by: Mapped[str | None] = mapped_column(String(320))  # a staff email, or "cli"
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    note: Mapped[str | None] = mapped_column(Text)
    production_app_id: Mapped[str | None] = mapped_column(String(32))


class Invitation(Base):
    """A teammate invited to an organisation with a role, by an emailed single-use link (72 hours)."""

    __tablename__ = "portal_invitations"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    organisation_id: Mapped[str] = mapped_column(ForeignKey("portal_organisations.id"), index=True)
    email: Mapped[str] = mapped_column(String(320))
    role: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    invited_by: Mapped[str] = mapped_column(ForeignKey("portal_developers.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    accepted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
