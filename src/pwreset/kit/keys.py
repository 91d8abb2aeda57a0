"""How much randomness a secret key carries, by an estimate that says what it counts.

A server secret key must carry at least 256 bits an attacker cannot guess. Nothing can measure the
randomness of one string; what can be measured is how far it is from what random bytes look like.
A key is accepted when all of these hold:

1. **Encoding.** It is random bytes written out: digits, hex (one case), or base64 / base64url
   (``=`` padding allowed). Spaces, punctuation and prose are refused outright.
2. **Spread.** Its characters are spread over that alphabet as random ones are: a chi-square test
   against the uniform distribution, refused beyond the level random keys reach about once in fifty
   million (digits only, or letters only in a base64 key, fail it).
3. **Patterns.** zxcvbn, run over the whole key in overlapping 72-character windows, finds repeats,
   sequences and keyboard walks of 8 characters or more, and in base64 keys dictionary words of 6
   letters or more; their characters are worth nothing. (Shorter ones occur by chance in random keys.)
4. **Size.** The characters left are each worth log2 of the alphabet (3.3 bits a digit, 4 a hex
   digit, 6 a base64 character), never more in all than the key's zlib-compressed size, and the total
   must reach 256 bits.

``pwreset keys generate`` (48 random bytes, base64url, 64 characters) estimates at 384;
``openssl rand -hex 32`` at 256; ``0123456789`` × 4, keyboard rows, words and sentences at 0.
"""

from __future__ import annotations

import math
import secrets
import string
import zlib
from dataclasses import dataclass

from zxcvbn import zxcvbn

REQUIRED_BITS = 256
GENERATED_BYTES = 48
_WINDOW = 72
_PATTERN_MIN = 8
_WORD_MIN = 6
#: Standard deviations of the chi-square test's normal approximation (Wilson-Hilferty): about one
#: random key in fifty million is refused.
_SPREAD_Z = 5.5

_BASE64URL = string.ascii_letters + string.digits + "-_"
_BASE64 = string.ascii_letters + string.digits + "+/"
_ALPHABETS = (
    ("digits", string.digits),
    ("hex", "0123456789abcdef"),
    ("hex", "0123456789ABCDEF"),
    ("base64url", _BASE64URL),
    ("base64", _BASE64),
)


@dataclass(frozen=True)
class Assessment:
    bits: int
    #: Why the key carries no randomness to speak of (None: judged by its bits).
    reason: str | None = None


def generate() -> str:
    """A new secret key: 48 bytes from the OS's CSPRNG, base64url (64 characters), one that passes
    :func:`assess` (all but about one in five hundred do at the first draw)."""
    while True:
        key = secrets.token_urlsafe(GENERATED_BYTES)
        if assess(key).bits >= REQUIRED_BITS:
            return key


def estimated_bits(key: str) -> int:
    return assess(key).bits


def assess(key: str) -> Assessment:
    body = key.rstrip("=") if key.endswith("=") else key
    if not body:
        return Assessment(0, "it is empty")
    used = set(body)
    found = next(((name, alphabet) for name, alphabet in _ALPHABETS if used <= set(alphabet)), None)
    if found is None or (key != body and not found[0].startswith("base64")):
        return Assessment(0, "it is not random bytes in hex or base64 (it holds spaces, punctuation or other text)")
    name, alphabet = found
    if _chi_square(body, alphabet) > _critical(len(alphabet) - 1):
        return Assessment(0, "its characters are not spread over its alphabet as random ones are")
    patterned = [False] * len(body)
    for start in range(0, max(1, len(body) - _WINDOW // 2), _WINDOW // 2):
        for match in zxcvbn(body[start:start + _WINDOW])["sequence"]:
            size = match["j"] - match["i"] + 1
            pattern = match["pattern"]
            if pattern in ("bruteforce", "date", "regex"):
                continue
            if pattern == "dictionary" and (name in ("digits", "hex") or size < _WORD_MIN):
                continue
            if pattern != "dictionary" and size < _PATTERN_MIN:
                continue
            for position in range(start + match["i"], start + match["j"] + 1):
                patterned[position] = True
    by_alphabet = patterned.count(False) * math.log2(len(alphabet))
    by_compression = 8 * len(zlib.compress(body.encode(), 9))
    return Assessment(int(min(by_alphabet, by_compression)))


def _chi_square(text: str, alphabet: str) -> float:
    expected = len(text) / len(alphabet)
    counts = dict.fromkeys(alphabet, 0)
    for character in text:
        counts[character] += 1
    return sum((count - expected) ** 2 / expected for count in counts.values())


def _critical(dof: int) -> float:
    """The chi-square value that ``_SPREAD_Z`` standard deviations reach (Wilson-Hilferty)."""
    return dof * (1 - 2 / (9 * dof) + _SPREAD_Z * math.sqrt(2 / (9 * dof))) ** 3
