"""A customer as each operation shows it, in the shapes of Candescent's spec (wire contract 6.1, 7).

One user is one institution customer in pwreset, and its identifiers come from the customer's
row key (32 hex digits): the spec's ``institutionUserId`` and the profile's ``userId`` are the key
in upper case, the authentication id (the profile's ``loginId``, the institution user's ``userId``)
the key in lower case, and ``legacyUserGuid`` is the institution's customer id. So every id a
response shows is accepted back (``customers/service.find_customer``). Optional fields with no
value are left out, never ``null``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from pwreset.customers.contact import mask
from pwreset.customers.expand import Expansion, select
from pwreset.customers.models import ContactMethod, Customer


def institution_user_id(pk: str) -> str:
    return pk.upper()


def auth_id(pk: str) -> str:
    return pk.lower()


class MethodFields(Protocol):
    """A contact method as the ORM or a directory entry carries it."""

    @property
    def method_id(self) -> str: ...
    @property
    def protocol(self) -> str: ...
    @property
    def country_code(self) -> str | None: ...
    @property
    def contact_info(self) -> str: ...
    @property
    def activated(self) -> bool: ...
    @property
    def enrolled_at(self) -> datetime | None: ...


def _date_time(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def _method_view(method: MethodFields, *, masked: bool) -> dict[str, object]:
    """What every contact-method shape of the spec shows alike."""
    view: dict[str, object] = {"id": method.method_id}
    if method.protocol != "EMAIL" and method.country_code is not None:
        view["telephoneCountryCode"] = method.country_code
    view["contactInfo"] = mask(method.contact_info) if masked else method.contact_info
    view["protocol"] = method.protocol
    return view


def destination_view(method: MethodFields, *, masked: bool = False) -> dict[str, object]:
    """One contact method as the spec's ``Destination`` (6.1: ``isActivated``, a date-time)."""
    view = _method_view(method, masked=masked)
    view["isActivated"] = method.activated
    if method.enrolled_at is not None:
        view["enrolledDateTime"] = _date_time(method.enrolled_at)
    return view


def _contact_method_view(method: ContactMethod, *, masked: bool, date_only: bool) -> dict[str, object]:
    """The spec's ``ContactMethod`` (profile: a date) or ``ContactMethod1`` (institution user: a
    date-time): ``activated``, ``validated``, ``primary``."""
    view = _method_view(method, masked=masked)
    view["activated"] = method.activated
    view["validated"] = method.validated
    view["primary"] = method.primary
    if method.enrolled_at is not None:
        view["enrolledDateTime"] = (
            method.enrolled_at.strftime("%Y-%m-%d") if date_only else _date_time(method.enrolled_at)
        )
    return view


def _email(customer: Customer) -> str | None:
    emails = [m for m in customer.contact_methods if m.protocol == "EMAIL" and m.activated]
    emails.sort(key=lambda m: not m.primary)
    return emails[0].contact_info if emails else None


def _user_status(customer: Customer) -> dict[str, bool]:
    return {
        "active": customer.active,
        "onHold": False,
        "locked": customer.locked,
        "reset": False,
        "registered": customer.registered,
        "approved": customer.registered,
        "rejected": False,
        "acceptedDisclosure": customer.accepted_disclosure,
    }


def _names(customer: Customer) -> dict[str, str]:
    names = {"firstName": customer.first_name, "lastName": customer.last_name, "fullName": customer.full_name}
    return {key: value for key, value in names.items() if value}


def profile_view(customer: Customer, *, masked: bool = False) -> dict[str, object]:
    """``GET /v1/customers/{customerId}`` as the spec's ``CustomerInformation``."""
    view: dict[str, object] = {
        "userId": institution_user_id(customer.id),
        "fiId": customer.institution_id,
        "loginId": auth_id(customer.id),
        "userName": customer.login_id,
    }
    view.update(_names(customer))
    view["failedLoginCount"] = customer.failed_login_count
    view["failedPasswordResetCount"] = customer.failed_reset_count
    if (address := _email(customer)) is not None:
        view["emailAddress"] = mask(address) if masked else address
    view["userStatus"] = _user_status(customer)
    view["contactMethods"] = [_contact_method_view(m, masked=masked, date_only=True) for m in customer.contact_methods]
    view["userType"] = "RETAIL"
    view["userRole"] = "PRIMARY"
    view["customers"] = [_customer_ref(customer, "customerId")]
    view["acceptedDisclosure"] = customer.accepted_disclosure
    return view


def _customer_ref(customer: Customer, id_field: str) -> dict[str, object]:
    ref: dict[str, object] = {id_field: customer.customer_id}
    if customer.member_number is not None:
        ref["memberNumber"] = customer.member_number
    ref["customerType"] = "RETAIL"
    if customer.host_user_id is not None:
        ref["hostLoginId"] = customer.host_user_id  # the host system's login, not the online one
    return ref


def institution_user_view(
    customer: Customer, *, expand: Expansion | None = None, masked: bool = False
) -> dict[str, object]:
    """``GET /v1/institution-users/{institutionUserId}`` as the spec's ``InstitutionUser``, with the
    ``$expand`` lists (``customers/expand.py``). ``InstitutionUserStatus`` carries only the flags
    that are true."""
    expand = expand or {}
    view: dict[str, object] = {
        "institutionUserId": institution_user_id(customer.id),
        "institutionId": customer.institution_id,
        "institutionUserRole": "PRIMARY",
        "institutionUserType": "RETAIL",
        "institutionCustomers": [_customer_ref(customer, "institutionCustomerId")],  # (primary: business only)
        "userId": auth_id(customer.id),
        "userName": customer.login_id,
    }
    view.update(_names(customer))
    if (address := _email(customer)) is not None:
        view["email"] = mask(address) if masked else address
    view["failedLoginCount"] = customer.failed_login_count
    view["failedPasswordResetCount"] = customer.failed_reset_count
    status = {key: True for key, value in _user_status(customer).items() if value and key != "acceptedDisclosure"}
    view["userStatus"] = status
    if "contactMethods" in expand:
        # Filtered on what is shown: where numbers are masked, a filter cannot probe the hidden digits.
        methods = [_contact_method_view(m, masked=masked, date_only=False) for m in customer.contact_methods]
        view["contactMethods"] = select(methods, expand["contactMethods"])
    if "postalAddresses" in expand:
        view["postalAddresses"] = []  # the directory holds no postal addresses
    if "subUsers" in expand:
        view["subUsers"] = []  # nor entitled sub-users
    view["additionalInfo"] = {"entry": [{"key": "legacyUserGuid", "value": customer.customer_id}]}
    return view
