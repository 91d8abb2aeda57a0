"""The operator's side of security-event webhooks: set one, send a test event, read the delivery log."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from pwreset.audit import service as audit
from pwreset.delivery.models import OutboxMessage
from pwreset.events.service import CHANNEL, SecurityEvents
from pwreset.institutions.errors import InstitutionNotFound, InvalidInstitutionId
from pwreset.institutions.models import Institution
from pwreset.kit.clock import Clock
from pwreset.kit.crypto import Sealer, new_secret

SECRET_PREFIX = "pwr_whsec_"  # noqa: S105 - a prefix that makes a leaked secret recognisable


def check_url(url: str, *, sandbox: bool) -> str:
    """An https URL (plain http only to this machine, or in the sandbox), without credentials."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("https", "http") or not parts.hostname or parts.username or parts.password:
        raise InvalidInstitutionId("the webhook URL must be an https:// URL without credentials")
    if parts.scheme == "http" and not sandbox:
        try:
            loopback = ipaddress.ip_address(parts.hostname).is_loopback
        except ValueError:
            loopback = parts.hostname == "localhost"
        if not loopback:
            raise InvalidInstitutionId("the webhook URL must be https:// (http:// only to this machine)")
    if len(url) > 500:
        raise InvalidInstitutionId("the webhook URL is longer than 500 characters")
    return url.strip()


async def set_webhook(
    session: AsyncSession, *, institution_id: str, url: str | None, sealer: Sealer, clock: Clock, sandbox: bool,
    new_secret_wanted: bool = False,
) -> str | None:
    """Point the institution's security events at ``url`` (``None`` stops them). A secret is made the
    first time, or when asked: it is returned once, and kept only sealed."""
    institution = await session.get(Institution, institution_id)
    if institution is None:
        raise InstitutionNotFound(f"no institution {institution_id}")
    secret = None
    if url is None:
        institution.webhook_url = None
        institution.webhook_secret_sealed = None
    else:
        institution.webhook_url = check_url(url, sandbox=sandbox)
        if institution.webhook_secret_sealed is None or new_secret_wanted:
            secret = new_secret(SECRET_PREFIX)
            institution.webhook_secret_sealed = sealer.seal(secret.encode())
    await session.flush()
    await audit.record_event(
        session, clock=clock, event_type="webhook.updated", outcome="removed" if url is None else "success",
        actor="cli", institution_id=institution_id,
        details={"host": urlsplit(url).netloc if url else None, "newSecret": secret is not None},
    )
    return secret


async def send_test(session: AsyncSession, *, institution_id: str, events: SecurityEvents) -> str:
    """Queue a ``webhook.test`` event; its outbox message id."""
    queued = await events.emit(session, institution_id, "webhook.test", data={"hello": "from pwreset"})
    if queued is None:
        raise InvalidInstitutionId(f"institution {institution_id} has no webhook: set one with pwreset webhooks set")
    return queued


async def delivery_log(session: AsyncSession, *, institution_id: str, limit: int) -> Sequence[OutboxMessage]:
    return (
        await session.scalars(
            select(OutboxMessage)
            .where(OutboxMessage.institution_id == institution_id, OutboxMessage.channel == CHANNEL)
            .order_by(OutboxMessage.created_at.desc()).limit(limit)
        )
    ).all()
