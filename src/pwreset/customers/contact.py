"""Validating and normalising contact methods, and masking them for logs and messages.

Phone numbers go through ``phonenumbers`` (Google's libphonenumber): the stored destination is
E.164; email addresses through ``email-validator`` (syntax and normalisation, no DNS lookups).
"""

from __future__ import annotations

from dataclasses import dataclass

import phonenumbers
from email_validator import EmailNotValidError, validate_email

PHONE_PROTOCOLS = frozenset({"SMS", "VOICE"})
PROTOCOLS = frozenset({"SMS", "VOICE", "EMAIL"})


class InvalidContact(ValueError):
    pass


@dataclass(frozen=True)
class NormalisedContact:
    protocol: str
    country_code: str | None
    contact_info: str
    destination: str


def normalise(protocol: str, contact_info: str, country_code: str | None) -> NormalisedContact:
    protocol = protocol.upper()
    if protocol not in PROTOCOLS:
        raise InvalidContact(f"protocol must be one of {', '.join(sorted(PROTOCOLS))}")
    if protocol == "EMAIL":
        if country_code:
            raise InvalidContact("an EMAIL method has no telephoneCountryCode")
        try:
            email = validate_email(contact_info, check_deliverability=False).normalized
        except EmailNotValidError as exc:
            raise InvalidContact(f"contactInfo is not a valid email address: {exc}") from None
        return NormalisedContact(protocol, None, email, email)
    digits = contact_info.strip()
    raw = digits if digits.startswith("+") else f"+{(country_code or '').lstrip('+')}{digits}"
    try:
        number = phonenumbers.parse(raw, None)
    except phonenumbers.NumberParseException:
        raise InvalidContact("contactInfo is not a phone number (telephoneCountryCode + number)") from None
    if not phonenumbers.is_valid_number(number):
        raise InvalidContact("contactInfo is not a valid phone number for its country")
    return NormalisedContact(
        protocol,
        str(number.country_code),
        str(number.national_number),
        phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164),
    )


def mask(destination: str) -> str:
    """``+1•••••0143``, ``p•••@example.com``: enough to recognise, never the whole thing."""
    if "@" in destination:
        local, _, domain = destination.partition("@")
        return f"{local[:1]}•••@{domain}"
    return f"{destination[:2]}•••••{destination[-4:]}" if len(destination) > 6 else "•••"
