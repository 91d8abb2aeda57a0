"""The port through which the ``password`` and ``refresh_token`` grants reach customers.

``pwreset.customers.service.Directory`` implements it; tests plug in a fake. The token service knows
nothing else of customers.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession


class CustomerDirectory(Protocol):
    async def authenticate(
        self, session: AsyncSession, *, institution_id: str, username: str, password: str
    ) -> str | None:
        """The customer id if the login id and password are right and the customer may sign in.

        A failure may record bookkeeping (failed-login counts, a lock) in ``session``: the token
        endpoint commits it even though the request fails.
        """
        ...

    async def may_refresh(
        self, session: AsyncSession, *, institution_id: str, customer_id: str, issued_at: datetime
    ) -> bool:
        """Whether the customer may still hold the session whose refresh token was issued at
        ``issued_at`` (exists, active, not locked, no password change since). Holds the customer's
        row until the transaction ends, so a concurrent reset and refresh cannot overlap."""
        ...
