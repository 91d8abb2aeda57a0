"""Token-service errors. Their wire codes live in ``pwreset/errors.py``; the bearer check's errors
are in ``pwreset/access/principal.py``."""

from __future__ import annotations

from pwreset.errors import PwresetError


class InvalidClient(PwresetError):
    key = "oauth.invalid_client"
    message = "client authentication failed"

    def __init__(self, *, shared_key: str | None = None) -> None:
        super().__init__()
        #: Set when the shared key is a client's and the secret was wrong (the failure counts against it).
        self.shared_key = shared_key


class InvalidInstitution(PwresetError):
    key = "oauth.invalid_institution"
    message = "institutionId is missing, unknown, or not granted to this client"


class GrantNotAllowed(PwresetError):
    key = "oauth.grant_not_allowed"
    message = "this client is not allowed this grant type"


class UnsupportedGrant(PwresetError):
    key = "oauth.unsupported_grant"
    message = "grant_type is missing or not supported"


class MissingRefreshToken(PwresetError):
    key = "oauth.missing_refresh_token"
    message = "refresh_token is missing"


class MissingToken(PwresetError):
    key = "oauth.missing_refresh_token"
    message = "token is missing"


class InvalidScope(PwresetError):
    key = "oauth.invalid_scope"
    message = "a requested scope is unknown or not allowed for this client"


class MissingUsername(PwresetError):
    key = "oauth.missing_username"
    message = "username is missing"


class MissingPassword(PwresetError):
    key = "oauth.missing_password"
    message = "password is missing"


class InvalidUserCredentials(PwresetError):
    key = "oauth.invalid_user_credentials"
    message = "wrong username or password, or the user is locked"


class InvalidRefreshToken(PwresetError):
    key = "oauth.invalid_refresh_token"
    message = "refresh token is unknown, expired or revoked"


# Command-line errors (no wire family).


class ClientNotFound(PwresetError):
    key = "cli.client_not_found"
    message = "no such client"


class InvalidClientSettings(PwresetError):
    key = "cli.invalid_client"
    message = "invalid client settings"
