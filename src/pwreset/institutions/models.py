from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, Integer, String, false
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
