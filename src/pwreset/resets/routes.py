"""``:reset-password``, ``:verify-passcode``, ``:set-password`` (wire contract 6.2 to 6.4)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from pwreset.api.operations import Call, Operation
from pwreset.api.subjects import institution_of, resolve_customer, resolve_entry
from pwreset.errors import Family, json_response
from pwreset.oauth.scopes import USERS_WRITE
from pwreset.resets.schemas import (
    ResetPasswordRequest,
    ResetTicket,
    SecondChannelRequired,
    SetPasswordRequest,
    VerifyPasscodeRequest,
)
from pwreset.resets.service import Actor, SecondChannelNeeded, Ticket


def _actor(call: Call) -> Actor:
    return Actor(client_id=call.caller.client_id, correlation_id=call.trace)


async def reset_password(call: Call) -> Response:
    body: ResetPasswordRequest = await call.json(ResetPasswordRequest)
    entry = await resolve_entry(call)
    await call.services.resets.request_reset(
        entry=entry, contact_method_id=body.contactMethodId, protocol=body.protocol, actor=_actor(call),
    )
    return Response(status_code=204)


async def verify_passcode(call: Call) -> Response:
    body: VerifyPasscodeRequest = await call.json(VerifyPasscodeRequest)

    async def work(session: AsyncSession) -> Ticket | SecondChannelNeeded:
        customer = await resolve_customer(call, session)
        return await call.services.resets.verify_passcode(
            session, customer=customer, code=body.passcode, actor=_actor(call)
        )

    ticket = await call.unit_of_work(work)
    if isinstance(ticket, SecondChannelNeeded):  # two-channel assurance: the first of two
        return json_response(
            {"secondChannelRequired": True, "verifiedContactMethodId": ticket.verified_method_id,
             "contactMethodIds": ticket.other_method_ids, "expiresIn": ticket.expires_in},
            202, {"Cache-Control": "no-store"},
        )
    body_out = {"resetTicket": ticket.value, "expiresIn": ticket.expires_in}
    return json_response(body_out, 200, {"Cache-Control": "no-store"})


async def set_password(call: Call) -> Response:
    body: SetPasswordRequest = await call.json(SetPasswordRequest)

    async def work(session: AsyncSession) -> None:
        customer = await resolve_customer(call, session)
        await call.services.resets.set_password(
            session, customer=customer, institution=await institution_of(call, session), ticket=body.resetTicket,
            new_password=body.newPassword, actor=_actor(call),
        )

    await call.unit_of_work(work)
    return Response(status_code=204)


_COMMON = (
    "auth.missing_token", "auth.invalid_token", "auth.expired_token", "auth.insufficient_scope",
    "auth.wrong_customer", "request.missing_correlation_id", "request.invalid_correlation_id",
    "request.invalid_path", "request.invalid_query", "request.invalid_body", "customer.not_found",
    "reset.cooling_off", "unavailable",
)
_USER_TYPE = {"userIdType": "query: CUSTOMER_ID (default) or LOGIN_ID"}

OPERATIONS = [
    Operation(
        "PUT", "/v1/customers/{customerId}:reset-password", Family.UX_USERS, reset_password,
        "Send a one-time passcode to a contact method (wire contract 6.2)", scopes=frozenset({USERS_WRITE}),
        body=ResetPasswordRequest, status=204, params=_USER_TYPE, tags=("Reset Password",),
        errors=(
            *_COMMON, "reset.unknown_contact_method", "reset.protocol_mismatch", "reset.method_not_activated",
            "reset.not_registered", "reset.disclosure_not_accepted", "reset.customer_inactive",
            "request.rate_limited", "reset.destination_changed", "reset.sim_swapped", "reset.sim_swap_unavailable",
            "reset.second_channel_unavailable", "reset.same_channel",
        ),
    ),
    Operation(
        "POST", "/v1/customers/{customerId}:verify-passcode", Family.UX_USERS, verify_passcode,
        "Exchange the passcode for a reset ticket (wire contract 6.3) [ext]", scopes=frozenset({USERS_WRITE}),
        body=VerifyPasscodeRequest, response=ResetTicket, params=_USER_TYPE, tags=("Reset Password",), extension=True,
        other_responses=((202, SecondChannelRequired, "the first of two channels, where the institution needs two "
                          "(recovery assurance two_channel): verify a passcode sent to another of contactMethodIds"),),
        errors=(
            *_COMMON, "passcode.wrong", "passcode.expired", "passcode.used", "passcode.superseded",
            "passcode.exhausted", "passcode.none", "reset.customer_inactive",
        ),
    ),
    Operation(
        "PUT", "/v1/customers/{customerId}:set-password", Family.UX_USERS, set_password,
        "Set the new password with a reset ticket (wire contract 6.4) [ext]", scopes=frozenset({USERS_WRITE}),
        body=SetPasswordRequest, status=204, params=_USER_TYPE, tags=("Reset Password",), extension=True,
        errors=(*_COMMON, "ticket.invalid", "password.policy", "reset.customer_inactive"),
    ),
]
