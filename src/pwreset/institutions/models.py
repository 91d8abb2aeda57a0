from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from pwreset.db import Base, UTCDateTime


class Institution(Base):
    __tablename__ = "institutions"

    #: The contract's ``institutionId`` (e.g. ``"07675"``), chosen by the operator.
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
