"""Delivery ports and adapters: one :class:`~pwreset.delivery.providers.base.Provider` per channel,
chosen by configuration (``PWRESET_EMAIL_PROVIDER``, ``PWRESET_SMS_PROVIDER``,
``PWRESET_VOICE_PROVIDER``)."""

from __future__ import annotations

from pwreset.config import Settings
from pwreset.delivery.providers.base import Provider
from pwreset.delivery.providers.console import ConsoleProvider
from pwreset.delivery.providers.smtp import SmtpProvider
from pwreset.delivery.providers.twilio import TwilioProvider
from pwreset.delivery.providers.webhook import WebhookProvider


def build_providers(settings: Settings, console: ConsoleProvider) -> dict[str, Provider]:
    """The adapter for each channel. Call ``settings.check_delivery()`` first."""
    webhook = WebhookProvider.from_settings(settings) if "webhook" in (
        settings.email_provider, settings.sms_provider, settings.voice_provider
    ) else None
    twilio = TwilioProvider.from_settings(settings) if "twilio" in (
        settings.sms_provider, settings.voice_provider
    ) else None
    chosen: dict[str, Provider | None] = {
        "EMAIL": {"smtp": SmtpProvider.from_settings(settings) if settings.email_provider == "smtp" else None,
                  "webhook": webhook, "console": console}[settings.email_provider],
        "SMS": {"twilio": twilio, "webhook": webhook, "console": console}[settings.sms_provider],
        "VOICE": {"twilio": twilio, "webhook": webhook, "console": console}[settings.voice_provider],
    }
    providers = {channel: provider for channel, provider in chosen.items() if provider is not None}
    assert len(providers) == len(chosen)  # check_delivery() refused anything missing
    return providers


__all__ = ["ConsoleProvider", "Provider", "SmtpProvider", "TwilioProvider", "WebhookProvider", "build_providers"]
