from __future__ import annotations

import re
from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from pwreset.audit import service as audit
from pwreset.institutions import repository
from pwreset.institutions.errors import InstitutionExists, InstitutionNotFound, InvalidInstitutionId
from pwreset.institutions.models import Institution
from pwreset.kit.clock import Clock

_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


async def create_institution(
    session: AsyncSession, *, institution_id: str, name: str, clock: Clock
) -> Institution:
    if not _ID.fullmatch(institution_id):
        raise InvalidInstitutionId()
    if not name.strip():
        raise InvalidInstitutionId("an institution needs a name")
    if await repository.get(session, institution_id) is not None:
        raise InstitutionExists(f"institution {institution_id} already exists")
    institution = Institution(id=institution_id, name=name.strip(), created_at=clock.now())
    await repository.add(session, institution)
    await audit.record_event(
        session, clock=clock, event_type="institution.created", outcome="success",
        institution_id=institution_id, actor="cli",
    )
    return institution


async def configure_institution(
    session: AsyncSession,
    *,
    institution_id: str,
    clock: Clock,
    name: str | None = None,
    min_password_length: int | None = None,
    mask_contact_info: bool | None = None,
) -> Institution:
    institution = await repository.get(session, institution_id)
    if institution is None:
        raise InstitutionNotFound(f"no institution {institution_id}")
    changes: dict[str, object] = {}
    if name is not None:
        if not name.strip():
            raise InvalidInstitutionId("an institution needs a name")
        institution.name = changes["name"] = name.strip()
    if min_password_length is not None:
        if not 8 <= min_password_length <= 64:
            raise InvalidInstitutionId("the minimum password length is between 8 and 64 (NIST SP 800-63B)")
        institution.min_password_length = changes["minPasswordLength"] = min_password_length
    if mask_contact_info is not None:
        institution.mask_contact_info = changes["maskContactInfo"] = mask_contact_info
    await session.flush()
    await audit.record_event(
        session, clock=clock, event_type="institution.updated", outcome="success", institution_id=institution_id,
        actor="cli", details=changes,
    )
    return institution


async def list_institutions(session: AsyncSession) -> Sequence[Institution]:
    return await repository.list_all(session)
