"""Queries for clients and tokens. Flushes, never commits."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from pwreset.oauth.models import ApiClient, Token


async def client_by_shared_key(session: AsyncSession, shared_key: str) -> ApiClient | None:
    return (await session.scalars(select(ApiClient).where(ApiClient.shared_key == shared_key))).first()


async def client_by_id(session: AsyncSession, client_id: str) -> ApiClient | None:
    return await session.get(ApiClient, client_id)


async def list_clients(session: AsyncSession, *, institution_id: str | None = None) -> Sequence[ApiClient]:
    stmt = select(ApiClient).order_by(ApiClient.institution_id, ApiClient.created_at)
    if institution_id is not None:
        stmt = stmt.where(ApiClient.institution_id == institution_id)
    return (await session.scalars(stmt)).all()


async def add(session: AsyncSession, row: ApiClient | Token) -> None:
    session.add(row)
    await session.flush()


async def token_by_hash(session: AsyncSession, hashes: Sequence[str]) -> tuple[Token, ApiClient] | None:
    """The token stored under one of ``hashes`` (its hash under each key of the ring; usually one)."""
    match = Token.token_hash == hashes[0] if len(hashes) == 1 else Token.token_hash.in_(hashes)
    row = (
        await session.execute(select(Token, ApiClient).join(ApiClient, ApiClient.id == Token.client_id).where(match))
    ).first()
    return None if row is None else (row[0], row[1])


async def spend_refresh_token(session: AsyncSession, *, token_id: str, at: datetime) -> bool:
    """Mark a refresh token used, if nobody has; ``False`` means it was spent already (reuse)."""
    result = await session.execute(
        update(Token)
        .where(Token.id == token_id, Token.used_at.is_(None), Token.revoked_at.is_(None))
        .values(used_at=at)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def revoke_token(session: AsyncSession, *, token_id: str, at: datetime) -> None:
    await session.execute(
        update(Token).where(Token.id == token_id, Token.revoked_at.is_(None)).values(revoked_at=at)
    )


async def revoke_family(session: AsyncSession, *, family_id: str, at: datetime) -> None:
    await session.execute(
        update(Token).where(Token.family_id == family_id, Token.revoked_at.is_(None)).values(revoked_at=at)
    )


async def revoke_client_tokens(session: AsyncSession, *, client_id: str, at: datetime) -> None:
    await session.execute(
        update(Token).where(Token.client_id == client_id, Token.revoked_at.is_(None)).values(revoked_at=at)
    )


async def revoke_customer_tokens(
    session: AsyncSession, *, institution_id: str, customer_id: str, at: datetime
) -> None:
    await session.execute(
        update(Token)
        .where(
            Token.institution_id == institution_id,
            Token.customer_id == customer_id,
            Token.revoked_at.is_(None),
        )
        .values(revoked_at=at)
    )


async def active_shared_keys(session: AsyncSession) -> list[str]:
    """The shared key of every client not revoked (a few hundred rows at most)."""
    return list((await session.scalars(select(ApiClient.shared_key).where(ApiClient.revoked_at.is_(None)))).all())
