"""Sandbox mode comes only from ``pwreset sandbox``, and a database knows which kind it is (issue 12, item 1)."""

from __future__ import annotations

import io

import pytest

from pwreset.config import ConfigurationError, Settings
from pwreset.container import build_container
from pwreset.kit.clock import Clock
from pwreset.ops.deployment import WrongDeployment, claim


def test_the_environment_cannot_turn_on_sandbox_mode(monkeypatch, database_url):
    monkeypatch.setenv("PWRESET_SANDBOX", "true")
    monkeypatch.setenv("PWRESET_DATABASE_URL", database_url)
    monkeypatch.setenv("PWRESET_SECRET_KEY", "abcde")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.sandbox is False
    with pytest.raises(ConfigurationError):
        build_container(settings)


async def test_console_providers_of_a_process_started_with_pwreset_sandbox_in_the_environment_withhold_text(
    monkeypatch, settings
):
    from pwreset.delivery.providers.base import Outgoing

    monkeypatch.setenv("PWRESET_SANDBOX", "1")
    settings = Settings(**{**settings.model_dump(), "secret_key": settings.secret_key})
    services = build_container(settings)
    try:
        out = io.StringIO()
        services.sink.stream = out
        await services.sink.send(Outgoing(
            id="m", institution_id="07675", institution_name="CU", kind="passcode", channel="SMS",
            destination="+12025550143", language="en", subject=None, text="your code is 493017",
        ))
        assert "493017" not in out.getvalue()
    finally:
        await services.close()


def test_only_for_sandbox_makes_a_sandbox():
    assert Settings.for_sandbox(secret_key="short", _env_file=None).sandbox is True
    Settings.for_sandbox(secret_key="short", _env_file=None).check_secret_key()
    with pytest.raises(ConfigurationError):
        Settings(secret_key="short", sandbox=True, _env_file=None).check_secret_key()  # type: ignore[call-arg]


async def test_a_database_is_marked_by_its_first_process_and_refuses_the_other_kind(services):
    clock = Clock()
    assert await claim(services.db, sandbox=True, clock=clock) == "sandbox"
    assert await claim(services.db, sandbox=True, clock=clock) == "sandbox"
    with pytest.raises(WrongDeployment, match="belongs to a sandbox"):
        await claim(services.db, sandbox=False, clock=clock)


async def test_a_production_database_refuses_the_sandbox(services):
    clock = Clock()
    assert await claim(services.db, sandbox=False, clock=clock) == "production"
    with pytest.raises(WrongDeployment, match="belongs to a production deployment"):
        await claim(services.db, sandbox=True, clock=clock)
    assert await claim(services.db, sandbox=False, clock=clock) == "production"
