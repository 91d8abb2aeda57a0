"""Which kind of deployment a database belongs to: a sandbox or production.

The mark is written by the first process that starts on the database and checked by every later
one, so a production process (``serve``, ``worker``, the ASGI factory) refuses a sandbox database and
``pwreset sandbox`` refuses a production one. Sandbox mode itself comes only from ``pwreset sandbox``
(``Settings.for_sandbox``); the database's mark is the second lock on the same door.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, String, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from pwreset.config import ConfigurationError
from pwreset.db import Base, Database, UTCDateTime
from pwreset.kit.clock import Clock

SANDBOX = "sandbox"
PRODUCTION = "production"


class DeploymentMark(Base):
    __tablename__ = "deployment"

    #: Always 1: the table holds one row.
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    mode: Mapped[str] = mapped_column(String(16))
    marked_at: Mapped[datetime] = mapped_column(UTCDateTime())


class WrongDeployment(ConfigurationError):
    """A sandbox on a production database, or the reverse."""


async def claim(db: Database, *, sandbox: bool, clock: Clock) -> str:
    """Mark an unmarked database with this process's mode, or refuse one marked with the other.

    Its own transaction: it runs once, at start-up, before any request. Two nodes starting at once
    both try to insert; the loser reads the winner's mark.
    """
    wanted = SANDBOX if sandbox else PRODUCTION
    for _ in range(2):
        try:
            async with db.transaction() as session:
                mode = await session.scalar(select(DeploymentMark.mode).where(DeploymentMark.id == 1))
                if mode is None:
                    session.add(DeploymentMark(id=1, mode=wanted, marked_at=clock.now()))
                    return wanted
        except IntegrityError:
            continue
        if mode != wanted:
            raise WrongDeployment(
                "this database belongs to a sandbox; a production process will not run on it (point "
                "PWRESET_DATABASE_URL at the production database)" if mode == SANDBOX else
                "this database belongs to a production deployment; the sandbox will not run on it"
            )
        return mode
    raise WrongDeployment("could not read the database's deployment mark")
