"""Accounts on the wire: the import format (contract section 10) and the API's view (section 8)."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from pwreset.accounts.catalogue import CATEGORIES, TYPES

_ID = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:@-]+$")


class MoneyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    currencyCode: str = Field(pattern=r"^[A-Z]{3}$")
    amount: str = Field(max_length=24)

    @field_validator("amount")
    @classmethod
    def _decimal(cls, value: str) -> str:
        """A decimal string, never a float: "1520.35", "-12", "0.5"."""
        try:
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
            raise ValueError(f"unknown account type; one of {', '.join(TYPES)}")
        return value


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
    status: dict[str, bool] = Field(default_factory=lambda: {"open": True}, max_length=10)
    allowedActions: dict[str, bool] = Field(default_factory=dict, max_length=20)

    @model_validator(mode="after")
    def _category(self) -> AccountIn:
        expected = TYPES[self.type.value][2]
        if self.category is None:
            self.category = expected
        elif self.category not in CATEGORIES:
            raise ValueError(f"category must be one of {', '.join(CATEGORIES)}")
        elif self.category not in (expected, "CROSS_USER_ACCOUNT"):
            raise ValueError(f"a {self.type.value} account is in category {expected} (or CROSS_USER_ACCOUNT)")
        if self.routingNumber is not None and not _aba_checksum(self.routingNumber):
            raise ValueError("routingNumber fails the ABA checksum")
        return self


def _aba_checksum(number: str) -> bool:
    digits = [int(c) for c in number]
    weights = (3, 7, 1) * 3
    return sum(d * w for d, w in zip(digits, weights, strict=True)) % 10 == 0


class MoneyRead(BaseModel):
    currencyCode: str
    amount: str


class AccountTypeRead(BaseModel):
    value: str
    fiAccountType: int
    description: str


class AccountRead(BaseModel):
    id: str
    institutionId: str
    institutionUserId: str
    accountNumber: str
    nickName: str | None
    description: str | None
    type: AccountTypeRead
    category: str
    primaryHolderName: str | None
    currentBalance: MoneyRead | None
    availableBalance: MoneyRead | None
    status: dict[str, Any]
    allowedActions: dict[str, Any]
    routingNumber: str | None


class AccountsRead(BaseModel):
    accounts: list[AccountRead]
    totalGroupCount: str
