"""Customers and institution users (wire contract sections 6.1 and 7)."""

from __future__ import annotations

from starlette.responses import Response

from pwreset.access import subjects
from pwreset.api.operations import Call, Operation
from pwreset.api.subjects import id_type, institution_of, path_value, resolve_customer, resolve_entry
from pwreset.customers import service, views
from pwreset.customers.changes import ContactChange, InvalidContactChange, PhoneChange
from pwreset.customers.errors import CustomerNotFound, NoEntitledCustomer
from pwreset.customers.expand import parse_expand
from pwreset.customers.schemas import ContactInfo, ContactMethodResponse, CustomerInformation, InstitutionUser
from pwreset.errors import Family, json_response
from pwreset.oauth.scopes import USERS_READ, USERS_WRITE


async def contact_methods(call: Call) -> Response:
    """The hottest read: one Core query and the cached institution settings, no ORM session."""
    entry = await resolve_entry(call)
    masked = (await call.services.institutions.get(call.caller.institution_id)).mask_contact_info
    return json_response(
        {
            "customerId": entry.customer_id,
            "contactMethods": [views.destination_view(m, masked=masked) for m in entry.methods],
        }
    )


async def contact_info(call: Call) -> Response:
    """Candescent's updateContactInfo (customers/changes.py): 204, or its codes."""
    body: ContactInfo = await call.json(ContactInfo)
    phone = body.phoneNumber
    change = ContactChange(
        phone=None if phone is None or not any(phone.model_dump().values()) else PhoneChange(
            new_number=_required(phone.newPhoneNumber, "phoneNumber.newPhoneNumber"),
            new_country_code=phone.newCountryCode, old_number=phone.oldPhoneNumber,
            old_country_code=phone.oldCountryCode,
        ),
        email=None if body.email is None or body.email.emailAddress is None else body.email.emailAddress,
        postal_address=body.postalAddress is not None and any(body.postalAddress.model_dump().values()),
    )

    async with call.services.db.transaction() as session:  # all of it, or nothing
        try:
            customer = await subjects.customer(
                session, call.caller, user_id=path_value(call, "customerId"),
                id_type=body.userIdType or id_type(call, service.CUSTOMER_ID_TYPES), allowed=service.CUSTOMER_ID_TYPES,
            )
        except CustomerNotFound:
            raise NoEntitledCustomer() from None
        await call.services.contacts.change(
            session, customer=customer, change=change, client_id=call.caller.client_id, correlation_id=call.trace,
        )
    return Response(status_code=204)


def _required(value: str | None, name: str) -> str:
    if value is None:
        raise InvalidContactChange(f"{name} is required to change a phone number")
    return value


async def profile(call: Call) -> Response:
    async with call.services.db.reading() as session:
        customer = await resolve_customer(call, session)
        masked = (await institution_of(call, session)).mask_contact_info
        return json_response(views.profile_view(customer, masked=masked))


async def unlock_user(call: Call) -> Response:
    async with call.services.db.transaction() as session:
        customer = await resolve_customer(call, session)
        await service.unlock_customer(
            session, customer=customer, clock=call.services.clock, client_id=call.caller.client_id,
            correlation_id=call.trace,
        )
    return Response(status_code=204)


async def institution_user(call: Call) -> Response:
    expand = parse_expand(call.request.query_params.get("$expand"))
    async with call.services.db.reading() as session:
        customer = await resolve_customer(
            call, session, param="institutionUserId", allowed=service.INSTITUTION_USER_ID_TYPES
        )
        masked = (await institution_of(call, session)).mask_contact_info
        return json_response(views.institution_user_view(customer, expand=expand, masked=masked))


_LOOKUP_ERRORS = (
    "auth.missing_token", "auth.invalid_token", "auth.expired_token", "auth.insufficient_scope",
    "auth.wrong_customer", "request.missing_correlation_id", "request.invalid_correlation_id",
    "request.invalid_path", "request.invalid_query", "customer.not_found", "request.rate_limited", "unavailable",
    "internal",
)
_USER_TYPE = {"userIdType": "query: CUSTOMER_ID (default) or LOGIN_ID"}

OPERATIONS = [
    Operation(
        "GET", "/v1/customers/{customerId}/contact-methods", Family.UX_USERS, contact_methods,
        "A customer's contact methods (wire contract 6.1)", scopes=frozenset({USERS_READ}),
        response=ContactMethodResponse, errors=_LOOKUP_ERRORS, params=_USER_TYPE, tags=("Reset Password",),
        aliases=("/ux-users/v1/customers/{customerId}/contact-methods",),
    ),
    Operation(
        "PUT", "/v1/customers/{customerId}:contact-info", Family.UX_USERS, contact_info,
        "Change a customer's phone number or email address (Candescent's updateContactInfo)",
        scopes=frozenset({USERS_WRITE}), body=ContactInfo, status=204, tags=("Contact Info",),
        params={"userIdType": "query: CUSTOMER_ID (default) or LOGIN_ID; the body's userIdType wins"},
        errors=(
            "auth.missing_token", "auth.invalid_token", "auth.expired_token", "auth.insufficient_scope",
            "auth.wrong_customer", "request.missing_correlation_id", "request.invalid_correlation_id",
            "request.invalid_path", "request.invalid_query", "request.invalid_body", "contact.customer_not_found",
            "contact.not_found", "request.rate_limited", "unavailable", "internal",
        ),
    ),
    Operation(
        "PUT", "/v1/customers/{customerId}:unlock-user", Family.UX_USERS, unlock_user,
        "Unlock a customer (wire contract 7)", scopes=frozenset({USERS_WRITE}), status=204, errors=_LOOKUP_ERRORS,
        params=_USER_TYPE, tags=("Customers",),
    ),
    Operation(
        "GET", "/v1/customers/{customerId}", Family.UX_USERS, profile, "A customer's profile (wire contract 7)",
        scopes=frozenset({USERS_READ}), response=CustomerInformation, errors=_LOOKUP_ERRORS, params=_USER_TYPE,
        tags=("Customers",),
    ),
    Operation(
        "GET", "/v1/institution-users/{institutionUserId}", Family.DB_USERS, institution_user,
        "An institution user (wire contract 7)", scopes=frozenset({USERS_READ}), response=InstitutionUser,
        errors=(
            "auth.missing_token", "auth.invalid_token", "auth.expired_token", "auth.insufficient_scope",
            "auth.wrong_customer", "request.missing_transaction_id", "request.transaction_id_too_long",
            "request.invalid_path", "request.invalid_query", "users.bad_expand_filter", "customer.not_found",
            "unavailable", "internal",
        ),
        params={
            "userIdType": "query: INSTITUTION_USER_ID (default), HOST_USER_ID, LOGIN_ID, LEGACY_USER_GUID, USER_ID, "
                          "or CUSTOMER_ID [ext]",
            "$expand": "query: contactMethods, postalAddresses, subUsers (comma-separated), each optionally "
                       "with ($filter=...), e.g. contactMethods($filter=(validated eq true) and (protocol eq 'VOICE'))",
        },
        tags=("Customers",),
    ),
]
