"""The vocabularies of an account (wire contract section 8), as Candescent's spec defines them.

``type.value`` is one of the spec's ``DIAccountType`` values; each has a default category, the
host's ``fiAccountType`` number and a description, which an institution's file may override (the
category too, within ``CATEGORIES``). A type with no natural category (``UNKNOWN``,
``USER_DEFINED``, the general-ledger ones) needs one in the file. ``STATUS_FLAGS`` and
``ACTION_FLAGS`` are the flags the spec requires on every account; a flag an import does not give
is ``false``. ``CURRENCIES`` is the spec's ``CurrencyCode`` list (it has historic codes, and no
JPY), so an amount is never shown with a code a generated client cannot parse.
"""

from __future__ import annotations

CATEGORIES = ("DEPOSIT", "LOAN", "INVESTMENT", "TIERED_LOAN", "CROSS_USER_ACCOUNT")

#: DIAccountType value -> (fiAccountType, description, default category or None)
TYPES: dict[str, tuple[int, str, str | None]] = {
    "SAVINGS": (1, "Savings", "DEPOSIT"),
    "CHECKING": (2, "Checking", "DEPOSIT"),
    "MONEY_MARKET": (3, "Money Market", "DEPOSIT"),
    "BROKERAGE": (4, "Brokerage", "INVESTMENT"),
    "TRUST": (5, "Trust", "INVESTMENT"),
    "LINE_OF_CREDIT_LOAN": (6, "Line of Credit", "TIERED_LOAN"),
    "TCL_CREDIT_LINE": (7, "Tiered Credit Line", "TIERED_LOAN"),
    "UNKNOWN": (8, "Other", None),
    "KEOGH": (9, "Keogh Plan", "INVESTMENT"),
    "RETIREMENT_401K": (10, "401(k)", "INVESTMENT"),
    "CERT_OF_DEPOSIT": (11, "Certificate of Deposit", "DEPOSIT"),
    "CSI_CERT_OF_DEPOSIT": (12, "Certificate of Deposit", "DEPOSIT"),
    "CREDIT_CARD_LOAN": (13, "Credit Card", "LOAN"),
    "INSTALLMENT_LOAN": (14, "Installment Loan", "LOAN"),
    "CONSUMER_LOAN": (15, "Consumer Loan", "LOAN"),
    "COMMERCIAL_LOAN": (16, "Commercial Loan", "LOAN"),
    "MORTGAGE_LOAN": (17, "Mortgage", "LOAN"),
    "RESIDENTIAL_MORTGAGE_LOAN": (18, "Residential Mortgage", "LOAN"),
    "COMMERCIAL_REFI_LOAN": (19, "Commercial Refinance Loan", "LOAN"),
    "HOME_EQUITY_LOAN": (20, "Home Equity Loan", "LOAN"),
    "GENERAL_LEDGER_ACCOUNT": (21, "General Ledger Account", None),
    "GENERAL_LEDGER_CODE": (22, "General Ledger Code", None),
    "TCL_MASTER": (23, "Tiered Credit Line Master", "TIERED_LOAN"),
    "TCL_NOTE": (24, "Tiered Credit Line Note", "TIERED_LOAN"),
    "USER_DEFINED": (25, "Other", None),
    "RETIREMENT_IRA": (26, "IRA", "INVESTMENT"),
}

#: The account type values of pwreset before it followed the spec, and the value each became
#: (migration 0007 rewrites stored accounts; an old import file is refused with the new name).
FORMER_TYPES = {
    "CERTIFICATE": "CERT_OF_DEPOSIT", "LOAN": "CONSUMER_LOAN", "AUTO_LOAN": "CONSUMER_LOAN",
    "MORTGAGE": "MORTGAGE_LOAN", "CREDIT_CARD": "CREDIT_CARD_LOAN", "LINE_OF_CREDIT": "LINE_OF_CREDIT_LOAN",
    "HOME_EQUITY_LINE": "HOME_EQUITY_LOAN", "INVESTMENT": "BROKERAGE", "RETIREMENT": "RETIREMENT_IRA",
}

#: The spec's AccountStatus: required flags, then the optional ones.
STATUS_FLAGS = (
    "open", "closed", "negativeBalance", "delinquent", "inCollection", "overLimit", "writtenOff", "creditBalance",
    "paymentCoupon", "retirementPlan", "retPlanOwnedByDeceased",
)
OPTIONAL_STATUS_FLAGS = ("approved", "notApproved", "deleted", "verified")
#: The spec's Actions (``allowedActions``), all required.
ACTION_FLAGS = (
    "summary", "transferFrom", "transferTo", "isHistoryEnabled", "isHistoryEntitled", "isOnlineStatementEnabled",
)

#: The spec's CurrencyCode values.
CURRENCIES = frozenset((
    "AED", "AFA", "ALL", "ANG", "AOA", "AOK", "ARP", "ARS", "AMD", "ATS", "AUD", "AWF", "AWG", "AZM", "BAM",
    "BBD", "BDT", "BEF", "BGL", "BHD", "BIF", "BMD", "BND", "BOB", "BRC", "BRL", "BSD", "BTN", "BUK", "BWP",
    "BYR", "BYB", "BZD", "CAD", "CDF", "CHF", "CLP", "CNY", "COP", "CRC", "CZK", "CUP", "CVE", "DDM", "DEM",
    "DJF", "DKK", "DOP", "DZD", "ECS", "EEK", "EGP", "ERN", "ESP", "ETB", "EUR", "FIM", "FJD", "FKP", "FRF",
    "GBP", "GEL", "GHC", "GIP", "GMD", "GNF", "GRD", "GTQ", "GWP", "GYD", "HKD", "HNL", "HRK", "HTG", "HUF",
    "IDR", "IEP", "ILS", "INR", "IQD", "IRR", "ISK", "ITL", "JMD", "JOD", "KES", "KGS", "KHR", "KMF", "KPW",
    "KRW", "KWD", "KYD", "KZT", "LAK", "LBP", "LKR", "LRD", "LSL", "LTL", "LUF", "LVL", "LYD", "MAD", "MDL",
    "MGF", "MKD", "MMK", "MNT", "MOP", "MRO", "MUR", "MVR", "MWK", "MXN", "MXP", "MYR", "MZM", "NAD", "NGN",
    "NIC", "NIO", "NLG", "NOK", "NPR", "NZD", "OMR", "PAB", "PEN", "PES", "PGK", "PHP", "PKR", "PLN", "PLZ",
    "PTE", "PYG", "QAR", "ROL", "RUR", "RWF", "SAR", "SBD", "SCR", "SDD", "SDP", "SEK", "SGD", "SHP", "SIT",
    "SKK", "SLL", "SM", "SOS", "SRG", "STD", "SUR", "SVC", "SYP", "SZL", "THB", "TMM", "TND", "TOP", "TRL",
    "TTD", "TWD", "TZS", "UAH", "UGS", "UGX", "USD", "UYP", "UYU", "UZS", "VND", "VUV", "VAL", "WST", "XAF",
    "XCD", "XOF", "XPF", "YER", "YUD", "ZAR", "ZMK", "ZRZ", "ZWD",
))

#: ISO 4217 minor units where they are not 2.
MINOR_UNITS = {"CLP": 0, "KRW": 0, "ISK": 0, "PYG": 0, "VND": 0, "XAF": 0, "XOF": 0, "XPF": 0, "BIF": 0, "DJF": 0,
               "GNF": 0, "KMF": 0, "RWF": 0, "UGX": 0, "VUV": 0, "BHD": 3, "IQD": 3, "JOD": 3, "KWD": 3, "LYD": 3,
               "OMR": 3, "TND": 3}


def minor_units(currency: str) -> int:
    return MINOR_UNITS.get(currency, 2)
