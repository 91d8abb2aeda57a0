"""The secret key as a keyring (issue 12, item 13): a wrongly keyed worker leaves messages for a
rightly keyed one, and a rotation keeps every stored secret working."""

from __future__ import annotations

import logging

import pytest
from pydantic import SecretStr

from pwreset.container import build_container
from pwreset.delivery import metrics
from pwreset.kit.crypto import KeyedHasher, NotOurKey, Sealer
from tests.directory_support import C1, DIRECTORY, load
from tests.support import get_token
from tests.test_delivery import Scripted, code_in, queue, rows

OTHER_KEY = "Vt6w0Kc9L1uJQm3bHf8zR2xNy5pDa7sEgT4oWiXq_UYjZl-MnOeBvPkCrAdFhSGI"


def test_sealed_values_name_their_key_and_old_keys_still_open_them():
    old, new = b"old-key-" * 8, b"new-key-" * 8
    sealed_by_old = Sealer(old, purpose="outbox").seal(b"payload")
    assert sealed_by_old[:1] == b"\x01"
    ring = Sealer(new, purpose="outbox", old=[old])
    assert ring.open(sealed_by_old) == b"payload"
    assert ring.seal(b"x")[1:5] != sealed_by_old[1:5]  # the current key seals
    with pytest.raises(NotOurKey) as refused:
        Sealer(new, purpose="outbox").open(sealed_by_old)
    assert refused.value.key_id == sealed_by_old[1:5].hex()


def test_values_sealed_before_key_ids_still_open():
    import hashlib
    import hmac
    import secrets

    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    key = b"k3y-" * 16
    derived = hmac.new(key, b"seal\x00outbox", hashlib.sha256).digest()
    nonce = secrets.token_bytes(12)
    legacy = nonce + AESGCM(derived).encrypt(nonce, b"queued by 0.1", None)
    assert Sealer(key, purpose="outbox").open(legacy) == b"queued by 0.1"
    assert Sealer(b"n3w-" * 16, purpose="outbox", old=[key]).open(legacy) == b"queued by 0.1"


def test_hashes_made_under_an_old_key_verify_and_are_found():
    old, new = b"old-key-" * 8, b"new-key-" * 8
    stored = KeyedHasher(old).digest("client-secret", "pwr_cs_x")
    ring = KeyedHasher(new, old=[old])
    assert ring.verify("client-secret", "pwr_cs_x", stored) and not ring.verify("client-secret", "pwr_cs_y", stored)
    assert ring.digests("client-secret", "pwr_cs_x") == [ring.digest("client-secret", "pwr_cs_x"), stored]
    assert not KeyedHasher(new).verify("client-secret", "pwr_cs_x", stored)


async def test_a_worker_without_the_key_leaves_the_message_for_one_that_has_it(services, settings, clock, caplog):
    from pwreset.institutions.service import create_institution

    async with services.db.transaction() as session:
        await create_institution(session, institution_id="07675", name="Credit Union", clock=clock)
    message = await queue(services, "493017")
    stranger = build_container(settings.model_copy(update={"secret_key": SecretStr(OTHER_KEY)}), clock=clock)
    scripted_stranger = Scripted()
    stranger.worker.providers = {"SMS": scripted_stranger, "VOICE": scripted_stranger, "EMAIL": scripted_stranger}
    before = metrics.MESSAGES.labels("SMS", "unreadable")._value.get()
    caplog.set_level(logging.ERROR, logger="pwreset.delivery")
    try:
        for _ in range(12):  # more than the attempts a message has: none of these counts
            assert await stranger.worker.run_once() == 1
            clock.advance(31)
    finally:
        await stranger.close()
    state = (await rows(services))[message]
    assert state.status == "pending" and state.attempts == 0 and "key" in (state.last_error or "")
    assert scripted_stranger.sent == []
    assert metrics.MESSAGES.labels("SMS", "unreadable")._value.get() == before + 12
    alarms = [r for r in caplog.records if r.levelno == logging.ERROR and "does not hold" in r.getMessage()]
    assert alarms and "493017" not in caplog.text
    # The rightly keyed worker sends it.
    provider = Scripted()
    services.worker.providers = {"SMS": provider, "VOICE": provider, "EMAIL": provider}
    assert await services.worker.run_once() == 1
    assert (await rows(services))[message].status == "sent" and code_in(provider.sent[0].text) == "493017"


async def test_a_rotation_keeps_clients_tokens_passcodes_tickets_and_queued_messages(
    services, settings, clock, make_partner
):
    import httpx

    from pwreset.app import create_app

    partner = await make_partner("07675", scopes="institution-users:read institution-users:write")
    await load(services, "07675", DIRECTORY["07675"])

    def client_of(node):
        app = create_app(node.settings, container=node, background=False)
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")

    async with client_of(services) as api:
        token = (await get_token(api, partner.auth)).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}", "correlationId": "0f8fad5b-d9cb-469f-a165-70867728950e"}
        sent = await api.put(f"/v1/customers/{C1}:reset-password", headers=headers, json={"contactMethodId": "101"})
        assert sent.status_code == 204
    rotated = build_container(settings.model_copy(update={
        "secret_key": SecretStr(OTHER_KEY), "old_secret_keys": settings.secret_key,
    }), clock=clock)
    provider = Scripted()
    rotated.worker.providers = {"SMS": provider, "VOICE": provider, "EMAIL": provider}
    try:
        async with client_of(rotated) as api:
            assert (await get_token(api, partner.auth)).status_code == 200  # the client's secret, old hash
            profile = await api.get(f"/v1/customers/{C1}", headers=headers)  # a token issued before
            assert profile.status_code == 200, profile.text
            assert await rotated.worker.run_once() == 1  # a message sealed before
            code = code_in(provider.sent[0].text)
            verified = await api.post(f"/v1/customers/{C1}:verify-passcode", headers=headers,
                                      json={"passcode": code})
            assert verified.status_code == 200, verified.text
            ticket = verified.json()["resetTicket"]
            done = await api.put(f"/v1/customers/{C1}:set-password", headers=headers,
                                 json={"resetTicket": ticket, "newPassword": "a perfectly fine passphrase"})
            assert done.status_code == 204, done.text
            # Revoking a token issued under the old key reaches this node's cache.
            revoked = await api.post("/oauth2/v1/revoke", auth=partner.auth,
                                     headers={"transactionId": "6a1f3f0e-1c9b-4a57-9d0e-6a4ffb0c2e11"},
                                     data={"token": token})
            assert revoked.status_code == 204
            assert (await api.get(f"/v1/customers/{C1}", headers=headers)).status_code == 401
        # Nothing new is sealed or hashed under the old key.
        fresh = await queue(rotated, "111111")
        assert (await rows(rotated))[fresh].sealed[1:5].hex() == rotated.outbox.sealer.key_id
    finally:
        await rotated.close()


async def test_a_damaged_message_is_dead_and_one_nobody_can_open_is_given_up_after_a_week(services, clock):
    from sqlalchemy import update

    from pwreset.delivery.models import OutboxMessage
    from pwreset.institutions.service import create_institution

    async with services.db.transaction() as session:
        await create_institution(session, institution_id="07675", name="Credit Union", clock=clock)
    damaged = await queue(services, "111111")
    async with services.db.transaction() as session:
        row = await session.get(OutboxMessage, damaged)
        row.sealed = row.sealed[:-1] + bytes([row.sealed[-1] ^ 1])
    foreign = await queue(services, "222222")
    other = Sealer(OTHER_KEY.encode(), purpose="outbox").seal(b"{}")
    async with services.db.transaction() as session:
        await session.execute(update(OutboxMessage).where(OutboxMessage.id == foreign).values(sealed=other))
    provider = Scripted()
    services.worker.providers = {"SMS": provider, "VOICE": provider, "EMAIL": provider}
    await services.worker.run_once()
    state = await rows(services)
    assert state[damaged].status == "dead" and "damaged" in (state[damaged].last_error or "")
    assert state[foreign].status == "pending"
    clock.advance(7 * 86400 + 1)
    await services.worker.run_once()
    assert (await rows(services))[foreign].status == "dead"


def test_an_old_key_with_spaces_around_it_is_refused_with_the_reason():
    from pwreset.config import ConfigurationError, Settings
    from tests.conftest import TEST_SECRET_KEY

    settings = Settings(secret_key=TEST_SECRET_KEY, old_secret_keys=f"{OTHER_KEY}, {OTHER_KEY[::-1]}\n",
                        _env_file=None)  # type: ignore[call-arg]
    with pytest.raises(ConfigurationError, match="key 2 has spaces or a line break"):
        settings.check_secret_key()
