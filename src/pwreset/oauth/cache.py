"""In-process caches that keep the database off the bearer and token hot paths.

Trust rule: a cached entry is used only while this node has seen every revocation committed more
than ``bound`` seconds ago. The revocation feed (``revocation.py``) marks the node *fresh* after
each successful read of the revocation log; when it has not managed one within ``bound`` (or runs
nowhere, as in a single-process test), entries older than ``bound`` are re-read from the database.
Revocations themselves become *tombstones*, checked on every hit, so an entry loaded just before a
revocation cannot outlive it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class CachedToken:
    token_id: str
    client_id: str
    institution_id: str
    customer_id: str | None
    family_id: str | None
    scopes: frozenset[str]
    issued_at: float
    expires_at: float
    cached_at: float
    #: The token's hash as stored (its revocation's tombstone key): the current key's, or an old key's
    #: for a token issued before a key rotation (kit/crypto.KeyedHasher).
    stored_hash: str = ""
    #: The client may name the end customer's address (``originating_ip``) for the audit trail.
    trusted_origin: bool = False


@dataclass(frozen=True, slots=True)
class CachedClient:
    client_id: str
    institution_id: str
    shared_key: str
    secret_hash: str
    scopes: frozenset[str]
    grant_types: frozenset[str]
    cached_at: float
    #: The secret a rotation replaced, accepted until ``previous_expires_at`` (a timestamp).
    previous_secret_hash: str | None = None
    previous_expires_at: float = 0.0
    trusted_origin: bool = False


class TokenCache:
    """Access tokens by keyed hash, clients by shared key, and the tombstones of revocations."""

    def __init__(self, *, bound: float, max_entries: int, tombstone_ttl: float) -> None:
        self.bound = bound
        self.max_entries = max_entries
        self.tombstone_ttl = tombstone_ttl
        self._tokens: dict[str, CachedToken] = {}
        self._clients: dict[str, CachedClient] = {}
        # (kind, key) -> revocation time; a token issued at or before it is revoked.
        self._tombstones: dict[tuple[str, str], float] = {}
        self._fresh_until = 0.0

    # Feed health

    def mark_fresh(self, seen_at: float) -> None:
        """Every revocation committed before ``seen_at`` (minus the feed's margin) has been applied."""
        self._fresh_until = max(self._fresh_until, seen_at + self.bound)

    def _trusted(self, cached_at: float, now: float) -> bool:
        return now <= self._fresh_until or now - cached_at <= self.bound

    # Tokens

    def get_token(self, token_hash: str, now: float) -> CachedToken | None:
        entry = self._tokens.get(token_hash)
        if entry is None:
            return None
        if not self._trusted(entry.cached_at, now):
            del self._tokens[token_hash]
            return None
        return entry

    def put_token(self, token_hash: str, entry: CachedToken) -> None:
        if self.max_entries == 0:
            return
        if len(self._tokens) >= self.max_entries:
            # Dicts keep insertion order: drop the oldest tenth in one go.
            for key in list(self._tokens)[: max(1, self.max_entries // 10)]:
                del self._tokens[key]
        self._tokens[token_hash] = entry

    def is_revoked(self, entry: CachedToken, token_hash: str) -> bool:
        tombs = self._tombstones
        if not tombs:
            return False
        issued = entry.issued_at
        if ("token", token_hash) in tombs:
            return True
        if tombs.get(("client", entry.client_id), -1.0) >= issued:
            return True
        if entry.family_id is not None and ("family", entry.family_id) in tombs:
            return True
        return entry.customer_id is not None and (
            tombs.get(("customer", f"{entry.institution_id}/{entry.customer_id}"), -1.0) >= issued
        )

    # Clients

    def get_client(self, shared_key: str, now: float) -> CachedClient | None:
        entry = self._clients.get(shared_key)
        if entry is None:
            return None
        if not self._trusted(entry.cached_at, now) or self._client_changed_since(entry):
            del self._clients[shared_key]
            return None
        return entry

    def _client_changed_since(self, entry: CachedClient) -> bool:
        tombs = self._tombstones
        return (
            tombs.get(("client_updated", entry.client_id), -1.0) >= entry.cached_at
            or tombs.get(("client", entry.client_id), -1.0) >= entry.cached_at
        )

    def put_client(self, entry: CachedClient) -> None:
        """Cache a client read from the database; ``cached_at`` is when that read *started*."""
        if self._client_changed_since(entry):
            return  # a change committed while we were reading: don't cache what we read
        if len(self._clients) >= 10_000:
            self._clients.clear()
        self._clients[entry.shared_key] = entry

    # Revocations

    def apply(self, kind: str, key: str, at: float) -> None:
        """Record a revocation seen in the log (idempotent)."""
        slot = (kind, key)
        if self._tombstones.get(slot, -1.0) < at:
            self._tombstones[slot] = at
        if kind == "token":
            self._tokens.pop(key, None)
        elif kind in ("client", "client_updated"):
            for shared_key, client in list(self._clients.items()):
                if client.client_id == key:
                    del self._clients[shared_key]

    def expire_tombstones(self, now: float) -> None:
        horizon = now - self.tombstone_ttl
        self._tombstones = {k: t for k, t in self._tombstones.items() if t >= horizon}

    def clear(self) -> None:
        self._tokens.clear()
        self._clients.clear()
