"""Institution settings, cached per process for the hot read paths (at most ``ttl`` seconds old)."""

from __future__ import annotations

from dataclasses import dataclass

from pwreset.db import Database
from pwreset.institutions import repository
from pwreset.institutions.errors import InstitutionNotFound
from pwreset.kit.clock import Clock


@dataclass(frozen=True, slots=True)
class InstitutionSettings:
    id: str
    name: str
    min_password_length: int | None
    mask_contact_info: bool
    #: A portal organisation's sandbox: its messages are kept for the portal's inbox, never sent.
    sandbox: bool = False
    #: Issue 14 (institutions/models.py says what each means).
    recovery_assurance: str = "single"
    contact_line: str | None = None
    contact_cooloff: int | None = None
    sim_swap_check: bool = False
    sim_swap_max_age: int = 240
    webhook_url: str | None = None


class InstitutionCache:
    def __init__(self, *, db: Database, clock: Clock, ttl: float = 30.0) -> None:
        self.db = db
        self.clock = clock
        self.ttl = ttl
        self._entries: dict[str, tuple[float, InstitutionSettings]] = {}

    async def get(self, institution_id: str) -> InstitutionSettings:
        now = self.clock.timestamp()
        cached = self._entries.get(institution_id)
        if cached is not None and now - cached[0] <= self.ttl:
            return cached[1]
        async with self.db.reading() as session:
            row = await repository.get(session, institution_id)
        if row is None:
            raise InstitutionNotFound(f"no institution {institution_id}")
        settings = InstitutionSettings(
            row.id, row.name, row.min_password_length, row.mask_contact_info, sandbox=row.sandbox,
            recovery_assurance=row.recovery_assurance,
            contact_line=row.contact_line, contact_cooloff=row.contact_cooloff, sim_swap_check=row.sim_swap_check,
            sim_swap_max_age=row.sim_swap_max_age, webhook_url=row.webhook_url,
        )
        self._entries[institution_id] = (now, settings)
        return settings
