"""The scopes of the contract (sections 2, 6, 8)."""

from __future__ import annotations

import re

USERS_READ = "institution-users:read"
USERS_WRITE = "institution-users:write"
ACCOUNTS_READ = "accounts:read"
ACCOUNTS_READ_UNMASKED = "accounts:read_unmasked"

KNOWN_SCOPES = frozenset({USERS_READ, USERS_WRITE, ACCOUNTS_READ, ACCOUNTS_READ_UNMASKED})

GRANT_CLIENT_CREDENTIALS = "client_credentials"
GRANT_PASSWORD = "password"  # noqa: S105 - a grant type name, not a password
GRANT_REFRESH_TOKEN = "refresh_token"  # noqa: S105
KNOWN_GRANTS = frozenset({GRANT_CLIENT_CREDENTIALS, GRANT_PASSWORD, GRANT_REFRESH_TOKEN})


_SEPARATORS = re.compile(r"[,\s]+")


def parse(value: str) -> frozenset[str]:
    """A scope list as a set: separated by spaces (RFC 6749 section 3.3), commas (Candescent's
    examples write ``accounts:read, transactions:read``) or both."""
    return frozenset(part for part in _SEPARATORS.split(value) if part)


def render(scopes: frozenset[str] | set[str]) -> str:
    return " ".join(sorted(scopes))
