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
from collections.abc import Sequence

SECRET_BYTES = 32  # 256 bits


class KeyedHasher:
    """HMAC-SHA256 with a per-purpose label, so a hash of one kind never matches another kind.

    A keyring: new hashes are made with the current key; hashes made with the keys it replaced
    (``old``) still verify and are still found (:meth:`digests`), so a key rotation invalidates no
    client secret, token, passcode or ticket (docs/operations.md, "Rotating the secret key").
    """

    __slots__ = ("_key", "_keys")

    def __init__(self, key: bytes, *, old: Sequence[bytes] = ()) -> None:
        if not key:
            raise ValueError("the hashing key is empty")
        self._key = key
        self._keys = (key, *(k for k in old if k and k != key))

    def digest(self, purpose: str, value: str) -> str:
        return hmac.new(self._key, f"{purpose}\x00{value}".encode(), hashlib.sha256).hexdigest()

    def digests(self, purpose: str, value: str) -> list[str]:
        """``value``'s hash under every key of the ring, the current key's first: what a lookup of a
        stored hash searches for."""
        message = f"{purpose}\x00{value}".encode()
        return [hmac.new(key, message, hashlib.sha256).hexdigest() for key in self._keys]

    def verify(self, purpose: str, value: str, expected_hex: str) -> bool:
        """Constant-time comparison of ``value``'s hash with a stored hash, under every key (all of them
        computed and compared, so the time says nothing about which matched)."""
        matched = False
        for candidate in self.digests(purpose, value):
            matched |= hmac.compare_digest(candidate, expected_hex)
        return matched

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


class NotOurKey(Exception):
    """Cannot be opened here: sealed under a key this process does not hold, or (``damaged``) under
    one it holds but altered since."""

    def __init__(self, key_id: str | None, *, damaged: bool = False) -> None:
        if damaged:
            text = f"sealed under key {key_id}, which this process holds, and damaged"
        else:
            text = f"sealed under key {key_id}" if key_id else "sealed under an unknown key, or damaged"
        super().__init__(text)
        self.key_id = key_id
        self.damaged = damaged


_SEALED_V1 = b"\x01"


class Sealer:
    """Authenticated encryption (AES-256-GCM) for short secrets kept at rest, such as an outbox
    message that carries a passcode. Keys are derived from the server secret keys.

    A sealed value is ``01 | key id (4 bytes) | nonce (12) | ciphertext``: the key id (a keyed hash of
    the key, not the key) tells a process whether it holds the key before it tries, so a node
    started with another key leaves the message for one that has it instead of calling it damaged.
    Values sealed before key ids (``nonce | ciphertext``) are tried under every key. New values are
    sealed with the current key; the old keys of the ring only open.
    """

    __slots__ = ("_by_id", "_current")

    def __init__(self, key: bytes, *, purpose: str, old: Sequence[bytes] = ()) -> None:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        ring = []
        for raw in (key, *(k for k in old if k and k != key)):
            derived = hmac.new(raw, f"seal\x00{purpose}".encode(), hashlib.sha256).digest()
            key_id = hmac.new(raw, f"seal-key-id\x00{purpose}".encode(), hashlib.sha256).digest()[:4]
            ring.append((key_id, AESGCM(derived)))
        self._current = ring[0]
        self._by_id = dict(ring)

    @property
    def key_id(self) -> str:
        return self._current[0].hex()

    def seal(self, plaintext: bytes) -> bytes:
        key_id, aead = self._current
        nonce = secrets.token_bytes(12)
        return _SEALED_V1 + key_id + nonce + aead.encrypt(nonce, plaintext, None)

    def open(self, sealed: bytes) -> bytes:
        """The plaintext; :class:`NotOurKey` when no key of the ring opens it."""
        from cryptography.exceptions import InvalidTag

        key_id = sealed[1:5] if sealed[:1] == _SEALED_V1 and len(sealed) > 17 else None
        if key_id is not None and key_id in self._by_id:
            try:
                return self._by_id[key_id].decrypt(sealed[5:17], sealed[17:], None)
            except InvalidTag:
                pass  # (or a value sealed before key ids that happens to begin with 01)
        for aead in self._by_id.values():
            try:
                return aead.decrypt(sealed[:12], sealed[12:], None)
            except InvalidTag:
                continue
        raise NotOurKey(key_id.hex() if key_id is not None else None, damaged=key_id in self._by_id)
