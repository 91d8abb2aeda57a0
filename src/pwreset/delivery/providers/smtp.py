"""Email over SMTP with aiosmtplib: a plain-text and an HTML part, STARTTLS or implicit TLS.

Connections are kept open and reused (one message at a time each, up to ``max_connections``), so
a message costs MAIL, RCPT and DATA, not a new TCP and TLS handshake, EHLO and login. A
connection is reused only after a successful send; any error closes it. A reused connection that
the server closed while idle is replaced once, transparently.

The Message-ID is built from the outbox message id, so a message sent twice (at-least-once
delivery) carries the same Message-ID both times and mail systems can recognise the repeat.

Why the MIME is written here and not by the ``email`` package: measured with py-spy in a worker,
building and flattening an ``EmailMessage`` (header parsing, folding, boundary regexes) cost more
CPU than the whole SMTP exchange and capped a worker at 90 messages a second. These messages have a
fixed shape (two text parts, UTF-8, base64), so they are written directly; the ``email`` package
still encodes the non-ASCII display name and subject (RFC 2047), and the tests parse what the SMTP
server received with it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import socket
from email.header import Header
from email.utils import formataddr, formatdate, parseaddr

import aiosmtplib

from pwreset.config import Settings
from pwreset.delivery.providers.base import Accepted, Outgoing, PermanentFailure, TransientFailure

_DEFAULT_PORT = {"none": 25, "starttls": 587, "tls": 465}


class SmtpProvider:
    name = "smtp"

    def __init__(
        self, *, host: str, port: int, sender: str, security: str = "starttls", username: str | None = None,
        password: str | None = None, timeout: float = 10.0, ca_file: str | None = None, max_connections: int = 8,
    ) -> None:
        self.host = host
        self.port = port
        self.sender = sender
        self.security = security
        self.username = username
        self.password = password
        self.timeout = timeout
        self.ca_file = ca_file
        name, self.address = parseaddr(sender)
        self.from_header = formataddr((name, self.address), charset="utf-8")
        self.domain = self.address.rpartition("@")[2] or "pwreset.invalid"
        # aiosmtplib would otherwise look up the FQDN (a DNS query, in a thread) on every connection.
        self.local_hostname = socket.gethostname()
        self._idle: list[aiosmtplib.SMTP] = []
        self._slots = asyncio.Semaphore(max_connections)

    @classmethod
    def from_settings(cls, settings: Settings) -> SmtpProvider:
        assert settings.smtp_host is not None and settings.email_from is not None
        return cls(
            host=settings.smtp_host, port=settings.smtp_port or _DEFAULT_PORT[settings.smtp_security],
            sender=settings.email_from, security=settings.smtp_security, username=settings.smtp_username,
            password=settings.smtp_password.get_secret_value() if settings.smtp_password else None,
            timeout=settings.provider_timeout, ca_file=settings.smtp_ca_file,
            max_connections=min(settings.worker_concurrency, 16),
        )

    def compose(self, message: Outgoing) -> bytes:
        """The message as sent: headers, then a plain-text part and, if there is one, an HTML part."""
        # No CR or LF may reach a header: they would start a new one (header injection).
        subject = " ".join((message.subject or message.institution_name).splitlines())
        headers = [
            f"From: {self.from_header}",
            f"To: {' '.join(message.destination.splitlines())}",
            f"Subject: {subject if subject.isascii() else Header(subject, 'utf-8').encode()}",
            f"Date: {formatdate(localtime=False, usegmt=True)}",
            f"Message-ID: <{message.id}@{self.domain}>",
            "Auto-Submitted: auto-generated",  # RFC 3834: no auto-replies
            "MIME-Version: 1.0",
        ]
        if not message.html:
            return "\r\n".join(headers).encode() + b"\r\n" + _part("plain", message.text)
        boundary = f"=_pwreset_{message.id}"
        headers.append(f'Content-Type: multipart/alternative; boundary="{boundary}"')
        return b"".join([
            "\r\n".join(headers).encode(), b"\r\n\r\n",
            f"--{boundary}\r\n".encode(), _part("plain", message.text),
            f"\r\n--{boundary}\r\n".encode(), _part("html", message.html),
            f"\r\n--{boundary}--\r\n".encode(),
        ])

    async def send(self, message: Outgoing) -> Accepted:
        email = self.compose(message)
        async with self._slots:
            for fresh_only in (False, True):
                client, reused = await self._connection(fresh_only=fresh_only)
                try:
                    _refused, reply = await client.sendmail(self.address, [message.destination], email)
                except aiosmtplib.SMTPServerDisconnected:
                    await self._discard(client)
                    if reused:
                        continue  # closed by the server while idle: once more on a new connection
                    raise TransientFailure("SMTP connection lost") from None
                except Exception as error:
                    await self._discard(client)
                    raise _classify(error) from None
                except BaseException:  # cancelled (the worker's timeout): never leave the socket open
                    await self._discard(client)
                    raise
                self._idle.append(client)
                return Accepted(reply[:128] if reply else None)
        raise TransientFailure("SMTP connection lost")  # pragma: no cover - the loop always returns or raises

    async def _connection(self, *, fresh_only: bool) -> tuple[aiosmtplib.SMTP, bool]:
        while self._idle and not fresh_only:
            client = self._idle.pop()
            if client.is_connected:
                return client, True
            await self._discard(client)
        client = aiosmtplib.SMTP(
            hostname=self.host, port=self.port, username=self.username, password=self.password,
            use_tls=self.security == "tls", start_tls=self.security == "starttls", timeout=self.timeout,
            cert_bundle=self.ca_file, local_hostname=self.local_hostname,
        )
        try:
            await client.connect()
        except Exception as error:
            await self._discard(client)
            raise _classify(error) from None
        except BaseException:
            await self._discard(client)
            raise
        return client, False

    async def _discard(self, client: aiosmtplib.SMTP) -> None:
        with contextlib.suppress(Exception):
            client.close()

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for client in idle:
            with contextlib.suppress(Exception):
                await client.quit()


def _part(subtype: str, text: str) -> bytes:
    body = base64.encodebytes(text.encode()).replace(b"\n", b"\r\n")
    return (
        f'Content-Type: text/{subtype}; charset="utf-8"\r\nContent-Transfer-Encoding: base64\r\n\r\n'.encode()
        + body
    )


def _classify(error: BaseException) -> TransientFailure | PermanentFailure:
    if isinstance(error, aiosmtplib.SMTPRecipientsRefused):
        codes = [refused.code for refused in error.recipients]
        if all(400 <= code < 500 for code in codes):
            return TransientFailure(f"SMTP recipient deferred {codes}")
        return PermanentFailure(f"SMTP recipient refused {codes}")
    if isinstance(error, aiosmtplib.SMTPResponseException):
        if 400 <= error.code < 500:
            return TransientFailure(f"SMTP {error.code}")
        return PermanentFailure(f"SMTP {error.code}")
    return TransientFailure(f"SMTP connection failed: {type(error).__name__}")
