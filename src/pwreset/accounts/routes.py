"""``GET /v1/accounts`` and ``GET /v1/accounts/{accountId}`` (wire contract section 8)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from pwreset.access import subjects
from pwreset.accounts import service
from pwreset.accounts.filters import parse_filter
from pwreset.accounts.schemas import Account, AccountsResponse
from pwreset.api.operations import Call, Operation
from pwreset.api.subjects import path_value
from pwreset.customers.models import Customer
from pwreset.errors import Family, json_response
from pwreset.oauth.scopes import ACCOUNTS_READ, ACCOUNTS_READ_UNMASKED

_NO_STORE = {"Cache-Control": "no-store"}


async def _user(call: Call, session: AsyncSession) -> Customer:
    query = call.request.query_params
    return await subjects.accounts_user(
        session, call.caller, host_user_id=query.get("hostUserId"), login_id=query.get("loginId")
    )


async def list_accounts(call: Call) -> Response:
    query = call.request.query_params
    unmasked = ACCOUNTS_READ_UNMASKED in call.caller.scopes
    where = parse_filter(query.get("$filter"), unmasked=unmasked)
    paging = service.parse_paging(query)
    async with call.services.db.reading() as session:
        customer = await _user(call, session)
        accounts = await service.list_accounts(session, customer=customer, where=where)
        views = [service.account_view(a, customer, unmasked=unmasked) for a in accounts]
    return json_response(service.accounts_page(views, paging), headers=_NO_STORE)


async def get_account(call: Call) -> Response:
    account_id = path_value(call, "accountId")
    unmasked = ACCOUNTS_READ_UNMASKED in call.caller.scopes
    async with call.services.db.reading() as session:
        customer = await _user(call, session)
        account = await service.get_account(session, customer=customer, account_id=account_id)
        return json_response(service.account_view(account, customer, unmasked=unmasked), headers=_NO_STORE)


_ERRORS = (
    "auth.missing_token", "auth.invalid_token", "auth.expired_token", "auth.insufficient_scope",
    "request.missing_transaction_id", "request.transaction_id_too_long", "accounts.user_parameters",
    "customer.not_found", "unavailable", "internal",
)
_PARAMS = {
    "hostUserId": "query: the user's host id (institution tokens: this or loginId)",
    "loginId": "query: the user's login id (institution tokens: this or hostUserId)",
}

OPERATIONS = [
    Operation(
        "GET", "/v1/accounts", Family.DB_ACCOUNTS, list_accounts, "A user's accounts (wire contract 8)",
        scopes=frozenset({ACCOUNTS_READ}), response=AccountsResponse,
        errors=(*_ERRORS, "accounts.bad_filter", "accounts.bad_paging"),
        params={
            **_PARAMS,
            "$filter": "query: OData over id, name (nickName), accountNumber, category, type: eq ne gt ge lt le, "
                       "and, or, contains, tolower, toupper, parentheses",
            "$apply": "query: groupBy(customer), to page by institution customer",
            "$skipGroups": "query: groups to skip (with $apply)",
            "$topGroups": "query: groups to return (with $apply)",
        },
        tags=("Accounts",),
    ),
    Operation(
        "GET", "/v1/accounts/{accountId}", Family.DB_ACCOUNTS, get_account, "One account of a user (wire contract 8)",
        scopes=frozenset({ACCOUNTS_READ}), response=Account,
        errors=(*_ERRORS, "request.invalid_path", "account.not_found"), params=_PARAMS, tags=("Accounts",),
    ),
]
