"""Every table, imported in one place so the metadata (and Alembic) sees them all."""

from pwreset.audit.models import AuditEvent
from pwreset.customers.models import ContactMethod, Customer
from pwreset.delivery.models import OutboxMessage
from pwreset.institutions.models import Institution
from pwreset.oauth.models import ApiClient, Token, TokenRevocation
from pwreset.resets.models import Passcode, ResetTicket

__all__ = [
    "ApiClient", "AuditEvent", "ContactMethod", "Customer", "Institution", "OutboxMessage", "Passcode",
    "ResetTicket", "Token", "TokenRevocation",
]
