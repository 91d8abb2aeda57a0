"""Typed settings, read from the environment (prefix ``PWRESET_``).

Tests and the sandbox build their own :class:`Settings`; nothing reads a global.
"""

from __future__ import annotations

import os
import re
from typing import Any, Literal

from pydantic import Field, PrivateAttr, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from pwreset.kit.keys import REQUIRED_BITS, assess

#: Values that are obviously not secrets; refused outside the sandbox.
_PLACEHOLDER_MARKERS = ("changeme", "change-me", "change_me", "placeholder", "secret", "example", "xxxx")


class ConfigurationError(Exception):
    """Settings that must not be used to start the service."""


def check_key(name: str, value: str) -> None:
    """Refuse a placeholder, or a key that carries less than 256 bits by kit/keys.py's estimate."""
    lowered = value.lower()
    if any(marker in lowered for marker in _PLACEHOLDER_MARKERS):
        raise ConfigurationError(f"{name} looks like a placeholder; generate one with `pwreset keys generate`")
    found = assess(value)
    if found.reason is not None:
        raise ConfigurationError(
            f"{name} is not a random key: {found.reason}. Generate one with `pwreset keys generate`"
        )
    if found.bits < REQUIRED_BITS:
        raise ConfigurationError(
            f"{name} carries about {found.bits} bits of randomness by pwreset's estimate (encoding, spread, "
            f"patterns, size: docs/operations.md); it needs {REQUIRED_BITS}. Generate one with `pwreset keys generate`"
        )


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PWRESET_", extra="ignore")

    #: ``sqlite:///pwreset.db`` or ``postgresql://user@host/db``; the async driver is picked for you.
    database_url: str = "sqlite:///pwreset.db"
    db_pool_size: int = Field(default=10, ge=1)
    #: ``redis://127.0.0.1:6379/0``. Optional: speeds up cross-node revocation and shares rate limits.
    redis_url: str | None = None
    #: Seconds any Redis command or connection may take; then the call fails over (ratelimit/limiter.py).
    redis_timeout: float = Field(default=0.25, gt=0, le=10)
    #: Keys every hash of a secret (client secrets, tokens). Required outside the sandbox.
    secret_key: SecretStr | None = None
    #: Keys PWRESET_SECRET_KEY replaced, comma-separated: they still open sealed messages and verify
    #: and find hashes made under them; nothing new uses them (docs/operations.md, key rotation).
    old_secret_keys: SecretStr | None = None
    #: Sandbox mode: console providers show passcodes and the secret-key check is off. Not a setting:
    #: only ``pwreset sandbox`` (through :meth:`for_sandbox`) turns it on, so no environment
    #: variable (``PWRESET_SANDBOX``) can switch off a production process's safeguards.
    _sandbox: bool = PrivateAttr(default=False)

    access_token_ttl: int = Field(default=1800, ge=60, description="seconds")
    refresh_token_ttl: int = Field(default=30 * 86400, ge=300, description="seconds")
    #: Longest time a revocation may take to reach every other node.
    revocation_bound: float = Field(default=5.0, gt=0, le=300)
    token_cache_size: int = Field(default=100_000, ge=0)

    #: Failed authentications (token endpoint, unknown bearer tokens) allowed per client address.
    auth_failure_limit: int = Field(default=30, ge=1)
    auth_failure_window: float = Field(default=300.0, gt=0)

    # Customers and resets (issue 3); OWASP Forgot Password and NIST SP 800-63B defaults.
    login_lock_after: int = Field(default=6, ge=1, description="wrong passwords in a row before a lock")
    passcode_length: int = Field(default=6, ge=4, le=12)
    passcode_alphabet: str = Field(default="0123456789", min_length=2)
    passcode_ttl_sms: int = Field(default=600, ge=60)
    passcode_ttl_voice: int = Field(default=600, ge=60)
    passcode_ttl_email: int = Field(default=900, ge=60)
    passcode_max_attempts: int = Field(default=5, ge=1)
    reset_failure_limit: int = Field(default=20, ge=1, description="wrong passcodes in a row per customer")
    reset_failure_window: int = Field(default=86400, ge=60)
    reset_cooloff: int = Field(default=86400, ge=60, description="seconds resets stay refused after the limit")
    send_limit_short: int = Field(default=1, ge=1, description="passcode sends per customer/destination per minute")
    send_limit_long: int = Field(default=5, ge=1, description="passcode sends per customer/destination per hour")
    # Velocity limits (issue 12, item 6): what one partner application, or all of an institution's,
    # may do across the whole directory. Far above a real bank's reset traffic (a million customers
    # make a few hundred resets an hour), far below a stolen key's flood or an SMS-pumping run.
    client_send_limit_minute: int = Field(default=120, ge=1, description="passcode sends per client per minute")
    client_send_limit_hour: int = Field(default=2_000, ge=1, description="passcode sends per client per hour")
    institution_send_limit_minute: int = Field(default=300, ge=1)
    institution_send_limit_hour: int = Field(default=5_000, ge=1)
    client_verify_failure_limit: int = Field(default=100, ge=1, description="wrong passcodes per client per hour")
    institution_verify_failure_limit: int = Field(default=300, ge=1, description="wrong passcodes per hour")
    reset_ticket_ttl: int = Field(default=300, ge=30)
    min_password_length: int = Field(default=8, ge=8, le=64)
    argon2_time_cost: int = Field(default=2, ge=1)
    argon2_memory_kib: int = Field(default=19_456, ge=1024)
    argon2_parallelism: int = Field(default=1, ge=1)

    #: Deliver queued messages from the API process (the sandbox, small installations).
    inprocess_worker: bool = True

    # Delivery (issue 4): one adapter per channel, chosen here.
    email_provider: Literal["smtp", "webhook", "console"] = "console"
    sms_provider: Literal["twilio", "webhook", "console"] = "console"
    voice_provider: Literal["twilio", "webhook", "console"] = "console"
    smtp_host: str | None = None
    smtp_port: int | None = Field(default=None, ge=1, le=65535, description="default 25, 587 or 465 by security")
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_security: Literal["none", "starttls", "tls"] = "starttls"
    #: A CA bundle (PEM) to verify the mail server's certificate against, for an internal CA.
    smtp_ca_file: str | None = None
    email_from: str | None = None
    twilio_account_sid: str | None = None
    twilio_auth_token: SecretStr | None = None
    twilio_from_number: str | None = None
    twilio_base_url: str = "https://api.twilio.com"
    webhook_url: str | None = None
    webhook_secret: SecretStr | None = None
    #: Seconds a provider call may take before it counts as a transient failure.
    provider_timeout: float = Field(default=10.0, gt=0, le=120)
    #: Seconds a worker owns a claimed message; after that another worker may take it over.
    outbox_lease: float = Field(default=60.0, gt=0)
    outbox_max_attempts: int = Field(default=8, ge=1)
    #: Exponential backoff between attempts: base * 2^(attempt-1), full jitter, capped.
    outbox_backoff_base: float = Field(default=2.0, gt=0)
    outbox_backoff_cap: float = Field(default=300.0, gt=0)
    worker_concurrency: int = Field(default=32, ge=1, le=1000, description="sends in flight per worker")
    #: Polling interval when no database notification wakes the worker (SQLite).
    worker_poll_interval: float = Field(default=0.05, gt=0, le=60)

    # Issue 14: audit evidence, contact changes, SIM swaps (docs/operations.md, "Meeting the standards").
    #: Proxies whose X-Forwarded-For is believed, comma-separated addresses or networks (``10.0.0.0/8``);
    #: the client address every audit event records is the first one to the left that is not one of them.
    #: Unset, uvicorn's FORWARDED_ALLOW_IPS (what earlier versions read), else this machine.
    trusted_proxies: str = Field(default_factory=lambda: os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1"))
    #: Seconds between seals of the audit chain (by every worker; audit/chain.py).
    audit_seal_interval: float = Field(default=2.0, gt=0, le=3600)
    #: Days audit events are kept at least: ``pwreset audit purge`` deletes nothing younger (PCI DSS 10.5.1
    #: asks for a year).
    audit_retention_days: int = Field(default=400, ge=365)
    #: Seconds after a change of destination (``:contact-info``, an import) during which it receives no
    #: reset passcode, unless the institution sets its own.
    contact_cooloff: int = Field(default=7 * 86_400, ge=0, le=90 * 86_400)
    #: The carrier's CAMARA SIM Swap API (``/check``), and its OAuth2 client credentials. Without a URL
    #: no institution can turn the check on.
    sim_swap_url: str | None = None
    sim_swap_token_url: str | None = None
    sim_swap_client_id: str | None = None
    sim_swap_client_secret: SecretStr | None = None
    sim_swap_timeout: float = Field(default=2.0, gt=0, le=30)
    #: When the check fails or times out: ``closed`` refuses phone channels (email stays open), ``open``
    #: sends anyway (audited and counted).
    sim_swap_failure: Literal["closed", "open"] = "closed"
    #: With two-channel assurance: seconds a verified first channel waits for its second.
    two_channel_window: int = Field(default=900, ge=60, le=3600)
    #: Seconds a security-event webhook may take to answer.
    security_webhook_timeout: float = Field(default=5.0, gt=0, le=60)

    #: Serve /docs and the OpenAPI documents (turn off in production if partners get them elsewhere).
    docs: bool = True

    #: The developer portal (``/portal``, portal/): served when this names the institution whose partners
    #: sign up there (production keys are bound to it, and its name signs the portal's emails).
    portal_institution_id: str | None = None
    #: The address the portal's links are built from (``https://developers.bank.example``): never the
    #: request's Host header, which a caller chooses. Required with the portal outside the sandbox.
    public_url: str | None = None
    #: Who hears of a developer's interest in an API, and of requests for production access.
    portal_representative_email: str | None = None
    #: Portal sessions end after this much idleness, and in any case this long after sign-in (seconds).
    portal_session_idle: int = Field(default=1800, ge=60, le=86_400)
    portal_session_absolute: int = Field(default=43_200, ge=300, le=7 * 86_400)
    #: The hosted reset page (``/reset/{institutionId}``, web/): served unless turned off.
    reset_page: bool = True
    #: A customer's flow through the page ends this long after it started (seconds).
    reset_page_flow_ttl: int = Field(default=1800, ge=300, le=7200)
    #: The steps whose work differs for a login on file and one that is not (the login, the destinations, the
    #: code, a resend) answer no sooner than this (seconds), so that their timing tells nothing.
    reset_page_floor: float = Field(default=0.25, ge=0.0, le=5.0)
    #: Logins typed per address (IPv6: per /64) and per login id, an hour.
    reset_page_address_limit: int = Field(default=30, ge=1)
    reset_page_login_limit: int = Field(default=10, ge=1)
    #: Require ``Authorization: Bearer <token>`` on /metrics.
    metrics_token: SecretStr | None = None
    #: Serve /metrics on this port (on ``metrics_host``) instead of the API's; ``pwreset serve`` starts it.
    metrics_port: int | None = Field(default=None, ge=1, le=65535)
    metrics_host: str = "127.0.0.1"

    #: Seconds a request's headers, and then its body, may take to arrive (ops/server.py; read by the
    #: server's protocol from the same variables).
    header_timeout: float = Field(default=10.0, gt=0, le=300)
    body_timeout: float = Field(default=10.0, gt=0, le=300)

    log_level: str = "INFO"
    log_json: bool = True
    access_log: bool = True

    @classmethod
    def for_sandbox(cls, **values: Any) -> Settings:
        """Settings of ``pwreset sandbox`` (and of tests that play it); the only way to sandbox mode."""
        settings = cls(**values)
        settings._sandbox = True
        return settings

    @property
    def sandbox(self) -> bool:
        return self._sandbox

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str) -> str:
        scheme = value.split(":", 1)[0].split("+", 1)[0]
        if scheme not in {"sqlite", "postgresql", "postgres"}:
            raise ValueError("PWRESET_DATABASE_URL must be a sqlite:/// or postgresql:// URL")
        return value

    def check_secret_key(self) -> None:
        """Refuse to start with a missing or placeholder secret key, except in the sandbox."""
        if self.sandbox:
            if self.secret_key is None:
                raise ConfigurationError("the sandbox needs a secret key; `pwreset sandbox` makes one")
            return
        if self.secret_key is None:
            raise ConfigurationError("PWRESET_SECRET_KEY is not set; generate one with `pwreset keys generate`")
        check_key("PWRESET_SECRET_KEY", self.secret_key.get_secret_value())
        for number, old in enumerate(self.old_secret_keys_bytes, 1):
            if old != old.strip():
                raise ConfigurationError(
                    f"PWRESET_OLD_SECRET_KEYS: key {number} has spaces or a line break around it; list the keys "
                    "exactly as they were PWRESET_SECRET_KEY, separated by commas alone"
                )

    def check_delivery(self) -> None:
        """Refuse a provider chosen without what it needs, with the variables to set."""
        if self.outbox_lease <= self.provider_timeout + 5:
            raise ConfigurationError(
                "PWRESET_OUTBOX_LEASE must be longer than PWRESET_PROVIDER_TIMEOUT + 5 seconds, or another "
                "worker takes over messages still being sent and they go out twice"
            )
        missing: list[str] = []
        if self.email_provider == "smtp":
            missing += [name for name in ("smtp_host", "email_from") if getattr(self, name) is None]
        if "twilio" in (self.sms_provider, self.voice_provider):
            missing += [
                name for name in ("twilio_account_sid", "twilio_auth_token", "twilio_from_number")
                if getattr(self, name) is None
            ]
        if "webhook" in (self.email_provider, self.sms_provider, self.voice_provider):
            missing += [name for name in ("webhook_url", "webhook_secret") if getattr(self, name) is None]
        if self.sim_swap_url:
            missing += [
                name for name in ("sim_swap_token_url", "sim_swap_client_id", "sim_swap_client_secret")
                if getattr(self, name) is None
            ]
        if missing:
            names = ", ".join(f"PWRESET_{name.upper()}" for name in dict.fromkeys(missing))
            raise ConfigurationError(f"the chosen delivery providers need {names}")

    def check_portal(self) -> None:
        """The portal's emails carry links: they are built from PWRESET_PUBLIC_URL, which must be https
        outside the sandbox (a link on plain HTTP hands its token to anyone on the path), except on this
        machine's loopback address (a browser treats http://localhost as a secure context)."""
        if self.portal_institution_id is None:
            return
        url = (self.public_url or "").rstrip("/")
        if not url:
            raise ConfigurationError("the portal (PWRESET_PORTAL_INSTITUTION_ID) needs PWRESET_PUBLIC_URL")
        loopback = re.match(r"http://(localhost|127\.0\.0\.1|\[::1\])(:\d+)?$", url) is not None
        if not self.sandbox and not url.startswith("https://") and not loopback:
            raise ConfigurationError(
                "PWRESET_PUBLIC_URL must be an https:// address (http:// only for localhost) outside the sandbox"
            )

    def passcode_ttl(self, protocol: str) -> int:
        return {"SMS": self.passcode_ttl_sms, "VOICE": self.passcode_ttl_voice}.get(protocol, self.passcode_ttl_email)

    @property
    def old_secret_keys_bytes(self) -> list[bytes]:
        if self.old_secret_keys is None:
            return []
        # Each exactly as it was PWRESET_SECRET_KEY (no trimming: a key is its bytes), split on commas.
        return [k.encode() for k in self.old_secret_keys.get_secret_value().split(",") if k]

    @property
    def secret_key_bytes(self) -> bytes:
        if self.secret_key is None:
            raise ConfigurationError("PWRESET_SECRET_KEY is not set")
        return self.secret_key.get_secret_value().encode()
