"""The portal's service: one object with every part (accounts, apps, production access and staff,
teammates), each in its own module. The caller owns the transaction (routes open one per request).

Accounts follow OWASP ASVS level 2 where the issue asks for it: argon2id under the service's password
policy, one answer whether or not an email is known (with the same hashing work either way), emailed
secrets that are single-use, expiring and stored as keyed hashes, sessions that end when idle, at an
absolute limit and on a password change, and rate limits on every step a stranger can repeat.
"""

from __future__ import annotations

from pwreset.portal.accounts import Accounts
from pwreset.portal.core import (
    FORGOT_ATTEMPTS,
    InboxEntry,
    KeyView,
    NewKey,
    Signed,
    SignIn,
    StaffView,
    TotpSetup,
    check_name,
    normal_email,
)
from pwreset.portal.production import Production
from pwreset.portal.teams import Teams

__all__ = [
    "FORGOT_ATTEMPTS", "InboxEntry", "KeyView", "NewKey", "PortalService", "SignIn", "Signed", "StaffView",
    "TotpSetup", "check_name", "normal_email",
]


class PortalService(Accounts, Production, Teams):
    """Every part of the portal's service (``Production`` brings ``Apps``)."""
