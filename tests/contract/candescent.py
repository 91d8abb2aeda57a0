"""Facts of Candescent's published API (spec 1.11.0), written down by hand as JSON Schemas.

These are deliberately NOT derived from pwreset's own ``/openapi.json``: the contract tests check
responses against these, so pwreset's code and its own document cannot drift away from Candescent
together. Only field names, types, enums, patterns and required lists are recorded (facts), in
pwreset's own notation; see docs/wire-contract.md.
"""

from __future__ import annotations

from typing import Any

S: dict[str, Any] = {"type": "string"}
B: dict[str, Any] = {"type": "boolean"}
I: dict[str, Any] = {"type": "integer"}  # noqa: E741


def obj(required: list[str] | None = None, **properties: Any) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    return schema


def enum(*values: str) -> dict[str, Any]:
    return {"type": "string", "enum": list(values)}


TOKEN = obj(["access_token", "expires_in", "token_type"], access_token=S, expires_in=S, token_type=S,
            refresh_token=S, refresh_token_expires_in=S)
ERROR_RESPONSE = obj(["code", "message"], code=S, message=S)  # CMN_, ACC_, ISR_
UX_ERROR = obj(status=I, message=S, code=S)  # ux-users

DI_ACCOUNT_TYPES = (
    "SAVINGS", "CHECKING", "MONEY_MARKET", "BROKERAGE", "TRUST", "LINE_OF_CREDIT_LOAN", "TCL_CREDIT_LINE", "UNKNOWN",
    "KEOGH", "RETIREMENT_401K", "CERT_OF_DEPOSIT", "CSI_CERT_OF_DEPOSIT", "CREDIT_CARD_LOAN", "INSTALLMENT_LOAN",
    "CONSUMER_LOAN", "COMMERCIAL_LOAN", "MORTGAGE_LOAN", "RESIDENTIAL_MORTGAGE_LOAN", "COMMERCIAL_REFI_LOAN",
    "HOME_EQUITY_LOAN", "GENERAL_LEDGER_ACCOUNT", "GENERAL_LEDGER_CODE", "TCL_MASTER", "TCL_NOTE", "USER_DEFINED",
    "RETIREMENT_IRA",
)
STATUS = ("open", "closed", "negativeBalance", "delinquent", "inCollection", "overLimit", "writtenOff",
          "creditBalance", "paymentCoupon", "retirementPlan", "retPlanOwnedByDeceased")
ACTIONS = ("summary", "transferFrom", "transferTo", "isHistoryEnabled", "isHistoryEntitled",
           "isOnlineStatementEnabled")
MONEY = obj(["currencyCode", "amount"], currencyCode=S, amount={"type": "number"})
ACCOUNT = obj(
    ["id", "institutionId", "category", "type", "accountNumber", "institutionUserId"],
    id=S, institutionUserId=S, institutionCustomerId=S, institutionId=S, description=S, nickName=S, accountNumber=S,
    category=enum("DEPOSIT", "LOAN", "INVESTMENT", "TIERED_LOAN", "CROSS_USER_ACCOUNT"),
    type=obj(value=enum(*DI_ACCOUNT_TYPES), fiRawAccountType=I, fiAccountType=I, description=S),
    primaryHolderName=S, currentBalance=MONEY, availableBalance=MONEY, routingNumber=S,
    status=obj(list(STATUS), **dict.fromkeys(STATUS, B)),
    allowedActions=obj(list(ACTIONS), **dict.fromkeys(ACTIONS, B)),
)
ACCOUNTS = obj(["accounts"], accounts={"type": "array", "items": ACCOUNT}, totalGroupCount=I)

DESTINATION = obj(id=S, telephoneCountryCode=S, contactInfo=S, protocol=enum("SMS", "VOICE", "EMAIL"),
                  isActivated=B, enrolledDateTime={"type": "string", "format": "date-time"})
CONTACT_METHODS = obj(customerId=S, contactMethods={"type": "array", "items": DESTINATION})

PROFILE_METHOD = obj(id=S, contactInfo=S, telephoneCountryCode=S, protocol=enum("SMS", "VOICE", "EMAIL"),
                     activated=B, validated=B, enrolledDateTime={"type": "string", "format": "date"}, primary=B)
USER_STATUS = ("active", "onHold", "locked", "reset", "registered", "approved", "rejected", "invalidEmailId",
               "acceptedDisclosure")
CUSTOMER_INFORMATION = obj(
    userId={"type": "string", "pattern": "^[0-9A-F]{32}$"}, fiId={"type": "string", "pattern": "^([0-9]{5})$"},
    loginId={"type": "string", "pattern": "^[0-9a-f]{32}$"}, userName=S, failedLoginCount=I,
    failedPasswordResetCount=I, firstName=S, middleName=S, lastName=S, fullName=S, emailAddress=S,
    userStatus=obj(**dict.fromkeys(USER_STATUS, B)), contactMethods={"type": "array", "items": PROFILE_METHOD},
    userType=enum("RETAIL", "BUSINESS"), userRole=enum("PRIMARY", "ENTITLED"),
    customers={"type": "array", "items": obj(customerId={"type": "string", "pattern": "^[0-9a-f]{32}$"},
                                             memberNumber=S, customerType=enum("RETAIL", "BUSINESS"),
                                             hostLoginId=S)},
    acceptedDisclosure=B,
)

CONTACT_METHOD_1 = obj(
    ["protocol"], id=S, protocol=enum("SMS", "VOICE", "TOKEN", "EMAIL", "WHATSAPP_SMS", "WHATSAPP_VOICE"),
    activated=B, enrolledDateTime={"type": "string", "format": "date-time"}, telephoneCountryCode=S, contactInfo=S,
    validated=B, host=B, primary=B,
)
INSTITUTION_USER = obj(
    ["institutionUserId", "institutionId", "institutionUserType", "userId", "userName", "failedLoginCount",
     "failedPasswordResetCount", "additionalInfo"],
    institutionUserId=S, institutionId=S,
    institutionUserRole=enum("PRIMARY", "ENTITLED", "BUSINESS_ADMIN", "BUSINESS_SECONDARY_ADMIN", "BUSINESS_USER"),
    institutionUserType=enum("RETAIL", "BUSINESS"),
    institutionCustomers={"type": "array", "items": obj(
        ["institutionCustomerId"], institutionCustomerId=S, memberNumber=S, memberName=S,
        customerType=enum("RETAIL", "BUSINESS"), primary=B, hostLoginId=S,
    )},
    userId=S, userName=S, firstName=S, lastName=S, fullName=S, email=S, failedLoginCount=I,
    failedPasswordResetCount=I,
    userStatus=obj(**{flag: {"const": True} for flag in (  # only the flags that are true appear
        "active", "onHold", "locked", "reset", "registered", "approved", "rejected")}),
    contactMethods={"type": "array", "items": CONTACT_METHOD_1},
    postalAddresses={"type": "array", "items": obj(["streetAddress1", "city", "state", "postalCode"])},
    additionalInfo=obj(entry={"type": "array", "items": obj(["key", "value"], key=S, value=S)}),
)

#: ``ContactInfo``, the body of ``updateContactInfo`` (PUT /v1/customers/{customerId}:contact-info): every
#: field optional; 204 without a body; 404 ``UXU_88888`` for no entitled customer.
CONTACT_INFO = obj(
    userIdType=enum("CUSTOMER_ID", "LOGIN_ID"),
    phoneNumber=obj(oldPhoneNumber=S, oldCountryCode=S, newPhoneNumber=S, newCountryCode=S),
    email=obj(emailAddress=S),
    postalAddress=obj(address1=S, address2=S, city=S, state=S, postalCode=S, country=S),
)
