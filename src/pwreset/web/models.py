"""The hosted reset page's tables: each customer's flow, and each institution's look and templates."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from pwreset.db import Base, UTCDateTime


class ResetFlow(Base):
    """One customer's way through the reset page: server-side, expiring, single-use, bound to one customer.

    The browser holds only an opaque token (a cookie); the row holds its keyed hash. ``customer_pk`` is
    fixed when the flow starts and never changes. A login the directory does not know gets a flow too,
    with no customer and a ``decoy`` seed (a keyed hash of what was typed), so that every screen after
    it looks the same as a real customer's (no enumeration). ``step``: choose -> code -> password ->
    done; ``ended_at`` is set when the password is set, when the flow is replaced by a new one in the
    same browser, or when it can go no further.
    """

    __tablename__ = "reset_flows"
    __table_args__ = (Index("ix_reset_flows_expires", "expires_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    institution_id: Mapped[str] = mapped_column(String(64), ForeignKey("institutions.id", ondelete="CASCADE"))
    customer_pk: Mapped[str | None] = mapped_column(
        String(32), ForeignKey("customers.id", ondelete="CASCADE"), index=True
    )
    decoy: Mapped[str | None] = mapped_column(String(64))
    step: Mapped[str] = mapped_column(String(16))
    #: The destination chosen (a customer's contact method's key; a decoy's index), and a first channel
    #: already verified where the institution asks for two.
    method_pk: Mapped[str | None] = mapped_column(String(32))
    first_method_pk: Mapped[str | None] = mapped_column(String(32))
    code_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    #: The reset ticket the right passcode earned, sealed (AES-GCM), spent by the password step.
    ticket_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Decoy(Base):
    """What a login not on file "has", kept so that it is the same in every flow and every process: its
    destinations (drawn once), and a passcode's and a customer's counters with the same meaning as theirs
    (the last "code"'s expiry and tries, wrong codes in a row, suspension). Keyed by a keyed hash of the
    institution and the login typed (or, for a customer whose sends the page hides, of the customer)."""

    __tablename__ = "reset_decoys"
    __table_args__ = (Index("ix_reset_decoys_used", "used_at"),)

    seed: Mapped[str] = mapped_column(String(64), primary_key=True)
    institution_id: Mapped[str] = mapped_column(String(64), ForeignKey("institutions.id", ondelete="CASCADE"))
    destinations: Mapped[str] = mapped_column(Text)  # JSON: [[protocol, masked], ...]
    code_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    tries: Mapped[int] = mapped_column(Integer, default=0)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    failures_since: Mapped[datetime | None] = mapped_column(UTCDateTime())
    blocked_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Branding(Base):
    """An institution's look on the reset page (``pwreset page brand``); none is pwreset's own plain look."""

    __tablename__ = "page_branding"

    institution_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("institutions.id", ondelete="CASCADE"), primary_key=True
    )
    #: Buttons, links and the focus ring on white; the header band behind white text. Both ``#rrggbb``,
    #: refused unless they reach 4.5:1 against white (WCAG 2.2 SC 1.4.3).
    accent_color: Mapped[str | None] = mapped_column(String(7))
    header_color: Mapped[str | None] = mapped_column(String(7))
    logo: Mapped[bytes | None] = mapped_column(LargeBinary)
    logo_type: Mapped[str | None] = mapped_column(String(32))
    sign_in_url: Mapped[str | None] = mapped_column(String(500))
    #: Space-separated https origins that may frame the page (CSP frame-ancestors); none: nobody.
    frame_ancestors: Mapped[str | None] = mapped_column(String(1000))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class PageTemplate(Base):
    """An institution's own version of one of the page's templates, rendered in Jinja2's sandbox."""

    __tablename__ = "page_templates"
    __table_args__ = (UniqueConstraint("institution_id", "name", name="uq_page_templates_name"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    institution_id: Mapped[str] = mapped_column(String(64), ForeignKey("institutions.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
