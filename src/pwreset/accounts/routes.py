"""``GET /v1/accounts`` and ``GET /v1/accounts/{accountId}`` (contract section 8)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from pwreset.accounts import service
from pwreset.accounts.schemas import AccountRead, AccountsRead
from pwreset.api.operations import Call, Operation
from pwreset.customers.models import Customer
from pwreset.customers.routes import InvalidPathParameter
from pwreset.errors import Family, json_response
from pwreset.oauth.scopes import ACCOUNTS_READ, ACCOUNTS_READ_UNMASKED


async def _user(call: Call, session: AsyncSession) -> Customer:
    query = call.request.query_params
    return await service.find_user(
        session, institution_id=call.caller.institution_id, own_customer_id=call.caller.customer_id,
        host_user_id=query.get("hostUserId"), login_id=query.get("loginId"),
    )


async def list_accounts(call: Call) -> Response:
    where = service.parse_filter(call.request.query_params.get("$filter"))
    unmasked = ACCOUNTS_READ_UNMASKED in call.caller.scopes
    async with call.services.db.reading() as session:
        customer = await _user(call, session)
        accounts = await service.list_accounts(session, customer=customer, where=where)
        views = [service.account_view(a, customer, unmasked=unmasked) for a in accounts]
    return json_response({"accounts": views, "totalGroupCount": "1"})


async def get_account(call: Call) -> Response:
    account_id: str = call.request.path_params["accountId"]
    if not account_id or len(account_id) > 64:
        raise InvalidPathParameter()
    unmasked = ACCOUNTS_READ_UNMASKED in call.caller.scopes
    async with call.services.db.reading() as session:
        customer = await _user(call, session)
        account = await service.get_account(session, customer=customer, account_id=account_id)
        return json_response(service.account_view(account, customer, unmasked=unmasked))


_ERRORS = (
    "auth.missing_token", "auth.invalid_token", "auth.expired_token", "auth.insufficient_scope",
    "request.missing_transaction_id", "request.transaction_id_too_long", "accounts.user_parameters",
    "customer.not_found", "unavailable",
)
_PARAMS = {
    "hostUserId": "query: the user's host id (institution tokens: this or loginId)",
    "loginId": "query: the user's login id (institution tokens: this or hostUserId)",
}

OPERATIONS = [
    Operation(
        "GET", "/v1/accounts", Family.DB_ACCOUNTS, list_accounts, "A user's accounts (contract 8)",
        scopes=frozenset({ACCOUNTS_READ}), response=AccountsRead, errors=(*_ERRORS, "accounts.bad_filter"),
        params={**_PARAMS, "$filter": "query: category eq '<CATEGORY>' or id eq '<id>'"}, tags=("Accounts",),
    ),
    Operation(
        "GET", "/v1/accounts/{accountId}", Family.DB_ACCOUNTS, get_account, "One account of a user (contract 8)",
        scopes=frozenset({ACCOUNTS_READ}), response=AccountRead,
        errors=(*_ERRORS, "request.invalid_path", "account.not_found"), params=_PARAMS, tags=("Accounts",),
    ),
]
