"""``/oauth2/v1/token``, ``/revoke`` and ``/introspect`` (contract sections 2 to 4)."""

from __future__ import annotations

from urllib.parse import parse_qsl

from starlette.responses import Response

from pwreset.api.operations import Call, Operation, client_address
from pwreset.audit import service as audit
from pwreset.errors import Family, PwresetError, RateLimited, json_response
from pwreset.kit.text import scrub
from pwreset.oauth.cache import CachedClient
from pwreset.oauth.errors import InvalidClient
from pwreset.oauth.schemas import (
    AccessTokenRequestV2,
    AccessTokenResponseV2,
    IntrospectionResponse,
    RevokeAccessTokenRequestV2,
)
from pwreset.oauth.scopes import GRANT_CLIENT_CREDENTIALS
from pwreset.oauth.service import TokenRequest
from pwreset.ratelimit.limiter import address_subject, client_subject, refused

_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
_MAX_FORM = 16 * 1024


async def _form(call: Call) -> dict[str, str]:
    """The urlencoded body, first value of each field (RFC 6749 appendix B)."""
    content_type = call.request.headers.get("content-type", "")
    if not content_type.lower().startswith("application/x-www-form-urlencoded"):
        return {}
    body = await call.body(limit=_MAX_FORM)
    if body is None:
        return {}
    form: dict[str, str] = {}
    for key, value in parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True):
        form.setdefault(key, scrub(value))  # (compared with stored values only: kit/text.py)
    return form


async def token(call: Call) -> Response:
    services = call.services
    form = await _form(call)
    headers = call.request.headers
    request = TokenRequest(
        grant_type=form.get("grant_type") or None,
        institution_id=scrub(headers.get("institutionid") or form.get("institutionId") or "") or None,
        scope=form["scope"] if "scope" in form else form.get("scopes"),
        username=form.get("username"),
        password=form.get("password"),
        refresh_token=form.get("refresh_token"),
    )
    client: CachedClient | None = None
    try:
        client = await _authenticated_client(call)
        call.check_trace()
        if request.grant_type == GRANT_CLIENT_CREDENTIALS:
            issued = await services.oauth.issue_client_token(client, request)
        else:
            authenticated = client
            issued = await call.unit_of_work(lambda session: services.oauth.issue(session, authenticated, request))
    except PwresetError as error:
        if isinstance(error, RateLimited):
            raise  # counted by a metric; an audit row per refused guess would be a write per request
        async with services.db.transaction() as session:
            await audit.record_event(
                session, clock=services.clock, event_type="token.issue_failed", outcome=error.key,
                institution_id=client.institution_id if client else None,
                client_id=client.client_id if client else None, correlation_id=call.trace,
                details={"grantType": (request.grant_type or "")[:32]},
            )
        raise
    return json_response(issued.to_wire(), 200, _NO_STORE)


async def _authenticated_client(call: Call) -> CachedClient:
    """Client authentication, for the token endpoint, revoke and introspect.

    Only a stranger's failures count (ratelimit.FailureGuard): a wrong secret against its shared key,
    anything else against the address. Wrong customer passwords never do: a partner's backend serves
    all its customers, and the directory's lock caps them per customer.
    """
    services = call.services
    header = call.request.headers.get("authorization")
    address = address_subject(client_address(call.request))
    try:
        await services.auth_failures.refuse_if_over(address)
    except RateLimited:
        # This address is over its limit: an unknown key is refused before any lookup; a client's
        # own key goes on (a stranger behind the same address cannot lock a partner out).
        if not await services.oauth.is_known_shared_key(header):
            refused(address)
            raise
    try:
        return await services.oauth.authenticate_client(header)
    except InvalidClient as error:
        await services.auth_failures.failed(client_subject(error.shared_key) if error.shared_key else address)
        raise


async def revoke(call: Call) -> Response:
    services = call.services
    form = await _form(call)
    client = await _authenticated_client(call)
    call.check_trace()
    async with services.db.transaction() as session:
        await services.oauth.revoke(session, client, form.get("token"))
    return Response(status_code=204)


async def introspect(call: Call) -> Response:
    services = call.services
    form = await _form(call)
    client = await _authenticated_client(call)
    call.check_trace()
    async with services.db.reading() as session:
        body = await services.oauth.introspect(session, client, form.get("token"))
    return json_response(body, 200, _NO_STORE)


_TOKEN_ERRORS = (
    "request.rate_limited",
    "oauth.invalid_client", "oauth.invalid_institution", "oauth.grant_not_allowed", "oauth.unsupported_grant",
    "oauth.invalid_transaction_id", "oauth.missing_refresh_token", "oauth.invalid_scope",
    "oauth.missing_username", "oauth.missing_password", "oauth.invalid_user_credentials",
    "oauth.invalid_refresh_token", "internal",
)

OPERATIONS = [
    Operation(
        "POST", "/oauth2/v1/token", Family.OAUTH2, token, "Issue an access token (RFC 6749)",
        auth="client", form=AccessTokenRequestV2, response=AccessTokenResponseV2, errors=_TOKEN_ERRORS,
        params={"institutionId": "header: the institution the token acts for (not for refresh_token)"},
        tags=("OAuth2",),
    ),
    Operation(
        "DELETE", "/oauth2/v1/revoke", Family.OAUTH2, revoke, "Revoke a token (RFC 7009)",
        auth="client", form=RevokeAccessTokenRequestV2, status=204,
        errors=("oauth.invalid_client", "oauth.invalid_transaction_id", "oauth.missing_refresh_token"),
        tags=("OAuth2",),
    ),
    Operation(
        "POST", "/oauth2/v1/revoke", Family.OAUTH2, revoke, "Revoke a token (RFC 7009's method) [ext]",
        auth="client", form=RevokeAccessTokenRequestV2, status=204, extension=True,
        errors=("oauth.invalid_client", "oauth.invalid_transaction_id", "oauth.missing_refresh_token"),
        tags=("OAuth2",),
    ),
    Operation(
        "POST", "/oauth2/v1/introspect", Family.OAUTH2, introspect, "Introspect a token (RFC 7662) [ext]",
        auth="client", trace_required=False, form=RevokeAccessTokenRequestV2, response=IntrospectionResponse,
        extension=True,
        errors=("oauth.invalid_client", "oauth.missing_refresh_token"), tags=("OAuth2",),
    ),
]
