"""Wire shapes: the directory import format (contract section 10) and the API's views (6.1, 7)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

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

    customerId: str = Id
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


class ContactMethodRead(BaseModel):
    id: str
    telephoneCountryCode: str | None = None
    contactInfo: str
    protocol: str
    isActivated: bool
    enrolledDateTime: str | None = None


class ContactMethodsRead(BaseModel):
    customerId: str
    contactMethods: list[ContactMethodRead]


class UserStatusRead(BaseModel):
    active: bool
    locked: bool
    registered: bool
    acceptedDisclosure: bool


class CustomerRefRead(BaseModel):
    customerId: str
    memberNumber: str | None


class CustomerRead(BaseModel):
    userId: str
    fiId: str
    loginId: str
    firstName: str
    lastName: str
    fullName: str
    acceptedDisclosure: bool
    failedLoginCount: int
    failedPasswordResetCount: int
    userStatus: UserStatusRead
    customers: list[CustomerRefRead]
    contactMethods: list[ContactMethodRead]


class InstitutionCustomerRead(BaseModel):
    institutionCustomerId: str
    memberNumber: str | None
    hostLoginId: str


class InstitutionUserRead(BaseModel):
    institutionUserId: str
    institutionId: str
    institutionUserType: str = "RETAIL"
    institutionCustomers: list[InstitutionCustomerRead]
