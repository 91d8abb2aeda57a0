"""Accounts on the wire: the import format (contract section 10) and the API's view (section 8)."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model, field_validator, model_validator

from pwreset.accounts.catalogue import (
    ACTION_FLAGS,
    CATEGORIES,
    CURRENCIES,
    FORMER_TYPES,
    OPTIONAL_STATUS_FLAGS,
    STATUS_FLAGS,
    TYPES,
)

_DECIMAL = re.compile(r"-?[0-9]+(\.[0-9]+)?|NaN|-?Infinity|-?[0-9.]+[eE][-+]?[0-9]+")
_ID = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:@-]+$")


class MoneyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    currencyCode: str
    amount: str = Field(max_length=24)

    @field_validator("currencyCode")
    @classmethod
    def _currency(cls, value: str) -> str:
        if value not in CURRENCIES:
            raise ValueError("currencyCode must be one of the spec's CurrencyCode values (ISO 4217, e.g. USD)")
        return value

    @field_validator("amount", mode="before")
    @classmethod
    def _number(cls, value: Any) -> Any:
        """A JSON number is taken by its shortest decimal form, which is exact up to 15 significant
        digits; a longer one may already have lost digits in the float, so it is refused."""
        if isinstance(value, bool):
            raise ValueError("amount must be a decimal string or a JSON number")
        if isinstance(value, int):
            return str(value)
        if isinstance(value, float):
            text = repr(value)
            if "inf" in text or "nan" in text or len(Decimal(text).normalize().as_tuple().digits) > 15:
                raise ValueError("a JSON number amount takes at most 15 significant digits; write longer ones as "
                                 "decimal strings like \"1520.35\"")
            return format(Decimal(text), "f")
        return value

    @field_validator("amount")
    @classmethod
    def _decimal(cls, value: str) -> str:
        """A decimal string, never a float: "1520.35", "-12", "0.5"."""
        try:
            if not _DECIMAL.fullmatch(value):
                raise InvalidOperation
            amount = Decimal(value)
        except InvalidOperation:
            raise ValueError("amount must be a decimal string like \"1520.35\"") from None
        if not amount.is_finite() or amount.as_tuple().exponent < -4 or abs(amount) >= Decimal(10) ** 16:  # type: ignore[operator]
            raise ValueError("amount must be finite, with at most 4 decimals and 16 integer digits")
        return value


class AccountTypeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    value: str
    fiAccountType: int | None = Field(default=None, ge=0, le=1_000_000)
    description: str | None = Field(default=None, max_length=100)

    @field_validator("value")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in TYPES:
            former = FORMER_TYPES.get(value)
            hint = f"; {value} is now {former}" if former else ""
            raise ValueError(f"unknown account type{hint}; one of the DIAccountType values: {', '.join(TYPES)}")
        return value


def _flags(allowed: tuple[str, ...]) -> Any:
    def check(value: dict[str, bool]) -> dict[str, bool]:
        unknown = sorted(set(value) - set(allowed))
        if unknown:
            raise ValueError(f"unknown flag {', '.join(unknown)}; known: {', '.join(allowed)}")
        return value
    return check


class AccountIn(BaseModel):
    """One account of a customer in an import file."""

    model_config = ConfigDict(extra="forbid")

    id: str = _ID
    accountNumber: str = Field(min_length=4, max_length=34, pattern=r"^[A-Za-z0-9-]+$")
    nickName: str | None = Field(default=None, max_length=100)
    description: str | None = Field(default=None, max_length=200)
    type: AccountTypeIn
    category: str | None = None
    primaryHolderName: str | None = Field(default=None, max_length=200)
    routingNumber: str | None = Field(default=None, pattern=r"^\d{9}$")
    currentBalance: MoneyIn | None = None
    availableBalance: MoneyIn | None = None
    status: dict[str, bool] = Field(default_factory=lambda: {"open": True})
    allowedActions: dict[str, bool] = Field(default_factory=dict)

    _status = field_validator("status")(_flags(STATUS_FLAGS + OPTIONAL_STATUS_FLAGS))
    _actions = field_validator("allowedActions")(_flags(ACTION_FLAGS))

    @model_validator(mode="after")
    def _category(self) -> AccountIn:
        expected = TYPES[self.type.value][2]
        if self.category is None:
            if expected is None:
                raise ValueError(f"a {self.type.value} account needs a category: one of {', '.join(CATEGORIES)}")
            self.category = expected
        elif self.category not in CATEGORIES:
            raise ValueError(f"category must be one of {', '.join(CATEGORIES)}")
        if self.routingNumber is not None and not _aba_checksum(self.routingNumber):
            raise ValueError("routingNumber fails the ABA checksum")
        return self


def _aba_checksum(number: str) -> bool:
    digits = [int(c) for c in number]
    weights = (3, 7, 1) * 3
    return sum(d * w for d, w in zip(digits, weights, strict=True)) % 10 == 0


# The API's shapes, for /openapi.json: Candescent's schema names, its field names, types, enums and
# required lists (optional fields are omitted when empty, never null).

AccountCategory = Literal["DEPOSIT", "LOAN", "INVESTMENT", "TIERED_LOAN", "CROSS_USER_ACCOUNT"]
DIAccountType = Literal[
    "SAVINGS", "CHECKING", "MONEY_MARKET", "BROKERAGE", "TRUST", "LINE_OF_CREDIT_LOAN", "TCL_CREDIT_LINE", "UNKNOWN",
    "KEOGH", "RETIREMENT_401K", "CERT_OF_DEPOSIT", "CSI_CERT_OF_DEPOSIT", "CREDIT_CARD_LOAN", "INSTALLMENT_LOAN",
    "CONSUMER_LOAN", "COMMERCIAL_LOAN", "MORTGAGE_LOAN", "RESIDENTIAL_MORTGAGE_LOAN", "COMMERCIAL_REFI_LOAN",
    "HOME_EQUITY_LOAN", "GENERAL_LEDGER_ACCOUNT", "GENERAL_LEDGER_CODE", "TCL_MASTER", "TCL_NOTE", "USER_DEFINED",
    "RETIREMENT_IRA",
]


class Money(BaseModel):
    currencyCode: str = Field(description="ISO 4217 (the spec's CurrencyCode list)")
    amount: float = Field(description="a JSON number, written with the stored decimal's exact digits")


class AccountType(BaseModel):
    value: DIAccountType | None = None
    fiAccountType: int | None = None
    description: str | None = None


AccountStatus = create_model(  # type: ignore[call-overload]
    "AccountStatus", **{flag: (bool, ...) for flag in STATUS_FLAGS},
    **{flag: (bool | None, None) for flag in OPTIONAL_STATUS_FLAGS},
)
Actions = create_model("Actions", **{flag: (bool, ...) for flag in ACTION_FLAGS})  # type: ignore[call-overload]


class Account(BaseModel):
    id: str
    institutionUserId: str
    institutionCustomerId: str | None = None
    institutionId: str
    description: str | None = None
    nickName: str | None = None
    accountNumber: str
    category: AccountCategory
    type: AccountType
    primaryHolderName: str | None = None
    currentBalance: Money | None = None
    availableBalance: Money | None = None
    status: AccountStatus | None = None
    allowedActions: Actions | None = None
    routingNumber: str | None = None


class AccountsResponse(BaseModel):
    accounts: list[Account]
    totalGroupCount: int | None = Field(default=None, description="only with $apply=groupBy(customer)")
