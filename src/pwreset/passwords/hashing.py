"""Password hashing: argon2id for everything we write; argon2, bcrypt and PBKDF2 accepted on import.

Imported hashes keep working: they are verified in their own scheme and replaced by argon2id at the
next successful sign-in (OWASP Password Storage Cheat Sheet, "upgrading legacy hashes").
Parameters default to OWASP's argon2id minimum (19 MiB, 2 iterations, 1 lane).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass

import bcrypt
from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError


class UnsupportedHash(ValueError):
    """A ``passwordHash`` in a scheme we cannot verify."""


@dataclass(frozen=True)
class Verdict:
    ok: bool
    needs_upgrade: bool = False


class PasswordHashing:
    def __init__(self, *, time_cost: int = 2, memory_cost: int = 19_456, parallelism: int = 1) -> None:
        self._argon2 = PasswordHasher(
            time_cost=time_cost, memory_cost=memory_cost, parallelism=parallelism, type=Type.ID
        )
        # Verified against when there is no hash, so a missing user costs the same time.
        self._dummy = self._argon2.hash("pwreset dummy password")

    def hash(self, password: str) -> str:
        return self._argon2.hash(password)

    def verify(self, stored: str | None, password: str) -> Verdict:
        if not stored:
            self._verify_argon2(self._dummy, password)
            return Verdict(False)
        scheme = scheme_of(stored)
        if scheme == "argon2":
            ok = self._verify_argon2(stored, password)
            return Verdict(ok, ok and (not stored.startswith("$argon2id$") or self._argon2.check_needs_rehash(stored)))
        if scheme == "bcrypt":
            try:
                ok = bcrypt.checkpw(password.encode()[:72], stored.encode())
            except ValueError:
                ok = False
            return Verdict(ok, ok)
        ok = _verify_pbkdf2(stored, password)
        return Verdict(ok, ok)

    def _verify_argon2(self, stored: str, password: str) -> bool:
        try:
            return self._argon2.verify(stored, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False


def scheme_of(stored: str) -> str:
    """``argon2``, ``bcrypt`` or ``pbkdf2``; raises :class:`UnsupportedHash` otherwise."""
    if stored.startswith(("$argon2id$", "$argon2i$", "$argon2d$")):
        return "argon2"
    if stored.startswith(("$2a$", "$2b$", "$2y$")) and len(stored) == 60:
        return "bcrypt"
    if _parse_pbkdf2(stored) is not None:
        return "pbkdf2"
    raise UnsupportedHash("passwordHash must be an argon2, bcrypt or PBKDF2 hash in its usual encoded form")


_PBKDF2_ALGORITHMS = {"sha1": "sha1", "sha256": "sha256", "sha512": "sha512"}


def _ab64_decode(value: str) -> bytes:
    """passlib's adapted base64 ('.' for '+', no padding)."""
    value = value.replace(".", "+")
    return base64.b64decode(value + "=" * (-len(value) % 4))


def _parse_pbkdf2(stored: str) -> tuple[str, int, bytes, bytes] | None:
    """Django ``pbkdf2_sha256$iterations$salt$b64hash`` or passlib ``$pbkdf2-sha256$iter$salt$hash``."""
    try:
        if stored.startswith("pbkdf2_"):
            algorithm, iterations, salt, digest = stored.split("$")
            name = _PBKDF2_ALGORITHMS[algorithm.removeprefix("pbkdf2_")]
            return name, int(iterations), salt.encode(), base64.b64decode(digest)
        if stored.startswith("$pbkdf2"):
            _, algorithm, iterations, salt, digest = stored.split("$")
            name = _PBKDF2_ALGORITHMS[algorithm.removeprefix("pbkdf2-") if "-" in algorithm else "sha1"]
            return name, int(iterations), _ab64_decode(salt), _ab64_decode(digest)
    except (ValueError, KeyError, TypeError):
        return None
    return None


def _verify_pbkdf2(stored: str, password: str) -> bool:
    parsed = _parse_pbkdf2(stored)
    if parsed is None:
        return False
    name, iterations, salt, expected = parsed
    actual = hashlib.pbkdf2_hmac(name, password.encode(), salt, iterations, dklen=len(expected))
    return hmac.compare_digest(actual, expected)
