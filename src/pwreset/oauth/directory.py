"""The port through which the ``password`` and ``refresh_token`` grants reach customers.

The customer directory (``pwreset.customers``) implements it; until one is wired in, no customer
can sign in and every ``password`` grant fails with CMN_90015.
"""

from __future__ import annotations

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

    async def may_refresh(self, session: AsyncSession, *, institution_id: str, customer_id: str) -> bool:
        """Whether the customer still exists and may hold a session (not locked or removed)."""
        ...


class NoDirectory:
    """No customers: every sign-in fails."""

    async def authenticate(
        self, session: AsyncSession, *, institution_id: str, username: str, password: str
    ) -> str | None:
        return None

    async def may_refresh(self, session: AsyncSession, *, institution_id: str, customer_id: str) -> bool:
        return False
