"""Every table, imported in one place so the metadata (and Alembic) sees them all."""

from pwreset.accounts.models import Account
from pwreset.audit.models import AuditEvent
from pwreset.customers.marks import ImportMark
from pwreset.customers.models import ContactMethod, Customer
from pwreset.delivery.models import MessageTemplate, OutboxMessage
from pwreset.institutions.models import Institution
from pwreset.oauth.models import ApiClient, Token, TokenRevocation
from pwreset.ops.deployment import DeploymentMark
from pwreset.portal.models import (
    AccessRequest,
    App,
    AppKey,
    Developer,
    Interest,
    Invitation,
    Membership,
    Organisation,
    PortalCode,
    PortalSession,
    RecoveryCode,
)
from pwreset.resets.models import Passcode, ResetTicket
from pwreset.web.models import Branding, Decoy, PageTemplate, ResetFlow

__all__ = [
    "AccessRequest", "Account", "ApiClient", "App", "AppKey", "AuditEvent", "Branding", "ContactMethod", "Customer",
    "Decoy",
    "DeploymentMark", "Developer", "ImportMark", "Institution", "Interest", "Invitation", "Membership",
    "MessageTemplate", "Organisation", "OutboxMessage", "PageTemplate", "Passcode", "PortalCode", "PortalSession",
    "RecoveryCode", "ResetFlow", "ResetTicket", "Token", "TokenRevocation",
]
