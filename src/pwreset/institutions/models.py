from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, Integer, LargeBinary, String, false, text
from sqlalchemy.orm import Mapped, mapped_column

from pwreset.db import Base, UTCDateTime


class Institution(Base):
    __tablename__ = "institutions"

    #: The contract's ``institutionId`` (e.g. ``"07675"``), chosen by the operator.
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    #: Shortest new password this institution accepts (None: the service default, 8).
    min_password_length: Mapped[int | None] = mapped_column(Integer)
    #: Show contact methods masked in the API (contract 6.1 [ext]).
    mask_contact_info: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    #: A developer organisation's sandbox (portal/): its messages go to the portal's inbox, never to a
    #: provider, and its demo customers are the only ones it holds.
    sandbox: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    #: Issue 14. ``single``: one verified passcode earns a reset ticket (contract 6.3). ``two_channel``:
    #: two, on two different channels (a phone and email, or two different numbers), NIST SP 800-63B-4
    #: section 4.2.3.2.
    recovery_assurance: Mapped[str] = mapped_column(String(16), default="single", server_default=text("'single'"))
    #: ``multi``: the password is one factor of several (8 characters at least); ``single``: it is the
    #: only one (15 at least). NIST SP 800-63B-4 section 3.1.1.2.
    password_factor: Mapped[str] = mapped_column(String(8), default="multi", server_default=text("'multi'"))
    #: The line a customer calls when a notice was not them ("call 1-800-555-0100"), in every notice.
    contact_line: Mapped[str | None] = mapped_column(String(100))
    #: Seconds a changed destination may not receive a reset passcode (None: the service default).
    contact_cooloff: Mapped[int | None] = mapped_column(Integer)
    #: Ask the carrier (CAMARA SIM Swap) before a passcode goes to a phone; how recent a swap refuses.
    sim_swap_check: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    sim_swap_max_age: Mapped[int] = mapped_column(Integer, default=240, server_default=text("240"))
    #: Where security events go (a signed POST, delivered through the outbox), and the signing secret,
    #: sealed under the server key (it must be read to sign, so it cannot be hashed).
    webhook_url: Mapped[str | None] = mapped_column(String(500))
    webhook_secret_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
