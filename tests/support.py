"""Test-only helpers: probe routes behind the bearer check, a directory of fake customers."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

import httpx
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from pwreset.api.operations import Call, Operation
from pwreset.errors import Family, json_response
from pwreset.oauth.scopes import ACCOUNTS_READ, USERS_READ


async def whoami(call: Call) -> Response:
    who = call.caller
    return json_response(
        {"institutionId": who.institution_id, "customerId": who.customer_id, "scopes": sorted(who.scopes)}
    )


#: Bearer-protected no-op routes, one per family that uses bearer tokens.
PROBE_OPERATIONS = [
    Operation("GET", "/v1/probe", Family.UX_USERS, whoami, "probe", scopes=frozenset({USERS_READ})),
    Operation("GET", "/v1/accounts-probe", Family.DB_ACCOUNTS, whoami, "probe", scopes=frozenset({ACCOUNTS_READ})),
]


def tx() -> dict[str, str]:
    return {"transactionId": str(uuid.uuid4())}


async def get_token(
    api: httpx.AsyncClient,
    auth: tuple[str, str],
    *,
    institution_id: str | None = "07675",
    prefix: str = "",
    **form: str,
) -> httpx.Response:
    headers = tx()
    if institution_id is not None:
        headers["institutionId"] = institution_id
    form.setdefault("grant_type", "client_credentials")
    return await api.post(f"{prefix}/oauth2/v1/token", auth=auth, headers=headers, data=form)


def ux_error(response: httpx.Response, status: int, code: str) -> dict[str, object]:
    """Assert a ux-users error (contract section 5): status, code and a message; the body."""
    assert response.status_code == status, response.text
    body: dict[str, object] = response.json()
    assert body["status"] == status and body["code"] == code and body["message"]
    return body


def bearer(token: str, *, correlation: bool = True) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {token}"}
    if correlation:
        headers["correlationId"] = str(uuid.uuid4())
    return headers


@dataclass
class FakeDirectory:
    """Customers by (institution, login id): password and whether they may sign in."""

    customers: dict[tuple[str, str], tuple[str, str]] = field(default_factory=dict)
    locked: set[str] = field(default_factory=set)
    failures: int = 0

    def add(self, institution_id: str, login_id: str, customer_id: str, password: str) -> None:
        self.customers[(institution_id, login_id.lower())] = (customer_id, password)

    async def authenticate(
        self, session: AsyncSession, *, institution_id: str, username: str, password: str
    ) -> str | None:
        found = self.customers.get((institution_id, username.lower()))
        if found is None or found[1] != password or found[0] in self.locked:
            self.failures += 1
            return None
        return found[0]

    async def may_refresh(
        self, session: AsyncSession, *, institution_id: str, customer_id: str, issued_at: object
    ) -> bool:
        return customer_id not in self.locked
