"""The HTTP edge of ``access/subjects.py``: the path's customer under the token's rules."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from pwreset.access import subjects
from pwreset.api.operations import Call, InvalidPathParameter
from pwreset.customers.models import Customer
from pwreset.customers.service import CUSTOMER_ID_TYPES, DirectoryEntry
from pwreset.institutions.models import Institution

MAX_PATH_ID = 128


def path_value(call: Call, param: str) -> str:
    value: str = call.request.path_params[param]
    if not value or len(value) > MAX_PATH_ID:
        raise InvalidPathParameter()
    return value


def id_type(call: Call, allowed: tuple[str, ...]) -> str:
    """``userIdType``, the operation's first allowed value when absent."""
    return call.request.query_params.get("userIdType", allowed[0])


async def resolve_customer(
    call: Call, session: AsyncSession, *, param: str = "customerId", allowed: tuple[str, ...] = CUSTOMER_ID_TYPES
) -> Customer:
    """The path's customer, in the token's institution; a customer token reaches only its own."""
    return await subjects.customer(
        session, call.caller, user_id=path_value(call, param), id_type=id_type(call, allowed), allowed=allowed
    )


async def resolve_entry(call: Call) -> DirectoryEntry:
    """The path's customer as a directory entry (the hot paths), with the same rules."""
    return await subjects.entry(
        call.services.db, call.caller, user_id=path_value(call, "customerId"),
        id_type=id_type(call, CUSTOMER_ID_TYPES),
    )


async def institution_of(call: Call, session: AsyncSession) -> Institution:
    institution = await session.get(Institution, call.caller.institution_id)
    assert institution is not None  # tokens are only issued for existing institutions
    return institution
