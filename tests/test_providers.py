"""The delivery port's contract, run over every adapter against real local servers.

Twilio (SMS and voice) and the webhook talk HTTP to a local fake provider that checks method, path,
auth, form or JSON fields, signature and idempotency key, and can answer 2xx, 408, 429, 500, 4xx,
never answer, or drop the connection. SMTP talks to a real SMTP server (aiosmtpd).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import ssl
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pwreset.config import ConfigurationError, Settings
from pwreset.delivery.providers import ConsoleProvider, SmtpProvider, TwilioProvider, WebhookProvider, build_providers
from pwreset.delivery.providers.base import Outgoing, PermanentFailure, TransientFailure
from pwreset.delivery.providers.webhook import SIGNATURE_HEADER
from tests.provider_server import FakeProvider, Mailbox, fake_provider, smtp_server
from tests.servers import free_port

SID, TOKEN, FROM = "AC" + "0" * 32, "twilio-auth-token-for-tests", "+12025550100"
WEBHOOK_SECRET = "webhook-secret-for-tests-0123456789"


def outgoing(channel: str = "SMS", n: int = 1, **extra: Any) -> Outgoing:
    destination = "pat@example.com" if channel == "EMAIL" else "+12025550143"
    fields: dict[str, Any] = {
        "id": f"{n:032x}", "institution_id": "07675", "institution_name": "Credit Union", "kind": "passcode",
        "channel": channel, "destination": destination, "language": "en",
        "subject": "Your password reset code" if channel == "EMAIL" else None,
        "text": f"Credit Union: your password reset code is 49301{n % 10}.",
        "html": "<p>code <b>493017</b></p>" if channel == "EMAIL" else None,
    }
    return Outgoing(**{**fields, **extra})


@dataclass
class HttpHarness:
    name: str
    provider: Any
    fake: FakeProvider
    channel: str

    def check(self, message: Outgoing) -> None:
        """The request carries exactly what the provider's API asks for."""
        got = self.fake.requests[-1]
        assert got.method == "POST" and got.headers["Idempotency-Key"] == message.id
        if self.name == "webhook":
            assert got.path == "/hook" and got.json == {
                "messageId": message.id, "institutionId": "07675", "channel": message.channel, "kind": "passcode",
                "destination": message.destination, "language": "en", "subject": message.subject,
                "text": message.text, "html": message.html,
            }
            t, v1 = (part.split("=", 1)[1] for part in got.headers[SIGNATURE_HEADER].split(","))
            expected = hmac.new(WEBHOOK_SECRET.encode(), f"{t}.".encode() + got.raw, hashlib.sha256).hexdigest()
            assert hmac.compare_digest(v1, expected) and abs(int(t) - time.time()) < 60
            return
        resource = "Messages" if self.channel == "SMS" else "Calls"
        assert got.path == f"/2010-04-01/Accounts/{SID}/{resource}.json"
        assert got.headers["Authorization"] == "Basic " + base64.b64encode(f"{SID}:{TOKEN}".encode()).decode()
        assert got.form["To"] == message.destination and got.form["From"] == FROM
        if self.channel == "SMS":
            assert got.form["Body"] == message.text
        else:
            twiml = got.form["Twiml"]
            assert twiml.startswith('<?xml version="1.0" encoding="UTF-8"?><Response><Say ')
            assert '<prosody rate="slow">' in twiml and message.text in twiml

    def fail(self, answer: Any) -> None:
        self.fake.answer(answer)

    def sent_keys(self) -> list[str]:
        return [r.headers["Idempotency-Key"] for r in self.fake.requests]


@dataclass
class SmtpHarness:
    name: str
    provider: SmtpProvider
    mailbox: Mailbox
    channel: str = "EMAIL"

    def check(self, message: Outgoing) -> None:
        got = self.mailbox.messages[-1]
        assert self.mailbox.envelopes[-1] == ("reset@cu.example", [message.destination])
        assert got["From"] == "reset@cu.example" and got["To"] == message.destination
        assert got["Subject"] == message.subject and got["Auto-Submitted"] == "auto-generated"
        assert got["Message-ID"] == f"<{message.id}@cu.example>"
        plain = got.get_body(("plain",))
        html = got.get_body(("html",))
        assert plain is not None and plain.get_content().strip() == message.text
        assert html is not None and "<b>493017</b>" in html.get_content()

    def sent_keys(self) -> list[str]:
        return [str(m["Message-ID"]).strip("<>").split("@")[0] for m in self.mailbox.messages]


@asynccontextmanager
async def http_harness(name: str) -> AsyncIterator[HttpHarness]:
    async with fake_provider() as fake:
        if name == "webhook":
            provider: Any = WebhookProvider(url=fake.url + "/hook", secret=WEBHOOK_SECRET, timeout=1.0)
            channel = "SMS"
        else:
            provider = TwilioProvider(account_sid=SID, auth_token=TOKEN, from_number=FROM, base_url=fake.url,
                                      timeout=1.0)
            channel = "SMS" if name == "twilio-sms" else "VOICE"
        yield HttpHarness(name, provider, fake, channel)
        await provider.close()


@asynccontextmanager
async def smtp_harness() -> AsyncIterator[SmtpHarness]:
    async with smtp_server() as (mailbox, port):
        provider = SmtpProvider(host="127.0.0.1", port=port, sender="reset@cu.example", security="none", timeout=2.0)
        yield SmtpHarness("smtp", provider, mailbox)


HTTP_ADAPTERS = ["twilio-sms", "twilio-voice", "webhook"]


@pytest.fixture(params=HTTP_ADAPTERS)
async def http_adapter(request: pytest.FixtureRequest) -> AsyncIterator[HttpHarness]:
    async with http_harness(request.param) as harness:
        yield harness


@pytest.fixture
async def smtp() -> AsyncIterator[SmtpHarness]:
    async with smtp_harness() as harness:
        yield harness


@pytest.fixture(params=[*HTTP_ADAPTERS, "smtp"])
async def adapter(request: pytest.FixtureRequest) -> AsyncIterator[Any]:
    harness = smtp_harness() if request.param == "smtp" else http_harness(request.param)
    async with harness as chosen:
        yield chosen


# The contract, for every adapter


async def test_an_accepted_message_arrives_exactly_as_written(adapter):
    message = outgoing(adapter.channel)
    accepted = await adapter.provider.send(message)
    adapter.check(message)
    if adapter.name.startswith("twilio"):
        assert accepted.provider_ref.startswith("SM")


async def test_every_send_of_one_message_carries_the_same_idempotency_key(adapter):
    message = outgoing(adapter.channel)
    await adapter.provider.send(message)
    await adapter.provider.send(message)  # at-least-once: a retry after a lost acknowledgement
    await adapter.provider.send(outgoing(adapter.channel, n=2))
    assert adapter.sent_keys() == [message.id, message.id, outgoing(adapter.channel, n=2).id]


async def test_the_console_adapter_keeps_what_it_printed():
    out = io.StringIO()
    console = ConsoleProvider(reveal=True, stream=out)
    accepted = await console.send(outgoing("VOICE"))
    assert console.sent[-1].text in out.getvalue() and accepted.provider_ref


# HTTP providers: how answers are classified


@pytest.mark.parametrize("answer", [200, 201, 202, 204])
async def test_any_2xx_is_success(http_adapter, answer):
    http_adapter.fail(answer)
    await http_adapter.provider.send(outgoing(http_adapter.channel))


@pytest.mark.parametrize(("answer", "retry_after"), [
    ((429, {"Retry-After": "7"}), 7.0), (429, None), (408, None), (500, None), (503, None), ("timeout", None),
    ("drop", None),
])
async def test_transient_failures(http_adapter, answer, retry_after):
    http_adapter.fail(answer)
    with pytest.raises(TransientFailure) as failure:
        await http_adapter.provider.send(outgoing(http_adapter.channel))
    assert failure.value.retry_after == retry_after


@pytest.mark.parametrize("answer", [400, 401, 403, 404, 422])
async def test_other_4xx_are_permanent(http_adapter, answer):
    http_adapter.fail(answer)
    with pytest.raises(PermanentFailure, match=f"HTTP {answer}"):
        await http_adapter.provider.send(outgoing(http_adapter.channel))


async def test_an_unreachable_provider_is_transient():
    provider = TwilioProvider(account_sid=SID, auth_token=TOKEN, from_number=FROM,
                              base_url=f"http://127.0.0.1:{free_port()}", timeout=1.0)
    with pytest.raises(TransientFailure, match="connection failed"):
        await provider.send(outgoing())
    await provider.close()


async def test_voice_twiml_escapes_the_text_and_speaks_spanish():
    async with http_harness("twilio-voice") as voice:
        await voice.provider.send(outgoing("VOICE", text="Hola <Say>&", language="es"))
        twiml = voice.fake.requests[-1].form["Twiml"]
    assert "Hola &lt;Say&gt;&amp;" in twiml and 'language="es-US"' in twiml


# SMTP: how answers are classified


async def test_smtp_deferred_recipient_is_transient_and_refused_is_permanent(smtp):
    smtp.mailbox.refuse = "450 4.2.1 mailbox busy"
    with pytest.raises(TransientFailure, match="450"):
        await smtp.provider.send(outgoing("EMAIL"))
    smtp.mailbox.refuse = "550 5.1.1 no such user"
    with pytest.raises(PermanentFailure, match="550"):
        await smtp.provider.send(outgoing("EMAIL"))
    assert smtp.mailbox.messages == []


async def test_smtp_connections_are_reused_and_replaced_when_closed(smtp):
    import socket

    for n in range(3):
        await smtp.provider.send(outgoing("EMAIL", n=n))
    assert smtp.mailbox.ehlos == [socket.gethostname()]  # one connection, no DNS lookup for the name
    smtp.provider._idle[0].close()  # the connection went away while idle
    await smtp.provider.send(outgoing("EMAIL", n=4))
    assert len(smtp.mailbox.ehlos) == 2 and len(smtp.mailbox.messages) == 4
    await smtp.provider.close()


async def test_smtp_server_down_is_transient():
    provider = SmtpProvider(host="127.0.0.1", port=free_port(), sender="reset@cu.example", security="none",
                            timeout=1.0)
    with pytest.raises(TransientFailure):
        await provider.send(outgoing("EMAIL"))


# Configuration


def test_providers_are_chosen_by_configuration():
    settings = Settings(
        secret_key="k" * 40, email_provider="smtp", smtp_host="mail.example", email_from="reset@cu.example",
        sms_provider="twilio", voice_provider="webhook", twilio_account_sid=SID, twilio_auth_token=TOKEN,
        twilio_from_number=FROM, webhook_url="https://gw.example/hook", webhook_secret=WEBHOOK_SECRET,
    )
    settings.check_delivery()
    chosen = build_providers(settings, ConsoleProvider(reveal=False))
    assert {c: p.name for c, p in chosen.items()} == {"EMAIL": "smtp", "SMS": "twilio", "VOICE": "webhook"}
    assert chosen["EMAIL"].port == 587  # STARTTLS by default


def test_a_lease_shorter_than_a_send_is_refused():
    with pytest.raises(ConfigurationError, match="PWRESET_OUTBOX_LEASE must be longer"):
        Settings(secret_key="k" * 40, outbox_lease=12, provider_timeout=10).check_delivery()
    Settings(secret_key="k" * 40, outbox_lease=16, provider_timeout=10).check_delivery()


@pytest.mark.parametrize(("overrides", "missing"), [
    ({"email_provider": "smtp"}, "PWRESET_SMTP_HOST, PWRESET_EMAIL_FROM"),
    ({"sms_provider": "twilio", "twilio_account_sid": SID}, "PWRESET_TWILIO_AUTH_TOKEN, PWRESET_TWILIO_FROM_NUMBER"),
    ({"voice_provider": "webhook", "webhook_url": "https://gw.example"}, "PWRESET_WEBHOOK_SECRET"),
])
def test_a_provider_without_its_settings_is_refused_at_start(overrides, missing):
    with pytest.raises(ConfigurationError, match=missing):
        Settings(secret_key="k" * 40, **overrides).check_delivery()


# SMTP over TLS, with authentication


@pytest.fixture(scope="module")
def server_cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1, standing in for an institution's internal CA."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def _server_context(server_cert: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*map(str, server_cert))
    return context


def _authenticator(logins: list[tuple[bytes, bytes]]):
    from aiosmtpd.smtp import AuthResult, LoginPassword

    def check(server, session, envelope, mechanism, data):
        if isinstance(data, LoginPassword):
            logins.append((data.login, data.password))
            return AuthResult(success=data.login == b"mailer" and data.password == b"s3cret-pass")
        return AuthResult(success=False)

    return check


@pytest.mark.parametrize("security", ["starttls", "tls"])
async def test_smtp_over_tls_with_login(server_cert, security):
    logins: list[tuple[bytes, bytes]] = []
    context = _server_context(server_cert)
    options: dict[str, Any] = {"authenticator": _authenticator(logins)}
    if security == "starttls":
        server = smtp_server(tls_context=context, require_starttls=True, auth_require_tls=True, **options)
    else:  # aiosmtpd does not count implicit TLS as TLS for AUTH; the whole connection is TLS here
        server = smtp_server(ssl_context=context, auth_require_tls=False, **options)
    async with server as (mailbox, port):
        provider = SmtpProvider(host="127.0.0.1", port=port, sender="reset@cu.example", security=security,
                                username="mailer", password="s3cret-pass", ca_file=str(server_cert[0]), timeout=5)
        await provider.send(outgoing("EMAIL"))
        assert mailbox.messages[-1]["To"] == "pat@example.com" and logins == [(b"mailer", b"s3cret-pass")]
        untrusting = SmtpProvider(host="127.0.0.1", port=port, sender="reset@cu.example", security=security,
                                  username="mailer", password="s3cret-pass", timeout=5)
        with pytest.raises(TransientFailure):  # an unverifiable certificate: nothing is sent
            await untrusting.send(outgoing("EMAIL", n=2))
        assert len(mailbox.messages) == 1


async def test_no_header_injection_through_a_subject(smtp):
    await smtp.provider.send(outgoing("EMAIL", subject="Hello\r\nBcc: thief@example.com"))
    got = smtp.mailbox.messages[-1]
    assert got["Bcc"] is None and smtp.mailbox.envelopes[-1][1] == ["pat@example.com"]
    assert got["Subject"] == "Hello Bcc: thief@example.com"


async def test_smtp_non_ascii_subject_sender_and_text_arrive_intact():
    async with smtp_server() as (mailbox, port):
        provider = SmtpProvider(host="127.0.0.1", port=port, sender="Crédit Unión <reset@cu.example>",
                                security="none", timeout=2.0)
        await provider.send(outgoing("EMAIL", subject="Su código", text="Su código es 493017.", html=None))
        await provider.close()
    got = mailbox.messages[-1]
    assert got["Subject"] == "Su código" and got["From"].addresses[0].display_name == "Crédit Unión"
    assert got.get_content().strip() == "Su código es 493017." and got.get_content_type() == "text/plain"
    assert mailbox.envelopes[-1][0] == "reset@cu.example"
