"""Every table, imported in one place so the metadata (and Alembic) sees them all."""

from pwreset.audit.models import AuditEvent
from pwreset.institutions.models import Institution
from pwreset.oauth.models import ApiClient, Token, TokenRevocation

__all__ = ["ApiClient", "AuditEvent", "Institution", "Token", "TokenRevocation"]
