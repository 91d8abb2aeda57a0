"""The portal's refusals. Pages render them next to the field they concern (``field``) or at the top."""

from __future__ import annotations


class PortalError(Exception):
    status = 400
    field: str | None = None

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if field is not None:
            self.field = field


class Refused(PortalError):
    """Input the portal will not take (a weak password, a scope the organisation may not use)."""


class AlreadySent(PortalError):
    """A form that makes something, sent a second time (a reload, a second click)."""

    status = 409


class NotFound(PortalError):
    """Not there, or not this organisation's: the two are never told apart."""

    status = 404


class Forbidden(PortalError):
    """The developer's role does not allow it."""

    status = 403


class Throttled(PortalError):
    status = 429

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after
