"""Wire shapes: the directory import format (contract section 10) and the API's views (6.1, 7)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from pwreset.accounts.schemas import AccountIn

Id = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:@-]+$")


class ContactMethodIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Id
    protocol: Literal["SMS", "VOICE", "EMAIL"]
    telephoneCountryCode: str | None = Field(default=None, max_length=4)
    contactInfo: str = Field(min_length=1, max_length=320)
    isActivated: bool = True
    validated: bool = False
    primary: bool = False
    enrolledDateTime: datetime | None = None


class CustomerIn(BaseModel):
    """One line of an import file."""

    model_config = ConfigDict(extra="forbid")

    customerId: str = Field(pattern=r"^[0-9a-f]{32}$", description="32 lower-case hex digits, as the spec's Customer")
    loginId: str = Field(min_length=1, max_length=128)
    hostUserId: str | None = Field(default=None, max_length=64)
    memberNumber: str | None = Field(default=None, max_length=64)
    firstName: str = Field(default="", max_length=100)
    lastName: str = Field(default="", max_length=100)
    language: str = Field(default="en", pattern=r"^[a-z]{2}(-[A-Z]{2})?$")
    registered: bool = True
    acceptedDisclosure: bool = True
    active: bool = True
    locked: bool = False
    password: str | None = Field(default=None, min_length=1, max_length=128)
    passwordHash: str | None = Field(default=None, max_length=255)
    contactMethods: list[ContactMethodIn] = Field(default_factory=list, max_length=20)
    accounts: list[AccountIn] = Field(default_factory=list, max_length=200)

    @model_validator(mode="after")
    def _checks(self) -> CustomerIn:
        if self.password is not None and self.passwordHash is not None:
            raise ValueError("password and passwordHash are exclusive")
        ids = [m.id for m in self.contactMethods]
        if len(ids) != len(set(ids)):
            raise ValueError("contact method ids must be unique within a customer")
        account_ids = [a.id for a in self.accounts]
        if len(account_ids) != len(set(account_ids)):
            raise ValueError("account ids must be unique within a customer")
        return self


# The API's shapes, for /openapi.json: Candescent's schema names, field names, types, enums and
# required lists. Views (``views.py``) leave out an optional field with no value, never null.

ContactProtocol = Literal["SMS", "VOICE", "EMAIL"]


class Destination(BaseModel):
    """A contact method of 6.1 (``GET .../contact-methods``)."""

    id: str | None = None
    telephoneCountryCode: str | None = None
    contactInfo: str | None = None
    protocol: ContactProtocol | None = None
    isActivated: bool | None = None
    enrolledDateTime: datetime | None = None


class ContactMethodResponse(BaseModel):
    customerId: str | None = None
    contactMethods: list[Destination] | None = None


class ContactMethod(BaseModel):
    """A contact method of a customer profile (a date, not a date-time)."""

    id: str | None = None
    contactInfo: str | None = None
    telephoneCountryCode: str | None = None
    protocol: ContactProtocol | None = None
    activated: bool | None = None
    validated: bool | None = None
    enrolledDateTime: date | None = None
    primary: bool | None = None


class Customer(BaseModel):
    customerId: str | None = Field(default=None, pattern=r"^[0-9a-f]{32}$")
    memberNumber: str | None = None
    customerType: Literal["RETAIL", "BUSINESS"] | None = None
    hostLoginId: str | None = None


class CustomerInformation(BaseModel):
    userId: str | None = Field(default=None, pattern=r"^[0-9A-F]{32}$")
    fiId: str | None = Field(default=None, pattern=r"^([0-9]{5})$")
    loginId: str | None = Field(default=None, pattern=r"^[0-9a-f]{32}$", description="the authentication id")
    userName: str | None = Field(default=None, description="the online login name")
    failedLoginCount: int | None = None
    failedPasswordResetCount: int | None = None
    firstName: str | None = None
    lastName: str | None = None
    fullName: str | None = None
    emailAddress: str | None = None
    userStatus: UserStatus | None = None
    contactMethods: list[ContactMethod] | None = None
    userType: Literal["RETAIL", "BUSINESS"] | None = None
    userRole: Literal["PRIMARY", "ENTITLED"] | None = None
    customers: list[Customer] | None = None
    acceptedDisclosure: bool | None = None


class MapItem(BaseModel):
    key: str
    value: str


class AdditionalInfo(BaseModel):
    entry: list[MapItem] | None = None


class InstitutionCustomer(BaseModel):
    institutionCustomerId: str
    memberNumber: str | None = None
    customerType: Literal["RETAIL", "BUSINESS"] | None = None
    primary: bool | None = None
    hostLoginId: str | None = None


class InstitutionUserStatus(BaseModel):
    """Only the flags that are true are present."""

    active: bool | None = None
    onHold: bool | None = None
    locked: bool | None = None
    reset: bool | None = None
    registered: bool | None = None
    approved: bool | None = None
    rejected: bool | None = None


class UserStatus(InstitutionUserStatus):
    """A profile's status: every flag, and two more."""

    invalidEmailId: bool | None = None
    acceptedDisclosure: bool | None = None


class ContactMethod1(BaseModel):
    """A contact method of an institution user (``$expand=contactMethods``)."""

    id: str | None = None
    protocol: Literal["SMS", "VOICE", "TOKEN", "EMAIL", "WHATSAPP_SMS", "WHATSAPP_VOICE"]
    activated: bool | None = None
    enrolledDateTime: datetime | None = None
    telephoneCountryCode: str | None = None
    contactInfo: str | None = None
    validated: bool | None = None
    primary: bool | None = None


class PostalAddress1(BaseModel):
    streetAddress1: str
    city: str
    state: str
    postalCode: str


class InstitutionUser(BaseModel):
    institutionUserId: str
    institutionId: str
    institutionUserRole: Literal["PRIMARY", "ENTITLED", "BUSINESS_ADMIN", "BUSINESS_SECONDARY_ADMIN",
                                 "BUSINESS_USER"] | None = None
    institutionUserType: Literal["RETAIL", "BUSINESS"]
    institutionCustomers: list[InstitutionCustomer] | None = None
    subUsers: list[dict[str, object]] | None = Field(default=None, description="with $expand=subUsers")
    userId: str
    userName: str
    firstName: str | None = None
    lastName: str | None = None
    fullName: str | None = None
    email: str | None = None
    failedLoginCount: int
    failedPasswordResetCount: int
    userStatus: InstitutionUserStatus | None = None
    postalAddresses: list[PostalAddress1] | None = Field(default=None, description="with $expand=postalAddresses")
    contactMethods: list[ContactMethod1] | None = Field(default=None, description="with $expand=contactMethods")
    additionalInfo: AdditionalInfo


# PUT /v1/customers/{customerId}:contact-info (Candescent's ContactInfo): every field optional, and the
# spec's own examples write numbers where strings are meant, so a number is taken as its digits.
def _digits(value: object) -> object:
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


Digits = Annotated[str, BeforeValidator(_digits), Field(min_length=1, max_length=20)]


class ContactInfoPhone(BaseModel):
    oldPhoneNumber: Digits | None = None
    oldCountryCode: Digits | None = None
    newPhoneNumber: Digits | None = None
    newCountryCode: Digits | None = None


class ContactInfoEmail(BaseModel):
    emailAddress: str | None = Field(default=None, max_length=320)


class ContactInfoPostalAddress(BaseModel):
    address1: str | None = Field(default=None, max_length=200)
    address2: str | None = Field(default=None, max_length=200)
    city: str | None = Field(default=None, max_length=100)
    state: str | None = Field(default=None, max_length=100)
    postalCode: Annotated[str, BeforeValidator(_digits), Field(max_length=20)] | None = None
    country: str | None = Field(default=None, max_length=100)


class ContactInfo(BaseModel):
    """Candescent's ``ContactInfo``: a new phone number, email address (or postal address, which pwreset
    does not hold)."""

    userIdType: Literal["CUSTOMER_ID", "LOGIN_ID"] | None = None
    phoneNumber: ContactInfoPhone | None = None
    email: ContactInfoEmail | None = None
    postalAddress: ContactInfoPostalAddress | None = None
