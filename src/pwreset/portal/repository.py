"""The portal's queries. Every query on an organisation's data starts from that organisation's id; repositories
flush and never commit."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from pwreset.oauth.models import ApiClient, Token
from pwreset.portal.models import (
    AccessRequest,
    App,
    AppKey,
    Developer,
    Interest,
    Membership,
    Organisation,
    PortalCode,
    PortalSession,
    RecoveryCode,
)


async def developer_by_email(session: AsyncSession, email: str) -> Developer | None:
    return (await session.scalars(select(Developer).where(Developer.email == email))).first()


async def session_by_hash(session: AsyncSession, token_hash: str) -> tuple[PortalSession, Developer] | None:
    row = (
        await session.execute(
            select(PortalSession, Developer)
            .join(Developer, Developer.id == PortalSession.developer_id)
            .where(PortalSession.token_hash == token_hash)
        )
    ).first()
    return None if row is None else (row[0], row[1])


async def end_sessions(session: AsyncSession, developer_id: str) -> None:
    await session.execute(delete(PortalSession).where(PortalSession.developer_id == developer_id))


async def keep_newest_sessions(session: AsyncSession, developer_id: str, keep: int) -> None:
    newest = select(PortalSession.id).where(PortalSession.developer_id == developer_id).order_by(
        PortalSession.created_at.desc(), PortalSession.id.desc()).limit(keep)
    await session.execute(delete(PortalSession).where(
        PortalSession.developer_id == developer_id, PortalSession.id.not_in(newest.scalar_subquery())))


async def live_code(session: AsyncSession, *, developer_id: str, purpose: str, now: datetime) -> PortalCode | None:
    stmt = (
        select(PortalCode)
        .where(PortalCode.developer_id == developer_id, PortalCode.purpose == purpose,
               PortalCode.used_at.is_(None), PortalCode.expires_at > now)
        .order_by(PortalCode.created_at.desc())
        .with_for_update()
    )
    return (await session.scalars(stmt)).first()


async def code_by_hash(session: AsyncSession, *, purpose: str, code_hashes: list[str]) -> PortalCode | None:
    stmt = (
        select(PortalCode).where(PortalCode.purpose == purpose, PortalCode.code_hash.in_(code_hashes)).with_for_update()
    )
    return (await session.scalars(stmt)).first()


async def retire_codes(session: AsyncSession, *, developer_id: str, purpose: str, now: datetime) -> None:
    for code in (await session.scalars(
        select(PortalCode).where(PortalCode.developer_id == developer_id, PortalCode.purpose == purpose,
                                 PortalCode.used_at.is_(None))
    )).all():
        code.used_at = now


async def memberships_of(session: AsyncSession, developer_id: str) -> list[tuple[Organisation, str]]:
    rows = await session.execute(
        select(Organisation, Membership.role)
        .join(Membership, Membership.organisation_id == Organisation.id)
        .where(Membership.developer_id == developer_id)
        .order_by(Membership.created_at)
    )
    return [(row[0], row[1]) for row in rows]


async def recovery_code(session: AsyncSession, *, developer_id: str, code_hashes: list[str]) -> RecoveryCode | None:
    stmt = select(RecoveryCode).where(
        RecoveryCode.developer_id == developer_id, RecoveryCode.code_hash.in_(code_hashes)
    ).with_for_update()
    return (await session.scalars(stmt)).first()


async def requests_of_app(session: AsyncSession, *, organisation_id: str, app_id: str) -> Sequence[AccessRequest]:
    stmt = select(AccessRequest).where(
        AccessRequest.organisation_id == organisation_id, AccessRequest.app_id == app_id,
    ).order_by(AccessRequest.created_at.desc())
    return (await session.scalars(stmt)).all()


async def apps(session: AsyncSession, organisation_id: str) -> Sequence[App]:
    return (
        await session.scalars(select(App).where(App.organisation_id == organisation_id).order_by(App.created_at))
    ).all()


async def app(session: AsyncSession, *, organisation_id: str, app_id: str) -> App | None:
    stmt = select(App).where(App.organisation_id == organisation_id, App.id == app_id)
    return (await session.scalars(stmt)).first()


async def keys(session: AsyncSession, *, organisation_id: str, app_id: str) -> Sequence[tuple[AppKey, ApiClient]]:
    rows = await session.execute(
        select(AppKey, ApiClient)
        .join(ApiClient, ApiClient.id == AppKey.client_id)
        .join(App, App.id == AppKey.app_id)
        .where(App.organisation_id == organisation_id, AppKey.app_id == app_id)
        .order_by(AppKey.created_at)
    )
    return [(row[0], row[1]) for row in rows]


async def last_used(session: AsyncSession, client_ids: list[str]) -> dict[str, datetime]:
    """When each client last got a token (tokens are kept until they expire and are pruned)."""
    if not client_ids:
        return {}
    rows = await session.execute(
        select(Token.client_id, func.max(Token.issued_at)).where(Token.client_id.in_(client_ids))
        .group_by(Token.client_id)
    )
    return {client_id: issued for client_id, issued in rows if issued is not None}


async def interests(session: AsyncSession, developer_id: str) -> set[str]:
    return set((await session.scalars(select(Interest.api).where(Interest.developer_id == developer_id))).all())
