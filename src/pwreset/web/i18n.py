"""The reset page's languages: one message catalogue per language (Babel), chosen per request.

Messages are written in English in the templates (``_("...")``) and the code (``N_("...")``, marked for
extraction and translated when shown). ``locale/<language>/LC_MESSAGES/messages.po`` holds each
translation; it is read with Babel when the process starts (no compiled ``.mo`` to keep in step), and a
test checks that every message the templates and code use has a translation in every language.

The language: ``?lang=`` (the switch on every page, remembered in a cookie), else the cookie, else the
browser's ``Accept-Language`` (Babel's negotiation), else English.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from importlib.resources import files
from io import BytesIO
from typing import Any

from babel.core import negotiate_locale
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations

LANGUAGES = ("en", "es")
NAMES = {"en": "English", "es": "Español"}
COOKIE = "pwreset_lang"


def N_(message: str) -> str:
    return message


@cache
def translations(language: str) -> NullTranslations:
    if language == "en":
        return NullTranslations()
    source = files("pwreset.web") / "locale" / language / "LC_MESSAGES" / "messages.po"
    with source.open("rb") as po:
        catalog = read_po(po, locale=language)
    compiled = BytesIO()
    write_mo(compiled, catalog)
    compiled.seek(0)
    return Translations(compiled)


def gettext_for(language: str) -> Callable[..., str]:
    """``_("Hello %(name)s", name=...)``: the translation, with its named values filled in."""
    found = translations(language)

    def _(message: str, **values: Any) -> str:
        text = found.gettext(message)
        return text % values if values else text

    return _


def accepted(header: str) -> list[str]:
    """``Accept-Language``'s tags, most wanted first (RFC 9110 section 12.5.4)."""
    weighted: list[tuple[float, int, str]] = []
    for position, part in enumerate(header.split(",")[:20]):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        if tag and quality > 0:
            weighted.append((-quality, position, tag.strip()[:35]))
    return [tag for _, _, tag in sorted(weighted)]


def choose(*, asked: str | None, cookie: str | None, accept_language: str) -> str:
    for value in (asked, cookie):
        if value in LANGUAGES:
            return value
    found = negotiate_locale([t.replace("-", "_") for t in accepted(accept_language)], list(LANGUAGES))
    return str(found) if found in LANGUAGES else "en"
