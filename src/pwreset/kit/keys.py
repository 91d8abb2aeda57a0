"""How much randomness a secret key carries, by an estimate that says what it counts.

A server secret key must carry at least 256 bits an attacker cannot guess. Nothing can measure the
randomness of one string; what can be measured is how much of it is *not* random. The estimate:

1. **Alphabet.** Each character is worth log2 of the smallest common alphabet the whole key is
   drawn from: digits 10, hex 16, lower or upper case letters 26, lower case and digits 36, letters
   and digits 62, base64 or base64url 64, any other printable text 95 (6.6 bits).
2. **Patterns.** zxcvbn finds repeats, sequences, keyboard walks and dictionary words; the
   characters of every such pattern 8 characters or longer are worth nothing. (Shorter ones and
   digit runs that read as dates occur by chance in random keys and are not counted. zxcvbn reads
   the first 72 characters; the rest is counted by alphabet and compression.)
3. **Compression.** The estimate is never more than the key's size after zlib compression, in bits,
   which catches long repeated blocks.

``secrets.token_urlsafe(48)`` (what ``pwreset keys generate`` prints: 64 characters, 384 bits)
estimates at 380 or more; ``openssl rand -hex 32`` at 256 (rarely just under: generate another);
``0123456789`` × 4 and ``passwordpassword...12345678`` at 0.
"""

from __future__ import annotations

import math
import secrets
import string
import zlib

from zxcvbn import zxcvbn

REQUIRED_BITS = 256
GENERATED_BYTES = 48
_ZXCVBN_MAX = 72
_PATTERN_MIN = 8

_ALPHABETS = (
    (10, frozenset(string.digits)),
    (16, frozenset("0123456789abcdef")),
    (16, frozenset("0123456789ABCDEF")),
    (26, frozenset(string.ascii_lowercase)),
    (26, frozenset(string.ascii_uppercase)),
    (36, frozenset(string.ascii_lowercase + string.digits)),
    (62, frozenset(string.ascii_letters + string.digits)),
    (64, frozenset(string.ascii_letters + string.digits + "-_")),
    (64, frozenset(string.ascii_letters + string.digits + "+/=")),
)


def generate() -> str:
    """A new secret key: 48 bytes from the OS's CSPRNG, base64url (64 characters)."""
    return secrets.token_urlsafe(GENERATED_BYTES)


def estimated_bits(key: str) -> int:
    """The estimate described above, in whole bits."""
    if not key:
        return 0
    characters = set(key)
    size = next((n for n, alphabet in _ALPHABETS if characters <= alphabet), 95)
    head = key[:_ZXCVBN_MAX]
    patterned = [False] * len(head)
    for match in zxcvbn(head)["sequence"]:
        if match["pattern"] in ("bruteforce", "date", "regex"):
            continue
        if match["j"] - match["i"] + 1 >= _PATTERN_MIN:
            for position in range(match["i"], match["j"] + 1):
                patterned[position] = True
    free = patterned.count(False) + len(key) - len(head)
    by_alphabet = free * math.log2(size)
    by_compression = 8 * len(zlib.compress(key.encode("utf-8", "replace"), 9))
    return int(min(by_alphabet, by_compression))
