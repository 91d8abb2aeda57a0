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
#: The audit chain of events that belong to no institution (audit/chain.py): no institution may be called so.
NO_INSTITUTION = "-"
RECOVERY_ASSURANCE = ("single", "two_channel")
PASSWORD_FACTORS = ("single", "multi")
CONTACT_LINE_LIMIT = 32  # (delivery/rendering.py: the SMS notices keep one segment with it)


async def create_institution(
    session: AsyncSession, *, institution_id: str, name: str, clock: Clock
) -> Institution:
    if not _ID.fullmatch(institution_id) or institution_id == NO_INSTITUTION:
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
    recovery_assurance: str | None = None,
    password_factor: str | None = None,
    contact_line: str | None = None,
    contact_cooloff: int | None = None,
    sim_swap_check: bool | None = None,
    sim_swap_max_age: int | None = None,
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
    if recovery_assurance is not None:
        if recovery_assurance not in RECOVERY_ASSURANCE:
            raise InvalidInstitutionId("the recovery assurance is single or two_channel")
        institution.recovery_assurance = changes["recoveryAssurance"] = recovery_assurance
    if password_factor is not None:
        if password_factor not in PASSWORD_FACTORS:
            raise InvalidInstitutionId("the password factor is single (15 characters at least) or multi (8)")
        institution.password_factor = changes["passwordFactor"] = password_factor
    if contact_line is not None:
        line = contact_line.strip()
        if len(line) > CONTACT_LINE_LIMIT or not all(ch.isprintable() for ch in line):
            raise InvalidInstitutionId(f"the contact line is at most {CONTACT_LINE_LIMIT} printable characters "
                                       "(it goes into every SMS notice)")
        institution.contact_line = line or None
        changes["contactLine"] = line
    if contact_cooloff is not None:
        if not 0 <= contact_cooloff <= 90 * 86_400:
            raise InvalidInstitutionId("the contact cool-off is between 0 and 90 days")
        institution.contact_cooloff = changes["contactCooloff"] = contact_cooloff
    if sim_swap_check is not None:
        institution.sim_swap_check = changes["simSwapCheck"] = sim_swap_check
    if sim_swap_max_age is not None:
        if not 1 <= sim_swap_max_age <= 2400:
            raise InvalidInstitutionId("the SIM swap max age is between 1 and 2400 hours (CAMARA SIM Swap)")
        institution.sim_swap_max_age = changes["simSwapMaxAge"] = sim_swap_max_age
    await session.flush()
    await audit.record_event(
        session, clock=clock, event_type="institution.updated", outcome="success", institution_id=institution_id,
        actor="cli", details=changes,
    )
    return institution


async def list_institutions(session: AsyncSession) -> Sequence[Institution]:
    return await repository.list_all(session)
