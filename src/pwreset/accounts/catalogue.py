"""The account types and categories of contract section 8.

A type has a value (``CHECKING``), the host's numeric ``fiAccountType`` and a description; each
belongs to one category. ``CROSS_USER_ACCOUNT`` marks an account of another user that this user
may see, whatever its type. An institution's file may carry its own ``fiAccountType`` and
description; the value must be one of these.
"""

from __future__ import annotations

CATEGORIES = ("DEPOSIT", "LOAN", "INVESTMENT", "TIERED_LOAN", "CROSS_USER_ACCOUNT")

#: value -> (fiAccountType, description, category)
TYPES: dict[str, tuple[int, str, str]] = {
    "CHECKING": (1, "Checking", "DEPOSIT"),
    "SAVINGS": (2, "Savings", "DEPOSIT"),
    "MONEY_MARKET": (3, "Money Market", "DEPOSIT"),
    "CERTIFICATE": (4, "Certificate of Deposit", "DEPOSIT"),
    "LOAN": (5, "Loan", "LOAN"),
    "AUTO_LOAN": (6, "Auto Loan", "LOAN"),
    "MORTGAGE": (7, "Mortgage", "LOAN"),
    "CREDIT_CARD": (8, "Credit Card", "LOAN"),
    "LINE_OF_CREDIT": (9, "Line of Credit", "TIERED_LOAN"),
    "HOME_EQUITY_LINE": (10, "Home Equity Line of Credit", "TIERED_LOAN"),
    "INVESTMENT": (11, "Investment", "INVESTMENT"),
    "RETIREMENT": (12, "Retirement (IRA)", "INVESTMENT"),
}

#: ISO 4217 minor units for the currencies a US or Latin American credit union meets; others: 2.
MINOR_UNITS = {"JPY": 0, "KRW": 0, "CLP": 0, "BHD": 3, "KWD": 3, "OMR": 3, "JOD": 3, "TND": 3}


def minor_units(currency: str) -> int:
    return MINOR_UNITS.get(currency, 2)
