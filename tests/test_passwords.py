"""Password hashing, legacy hashes and the blocklist."""

from __future__ import annotations

import base64
import hashlib

import bcrypt
import pytest

from pwreset.passwords.hashing import PasswordHashing, UnsupportedHash, Verdict, scheme_of
from pwreset.passwords.policy import Blocklist, PasswordPolicy, context_words


@pytest.fixture(scope="module")
def hashing() -> PasswordHashing:
    return PasswordHashing()  # production parameters


def test_new_hashes_are_argon2id_with_owasp_parameters(hashing):
    stored = hashing.hash("correct horse")
    assert stored.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert hashing.verify(stored, "correct horse") == Verdict(ok=True, needs_upgrade=False)
    assert not hashing.verify(stored, "wrong").ok


def test_legacy_schemes_verify_and_ask_for_an_upgrade(hashing):
    django = "pbkdf2_sha256$1000$salt$" + base64.b64encode(
        hashlib.pbkdf2_hmac("sha256", b"old secret", b"salt", 1000)
    ).decode()
    ab64 = base64.b64encode(hashlib.pbkdf2_hmac("sha512", b"old secret", b"saltsalt", 2000)).decode().rstrip("=")
    passlib = f"$pbkdf2-sha512$2000${base64.b64encode(b'saltsalt').decode().rstrip('=')}${ab64.replace('+', '.')}"
    for stored in (bcrypt.hashpw(b"old secret", bcrypt.gensalt(4)).decode(), django, passlib,
                   PasswordHashing(time_cost=1, memory_cost=1024).hash("old secret")):
        verdict = hashing.verify(stored, "old secret")
        assert verdict.ok and verdict.needs_upgrade, stored
        assert not hashing.verify(stored, "other").ok


def test_unknown_schemes_are_refused():
    for stored in ("md5$abc", "plaintext", "$1$abc$def"):
        with pytest.raises(UnsupportedHash):
            scheme_of(stored)


def test_a_missing_hash_never_verifies(hashing):
    assert not hashing.verify(None, "anything").ok


def test_the_blocklist_is_large_and_catches_common_passwords():
    blocklist = Blocklist()
    assert blocklist.size() >= 100_000
    for common in ("password", "Password1", "qwertyuiop", "iloveyou123", "1q2w3e4r5t"):
        assert common in blocklist, common
    for fine in ("correct horse battery staple", "Kx9!mQ2#vL7p"):
        assert fine not in blocklist


#: Common passwords a penetration test tried (issue 12, item 2): seasons and years, keyboard walks,
#: repeats, leet, the service's own words, the institution's and the customer's names with a year.
COMMON = [
    "Welcome1!", "Summer2024!", "Password2024", "Admin@123", "Bank12345", "zaq1@WSX", "aaaaaaaa", "00000000",
    "FirstCreditUnion2024", "Firstcredit2025!", "Qwerty123!", "Letmein!23", "Football1", "Monkey123!", "Dragon2024",
    "P@ssw0rd", "Spring2025", "Winter2023!", "Autumn2022", "Iloveyou1", "Abc12345", "12345678", "87654321",
    "abcdefgh", "11111111", "qwertyui", "asdfghjk", "1qaz2wsx", "Passw0rd!", "Changeme1", "Ch@ngeMe123",
    "Secret123", "Trustno1!", "Sunshine1", "Princess1", "Baseball1", "Shadow123", "Michael1", "Superman1",
    "Batman123", "Master123", "Hello123!", "Welcome@2025", "Password1!", "Pa$$w0rd", "January2024",
    "December2023!", "Bank@2024", "Online123!", "Login2024", "Money123!", "Freedom1", "Zxcvbnm1", "PatDoe2024!",
]


@pytest.mark.parametrize("password", COMMON)
def test_common_and_guessable_passwords_are_refused_with_a_reason(hashing, password):
    policy = PasswordPolicy(hashing=hashing)
    reasons = policy.reasons(password, login_id="Pat.Doe", current_hash=None, min_length=8,
                             context=context_words("First Credit Union", "07675", "Pat", "Doe"))
    assert reasons and any("too common" in r or "too easy to guess" in r for r in reasons), reasons


@pytest.mark.parametrize("password", [
    "correct horse battery staple", "Kx9!mQ2#vL7p", "contraseña con espacios ✓", "a perfectly fine passphrase",
    "Pat's kettle on the moon", "First of the blue kettles",
])
def test_strong_passwords_pass_even_with_context_words_in_them(hashing, password):
    policy = PasswordPolicy(hashing=hashing)
    assert policy.reasons(password, login_id="Pat.Doe", current_hash=None, min_length=8,
                          context=context_words("First Credit Union", "07675", "Pat", "Doe")) == []


def test_the_reason_names_what_to_change(hashing):
    policy = PasswordPolicy(hashing=hashing)
    context = context_words("First Credit Union", "07675", "Pat", "Doe")
    [named] = policy.reasons("FirstCreditUnion2024", login_id="pat", current_hash=None, min_length=8, context=context)
    assert "institution's name" in named
    [repeated] = policy.reasons("kkkkkkkkk", login_id="pat", current_hash=None, min_length=8, context=context)
    assert "repeat" in repeated.lower()


@pytest.mark.parametrize("length", [72, 73, 100, 128])
def test_long_passphrases_are_judged_not_crashed_on(hashing, length):
    """zxcvbn refuses more than 72 characters; the policy reads the first 72 (a 500 before)."""
    policy = PasswordPolicy(hashing=hashing)
    strong = ("violet kettles argue with midnight trains about " * 4)[:length]
    assert policy.reasons(strong, login_id="pat", current_hash=None, min_length=8) == []
    weak = ("a" * 72 + "kettle lamp orbit")[:length]
    assert policy.reasons(weak, login_id="pat", current_hash=None, min_length=8)


@pytest.mark.parametrize("password", [
    "Autumn2023!", "Spring2026#", "Fall2024!!", "Summer2025!!", "P@ssw0rd-99", "Football#1987", "Welcome@2030",
])
def test_one_common_word_dressed_up_with_a_year_or_symbols_is_refused(hashing, password):
    """The outside probe set `Autumn2023!` and `Fall2024!!`: zxcvbn rated them 10^8.4 guesses and more."""
    reasons = PasswordPolicy(hashing=hashing).reasons(password, login_id="jsmith001", current_hash=None, min_length=8)
    assert reasons and any("too easy to guess" in r or "too common" in r for r in reasons), reasons
