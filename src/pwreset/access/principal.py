"""Who a bearer token acts for, and the errors of a bearer check (wire contract section 5).

This module sits below both the HTTP edge (``api/``) and the token service (``oauth/``): the token
service makes a :class:`Principal`, the edge checks its scopes, and neither imports the other.
Wire codes live in ``pwreset/errors.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

from pwreset.errors import PwresetError


class BearerMissing(PwresetError):
    key = "auth.missing_token"
    message = "Authorization header is missing"


class BearerInvalid(PwresetError):
    key = "auth.invalid_token"
    message = "access token is malformed, unknown or revoked"

    def __init__(self, *, known: bool = False) -> None:
        super().__init__()
        #: A real token that was revoked: a partner's ordinary case (customer tokens end with every
        #: reset), not a guess, so it is not counted against the caller's address.
        self.known = known


class BearerExpired(PwresetError):
    key = "auth.expired_token"
    message = "access token has expired"


class InsufficientScope(PwresetError):
    key = "auth.insufficient_scope"
    message = "access token lacks the required scope"


class WrongCustomer(PwresetError):
    key = "auth.wrong_customer"
    message = "this token acts for another customer"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a bearer token acts for: an institution (``client_credentials``) or one customer of it
    (``password`` and ``refresh_token``)."""

    client_id: str
    institution_id: str
    customer_id: str | None
    scopes: frozenset[str]
    token_id: str
    #: The partner may pass the end customer's address (``originating_ip``) for the audit trail.
    trusted_origin: bool = False

    def require(self, needed: frozenset[str]) -> None:
        if not needed <= self.scopes:
            raise InsufficientScope()
