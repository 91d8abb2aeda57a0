"""SMS and voice through Twilio's REST API (2010-04-01): Messages, and Calls with inline TwiML.

``POST {base}/2010-04-01/Accounts/{AccountSid}/Messages.json`` with ``To``, ``From``, ``Body``;
``POST .../Calls.json`` with ``To``, ``From``, ``Twiml``. HTTP Basic auth with the account SID and
auth token. The voice text is read slowly (SSML prosody) and says the code twice (the template
spells it digit by digit). Every request carries the message id as ``Idempotency-Key``; Twilio does
not promise to honour it, so a send whose answer was lost (a timeout) may reach the customer twice.
"""

from __future__ import annotations

import time
from xml.sax.saxutils import escape

import httpx

from pwreset.config import Settings
from pwreset.delivery.providers.base import Accepted, Outgoing, PermanentFailure, post

#: Amazon Polly voices Twilio offers, by language; Polly voices understand SSML prosody.
_VOICES = {"en": ("Polly.Joanna", "en-US"), "es": ("Polly.Lupe", "es-US")}


def twiml(text: str, language: str) -> str:
    voice, lang = _VOICES.get(language.split("-")[0], _VOICES["en"])
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><Response><Say voice="{voice}" language="{lang}">'
        f'<prosody rate="slow">{escape(text)}</prosody></Say></Response>'
    )


class TwilioProvider:
    name = "twilio"

    def __init__(
        self, *, account_sid: str, auth_token: str, from_number: str, base_url: str = "https://api.twilio.com",
        timeout: float = 10.0,
    ) -> None:
        self.account_sid = account_sid
        self.from_number = from_number
        base = f"{base_url.rstrip('/')}/2010-04-01/Accounts/{account_sid}"
        self.urls = {"SMS": f"{base}/Messages.json", "VOICE": f"{base}/Calls.json"}
        self.client = httpx.AsyncClient(auth=(account_sid, auth_token), timeout=timeout)

    @classmethod
    def from_settings(cls, settings: Settings) -> TwilioProvider:
        assert settings.twilio_account_sid and settings.twilio_auth_token and settings.twilio_from_number
        return cls(
            account_sid=settings.twilio_account_sid, auth_token=settings.twilio_auth_token.get_secret_value(),
            from_number=settings.twilio_from_number, base_url=settings.twilio_base_url,
            timeout=settings.provider_timeout,
        )

    async def send(self, message: Outgoing) -> Accepted:
        if message.channel == "SMS":
            form = {"To": message.destination, "From": self.from_number, "Body": message.text}
        elif message.channel == "VOICE":
            form = {"To": message.destination, "From": self.from_number, "Twiml": twiml(message.text, message.language)}
        else:
            raise PermanentFailure(f"twilio does not carry {message.channel}")
        response = await post(
            self.client, self.urls[message.channel], now=time.time(), data=form,
            headers={"Idempotency-Key": message.id},
        )
        try:
            sid = response.json().get("sid")
        except ValueError:
            sid = None
        return Accepted(str(sid) if sid else None)

    async def close(self) -> None:
        await self.client.aclose()
