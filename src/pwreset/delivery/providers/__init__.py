"""Delivery ports and adapters: one :class:`~pwreset.delivery.providers.base.Provider` per channel,
chosen by configuration (``PWRESET_EMAIL_PROVIDER``, ``PWRESET_SMS_PROVIDER``,
``PWRESET_VOICE_PROVIDER``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pwreset.config import Settings
from pwreset.delivery.providers.base import Provider
from pwreset.delivery.providers.console import ConsoleProvider

if TYPE_CHECKING:
    from pwreset.delivery.providers.smtp import SmtpProvider
    from pwreset.delivery.providers.twilio import TwilioProvider
    from pwreset.delivery.providers.webhook import WebhookProvider


def build_providers(settings: Settings, console: ConsoleProvider) -> dict[str, Provider]:
    """The adapter for each channel. Call ``settings.check_delivery()`` first. Adapters are
    imported only when chosen (every command line call builds the container)."""
    chosen = (settings.email_provider, settings.sms_provider, settings.voice_provider)
    built: dict[str, Provider] = {"console": console}
    if "webhook" in chosen:
        from pwreset.delivery.providers.webhook import WebhookProvider

        built["webhook"] = WebhookProvider.from_settings(settings)
    if "twilio" in chosen:
        from pwreset.delivery.providers.twilio import TwilioProvider

        built["twilio"] = TwilioProvider.from_settings(settings)
    if "smtp" in chosen:
        from pwreset.delivery.providers.smtp import SmtpProvider

        built["smtp"] = SmtpProvider.from_settings(settings)
    return {channel: built[name] for channel, name in zip(("EMAIL", "SMS", "VOICE"), chosen, strict=True)}


def __getattr__(name: str) -> Any:
    """``from pwreset.delivery.providers import SmtpProvider`` still works, importing on demand."""
    modules = {"SmtpProvider": "smtp", "TwilioProvider": "twilio", "WebhookProvider": "webhook"}
    if name in modules:
        import importlib

        return getattr(importlib.import_module(f"pwreset.delivery.providers.{modules[name]}"), name)
    raise AttributeError(name)


__all__ = ["ConsoleProvider", "Provider", "SmtpProvider", "TwilioProvider", "WebhookProvider", "build_providers"]
