"""Contact methods: the email shortcut agrees with ``email-validator`` on every address."""

from __future__ import annotations

import pytest
from email_validator import EmailNotValidError, validate_email
from hypothesis import example, given, settings
from hypothesis import strategies as st

from pwreset.customers.contact import InvalidContact, normalise, normalise_email

ATEXT = "abcXYZ019!#$%&'*+/=?^_`{|}~-"
DOMAINS = [
    "example.com", "Example.COM", "mail.example.co.uk", "xn--bcher-kva.ch", "bücher.ch", "EXAMPLE.org.",
    "localhost", "invalid", "example.invalid", "test", "a.test", "example.local", "1.2.3.4", "[1.2.3.4]",
    "exa_mple.com", "-example.com", "example-.com", "ex..ample.com", "", "com", "a" * 64 + ".com",
    "a" * 63 + ".com", ".".join(["a" * 60] * 5) + ".com", "ⓔxample.com", "example.c", "example.123",
]


def library(address: str) -> str | None:
    try:
        return validate_email(address, check_deliverability=False).normalized
    except EmailNotValidError:
        return None


def shortcut(address: str) -> str | None:
    try:
        return normalise_email(address)
    except EmailNotValidError:
        return None


ROLES = ["postmaster", "abuse", "Support", "INFO", "sales", "Webmaster", "security", "noc"]
KOREAN = "한국어도메인이름입니다"
IDN = [".".join([KOREAN.encode("idna").decode()] * 4) + ".kr", ".".join([KOREAN] * 4) + ".kr"]


@settings(max_examples=600, deadline=None)
@given(
    local=st.one_of(
        st.text(alphabet=ATEXT + ".", min_size=0, max_size=70),
        st.text(alphabet=ATEXT + '. "@\\é\t', min_size=0, max_size=12),
        st.sampled_from(ROLES),
        st.sampled_from(["a" * 10, "a" * 64]),
    ),
    domain=st.one_of(st.sampled_from(DOMAINS + IDN), st.text(alphabet="abcXYZ09-._", min_size=0, max_size=20)),
)
@example(local="pat", domain="Example.com")
@example(local="a" * 64, domain="example.com")
@example(local="a" * 65, domain="example.com")
@example(local="a..b", domain="example.com")
@example(local=".a", domain="example.com")
@example(local="Support", domain="example.com")  # a role name: the library lowercases it
@example(local="a" * 64, domain=IDN[0])  # longer in UTF-8 once the library decodes the domain
@example(local="a" * 64, domain=IDN[1])  # too long once the domain is in its ASCII form
def test_the_email_shortcut_and_the_library_agree(local: str, domain: str) -> None:
    address = f"{local}@{domain}"
    assert shortcut(address) == library(address)


def test_a_refused_address_gives_the_library_reason() -> None:
    with pytest.raises(InvalidContact, match=r"not a valid email address: .*special-use or reserved name"):
        normalise("EMAIL", "pat@example.invalid", None)
    assert normalise("EMAIL", "Pat@Example.COM", None).destination == "Pat@example.com"
