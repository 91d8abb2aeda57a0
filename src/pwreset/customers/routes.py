"""Customers and institution users (contract sections 6.1 and 7)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from pwreset.api.operations import Call, Operation
from pwreset.customers import service
from pwreset.customers.models import Customer
from pwreset.customers.schemas import ContactMethodsRead, CustomerRead, InstitutionUserRead
from pwreset.customers.service import DirectoryEntry
from pwreset.errors import Family, PwresetError, json_response
from pwreset.institutions.models import Institution
from pwreset.oauth.errors import WrongCustomer
from pwreset.oauth.scopes import USERS_READ, USERS_WRITE


class InvalidPathParameter(PwresetError):
    key = "request.invalid_path"
    message = "invalid path parameter"


class _Named(Protocol):
    @property
    def customer_id(self) -> str: ...


Found = TypeVar("Found", bound=_Named)


async def _scoped(call: Call, user_id: str, id_type: str, find: Callable[[], Awaitable[Found]]) -> Found:
    """``find()`` under the token's rules: a customer token reaches only its own customer and
    learns nothing about others (any other is UXU_10011, never a 404)."""
    own = call.caller.customer_id
    if own is not None and id_type == "CUSTOMER_ID" and user_id != own:
        raise WrongCustomer()
    try:
        found = await find()
    except PwresetError as error:
        if own is not None and error.key == "customer.not_found":
            raise WrongCustomer() from None
        raise
    if own is not None and found.customer_id != own:
        raise WrongCustomer()
    return found


async def resolve_customer(
    call: Call,
    session: AsyncSession,
    *,
    param: str = "customerId",
    allowed: tuple[str, ...] = ("CUSTOMER_ID", "LOGIN_ID"),
) -> Customer:
    """The path's customer, in the token's institution; a customer token reaches only its own."""
    user_id = _path_value(call, param)
    id_type = call.request.query_params.get("userIdType", allowed[0])
    return await _scoped(call, user_id, id_type, lambda: service.find_customer(
        session, institution_id=call.caller.institution_id, user_id=user_id, id_type=id_type, allowed=allowed
    ))


async def institution_of(call: Call, session: AsyncSession) -> Institution:
    institution = await session.get(Institution, call.caller.institution_id)
    assert institution is not None  # tokens are only issued for existing institutions
    return institution


async def resolve_entry(call: Call) -> DirectoryEntry:
    """The path's customer as a directory entry (one prepared query, no ORM session),
    with the same rules as :func:`resolve_customer`."""
    user_id = _path_value(call, "customerId")
    id_type = call.request.query_params.get("userIdType", "CUSTOMER_ID")
    return await _scoped(call, user_id, id_type, lambda: service.directory_entry(
        call.services.db, institution_id=call.caller.institution_id, user_id=user_id, id_type=id_type
    ))


async def contact_methods(call: Call) -> Response:
    """The hottest read: one Core query and the cached institution settings, no ORM session."""
    entry = await resolve_entry(call)
    masked = (await call.services.institutions.get(call.caller.institution_id)).mask_contact_info
    return json_response(
        {
            "customerId": entry.customer_id,
            "contactMethods": [service.contact_method_view(m, masked=masked) for m in entry.methods],
        }
    )


def _path_value(call: Call, param: str) -> str:
    value: str = call.request.path_params[param]
    if not value or len(value) > 128:
        raise InvalidPathParameter()
    return value


async def profile(call: Call) -> Response:
    async with call.services.db.reading() as session:
        customer = await resolve_customer(call, session)
        masked = (await institution_of(call, session)).mask_contact_info
        return json_response(service.profile_view(customer, masked=masked))


async def unlock_user(call: Call) -> Response:
    async with call.services.db.transaction() as session:
        customer = await resolve_customer(call, session)
        await service.unlock_customer(
            session, customer=customer, clock=call.services.clock, client_id=call.caller.client_id,
            correlation_id=call.trace,
        )
    return Response(status_code=204)


async def institution_user(call: Call) -> Response:
    async with call.services.db.reading() as session:
        customer = await resolve_customer(
            call, session, param="id", allowed=("LOGIN_ID", "CUSTOMER_ID", "HOST_USER_ID")
        )
        return json_response(service.institution_user_view(customer))


_LOOKUP_ERRORS = (
    "auth.missing_token", "auth.invalid_token", "auth.expired_token", "auth.insufficient_scope",
    "auth.wrong_customer", "request.missing_correlation_id", "request.invalid_correlation_id",
    "request.invalid_path", "request.invalid_query", "customer.not_found", "request.rate_limited", "unavailable",
)
_USER_TYPE = {"userIdType": "query: CUSTOMER_ID (default) or LOGIN_ID"}

OPERATIONS = [
    Operation(
        "GET", "/v1/customers/{customerId}/contact-methods", Family.UX_USERS, contact_methods,
        "A customer's contact methods (contract 6.1)", scopes=frozenset({USERS_READ}), response=ContactMethodsRead,
        errors=_LOOKUP_ERRORS, params=_USER_TYPE, tags=("Reset Password",),
    ),
    Operation(
        "PUT", "/v1/customers/{customerId}:unlock-user", Family.UX_USERS, unlock_user,
        "Unlock a customer (contract 7)", scopes=frozenset({USERS_WRITE}), status=204, errors=_LOOKUP_ERRORS,
        params=_USER_TYPE, tags=("Customers",),
    ),
    Operation(
        "GET", "/v1/customers/{customerId}", Family.UX_USERS, profile, "A customer's profile (contract 7)",
        scopes=frozenset({USERS_READ}), response=CustomerRead, errors=_LOOKUP_ERRORS, params=_USER_TYPE,
        tags=("Customers",),
    ),
    Operation(
        "GET", "/v1/institution-users/{id}", Family.DB_USERS, institution_user, "An institution user (contract 7)",
        scopes=frozenset({USERS_READ}), response=InstitutionUserRead,
        errors=(
            "auth.missing_token", "auth.invalid_token", "auth.expired_token", "auth.insufficient_scope",
            "auth.wrong_customer", "request.missing_transaction_id", "request.transaction_id_too_long",
            "request.invalid_query", "customer.not_found",
        ),
        params={"userIdType": "query: LOGIN_ID (default), CUSTOMER_ID or HOST_USER_ID"}, tags=("Customers",),
    ),
]
