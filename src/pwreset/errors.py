"""The root error, and the one place where errors become wire responses.

Services raise domain errors that know nothing of HTTP; each carries a ``key``. Every route belongs
to one wire family of the contract (oauth2, ux-users, db-accounts, db-users), and :data:`WIRE` maps
``(key, family)`` to that family's status and code (contract sections 2, 5, 6, 8). An error with no
row for its family, or any unexpected exception, becomes the family's internal-error code and never
carries detail.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Mapping
from typing import ClassVar

import orjson
from starlette.responses import Response

log = logging.getLogger(__name__)


class PwresetError(Exception):
    """Root of every error the service raises on purpose."""

    key: ClassVar[str] = "internal"
    message: ClassVar[str] = "internal error"

    def __init__(self, message: str | None = None, *, extra: Mapping[str, object] | None = None) -> None:
        self.detail = message or self.message
        self.extra = dict(extra or {})
        super().__init__(self.detail)


class Family(enum.Enum):
    OAUTH2 = "oauth2"
    UX_USERS = "ux-users"
    DB_ACCOUNTS = "db-accounts"
    DB_USERS = "db-users"


OAUTH2, UXU, ACC, DBU = Family.OAUTH2, Family.UX_USERS, Family.DB_ACCOUNTS, Family.DB_USERS


def _auth(ux: str, acc: str, isr: str, status: int) -> dict[Family, tuple[int, str]]:
    """A bearer-check refusal in each resource family, with the codes Candescent's spec gives each
    family (wire contract section 5): Accounts has one code for every token problem and one for scope;
    institution users tell a missing token from a bad one."""
    return {UXU: (status, ux), ACC: (status, acc), DBU: (status, isr)}


#: (error key) -> {family: (HTTP status, code)}
WIRE: dict[str, dict[Family, tuple[int, str]]] = {
    # Token service, contract section 2.
    "oauth.invalid_client": {OAUTH2: (401, "CMN_90004")},
    "oauth.invalid_institution": {OAUTH2: (400, "CMN_90005")},
    "oauth.grant_not_allowed": {OAUTH2: (403, "CMN_90006")},
    "oauth.unsupported_grant": {OAUTH2: (400, "CMN_90007")},
    "oauth.invalid_transaction_id": {OAUTH2: (400, "CMN_90008")},
    "oauth.missing_refresh_token": {OAUTH2: (400, "CMN_90011")},
    "oauth.invalid_scope": {OAUTH2: (400, "CMN_90012")},
    "oauth.missing_username": {OAUTH2: (400, "CMN_90013")},
    "oauth.missing_password": {OAUTH2: (400, "CMN_90014")},
    "oauth.invalid_user_credentials": {OAUTH2: (401, "CMN_90015")},
    "oauth.invalid_refresh_token": {OAUTH2: (400, "CMN_90016")},
    # Bearer checks on resource APIs, contract section 5.
    "auth.invalid_token": _auth("UXU_10001", "ACC_00601", "ISR_11002", 401),
    "auth.insufficient_scope": _auth("UXU_10002", "ACC_00602", "ISR_11003", 403),
    "auth.expired_token": _auth("UXU_10003", "ACC_00601", "ISR_11002", 401),
    "auth.missing_token": _auth("UXU_10005", "ACC_00601", "ISR_11001", 401),
    "auth.wrong_customer": _auth("UXU_10011", "ACC_00602", "ISR_11003", 403),
    # Tracing headers, contract section 5.
    "request.missing_correlation_id": {UXU: (400, "UXU_10006")},
    "request.invalid_correlation_id": {UXU: (400, "UXU_10007")},
    "request.invalid_originating_ip": {UXU: (400, "UXU_10008")},
    "request.missing_transaction_id": {ACC: (400, "ACC_99998"), DBU: (400, "ISR_11005")},
    "request.transaction_id_too_long": {ACC: (400, "ACC_99997"), DBU: (400, "ISR_11006")},
    "request.invalid_path": {UXU: (400, "UXU_10012"), ACC: (400, "ACC_00011"), DBU: (400, "ISR_11007")},
    "request.invalid_query": {UXU: (400, "UXU_10014"), ACC: (400, "ACC_00011"), DBU: (400, "ISR_11008")},
    "request.invalid_body": {UXU: (400, "UXU_99999")},
    # 429 and 503 are pwreset's own [ext] codes: Candescent publishes none for them outside ux-users.
    "request.rate_limited": {
        OAUTH2: (429, "CMN_90029"), UXU: (429, "UXU_40029"), ACC: (429, "ACC_40029"), DBU: (429, "ISR_40029"),
    },
    # Customers and resets, contract sections 6 and 7 (UXU_2xxxx are pwreset's own, contract 6.2-6.4).
    "users.bad_expand_filter": {DBU: (400, "ISR_10009")},
    "customer.not_found": {UXU: (404, "UXU_10000"), ACC: (404, "ACC_00101"), DBU: (404, "ISR_10001")},
    "reset.unknown_contact_method": {UXU: (400, "UXU_88889")},
    "reset.protocol_mismatch": {UXU: (400, "UXU_20001")},
    "reset.method_not_activated": {UXU: (400, "UXU_20002")},
    "reset.not_registered": {UXU: (400, "UXU_20003")},
    "reset.disclosure_not_accepted": {UXU: (400, "UXU_20004")},
    "reset.cooling_off": {UXU: (400, "UXU_20005")},
    "reset.customer_inactive": {UXU: (400, "UXU_20006")},
    # Issue 14: recovery a bank's fraud team can sign (docs/decisions/0012-bank-grade-recovery.md).
    "reset.destination_changed": {UXU: (400, "UXU_20007")},
    "reset.sim_swapped": {UXU: (400, "UXU_20008")},
    "reset.sim_swap_unavailable": {UXU: (503, "UXU_30002")},
    "reset.second_channel_unavailable": {UXU: (400, "UXU_20031")},
    "reset.same_channel": {UXU: (400, "UXU_20032")},
    "contact.not_found": {UXU: (400, "UXU_88891")},
    "contact.customer_not_found": {UXU: (404, "UXU_88888")},
    "passcode.wrong": {UXU: (400, "UXU_20011")},
    "passcode.expired": {UXU: (400, "UXU_20012")},
    "passcode.used": {UXU: (400, "UXU_20013")},
    "passcode.superseded": {UXU: (400, "UXU_20014")},
    "passcode.exhausted": {UXU: (400, "UXU_20015")},
    "passcode.none": {UXU: (400, "UXU_20016")},
    "ticket.invalid": {UXU: (400, "UXU_20021")},
    "password.policy": {UXU: (400, "UXU_20022")},
    # Accounts, contract section 8.
    "account.not_found": {ACC: (404, "ACC_00012")},
    "accounts.bad_filter": {ACC: (400, "ACC_00005")},
    "accounts.user_parameters": {ACC: (400, "ACC_99992")},
    "accounts.bad_paging": {ACC: (400, "ACC_00011")},
    "unavailable": {OAUTH2: (503, "CMN_30001"), UXU: (503, "UXU_30001"), ACC: (503, "ACC_30001"),
                    DBU: (503, "ISR_30001")},
    "internal": {OAUTH2: (500, "CMN_90000"), UXU: (500, "UXU_99998"), ACC: (500, "ACC_99999"),
                 DBU: (500, "ISR_99999")},
}

#: Extra response headers by key (RFC 6749 section 5.2, RFC 6750 section 3).
_HEADERS: dict[str, dict[str, str]] = {
    "oauth.invalid_client": {"WWW-Authenticate": 'Basic realm="pwreset"'},
    "auth.missing_token": {"WWW-Authenticate": 'Bearer realm="pwreset"'},
    "auth.invalid_token": {"WWW-Authenticate": 'Bearer realm="pwreset", error="invalid_token"'},
    "auth.expired_token": {
        "WWW-Authenticate": 'Bearer realm="pwreset", error="invalid_token", error_description="expired"'
    },
    "auth.insufficient_scope": {"WWW-Authenticate": 'Bearer realm="pwreset", error="insufficient_scope"'},
}


class Unavailable(PwresetError):
    key = "unavailable"
    message = "service temporarily unavailable"


class RateLimited(PwresetError):
    key = "request.rate_limited"
    message = "too many requests; retry later"

    def __init__(self, retry_after: int, message: str | None = None) -> None:
        super().__init__(message)
        self.retry_after = max(1, retry_after)


def json_response(body: object, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, headers=headers, media_type="application/json")


def wire_status(error: PwresetError, family: Family) -> tuple[int, str] | None:
    return WIRE.get(error.key, {}).get(family)


def render(error: PwresetError, family: Family, headers: Mapping[str, str] | None = None) -> Response:
    """The family's body: ux-users carries ``status``; the others ``code`` and ``message``."""
    mapped = wire_status(error, family)
    if mapped is None:
        if error.key != "internal":  # a refusal with no code in this family: a gap in WIRE, a bug
            log.error("no wire code for %s in the %s family; answered as an internal error", error.key, family.value)
        error = PwresetError()
        mapped = WIRE["internal"][family]
    status, code = mapped
    body: dict[str, object]
    if family is UXU:
        body = {"status": status, "message": error.detail, "code": code}
    else:
        body = {"code": code, "message": error.detail}
    body.update(error.extra)
    out = {**_HEADERS.get(error.key, {}), **(headers or {})}
    if isinstance(error, RateLimited):
        out["Retry-After"] = str(error.retry_after)
    return json_response(body, status, out)
