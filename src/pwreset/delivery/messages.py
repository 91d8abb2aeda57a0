"""Message texts per kind and channel, in English and Spanish (the customer's language when known).

SMS texts fit one GSM-7 segment (160 characters) with a 40-character institution name. Voice texts
read the code digit by digit, twice.
"""

from __future__ import annotations

from dataclasses import dataclass

_TEXTS = {
    "en": {
        ("passcode", "SMS"): "{institution}: your password reset code is {code}. It expires in {minutes} min. "
        "Never share it.",
        ("passcode", "VOICE"): "Hello. This is {institution}. Your password reset code is: {spoken}. "
        "Again, your code is: {spoken}. Never share this code. Goodbye.",
        ("passcode", "EMAIL"): "Your {institution} password reset code is {code}.\n\nIt expires in {minutes} "
        "minutes. If you did not ask to reset your password, ignore this message and do not share the code.",
        ("password_changed", "SMS"): "{institution}: your online banking password was changed. "
        "Not you? Call us now.",
        ("password_changed", "VOICE"): "Hello. This is {institution}. Your online banking password was just "
        "changed. If this was not you, call us now. Goodbye.",
        ("password_changed", "EMAIL"): "Your {institution} online banking password was changed.\n\nIf this was "
        "not you, call us now.",
    },
    "es": {
        ("passcode", "SMS"): "{institution}: su codigo para restablecer la contrasena es {code}. Vence en "
        "{minutes} min. No lo comparta.",
        ("passcode", "VOICE"): "Hola. Le llama {institution}. Su codigo es: {spoken}. Repito, su codigo es: "
        "{spoken}. No comparta este codigo. Adios.",
        ("passcode", "EMAIL"): "Su codigo de {institution} para restablecer la contrasena es {code}.\n\nVence en "
        "{minutes} minutos. Si no lo solicito, ignore este mensaje y no comparta el codigo.",
        ("password_changed", "SMS"): "{institution}: su contrasena de banca en linea cambio. Si no fue usted, "
        "llamenos.",
        ("password_changed", "VOICE"): "Hola. Le llama {institution}. Su contrasena de banca en linea acaba de "
        "cambiar. Si no fue usted, llamenos. Adios.",
        ("password_changed", "EMAIL"): "Su contrasena de banca en linea de {institution} cambio.\n\nSi no fue "
        "usted, llamenos de inmediato.",
    },
}
_SUBJECTS = {
    "en": {"passcode": "Your password reset code", "password_changed": "Your password was changed"},
    "es": {"passcode": "Su codigo para restablecer la contrasena", "password_changed": "Su contrasena cambio"},
}


@dataclass(frozen=True)
class Rendered:
    subject: str | None
    text: str


def render(kind: str, channel: str, *, language: str, institution: str, code: str = "", minutes: int = 0) -> Rendered:
    lang = language.split("-")[0] if language.split("-")[0] in _TEXTS else "en"
    spoken = ", ".join(code)
    text = _TEXTS[lang][(kind, channel)].format(institution=institution[:40], code=code, minutes=minutes, spoken=spoken)
    return Rendered(_SUBJECTS[lang][kind] if channel == "EMAIL" else None, text)
