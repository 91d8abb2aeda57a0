"""Velocity limits per client and per institution, across the whole directory (issue 12, item 6)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from pwreset.audit.models import AuditEvent
from pwreset.ops.metrics import VELOCITY_LIMITED
from pwreset.ratelimit.limiter import Rule
from tests.directory_support import C1, C2, X1, World
from tests.support import get_token, ux_error
from tests.test_resets import delivered_code, request_reset, verify


@pytest.fixture
def directory():
    return None


def limits(services, *, client_sends=None, institution_sends=None, client_failures=None, institution_failures=None):
    velocity = services.resets.velocity
    if client_sends is not None:
        velocity.client_sends = (Rule("client-send-minute", client_sends, 60),)
    if institution_sends is not None:
        velocity.institution_sends = (Rule("institution-send-minute", institution_sends, 60),)
    if client_failures is not None:
        velocity.client_failures = Rule("client-verify-failures", client_failures, 3600)
    if institution_failures is not None:
        velocity.institution_failures = Rule("institution-verify-failures", institution_failures, 3600)


async def audited(services, event_type: str) -> list[AuditEvent]:
    async with services.db.reading() as session:
        return list((await session.scalars(select(AuditEvent).where(AuditEvent.event_type == event_type))).all())


def tripped(name: str) -> float:
    return VELOCITY_LIMITED.labels(name)._value.get()


async def test_one_client_cannot_send_to_the_whole_directory(api, world: World, services, clock):
    limits(services, client_sends=2)
    before = tripped("client-send-minute")
    assert (await request_reset(api, world, customer=C1, method="101")).status_code == 204
    assert (await request_reset(api, world, customer=C2, method="201")).status_code == 204
    ux_error(await request_reset(api, world, customer=C1, method="103"), 429, "UXU_40029")
    refused = await request_reset(api, world, customer=C1, method="103")
    assert refused.status_code == 429 and 1 <= int(refused.headers["retry-after"]) <= 60
    assert tripped("client-send-minute") == before + 2
    [event] = await audited(services, "velocity.limited")  # once per window, not per refusal
    assert event.outcome == "client-send-minute" and event.client_id == world.partner.client_id
    assert event.institution_id == "07675"
    # Another institution's partner is not affected.
    other = await api.put(f"/v1/customers/{X1}:reset-password", headers=world.headers(world.other_token),
                          json={"contactMethodId": "901"})
    assert other.status_code == 204
    clock.advance(61)
    assert (await request_reset(api, world, customer=C1, method="103")).status_code == 204


async def test_every_client_of_an_institution_together(api, world: World, services, make_partner):
    limits(services, institution_sends=2)
    second = await make_partner("07675", scopes="institution-users:read institution-users:write")
    token = (await get_token(api, second.auth)).json()["access_token"]
    assert (await request_reset(api, world, customer=C1, method="101")).status_code == 204
    response = await api.put(f"/v1/customers/{C2}:reset-password", headers=world.headers(token),
                             json={"contactMethodId": "201"})
    assert response.status_code == 204
    response = await api.put(f"/v1/customers/{C1}:reset-password", headers=world.headers(token),
                             json={"contactMethodId": "103"})
    ux_error(response, 429, "UXU_40029")
    [event] = await audited(services, "velocity.limited")
    assert event.outcome == "institution-send-minute" and event.client_id == second.client_id


async def test_a_send_refused_by_the_customers_own_limit_costs_the_client_nothing(api, world: World, services):
    limits(services, client_sends=2)
    assert (await request_reset(api, world, customer=C1, method="101")).status_code == 204
    ux_error(await request_reset(api, world, customer=C1, method="103"), 429, "UXU_40029")  # the customer's limit
    assert (await request_reset(api, world, customer=C2, method="201")).status_code == 204
    assert await audited(services, "velocity.limited") == []


async def test_wrong_passcodes_across_customers_stop_at_the_clients_limit(api, world: World, services):
    limits(services, client_failures=3)
    await request_reset(api, world, customer=C1, method="101")
    code = await delivered_code(services)
    await request_reset(api, world, customer=C2, method="201")
    wrong = "000000" if code != "000000" else "111111"
    for customer in (C1, C2, C2):
        ux_error(await verify(api, world, wrong, customer=customer), 400, "UXU_20011")
    ux_error(await verify(api, world, code, customer=C1), 429, "UXU_40029")  # even the right one, for now
    [event] = await audited(services, "velocity.limited")
    assert event.outcome == "client-verify-failures"
    # The other institution's partner verifies as usual.
    await api.put(f"/v1/customers/{X1}:reset-password", headers=world.headers(world.other_token),
                  json={"contactMethodId": "901"})
    other_code = await delivered_code(services)
    response = await api.post(f"/v1/customers/{X1}:verify-passcode", headers=world.headers(world.other_token),
                              json={"passcode": other_code})
    assert response.status_code == 200


async def test_right_passcodes_never_count(api, world: World, services, clock):
    limits(services, client_failures=1, institution_failures=1)
    for _ in range(3):
        await request_reset(api, world, customer=C1, method="101")
        code = await delivered_code(services)
        assert (await verify(api, world, code, customer=C1)).status_code == 200
        clock.advance(61)


def test_the_defaults_are_far_above_normal_traffic():
    from pwreset.config import Settings

    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.client_send_limit_minute >= 100 and settings.client_send_limit_hour >= 1000
    assert settings.institution_send_limit_hour >= settings.client_send_limit_hour
    assert settings.client_verify_failure_limit >= 50


async def test_concurrent_wrong_guesses_never_pass_the_clients_limit_together(api, world: World, services):
    """Counted before the comparison, atomically: a burst cannot all pass a check made before any of
    them counted (security review of issue 12)."""
    import asyncio

    limits(services, client_failures=2)
    await request_reset(api, world, customer=C1, method="101")
    await request_reset(api, world, customer=C2, method="201")
    await services.worker.run_once()
    results = await asyncio.gather(*(verify(api, world, "000000" if n % 2 else "999999", customer=(C1, C2)[n % 2])
                                     for n in range(8)))
    codes = sorted(r.json()["code"] for r in results)
    assert codes.count("UXU_20011") <= 2 and codes.count("UXU_40029") >= 6, codes
