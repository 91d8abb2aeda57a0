from __future__ import annotations

import re
from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from pwreset.audit import service as audit
from pwreset.institutions import repository
from pwreset.institutions.errors import InstitutionExists, InvalidInstitutionId
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


async def list_institutions(session: AsyncSession) -> Sequence[Institution]:
    return await repository.list_all(session)
