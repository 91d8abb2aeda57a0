"""Secret generation and keyed hashing.

Machine secrets (client secrets, tokens) carry 256 bits from the OS CSPRNG, so a fast keyed hash
(HMAC-SHA256 under the server's secret key) is the right storage: guessing is infeasible and a
stolen table is useless without the key. A slow password hash here would cap the token endpoint
at a few requests per second for no gain.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time

SECRET_BYTES = 32  # 256 bits


class KeyedHasher:
    """HMAC-SHA256 with a per-purpose label, so a hash of one kind never matches another kind."""

    __slots__ = ("_key",)

    def __init__(self, key: bytes) -> None:
        if not key:
            raise ValueError("the hashing key is empty")
        self._key = key

    def digest(self, purpose: str, value: str) -> str:
        return hmac.new(self._key, f"{purpose}\x00{value}".encode(), hashlib.sha256).hexdigest()

    def verify(self, purpose: str, value: str, expected_hex: str) -> bool:
        """Constant-time comparison of ``value``'s hash with a stored hash."""
        return hmac.compare_digest(self.digest(purpose, value), expected_hex)

    def derive(self, label: str) -> str:
        """A stable secret derived from the key (used by the sandbox for its demo credentials)."""
        raw = hmac.new(self._key, f"derive\x00{label}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def new_secret(prefix: str) -> str:
    """A prefixed, URL-safe secret with 256 bits of entropy (e.g. ``pwr_at_...``)."""
    return prefix + secrets.token_urlsafe(SECRET_BYTES)


def new_id() -> str:
    """An opaque random identifier (128 bits, hex)."""
    return secrets.token_hex(16)


def ordered_id() -> str:
    """An opaque identifier that sorts by creation time: 48 bits of Unix milliseconds, then 80 random
    bits (the layout of RFC 9562's UUIDv7, as 32 hex digits, the width of :func:`new_id`).

    For rows created in bulk (the directory import): new keys land at the right edge of the
    primary-key index instead of on a random page of it, which made a COPY of a million rows several
    times cheaper (bench/README.md). 80 random bits keep it unguessable; what it gives away is when
    the row was created."""
    return f"{time.time_ns() // 1_000_000:012x}{secrets.token_hex(10)}"


def ordered_ids(count: int) -> list[str]:
    """``count`` :func:`ordered_id` values from one read of the OS's random source (a call per id
    was a fifth of the import's main process)."""
    stamp = f"{time.time_ns() // 1_000_000:012x}"
    random = secrets.token_hex(10 * count)
    return [stamp + random[20 * n:20 * n + 20] for n in range(count)]


class Sealer:
    """Authenticated encryption (AES-256-GCM) for short secrets kept at rest, such as an outbox
    message that carries a passcode. The key is derived from the server secret key."""

    __slots__ = ("_aead",)

    def __init__(self, key: bytes, *, purpose: str) -> None:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        derived = hmac.new(key, f"seal\x00{purpose}".encode(), hashlib.sha256).digest()
        self._aead = AESGCM(derived)

    def seal(self, plaintext: bytes) -> bytes:
        nonce = secrets.token_bytes(12)
        return nonce + self._aead.encrypt(nonce, plaintext, None)

    def open(self, sealed: bytes) -> bytes:
        return self._aead.decrypt(sealed[:12], sealed[12:], None)
