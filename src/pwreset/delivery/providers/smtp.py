"""Email over SMTP with aiosmtplib: a plain-text and an HTML part, STARTTLS or implicit TLS.

The Message-ID is built from the outbox message id, so a message sent twice (at-least-once
delivery) carries the same Message-ID both times and mail systems can recognise the repeat.
"""

from __future__ import annotations

from email.message import EmailMessage
from email.utils import formatdate

import aiosmtplib

from pwreset.config import Settings
from pwreset.delivery.providers.base import Accepted, Outgoing, PermanentFailure, TransientFailure

_DEFAULT_PORT = {"none": 25, "starttls": 587, "tls": 465}


class SmtpProvider:
    name = "smtp"

    def __init__(
        self, *, host: str, port: int, sender: str, security: str = "starttls", username: str | None = None,
        password: str | None = None, timeout: float = 10.0, ca_file: str | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.sender = sender
        self.security = security
        self.username = username
        self.password = password
        self.timeout = timeout
        self.ca_file = ca_file

    @classmethod
    def from_settings(cls, settings: Settings) -> SmtpProvider:
        assert settings.smtp_host is not None and settings.email_from is not None
        return cls(
            host=settings.smtp_host, port=settings.smtp_port or _DEFAULT_PORT[settings.smtp_security],
            sender=settings.email_from, security=settings.smtp_security, username=settings.smtp_username,
            password=settings.smtp_password.get_secret_value() if settings.smtp_password else None,
            timeout=settings.provider_timeout, ca_file=settings.smtp_ca_file,
        )

    def compose(self, message: Outgoing) -> EmailMessage:
        email = EmailMessage()
        email["From"] = self.sender
        email["To"] = message.destination
        email["Subject"] = message.subject or message.institution_name
        email["Date"] = formatdate(localtime=False, usegmt=True)
        domain = self.sender.rpartition("@")[2].strip("> ") or "pwreset.invalid"
        email["Message-ID"] = f"<{message.id}@{domain}>"
        email["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies
        email.set_content(message.text)
        if message.html:
            email.add_alternative(message.html, subtype="html")
        return email

    async def send(self, message: Outgoing) -> Accepted:
        try:
            _refused, reply = await aiosmtplib.send(
                self.compose(message), hostname=self.host, port=self.port, username=self.username,
                password=self.password, use_tls=self.security == "tls", start_tls=self.security == "starttls",
                timeout=self.timeout, cert_bundle=self.ca_file,
            )
        except aiosmtplib.SMTPRecipientsRefused as error:
            codes = [refused.code for refused in error.recipients]
            if all(400 <= code < 500 for code in codes):
                raise TransientFailure(f"SMTP recipient deferred {codes}") from None
            raise PermanentFailure(f"SMTP recipient refused {codes}") from None
        except aiosmtplib.SMTPResponseException as error:
            if 400 <= error.code < 500:
                raise TransientFailure(f"SMTP {error.code}") from None
            raise PermanentFailure(f"SMTP {error.code}") from None
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as error:
            raise TransientFailure(f"SMTP connection failed: {type(error).__name__}") from None
        return Accepted(reply[:128] if reply else None)

    async def close(self) -> None:
        return None
