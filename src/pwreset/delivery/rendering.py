"""Message texts: Jinja2 templates per kind, channel and language, overridable per institution.

The package ships English and Spanish (``delivery/templates/<language>/<kind>.<channel>.txt``, an
``.html`` part and a ``<kind>.subject.txt`` for email). An institution's own templates live in the
``message_templates`` table (``pwreset templates set``) and are rendered in Jinja2's sandbox. The
worker renders when it sends, so a changed template applies to messages already queued.

Variables: ``institution`` (its name, cut to 40 characters), ``code``, ``spoken`` (the code digit
by digit, for voice), ``minutes`` (the passcode's lifetime), ``contact_line`` (the institution's number
for "not you?", may be empty), ``changed`` (``phone`` or ``email``: what a contact change changed).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, TemplateError, select_autoescape
from jinja2.sandbox import SandboxedEnvironment
from sqlalchemy import select

from pwreset.db import Database
from pwreset.delivery.models import MessageTemplate
from pwreset.kit.clock import Clock

LANGUAGES = ("en", "es")
KINDS = ("passcode", "password_changed", "contact_changed")
CHANNELS = ("SMS", "VOICE", "EMAIL")
SMS_SEGMENT = 160  # GSM-7 characters in one SMS segment
NAME_LIMIT = 40
#: The institution's "not you?" line (``pwreset institutions set --contact-line``), in every notice.
CONTACT_LINE_LIMIT = 32

# GSM 03.38 basic character set: a text only of these fits 160 characters in one segment.
_GSM7 = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmnopqrstuvwxyzäöñüà"
)


class TemplateInvalid(ValueError):
    """A template that does not render, or an SMS that does not fit one segment."""


@dataclass(frozen=True)
class Rendered:
    subject: str | None
    text: str
    html: str | None = None


def language_of(tag: str | None) -> str:
    """``es-MX`` -> ``es``; anything not shipped -> ``en``."""
    base = (tag or "en").split("-")[0].split("_")[0].lower()
    return base if base in LANGUAGES else "en"


def sms_segments(text: str) -> int:
    """How many segments an SMS takes (GSM-7 when it can, else UCS-2)."""
    if set(text) <= _GSM7:
        return 1 if len(text) <= SMS_SEGMENT else -(-len(text) // 153)
    return 1 if len(text) <= 70 else -(-len(text) // 67)


def variables_for(*, institution: str, code: str = "", minutes: int = 0, contact_line: str | None = None,
                  changed: str = "phone") -> dict[str, Any]:
    return {"institution": institution[:NAME_LIMIT], "code": code, "spoken": ", ".join(code), "minutes": minutes,
            "contact_line": (contact_line or "")[:CONTACT_LINE_LIMIT], "changed": changed}


_files = Environment(
    loader=PackageLoader("pwreset.delivery", "templates"),
    autoescape=select_autoescape(["html"]),
    undefined=StrictUndefined,
    keep_trailing_newline=False,
)
_sandbox_text = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False)
_sandbox_html = SandboxedEnvironment(undefined=StrictUndefined, autoescape=True)


@dataclass(frozen=True)
class Override:
    subject: str | None
    body: str
    html: str | None


def render_default(kind: str, channel: str, language: str, variables: dict[str, Any]) -> Rendered:
    lang = language_of(language)
    text = _files.get_template(f"{lang}/{kind}.{channel}.txt").render(variables).strip()
    if channel != "EMAIL":
        return Rendered(None, text)
    subject = _files.get_template(f"{lang}/{kind}.subject.txt").render(variables).strip()
    html = _files.get_template(f"{lang}/{kind}.EMAIL.html").render(variables)
    return Rendered(subject, text, html)


def render_override(override: Override, channel: str, variables: dict[str, Any]) -> Rendered:
    try:
        text = _sandbox_text.from_string(override.body).render(variables).strip()
        if channel != "EMAIL":
            return Rendered(None, text)
        subject = _sandbox_text.from_string(override.subject or "").render(variables).strip() or None
        html = _sandbox_html.from_string(override.html).render(variables) if override.html else None
    except TemplateError as error:
        raise TemplateInvalid(f"the template does not render: {error}") from None
    return Rendered(subject, text, html)


def check_override(override: Override, kind: str, channel: str) -> Rendered:
    """Render with the longest values a real message can carry; refuse what would not do."""
    sample = variables_for(institution="W" * NAME_LIMIT, code="9" * 12 if kind == "passcode" else "", minutes=15,
                           contact_line="9" * CONTACT_LINE_LIMIT, changed="email")
    rendered = render_override(override, channel, sample)
    if not rendered.text:
        raise TemplateInvalid("the template renders to an empty text")
    if channel == "SMS" and sms_segments(rendered.text) > 1:
        raise TemplateInvalid(
            f"the SMS would take more than one segment ({len(rendered.text)} characters with a "
            f"{NAME_LIMIT}-character institution name; at most {SMS_SEGMENT} GSM-7 characters, or 70 otherwise)"
        )
    if channel == "EMAIL" and not rendered.subject:
        raise TemplateInvalid("an email template needs a subject")
    if rendered.subject and ("\r" in rendered.subject or "\n" in rendered.subject):
        raise TemplateInvalid("an email subject must be one line")
    return rendered


class Renderer:
    """Renders a message for sending: the institution's override if it has one, else the default."""

    def __init__(self, *, db: Database, clock: Clock, ttl: float = 30.0) -> None:
        self.db = db
        self.clock = clock
        self.ttl = ttl
        self._overrides: dict[str, tuple[float, dict[tuple[str, str, str], Override]]] = {}

    async def render(
        self, *, institution_id: str, kind: str, channel: str, language: str, variables: dict[str, Any]
    ) -> Rendered:
        lang = language_of(language)
        override = (await self._for(institution_id)).get((kind, channel, lang))
        if override is not None:
            return render_override(override, channel, variables)
        return render_default(kind, channel, lang, variables)

    def forget(self, institution_id: str) -> None:
        self._overrides.pop(institution_id, None)

    async def _for(self, institution_id: str) -> dict[tuple[str, str, str], Override]:
        now = self.clock.timestamp()
        cached = self._overrides.get(institution_id)
        if cached is not None and now - cached[0] <= self.ttl:
            return cached[1]
        async with self.db.reading() as session:
            rows = (
                await session.scalars(select(MessageTemplate).where(MessageTemplate.institution_id == institution_id))
            ).all()
        found = {(r.kind, r.channel, r.language): Override(r.subject, r.body, r.html) for r in rows}
        self._overrides[institution_id] = (now, found)
        return found
