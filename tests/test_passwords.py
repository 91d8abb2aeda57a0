"""Password hashing, legacy hashes and the blocklist."""

from __future__ import annotations

import base64
import hashlib

import bcrypt
import pytest

from pwreset.passwords.hashing import PasswordHashing, UnsupportedHash, Verdict, scheme_of
from pwreset.passwords.policy import Blocklist


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
